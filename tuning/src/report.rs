//! Running the checks, `--apply`, and rendering the outcome as text or JSON.

use serde::Serialize;

use crate::checks::{run_all, Finding, Status};
use crate::host::{read_value, selected, FileValue, Host, Needs};

/// One file `--apply` tried to change.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub check: &'static str,
    pub path: String,
    pub old: String,
    pub new: String,
    /// `None` when the write succeeded, else why it did not.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TuneReport {
    /// No check failed (warnings do not make a host unfit).
    pub fit: bool,
    pub data_dir: String,
    pub shards: usize,
    pub checks: Vec<Finding>,
    /// Present only with `--apply`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<Change>>,
}

/// Check the host; with `apply`, write every fix the checks offer, then
/// check again so the report shows the state after the changes. Without
/// `apply` nothing is written.
pub fn tune(host: &Host, needs: &Needs, apply: bool) -> TuneReport {
    let mut checks = run_all(host, needs);
    let changes = apply.then(|| {
        let changes = apply_fixes(&checks);
        checks = run_all(host, needs);
        changes
    });
    TuneReport {
        fit: !checks.iter().any(|c| c.status == Status::Fail),
        data_dir: needs.data_dir.display().to_string(),
        shards: needs.shards,
        checks,
        changes,
    }
}

pub(crate) fn apply_fixes(checks: &[Finding]) -> Vec<Change> {
    let mut out = Vec::new();
    for f in checks
        .iter()
        .filter(|f| matches!(f.status, Status::Warn | Status::Fail))
    {
        for w in &f.writes {
            let old = match read_value(&w.path) {
                FileValue::Value(v) => selected(&v).to_string(),
                FileValue::Absent => "(absent)".into(),
                FileValue::Unreadable(e) => format!("(unreadable: {e})"),
            };
            // sysfs/procfs files take one write of the new value; a
            // read-only mount or missing privilege is reported, not fatal.
            let error = std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&w.path)
                .and_then(|mut file| std::io::Write::write_all(&mut file, w.value.as_bytes()))
                .err()
                .map(|e| e.to_string());
            out.push(Change {
                check: f.name,
                path: w.path.display().to_string(),
                old,
                new: w.value.clone(),
                error,
            });
        }
    }
    out
}

impl TuneReport {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serialises")
    }

    pub fn to_text(&self) -> String {
        let mut s = format!(
            "shardline tune: {} shard(s), data dir {}\n\n",
            self.shards, self.data_dir
        );
        for c in &self.checks {
            s += &format!("[{:>4}] {:<22} {}\n", c.status.label(), c.name, c.current);
            if !c.wanted.is_empty() {
                s += &format!("       {:<22} wanted: {}\n", "", c.wanted);
            }
            s += &format!("       {:<22} why: {}\n", "", c.why);
            if c.status != Status::Ok && !c.fix.is_empty() {
                let auto = if c.writes.is_empty() {
                    ""
                } else {
                    " (--apply does this)"
                };
                s += &format!("       {:<22} fix: {}{auto}\n", "", c.fix);
            }
        }
        if let Some(changes) = &self.changes {
            s += "\nchanges:\n";
            if changes.is_empty() {
                s += "  nothing to change\n";
            }
            for ch in changes {
                match &ch.error {
                    None => s += &format!("  {}: {} {} -> {}\n", ch.check, ch.path, ch.old, ch.new),
                    Some(e) => {
                        s += &format!(
                            "  {}: {} NOT changed ({} -> {}): {e}\n",
                            ch.check, ch.path, ch.old, ch.new
                        )
                    }
                }
            }
        }
        let count = |st| self.checks.iter().filter(|c| c.status == st).count();
        s += &format!(
            "\n{}: {} ok, {} warn, {} fail, {} n/a\n",
            if self.fit { "fit" } else { "NOT fit" },
            count(Status::Ok),
            count(Status::Warn),
            count(Status::Fail),
            count(Status::NotApplicable)
        );
        s
    }
}
