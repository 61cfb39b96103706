//! Embeds the console's web UI (`console/ui`, built by Vite into
//! `console/ui/dist`) in the binary: generates `$OUT_DIR/ui_assets.rs`, a
//! table of `(path, bytes)` with `include_bytes!` of every built file.
//!
//! A fresh clone must `cargo build` (and CI runs clippy before any npm
//! step), so when `dist/` is missing or older than the UI's sources, this
//! runs `npm ci` (when `node_modules` is missing or older than the lock) and
//! `npm run build` itself. Without npm it fails saying what to install,
//! unless a (stale) `dist/` exists, which is then used with a warning.
//! `SHARDLINE_UI=skip` builds without the UI (the admin listener then says
//! so at `/`), for a machine that only needs the broker.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

fn main() {
    let ui = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("console/ui");
    let dist = ui.join("dist");
    for p in [
        "src",
        "index.html",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
        "dist",
    ] {
        println!("cargo:rerun-if-changed={}", ui.join(p).display());
    }
    println!("cargo:rerun-if-env-changed=SHARDLINE_UI");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("ui_assets.rs");
    if std::env::var("SHARDLINE_UI").as_deref() == Ok("skip") {
        std::fs::write(&out, "pub static ASSETS: &[(&str, &[u8])] = &[];\n").unwrap();
        return;
    }
    let built = mtime(&dist.join("index.html"));
    let sources = [
        "src",
        "index.html",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
    ]
    .iter()
    .filter_map(|p| newest(&ui.join(p)))
    .max();
    if built.is_none() || sources > built {
        build_ui(&ui, built.is_some());
    }
    let mut files = Vec::new();
    collect(&dist, &mut files);
    files.sort();
    assert!(
        files.iter().any(|f| f.ends_with("index.html")),
        "{} has no index.html: run `npm ci && npm run build` in {}",
        dist.display(),
        ui.display()
    );
    let mut table = String::from("pub static ASSETS: &[(&str, &[u8])] = &[\n");
    for f in files {
        let rel = f
            .strip_prefix(&dist)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        table += &format!(
            "    ({:?}, include_bytes!({:?})),\n",
            format!("/{rel}"),
            f.display().to_string()
        );
    }
    table += "];\n";
    std::fs::write(&out, table).unwrap();
}

fn build_ui(ui: &Path, have_stale: bool) {
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    if Command::new(npm).arg("--version").output().is_err() {
        if have_stale {
            println!("cargo:warning=npm not found: embedding the console UI built earlier in console/ui/dist, older than its sources");
            return;
        }
        panic!(
            "the console's web UI is not built ({}/dist is missing) and npm is not installed: \
             install Node.js 20+ and npm (Debian: apt-get install nodejs npm), or build it \
             elsewhere with `npm ci && npm run build` in broker/console/ui, or set SHARDLINE_UI=skip \
             to build a broker without the UI",
            ui.display()
        );
    }
    let lock = mtime(&ui.join("package-lock.json"));
    let installed = mtime(&ui.join("node_modules/.package-lock.json"));
    if installed.is_none() || lock > installed {
        run(
            ui,
            npm,
            &["ci", "--no-audit", "--no-fund", "--loglevel=error"],
        );
    }
    run(ui, npm, &["run", "build"]);
}

fn run(dir: &Path, cmd: &str, args: &[&str]) {
    let status = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap_or_else(|e| panic!("running {cmd} {args:?}: {e}"));
    assert!(
        status.success(),
        "`{cmd} {}` in {} failed ({status}); see its output above",
        args.join(" "),
        dir.display()
    );
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// The newest modification time under `p` (a file or a directory tree).
fn newest(p: &Path) -> Option<SystemTime> {
    let own = mtime(p);
    let Ok(rd) = std::fs::read_dir(p) else {
        return own;
    };
    rd.flatten()
        .filter_map(|e| newest(&e.path()))
        .chain(own)
        .max()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else {
            out.push(p);
        }
    }
}
