//! `GET /info`, `POST|GET|DELETE /session`.

use serde::Deserialize;
use serde_json::json;

use super::super::error::ApiError;
use super::super::router::{ApiResult, Reply};
use super::super::session::{COOKIE, IDLE};
use super::super::{ok, Call};

/// What the console is and how to use it; no session needed.
pub fn info(c: &mut Call) -> ApiResult {
    let con = c.console;
    let open = !con.login_required();
    let message = match (open, con.authorizer_enabled) {
        (true, false) => "This console is open: the broker has no SASL listener, so there is no \
             login and anyone who reaches it acts as User:ANONYMOUS; and authorizer_enabled is \
             off, so every action is allowed."
            .to_string(),
        (true, true) => "No login: the broker has no SASL listener, so the console acts as \
             User:ANONYMOUS, which sees and may do what its ACLs allow."
            .to_string(),
        (false, false) => "Log in with a SASL/SCRAM user of the broker. authorizer_enabled is \
             off: any logged-in user may do everything."
            .to_string(),
        (false, true) => "Log in with a SASL/SCRAM user of the broker; the session sees and may \
             do what that user's ACLs allow."
            .to_string(),
    };
    ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "node_id": con.node_id,
        "authorizer_enabled": con.authorizer_enabled,
        "login_required": con.login_required(),
        "open": open,
        "listener": con.listener_name,
        "mechanism": con.target.as_ref().and_then(|t| t.mechanism.clone()),
        "message": message,
        "session": c.session.as_ref().map(|s| s.principal()),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    username: String,
    password: String,
}

/// Log in: a Kafka connection authenticated as the user; a cookie.
pub fn login(c: &mut Call) -> ApiResult {
    let body: Login = c.body()?;
    let target = c.target()?.clone();
    if target.mechanism.is_some() {
        if body.username.is_empty() || body.password.is_empty() {
            return Err(ApiError::bad("username and password must not be empty"));
        }
        if body.username.len() > 256 || body.password.len() > 1024 {
            return Err(ApiError::bad("username or password too long"));
        }
    }
    let sessions = &c.console.sessions;
    let ip = c.req.peer.map(|p| p.ip());
    let now = std::time::Instant::now();
    if let Some(ip) = ip {
        sessions.limiter.check(ip, now)?;
    }
    let (token, session) = sessions
        .login(&target, &body.username, &body.password)
        .inspect_err(|e| {
            if let (Some(ip), 401) = (ip, e.status) {
                sessions.limiter.failed(ip, now);
            }
        })?;
    let secure = if c.req.tls { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        IDLE.as_secs()
    );
    let mut r = Reply::ok(json!({
        "user": session.user,
        "principal": session.principal(),
        "token": token,
        "idle_expiry_s": IDLE.as_secs(),
    }));
    r.headers.push(("Set-Cookie", cookie));
    Ok(r)
}

pub fn whoami(c: &mut Call) -> ApiResult {
    ok(json!({
        "principal": c.principal(),
        "user": c.session.as_ref().map(|s| s.user.clone()),
        "login_required": c.console.login_required(),
    }))
}

pub fn logout(c: &mut Call) -> ApiResult {
    let ended = c
        .token
        .as_deref()
        .is_some_and(|t| c.console.sessions.logout(t));
    let mut r = Reply::ok(json!({"ok": true, "ended": ended}));
    r.headers.push((
        "Set-Cookie",
        format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    ));
    Ok(r)
}
