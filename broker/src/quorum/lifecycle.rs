//! The broker's side of the control plane (Kafka's
//! `BrokerLifecycleManager`): register with the active controller, then
//! heartbeat every `broker_heartbeat_interval_ms`; register again when the
//! controller says the registration is stale. A broker asks to stay fenced
//! until its own metadata shows its registration (it has caught up with
//! the log); the controller unfences it at the next heartbeat.
//!
//! It runs on a thread of its own and talks to the active controller over
//! the controller listeners (Kafka's BrokerRegistration and
//! BrokerHeartbeat); a node that leads the quorum, or a single node without
//! a quorum network, answers itself through its quorum thread.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::broker_registration_request::Listener as RegListener;
use kafka_protocol::messages::{
    BrokerHeartbeatRequest, BrokerHeartbeatResponse, BrokerId, BrokerRegistrationRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use shardline_client::{Conn, Options};

use super::active::Rpc;
use super::controller_api::{heartbeat_response, registration_outcome};
use super::node::Quorum;
use crate::metadata::BrokerMeta;

/// What the broker knows of its own registration.
#[derive(Default)]
pub struct Status {
    /// The registration's epoch; -1 before the first one.
    pub epoch: AtomicI64,
    pub fenced: AtomicBool,
    /// Signalled when the broker is first unfenced.
    unfenced_once: Mutex<bool>,
    wake: Condvar,
    /// Controlled shutdown: asked, and granted by the controller.
    shutdown: Mutex<Shutdown>,
    shutdown_wake: Condvar,
}

#[derive(Default, Clone, Copy)]
struct Shutdown {
    wanted: bool,
    granted: bool,
}

impl Status {
    /// Wait until the broker is unfenced, saying every `every` why not.
    pub fn wait_unfenced(&self, every: Duration, why: impl Fn() -> String) {
        let mut done = self.unfenced_once.lock().expect("lifecycle lock");
        while !*done {
            let (d, timeout) = self.wake.wait_timeout(done, every).expect("lifecycle lock");
            done = d;
            if timeout.timed_out() && !*done {
                tracing::info!("waiting to be unfenced by the active controller: {}", why());
            }
        }
    }

    /// Kafka's controlled shutdown: ask the active controller (in the next
    /// heartbeats, at once) to fence this broker and move the leadership of
    /// its partitions to other in-sync replicas, and wait until it has or
    /// `within` passes. Returns whether it did.
    pub fn shut_down(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut s = self.shutdown.lock().expect("lifecycle lock");
        s.wanted = true;
        self.shutdown_wake.notify_all();
        while !s.granted {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = self
                .shutdown_wake
                .wait_timeout(s, left)
                .expect("lifecycle lock")
                .0;
        }
        true
    }

    fn shutdown(&self) -> Shutdown {
        *self.shutdown.lock().expect("lifecycle lock")
    }

    /// Sleep `pause`, or less if a controlled shutdown is asked meanwhile.
    fn pause(&self, pause: Duration) {
        let s = self.shutdown.lock().expect("lifecycle lock");
        if s.wanted {
            drop(s);
            std::thread::sleep(pause.min(Duration::from_millis(100)));
            return;
        }
        let _ = self
            .shutdown_wake
            .wait_timeout_while(s, pause, |s| !s.wanted)
            .expect("lifecycle lock");
    }

    fn granted(&self) {
        let mut s = self.shutdown.lock().expect("lifecycle lock");
        s.granted = true;
        self.shutdown_wake.notify_all();
    }

    fn set(&self, epoch: i64, fenced: bool) {
        self.epoch.store(epoch, Ordering::Relaxed);
        self.fenced.store(fenced, Ordering::Relaxed);
        if !fenced {
            let mut done = self.unfenced_once.lock().expect("lifecycle lock");
            if !*done {
                *done = true;
                self.wake.notify_all();
            }
        }
    }
}

pub struct Settings {
    pub me: BrokerMeta,
    /// Voters' controller listeners (empty: a single node).
    pub voters: Vec<(i32, String)>,
    pub heartbeat_interval: Duration,
    /// `broker_session_timeout_ms`: a request to the controller gives up
    /// after half of it.
    pub session_timeout: Duration,
}

impl Settings {
    /// How long a registration or heartbeat waits for the controller:
    /// half the session timeout, as Kafka's heartbeat channel (KAFKA-14392).
    /// A controller that stopped answering without closing the connection
    /// (paused, cut off) would otherwise hold the heartbeat past the
    /// session, while the new active controller, which never hears from
    /// this broker, fences it; with every broker so held, all of them.
    fn request_timeout(&self) -> Duration {
        (self.session_timeout / 2).max(Duration::from_millis(100))
    }
}

/// Start the lifecycle thread.
pub fn start(quorum: Arc<Quorum>, settings: Settings) -> anyhow::Result<Arc<Status>> {
    let status = Arc::new(Status::default());
    status.epoch.store(-1, Ordering::Relaxed);
    status.fenced.store(true, Ordering::Relaxed);
    let s = status.clone();
    std::thread::Builder::new()
        .name("broker-lifecycle".into())
        .spawn(move || run(quorum, settings, s))?;
    Ok(status)
}

fn run(quorum: Arc<Quorum>, settings: Settings, status: Arc<Status>) {
    let mut channel = Channel {
        voters: settings.voters.clone(),
        conn: None,
        next_voter: 0,
        timeout: settings.request_timeout(),
    };
    let mut epoch: Option<i64> = None;
    let mut last_error: Option<(String, Instant)> = None;
    loop {
        // The quorum thread stopped: the broker is shutting down.
        if Arc::strong_count(&quorum) == 1 {
            return;
        }
        let outcome = match epoch {
            None => channel.register(&quorum, &settings).map(|e| {
                tracing::info!(
                    "broker {} registered with the active controller (epoch {e})",
                    settings.me.id
                );
                epoch = Some(e);
                status.set(e, true);
            }),
            Some(e) => {
                // Caught up once this node's metadata has the registration.
                let caught_up = quorum
                    .state()
                    .brokers
                    .get(&settings.me.id)
                    .is_some_and(|b| b.epoch == e);
                let shutdown = status.shutdown();
                match channel.heartbeat(&quorum, &settings, e, !caught_up, shutdown.wanted) {
                    Ok((fenced, should_shut_down)) => {
                        if shutdown.wanted && should_shut_down && !shutdown.granted {
                            tracing::info!(
                                "broker {}: the active controller moved its leaderships away; shutting down",
                                settings.me.id
                            );
                            status.granted();
                        }
                        if status.fenced.load(Ordering::Relaxed) != fenced {
                            tracing::info!(
                                "broker {} is {}",
                                settings.me.id,
                                if fenced { "fenced" } else { "unfenced" }
                            );
                        }
                        status.set(e, fenced);
                        Ok(())
                    }
                    Err(ResponseError::StaleBrokerEpoch) => {
                        tracing::warn!(
                            "the active controller does not know this registration (epoch {e}): registering again"
                        );
                        epoch = None;
                        status.set(e, true);
                        Err(ResponseError::StaleBrokerEpoch)
                    }
                    Err(err) => Err(err),
                }
            }
        };
        let pause = match outcome {
            Ok(()) => {
                last_error = None;
                // Registered but not yet in the local metadata: ask again
                // soon, so unfencing does not wait a whole interval.
                if status.fenced.load(Ordering::Relaxed) {
                    settings.heartbeat_interval.min(Duration::from_millis(200))
                } else {
                    settings.heartbeat_interval
                }
            }
            Err(e) => {
                let text = format!("{e:?}");
                let repeat = last_error
                    .as_ref()
                    .is_some_and(|(t, at)| *t == text && at.elapsed() < Duration::from_secs(10));
                if !repeat {
                    tracing::info!(
                        "broker {}: the active controller answered {text}; trying again",
                        settings.me.id
                    );
                    last_error = Some((text, Instant::now()));
                }
                Duration::from_millis(200)
            }
        };
        status.pause(pause);
    }
}

/// Where requests go: this node's quorum thread when it leads (or there is
/// no quorum network), else the leader's controller listener, else each
/// voter in turn.
struct Channel {
    voters: Vec<(i32, String)>,
    conn: Option<(i32, Conn)>,
    next_voter: usize,
    /// See [`Settings::request_timeout`].
    timeout: Duration,
}

enum Target {
    Local,
    Remote(i32, String),
}

impl Channel {
    fn target(&mut self, quorum: &Quorum, me: i32) -> Target {
        if self.voters.is_empty() {
            return Target::Local;
        }
        let view = quorum.view();
        if view.is_leader {
            return Target::Local;
        }
        if let Some(l) = view.leader {
            if let Some((_, addr)) = self.voters.iter().find(|(id, _)| *id == l) {
                return Target::Remote(l, addr.clone());
            }
        }
        let (id, addr) = self.voters[self.next_voter % self.voters.len()].clone();
        self.next_voter += 1;
        if id == me {
            // Not the leader here: ask the next one instead.
            let (id, addr) = self.voters[self.next_voter % self.voters.len()].clone();
            self.next_voter += 1;
            return Target::Remote(id, addr);
        }
        Target::Remote(id, addr)
    }

    fn conn(&mut self, id: i32, addr: &str) -> Result<&mut Conn, ResponseError> {
        if self.conn.as_ref().is_none_or(|(c, _)| *c != id) {
            let mut opts = Options::new("shardline-broker");
            opts.io_timeout = self.timeout;
            opts.connect_timeout = self.timeout.min(Duration::from_secs(1));
            match Conn::connect(addr, &opts) {
                Ok(c) => self.conn = Some((id, c)),
                Err(e) => {
                    tracing::debug!("controller {id} at {addr}: {e:#}");
                    return Err(ResponseError::NetworkException);
                }
            }
        }
        Ok(&mut self.conn.as_mut().expect("connected above").1)
    }

    fn register(&mut self, quorum: &Quorum, s: &Settings) -> Result<i64, ResponseError> {
        match self.target(quorum, s.me.id) {
            Target::Local => {
                registration_outcome(quorum.rpc(Rpc::Register(s.me.clone()), self.timeout))
            }
            Target::Remote(id, addr) => {
                // A broker that has not seen the log yet knows no cluster id
                // (Kafka's come from formatting the storage); it sends none.
                let req = registration_request(s, &quorum.state().cluster_id);
                let conn = self.conn(id, &addr)?;
                match conn.call(&req) {
                    Ok(resp) if resp.error_code == 0 => Ok(resp.broker_epoch),
                    Ok(resp) => Err(self.failed(resp.error_code)),
                    Err(e) => {
                        tracing::debug!("registering with controller {id}: {e:#}");
                        self.conn = None;
                        Err(ResponseError::NetworkException)
                    }
                }
            }
        }
    }

    /// `Ok((fenced, should_shut_down))`.
    fn heartbeat(
        &mut self,
        quorum: &Quorum,
        s: &Settings,
        epoch: i64,
        want_fence: bool,
        want_shut_down: bool,
    ) -> Result<(bool, bool), ResponseError> {
        let resp: BrokerHeartbeatResponse = match self.target(quorum, s.me.id) {
            Target::Local => heartbeat_response(quorum.rpc(
                Rpc::Heartbeat {
                    id: s.me.id,
                    epoch,
                    want_fence,
                    want_shut_down,
                },
                self.timeout,
            )),
            Target::Remote(id, addr) => {
                let req = BrokerHeartbeatRequest::default()
                    .with_broker_id(BrokerId(s.me.id))
                    .with_broker_epoch(epoch)
                    .with_current_metadata_offset(quorum.view().applied as i64)
                    .with_want_fence(want_fence)
                    .with_want_shut_down(want_shut_down);
                let conn = self.conn(id, &addr)?;
                match conn.call(&req) {
                    Ok(resp) => resp,
                    Err(e) => {
                        tracing::debug!("heartbeat to controller {id}: {e:#}");
                        self.conn = None;
                        return Err(ResponseError::NetworkException);
                    }
                }
            }
        };
        if resp.error_code != 0 {
            return Err(self.failed(resp.error_code));
        }
        Ok((resp.is_fenced, resp.should_shut_down))
    }

    /// A Kafka error from the controller; NOT_CONTROLLER drops the
    /// connection so the next request finds the leader.
    fn failed(&mut self, code: i16) -> ResponseError {
        let e = ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError);
        if e == ResponseError::NotController {
            self.conn = None;
        }
        e
    }
}

fn registration_request(s: &Settings, cluster_id: &str) -> BrokerRegistrationRequest {
    let me = &s.me;
    BrokerRegistrationRequest::default()
        .with_broker_id(BrokerId(me.id))
        .with_cluster_id(StrBytes::from_string(cluster_id.to_string()))
        .with_incarnation_id(me.incarnation)
        .with_listeners(
            me.endpoints
                .iter()
                .map(|e| {
                    RegListener::default()
                        .with_name(StrBytes::from_string(e.name.clone()))
                        .with_host(StrBytes::from_string(e.host.clone()))
                        .with_port(e.port)
                        .with_security_protocol(e.security_protocol)
                })
                .collect(),
        )
        .with_rack(me.rack.clone().map(StrBytes::from_string))
        // One "log dir" per shard: the controller places replicas on them.
        .with_log_dirs(
            (0..me.shards)
                .map(|i| uuid::Uuid::from_u64_pair(me.id as u64, i as u64))
                .collect(),
        )
}
