//! The console's web UI (`broker/console/ui`, built by Vite and embedded by
//! `build.rs`), served from the admin listener: `/` and `/assets/*`, and the
//! UI's own routes ([`PAGES`], e.g. `/topics/orders`) answered with
//! `index.html` so they survive a reload or a shared link. Other paths stay
//! 404s (a mistyped `/metrix` is not answered with the console's page).

use super::http::{Request, Response};

include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));

/// Vite names assets by content hash, so they may be cached for good; the
/// page itself must be revalidated so a new broker's UI is picked up.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// The first path segments of the UI's routes (`src/main.tsx`).
const PAGES: &[&str] = &[
    "login", "topics", "messages", "groups", "alerts", "security",
];

/// The answer for a GET/HEAD of `req.path` when it is the UI's, else `None`.
pub fn serve(req: &Request) -> Option<Response> {
    let path = req.path.as_str();
    if let Some(body) = asset(path).filter(|_| path != "/index.html") {
        let cache = if path.starts_with("/assets/") {
            IMMUTABLE
        } else {
            REVALIDATE
        };
        return Some(with_headers(
            Response::new(200, content_type(path), body),
            cache,
        ));
    }
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    if path != "/" && !PAGES.contains(&first) {
        return None;
    }
    Some(match asset("/index.html") {
        Some(page) => with_headers(
            Response::new(200, "text/html; charset=utf-8", page),
            REVALIDATE,
        ),
        None => Response::text(
            404,
            "this broker was built without the console's web UI (SHARDLINE_UI=skip); \
             the JSON API is at /api/v1/info\n",
        ),
    })
}

fn asset(path: &str) -> Option<&'static [u8]> {
    ASSETS.iter().find(|(p, _)| *p == path).map(|(_, b)| *b)
}

fn with_headers(r: Response, cache: &str) -> Response {
    r.with_header("Cache-Control", cache.into())
        .with_header("X-Content-Type-Options", "nosniff".into())
        // The UI loads only its own files and calls only its own API.
        .with_header(
            "Content-Security-Policy",
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
             frame-ancestors 'none'"
                .into(),
        )
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, e)| e) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Option<Response> {
        serve(&Request {
            method: "GET".into(),
            path: path.into(),
            query: String::new(),
            version: "HTTP/1.1".into(),
            headers: Vec::new(),
            body: Vec::new(),
            peer: None,
            tls: false,
        })
    }

    fn header<'a>(r: &'a Response, name: &str) -> &'a str {
        r.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    #[test]
    fn pages_assets_and_fallback() {
        if ASSETS.is_empty() {
            return; // built with SHARDLINE_UI=skip
        }
        let root = get("/").unwrap();
        assert_eq!(root.content_type, "text/html; charset=utf-8");
        assert_eq!(header(&root, "Cache-Control"), "no-cache");
        assert!(String::from_utf8_lossy(&root.body).contains("<div id=\"app\">"));
        // An SPA route gets the same page.
        assert_eq!(get("/topics/orders").unwrap().body, root.body);
        let (js, _) = ASSETS.iter().find(|(p, _)| p.ends_with(".js")).unwrap();
        let r = get(js).unwrap();
        assert_eq!(r.content_type, "text/javascript; charset=utf-8");
        assert!(header(&r, "Cache-Control").contains("immutable"));
        assert!(get("/assets/gone-123.js").is_none());
        assert!(get("/favicon.ico").is_none());
        assert!(get("/metrix").is_none());
    }
}
