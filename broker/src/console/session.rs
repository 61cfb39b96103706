//! Console sessions: a login opens a Kafka connection to this broker as the
//! user (SASL/SCRAM), and the session is a random token in an HttpOnly
//! cookie (or `Authorization: Bearer`, for scripts). Every API call of the
//! session goes over that user's connection, so the broker's ACLs decide
//! what it sees and may do, exactly as for the CLI.
//!
//! Bounded: at most [`MAX_SESSIONS`] at once (the oldest idle one makes
//! room), each expiring after [`IDLE`] without a call, and at most
//! [`MAX_CALLS_PER_SESSION`] calls of one session in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shardline_client::{Client, Options, SaslAuth};

use super::error::ApiError;

pub const MAX_SESSIONS: usize = 64;
pub const IDLE: Duration = Duration::from_secs(30 * 60);
pub const MAX_CALLS_PER_SESSION: usize = 4;
pub const COOKIE: &str = "shardline_session";
/// Failed logins from one client address in [`LOGIN_WINDOW`] before its
/// next tries are refused (429) until the window has passed. Why: every
/// console login reaches the broker from the console's own address, so
/// without this anyone could spend the broker's per-address SASL failure
/// budget (`sasl_max_failures`, 10 a minute by default) and lock every
/// console user out; this keeps one client's guesses below it.
pub const MAX_LOGIN_FAILURES: u32 = 5;
pub const LOGIN_WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most (a flood of addresses cannot grow it).
const LIMITER_CAPACITY: usize = 4096;

/// How the console reaches this broker's Kafka listener.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: String,
    pub opts: Options,
    /// The SASL mechanism logins use; `None`: no login, `User:ANONYMOUS`.
    pub mechanism: Option<String>,
}

impl Target {
    /// A connection as `auth` (ANONYMOUS when `None`).
    pub fn connect(&self, auth: Option<&SaslAuth>) -> anyhow::Result<Client> {
        let mut opts = self.opts.clone();
        opts.sasl = auth.cloned();
        Client::connect(&self.addr, &opts)
    }
}

pub struct Session {
    pub user: String,
    auth: Option<SaslAuth>,
    /// The session's idle connection; a call takes it and puts it back, so
    /// a second concurrent call of the session opens its own.
    client: Mutex<Option<Client>>,
    last_used: Mutex<Instant>,
    in_flight: AtomicUsize,
}

impl Session {
    pub fn principal(&self) -> String {
        format!("User:{}", self.user)
    }

    /// Run `f` with a connection of this session.
    pub fn with_client<T>(
        &self,
        target: &Target,
        f: impl FnOnce(&mut Client) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_CALLS_PER_SESSION {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(ApiError::new(
                429,
                format!("this session has {MAX_CALLS_PER_SESSION} calls in flight already"),
            ));
        }
        struct Done<'a>(&'a AtomicUsize);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let _done = Done(&self.in_flight);
        *self.last_used.lock().expect("session lock") = Instant::now();
        let taken = self.client.lock().expect("session lock").take();
        let mut client = match taken {
            Some(c) => c,
            None => target.connect(self.auth.as_ref())?,
        };
        let out = f(&mut client);
        // A connection that failed under us is dropped, not reused; a Kafka
        // error leaves it usable.
        let broken = matches!(&out, Err(e) if e.status == 502);
        if !broken {
            let mut slot = self.client.lock().expect("session lock");
            if slot.is_none() {
                *slot = Some(client);
            }
        }
        out
    }
}

/// Failed logins per client address.
#[derive(Default)]
pub struct LoginLimiter {
    map: Mutex<HashMap<std::net::IpAddr, (u32, Instant)>>,
}

impl LoginLimiter {
    /// `Err` (429) while `ip` has used up its failures in the window.
    pub fn check(&self, ip: std::net::IpAddr, now: Instant) -> Result<(), ApiError> {
        let map = self.map.lock().expect("limiter lock");
        match map.get(&ip) {
            Some((n, start))
                if *n >= MAX_LOGIN_FAILURES && now.duration_since(*start) < LOGIN_WINDOW =>
            {
                let wait = LOGIN_WINDOW.saturating_sub(now.duration_since(*start));
                Err(ApiError::new(
                    429,
                    format!(
                        "{MAX_LOGIN_FAILURES} failed logins from this address; try again in {} s",
                        wait.as_secs() + 1
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    pub fn failed(&self, ip: std::net::IpAddr, now: Instant) {
        let mut map = self.map.lock().expect("limiter lock");
        if map.len() >= LIMITER_CAPACITY {
            map.retain(|_, (_, start)| now.duration_since(*start) < LOGIN_WINDOW);
            if map.len() >= LIMITER_CAPACITY {
                map.clear();
            }
        }
        let e = map.entry(ip).or_insert((0, now));
        if now.duration_since(e.1) >= LOGIN_WINDOW {
            *e = (0, now);
        }
        e.0 += 1;
    }
}

/// The sessions of this broker's console.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<Session>>>,
    pub limiter: LoginLimiter,
}

impl Sessions {
    /// Log `user` in (a Kafka connection authenticated as them): the token.
    pub fn login(
        &self,
        target: &Target,
        user: &str,
        password: &str,
    ) -> Result<(String, Arc<Session>), ApiError> {
        let auth = target.mechanism.as_ref().map(|m| SaslAuth {
            mechanism: m.clone(),
            user: user.to_string(),
            password: password.to_string(),
        });
        let client = target.connect(auth.as_ref()).map_err(|e| {
            let mut err = ApiError::from_anyhow(&e);
            if err.code.as_deref() == Some("SASL_AUTHENTICATION_FAILED") {
                err.error = "wrong user name or password".into();
            }
            err
        })?;
        let session = Arc::new(Session {
            user: if auth.is_some() {
                user.to_string()
            } else {
                "ANONYMOUS".to_string()
            },
            auth,
            client: Mutex::new(Some(client)),
            last_used: Mutex::new(Instant::now()),
            in_flight: AtomicUsize::new(0),
        });
        let token = new_token();
        let mut map = self.map.lock().expect("sessions lock");
        expire(&mut map, Instant::now());
        if map.len() >= MAX_SESSIONS {
            // Make room: the session idle the longest goes.
            let oldest = map
                .iter()
                .filter(|(_, s)| s.in_flight.load(Ordering::Acquire) == 0)
                .min_by_key(|(_, s)| *s.last_used.lock().expect("session lock"))
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    map.remove(&k);
                }
                None => {
                    return Err(ApiError::new(
                        503,
                        format!("{MAX_SESSIONS} console sessions are busy; try again later"),
                    ))
                }
            }
        }
        map.insert(token.clone(), session.clone());
        Ok((token, session))
    }

    /// The live session of `token`.
    pub fn get(&self, token: &str) -> Option<Arc<Session>> {
        let mut map = self.map.lock().expect("sessions lock");
        expire(&mut map, Instant::now());
        map.get(token).cloned()
    }

    pub fn logout(&self, token: &str) -> bool {
        self.map
            .lock()
            .expect("sessions lock")
            .remove(token)
            .is_some()
    }
}

fn expire(map: &mut HashMap<String, Arc<Session>>, now: Instant) {
    map.retain(|_, s| {
        s.in_flight.load(Ordering::Acquire) > 0
            || now.duration_since(*s.last_used.lock().expect("session lock")) < IDLE
    });
}

/// 32 random bytes, hex.
fn new_token() -> String {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).expect("the system's random source");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The session token a request carries: the cookie, else a bearer token.
pub fn token_of(cookie: Option<&str>, authorization: Option<&str>) -> Option<String> {
    let from_cookie = cookie.and_then(|c| {
        c.split(';').find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == COOKIE && !v.is_empty()).then(|| v.to_string())
        })
    });
    from_cookie.or_else(|| {
        authorization
            .and_then(|a| a.strip_prefix("Bearer "))
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_cookie_or_a_bearer_header() {
        assert_eq!(
            token_of(Some("a=1; shardline_session=abc; b=2"), None).as_deref(),
            Some("abc")
        );
        assert_eq!(token_of(None, Some("Bearer xyz")).as_deref(), Some("xyz"));
        assert_eq!(token_of(Some("shardline_session="), None), None);
        assert_eq!(token_of(None, Some("Basic abc")), None);
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }

    #[test]
    fn failed_logins_are_limited_per_address_for_a_window() {
        let l = LoginLimiter::default();
        let (a, b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..MAX_LOGIN_FAILURES {
            assert!(l.check(a, t0).is_ok());
            l.failed(a, t0);
        }
        let e = l.check(a, t0 + Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.status, 429);
        assert!(l.check(b, t0).is_ok(), "another address is not affected");
        assert!(l.check(a, t0 + LOGIN_WINDOW).is_ok(), "the window passed");
        l.failed(a, t0 + LOGIN_WINDOW);
        assert!(
            l.check(a, t0 + LOGIN_WINDOW).is_ok(),
            "a new window starts at 1"
        );
    }

    #[test]
    fn idle_sessions_expire() {
        let mut map = HashMap::new();
        let s = Arc::new(Session {
            user: "u".into(),
            auth: None,
            client: Mutex::new(None),
            last_used: Mutex::new(Instant::now()),
            in_flight: AtomicUsize::new(0),
        });
        map.insert("t".to_string(), s.clone());
        expire(&mut map, Instant::now() + IDLE / 2);
        assert_eq!(map.len(), 1);
        s.in_flight.store(1, Ordering::Release);
        expire(&mut map, Instant::now() + IDLE * 2);
        assert_eq!(map.len(), 1, "a session with a call in flight stays");
        s.in_flight.store(0, Ordering::Release);
        expire(&mut map, Instant::now() + IDLE * 2);
        assert!(map.is_empty());
    }
}
