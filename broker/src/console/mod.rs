//! The console's JSON API under `/api/v1` on the admin listener (issue 17,
//! backend part 1). Documented in `broker/console/openapi.yaml`; the route
//! table is [`router::ROUTES`].
//!
//! Never on a shard: requests arrive on the admin listener's connection
//! threads (`admin::http`), and every read or admin action goes over the
//! Kafka protocol to this broker's own listener as the logged-in principal
//! (`ops`, the CLI's code), so ACLs apply exactly as they do to the CLI and
//! to any Kafka client. Nothing here reads broker state directly except the
//! metrics history, which samples what `/metrics` shows.
//!
//! Bounded: [`MAX_API_CALLS`] calls at once over all sessions (more get 503
//! with a message), below the listener's connection cap so `/metrics` and
//! `/health` always find a thread; sessions are bounded in `session`.

pub mod alerts;
pub mod api;
pub mod error;
pub mod history;
pub mod peers;
pub mod router;
pub mod session;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use shardline_client::Client;

use crate::admin::http::{Request, Response};
use crate::config::BrokerConfig;
use crate::listeners::{Listener, SecurityProtocol};
use error::ApiError;
use router::{Auth, Matched, Reply};
use session::{Session, Sessions, Target};

/// API calls served at once, over all sessions.
pub const MAX_API_CALLS: usize = 16;

/// What the console knows of its broker, fixed at start.
pub struct Console {
    pub node_id: i32,
    pub authorizer_enabled: bool,
    /// Where and how the console's Kafka connections go; `None`: no client
    /// listener it can use (the API then answers 503 saying so).
    pub target: Option<Target>,
    pub listener_name: Option<String>,
    pub sessions: Sessions,
    pub history: Arc<history::History>,
    /// How HTTPS admin listeners of other brokers are verified (`peers`):
    /// against `ssl_truststore_location`, when set.
    pub peer_tls: Option<Arc<rustls::ClientConfig>>,
    in_flight: AtomicUsize,
}

const JSON: &str = "application/json";

impl Console {
    pub fn new(config: &BrokerConfig, history: Arc<history::History>) -> Console {
        let chosen = choose_listener(config);
        if let Some((l, t)) = &chosen {
            tracing::info!(
                "console API: over listener {} ({}){}",
                l.name,
                t.addr,
                match &t.mechanism {
                    Some(m) => format!(", log in with SASL {m}"),
                    None => ", open: no login, User:ANONYMOUS".into(),
                }
            );
        } else {
            tracing::warn!("console API: no client listener it can use (plaintext or SASL)");
        }
        let (listener_name, target) = match chosen {
            Some((l, t)) => (Some(l.name), Some(t)),
            None => (None, None),
        };
        Console {
            node_id: config.node_id,
            authorizer_enabled: config.authorizer_enabled,
            target,
            listener_name,
            sessions: Sessions::default(),
            history,
            peer_tls: peer_tls(config),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Whether a login is needed (the broker has a SASL listener).
    pub fn login_required(&self) -> bool {
        self.target.as_ref().is_some_and(|t| t.mechanism.is_some())
    }

    /// Answer one `/api/...` request.
    pub fn handle(&self, req: &Request) -> Response {
        let (status, body, headers) = match self.dispatch(req) {
            Ok(r) => (r.status, r.body, r.headers),
            Err(e) => (e.status, e.body(), Vec::new()),
        };
        let mut resp = Response::new(status, JSON, serde_json::to_vec(&body).unwrap_or_default())
            .with_header("Cache-Control", "no-store".into());
        resp.headers.extend(headers);
        resp
    }

    fn dispatch(&self, req: &Request) -> router::ApiResult {
        let (route, params) = match router::find(&req.method, &req.path)? {
            Matched::Route(r, p) => (r, p),
            Matched::MethodNotAllowed(allowed) => {
                return Err(ApiError::new(
                    405,
                    format!(
                        "{} is not served on {}; it takes {}",
                        req.method,
                        req.path,
                        allowed.join(", ")
                    ),
                ))
            }
            Matched::NotFound => {
                return Err(ApiError::not_found(format!(
                    "no API endpoint {}; see broker/console/openapi.yaml or GET /api/v1/info",
                    req.path
                )))
            }
        };
        // A browser may send a cross-site form POST with the session cookie
        // (SameSite aside); such a form cannot set a JSON content type.
        if matches!(req.method.as_str(), "POST" | "PUT" | "PATCH") && !req.body.is_empty() {
            let ct = req.header("content-type").unwrap_or("");
            if !ct.starts_with(JSON) {
                return Err(ApiError::new(
                    415,
                    "send the body as JSON with Content-Type: application/json",
                ));
            }
        }
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_API_CALLS {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(ApiError::new(
                503,
                format!("the console is serving {MAX_API_CALLS} calls already; try again shortly"),
            ));
        }
        struct Done<'a>(&'a AtomicUsize);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let _done = Done(&self.in_flight);
        let token = session::token_of(req.header("cookie"), req.header("authorization"));
        let session = token.as_deref().and_then(|t| self.sessions.get(t));
        if route.auth == Auth::Session && session.is_none() && self.login_required() {
            return Err(ApiError::new(
                401,
                "log in first: POST /api/v1/session with {\"username\", \"password\"}",
            ));
        }
        let query = router::parse_query(&req.query)?;
        let mut call = Call {
            console: self,
            req,
            params,
            query,
            session,
            token,
        };
        (route.handler)(&mut call)
    }
}

/// One API call being served.
pub struct Call<'a> {
    pub console: &'a Console,
    pub req: &'a Request,
    pub params: Vec<(&'static str, String)>,
    pub query: Vec<(String, String)>,
    pub session: Option<Arc<Session>>,
    pub token: Option<String>,
}

impl Call<'_> {
    /// A path parameter (the route guarantees it).
    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(k, _)| *k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter parsed, 400 naming it when it does not parse.
    pub fn query_as<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        self.query(name)
            .map(|v| {
                v.parse::<T>().map_err(|_| {
                    ApiError::bad(format!("query parameter {name}={v:?} is not valid"))
                })
            })
            .transpose()
    }

    /// The JSON body as `T`: 400 with serde's reason when it is not.
    pub fn body<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if self.req.body.is_empty() {
            return Err(ApiError::bad("a JSON body is required"));
        }
        serde_json::from_slice(&self.req.body)
            .map_err(|e| ApiError::bad(format!("bad JSON body: {e}")))
    }

    pub fn target(&self) -> Result<&Target, ApiError> {
        self.console.target.as_ref().ok_or_else(|| {
            ApiError::new(
                503,
                "this broker has no client listener the console can use (PLAINTEXT or SASL)",
            )
        })
    }

    /// Run `f` with a Kafka connection as this call's principal: the
    /// session's, or in open mode (no SASL listener) a fresh anonymous one.
    pub fn kafka<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let target = self.target()?;
        match &self.session {
            Some(s) => s.with_client(target, f),
            None if !self.console.login_required() => {
                let mut client = target.connect(None)?;
                f(&mut client)
            }
            None => Err(ApiError::new(401, "log in first: POST /api/v1/session")),
        }
    }

    /// The principal this call acts as.
    pub fn principal(&self) -> String {
        self.session
            .as_ref()
            .map_or_else(|| "User:ANONYMOUS".to_string(), |s| s.principal())
    }
}

/// Where the console's Kafka connections go (see [`choose_listener`]).
pub fn kafka_target(config: &BrokerConfig) -> Option<Target> {
    choose_listener(config).map(|(_, t)| t)
}

/// The listener the console's connections use: a SASL one (logins) when
/// the broker has one, else a plaintext one (open mode, ANONYMOUS). A TLS
/// listener needs `ssl_truststore_location` to verify this broker.
fn choose_listener(config: &BrokerConfig) -> Option<(Listener, Target)> {
    let listeners = &config.resolved_listeners;
    let usable = |l: &&Listener| !l.protocol.is_tls() || config.ssl_truststore_location.is_some();
    let sasl = listeners
        .iter()
        .filter(usable)
        .filter(|l| l.protocol.is_sasl())
        .min_by_key(|l| l.protocol.is_tls());
    let chosen = sasl.or_else(|| {
        listeners.iter().filter(usable).min_by_key(|l| {
            (
                l.protocol != SecurityProtocol::Plaintext,
                l.name != "PLAINTEXT",
            )
        })
    })?;
    let mechanism = if chosen.protocol.is_sasl() {
        let enabled = &config.sasl_enabled_mechanisms;
        let pick = ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
            .into_iter()
            .find(|m| enabled.iter().any(|e| e.eq_ignore_ascii_case(m)))?;
        Some(pick.to_string())
    } else {
        None
    };
    let mut addr = chosen.bind;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    }
    let mut opts = shardline_client::Options::new("shardline-console");
    opts.io_timeout = Duration::from_secs(30);
    opts.connect_timeout = Duration::from_secs(5);
    if chosen.protocol.is_tls() {
        let files = shardline_client::tls::TlsFiles {
            ca: config.ssl_truststore_location.clone()?,
            client: config
                .ssl_certificate_location
                .clone()
                .zip(config.ssl_key_location.clone()),
        };
        opts.tls = Some(shardline_client::tls::client_config(&files).ok()?);
    }
    Some((
        chosen.clone(),
        Target {
            addr: addr.to_string(),
            opts,
            mechanism,
        },
    ))
}

/// The TLS client for other brokers' HTTPS admin listeners: their
/// certificates verified against `ssl_truststore_location`.
pub fn peer_tls(config: &BrokerConfig) -> Option<Arc<rustls::ClientConfig>> {
    let files = shardline_client::tls::TlsFiles {
        ca: config.ssl_truststore_location.clone()?,
        client: None,
    };
    shardline_client::tls::client_config(&files)
        .inspect_err(|e| {
            tracing::warn!("console: no HTTPS to other brokers' admin listeners: {e:#}")
        })
        .ok()
}

/// `{"key": value}` helper for handlers.
pub fn ok(v: Value) -> router::ApiResult {
    Ok(Reply::ok(v))
}

/// `{"ok": true, ...}` for actions with nothing else to say.
pub fn done(what: &str) -> router::ApiResult {
    ok(json!({"ok": true, "message": what}))
}
