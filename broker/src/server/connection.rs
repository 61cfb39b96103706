//! One client connection: read frames, handle several requests at once
//! (clients pipeline up to `max.in.flight`), write responses strictly in
//! request order.
//!
//! On a SASL listener the read loop first runs the SASL exchange itself
//! (SaslHandshake, SaslAuthenticate, or raw tokens after SaslHandshake v0):
//! before authentication only ApiVersions and those are allowed, anything
//! else closes the connection, as in Kafka. The loop works on any reader
//! and writer halves, so a TLS stream (`security::tls_stream`) can be
//! slotted in under it.

use std::cell::Cell;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use kafka_protocol::ResponseError;
use shard::rt::local_channel::{self, LocalSender};
use shard::rt::{Task, TcpStream};

use super::frame::{raw_token_frame, read_frame, ReadProgress};
use super::tls_accept;
use super::watchdog::{self, WriteProgress};
use crate::handlers::{self, sasl as responses, ConnInfo, Reply, ANONYMOUS};
use crate::listeners::Listener;
use crate::metrics::requests::RequestTimer;
use crate::security::sasl::{HandshakeError, SaslSession, TokenOutcome};
use crate::security::tls::TlsConfigHandle;
use crate::shard_state::ShardState;

pub async fn serve(
    state: Rc<ShardState>,
    stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<Listener>,
    tls: Option<Arc<TlsConfigHandle>>,
) {
    let _ = stream.set_nodelay(true);
    let fd = stream.as_raw_fd();
    let mut conn = ConnInfo {
        peer,
        listener,
        principal: Arc::from(ANONYMOUS),
    };
    let Some(tls) = tls else {
        let (reader, writer) = stream.split();
        return serve_halves(state, reader, writer, conn, fd).await;
    };
    let timeout = Duration::from_millis(state.config.ssl_handshake_timeout_ms);
    let Some(accepted) = tls_accept::accept(stream, peer, &conn.listener, &tls, timeout).await
    else {
        return;
    };
    if let Some(p) = accepted.cert_principal {
        // SASL on top (SASL_SSL) replaces it, as in Kafka.
        conn.principal = Arc::from(p);
    }
    let (reader, writer) = accepted.stream.split();
    serve_halves(state, reader, writer, conn, fd).await
}

/// A reply that is ready now, in the ordered reply queue.
fn ready(reply: Reply) -> Task<Reply> {
    Task::ready(reply)
}

/// Queue `reply`; false if the writer is gone.
async fn push(tx: &LocalSender<Task<Reply>>, reply: Reply) -> bool {
    tx.send(ready(reply)).await.is_ok()
}

/// Quota state of one connection (KIP-219).
#[derive(Default)]
struct Throttle {
    /// Read nothing until then.
    muted_until: Cell<Option<Instant>>,
    /// The connection has been throttled: from now on its requests are
    /// handled one at a time, as Kafka handles every connection, so a
    /// pipelining client cannot slip requests past the mute.
    seen: Cell<bool>,
}

impl Throttle {
    /// Extend the mute to `throttle` from now.
    fn mute_for(&self, throttle: Duration) {
        self.seen.set(true);
        let until = Instant::now() + throttle;
        let cur = self.muted_until.get();
        self.muted_until
            .set(Some(cur.map_or(until, |u| u.max(until))));
    }

    /// Hold a request that arrived while muted until the mute ends.
    async fn wait_unmuted(&self) {
        while let Some(until) = self.muted_until.get() {
            let now = Instant::now();
            if until <= now {
                self.muted_until.set(None);
                break;
            }
            shard::rt::sleep(until - now).await;
        }
    }
}

/// Queue the handling of one request; false if the writer is gone.
async fn submit(
    state: &Rc<ShardState>,
    frame: Bytes,
    conn: &ConnInfo,
    tx: &LocalSender<Task<Reply>>,
    throttle: &Throttle,
) -> bool {
    let st = state.clone();
    let c = conn.clone();
    if throttle.seen.get() && state.quotas.enabled() {
        let reply = handlers::handle_frame(&st, frame, c).await;
        if let Reply::Throttled(_, d) = &reply {
            throttle.mute_for(*d);
        }
        return push(tx, reply).await;
    }
    let task = shard::rt::spawn_local(async move { handlers::handle_frame(&st, frame, c).await });
    tx.send(task).await.is_ok()
}

/// Serve one connection over its read and write halves; `fd` is its
/// socket, which the watchdog shuts down to end an idle or stalled one.
pub async fn serve_halves<R, W>(
    state: Rc<ShardState>,
    reader: R,
    mut writer: W,
    mut conn: ConnInfo,
    fd: RawFd,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + 'static,
{
    let peer = conn.peer;
    let mut reader = BufReader::with_capacity(64 << 10, reader);
    let (tx, rx) =
        local_channel::new_bounded::<Task<Reply>>(state.config.max_in_flight_per_connection);
    let read_progress = Rc::new(ReadProgress::default());
    let write_progress = Rc::new(WriteProgress::default());
    let watchdog = shard::rt::spawn_local(watchdog::watch(
        fd,
        peer,
        watchdog::Bounds::from_config(&state.config),
        read_progress.clone(),
        write_progress.clone(),
    ));

    let throttle = Rc::new(Throttle::default());
    let writer_throttle = throttle.clone();
    let progress = write_progress.clone();
    let writer_task = shard::rt::spawn_local(async move {
        while let Some(pending) = rx.recv().await {
            let _busy = progress.busy();
            let reply = match pending.await {
                Reply::Throttled(reply, throttle) => {
                    writer_throttle.mute_for(throttle);
                    *reply
                }
                reply => reply,
            };
            match reply {
                Reply::Frame(frame) => {
                    if writer.write_all(&frame).await.is_err() {
                        break;
                    }
                }
                Reply::Parts(parts) => {
                    let mut failed = false;
                    for part in parts {
                        if writer.write_all(&part).await.is_err() {
                            failed = true;
                            break;
                        }
                    }
                    if failed {
                        break;
                    }
                }
                Reply::None => {}
                Reply::Close(why) => {
                    tracing::warn!("closing connection from {peer}: {why}");
                    break;
                }
                Reply::Throttled(..) => unreachable!("unwrapped above"),
            }
            progress.replies.set(progress.replies.get() + 1);
        }
        let _ = writer.close().await;
    });

    let sasl = conn.listener.protocol.is_sasl();
    let mut session = SaslSession::new();
    let max = state.config.socket_request_max_bytes;
    loop {
        let frame: Bytes = match read_frame(&mut reader, max, &read_progress).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!("closing connection from {peer}: {e}");
                break;
            }
        };
        throttle.wait_unmuted().await;
        let _busy = write_progress.busy();
        if sasl {
            match sasl_step(&state, &mut session, &mut conn, frame, &tx).await {
                Step::Handled => continue,
                Step::Stop => break,
                Step::Pass(frame) => {
                    if !submit(&state, frame, &conn, &tx, &throttle).await {
                        break;
                    }
                }
            }
            continue;
        }
        if !submit(&state, frame, &conn, &tx, &throttle).await {
            break; // the writer stopped (error or Close): stop reading too
        }
    }
    drop(tx);
    writer_task.await;
    // Before the halves (and with them the socket) are dropped.
    drop(watchdog);
}

enum Step {
    /// The SASL layer answered (or queued) this frame.
    Handled,
    /// Close the connection (a Close reply is queued).
    Stop,
    /// An ordinary request of an authenticated connection.
    Pass(Bytes),
}

/// The SASL layer of one frame on a SASL listener.
async fn sasl_step(
    state: &Rc<ShardState>,
    session: &mut SaslSession,
    conn: &mut ConnInfo,
    frame: Bytes,
    tx: &LocalSender<Task<Reply>>,
) -> Step {
    let security = &state.security;
    let peer = conn.peer;
    let stop = |ok: bool| if ok { Step::Handled } else { Step::Stop };
    if session.raw_tokens {
        // After SaslHandshake v0: a raw token, no Kafka header.
        return match session.token(security, peer.ip(), &frame) {
            TokenOutcome::Continue(challenge) => {
                stop(push(tx, Reply::Frame(raw_token_frame(&challenge))).await)
            }
            TokenOutcome::Done { response, user } => {
                tracing::info!(
                    "{peer} authenticated as User:{user} on listener {} (raw SASL tokens after SaslHandshake v0)",
                    conn.listener.name
                );
                conn.principal = Arc::from(format!("User:{user}"));
                stop(push(tx, Reply::Frame(raw_token_frame(&response))).await)
            }
            TokenOutcome::Failed { log, .. } => {
                // Raw tokens have no way to carry an error: just close.
                push(tx, Reply::Close(format!("{log} (client {peer})"))).await;
                Step::Stop
            }
        };
    }
    if frame.len() < 8 {
        return Step::Pass(frame); // handle_frame closes with the reason
    }
    let mut peek = &frame[..];
    let raw_key = peek.get_i16();
    let key = ApiKey::try_from(raw_key).ok();
    match key {
        Some(ApiKey::SaslHandshake) | Some(ApiKey::SaslAuthenticate) => {}
        Some(ApiKey::ApiVersions) => return Step::Pass(frame),
        _ => {
            if !session.authenticated() {
                let what = key.map_or_else(|| format!("API key {raw_key}"), |k| format!("{k:?}"));
                push(
                    tx,
                    Reply::Close(format!(
                        "{what} request before SASL authentication on listener {}",
                        conn.listener.name
                    )),
                )
                .await;
                return Step::Stop;
            }
            if session.expired(Instant::now()) {
                push(
                    tx,
                    Reply::Close(format!(
                        "SASL session of {} expired (connections_max_reauth_ms) without re-authentication",
                        conn.principal
                    )),
                )
                .await;
                return Step::Stop;
            }
            return Step::Pass(frame);
        }
    }
    // Counted like every other request (`handlers::handle_frame`).
    let timer = RequestTimer::start(&frame);
    let d = match handlers::decode_frame(frame, conn) {
        Ok(d) => d,
        Err(reply) => {
            timer.finish(&reply);
            let close = matches!(reply, Reply::Close(_));
            let ok = push(tx, reply).await;
            return stop(ok && !close);
        }
    };
    let version = d.ctx.version;
    match d.request {
        RequestKind::SaslHandshake(r) => {
            let mechanism = r.mechanism.to_string();
            let (code, close) = match session.handshake(security, &mechanism, version) {
                Ok(_) => (0, None),
                Err(HandshakeError::Unsupported) => (
                    ResponseError::UnsupportedSaslMechanism.code(),
                    Some(format!(
                        "SASL mechanism {mechanism:?} is not enabled (enabled: {})",
                        security.mechanisms.join(", ")
                    )),
                ),
                Err(HandshakeError::IllegalState) => (
                    ResponseError::IllegalSaslState.code(),
                    Some("SaslHandshake in the middle of a SASL exchange".to_string()),
                ),
            };
            let resp = ResponseKind::SaslHandshake(responses::handshake_response(code, security));
            let reply = handlers::encode_response(&d.ctx, d.correlation_id, resp);
            timer.finish(&reply);
            let ok = push(tx, reply).await;
            if let Some(why) = close {
                // The client closes or tries another mechanism; closing
                // here could reset the connection before it reads the
                // enabled list.
                tracing::warn!("SaslHandshake from {peer} refused: {why}");
            }
            stop(ok)
        }
        RequestKind::SaslAuthenticate(r) => {
            let outcome = session.token(security, peer.ip(), &r.auth_bytes);
            let (resp, close) = match outcome {
                TokenOutcome::Continue(challenge) => {
                    (responses::authenticate_ok(challenge, 0), None)
                }
                TokenOutcome::Done { response, user } => {
                    let lifetime = session.lifetime_ms(Instant::now());
                    let principal = format!("User:{user}");
                    if *conn.principal != *principal {
                        tracing::info!(
                            "{peer} authenticated as {principal} on listener {}",
                            conn.listener.name
                        );
                    } else {
                        tracing::debug!("{peer} re-authenticated as {principal}");
                    }
                    conn.principal = Arc::from(principal);
                    (responses::authenticate_ok(response, lifetime), None)
                }
                TokenOutcome::Failed {
                    log,
                    client_message,
                } => (
                    responses::authenticate_error(
                        ResponseError::SaslAuthenticationFailed.code(),
                        &client_message,
                    ),
                    Some(log),
                ),
            };
            let reply = handlers::encode_response(
                &d.ctx,
                d.correlation_id,
                ResponseKind::SaslAuthenticate(resp),
            );
            timer.finish(&reply);
            let ok = push(tx, reply).await;
            if let Some(log) = close {
                push(tx, Reply::Close(format!("{log} (client {peer})"))).await;
                return Step::Stop;
            }
            stop(ok)
        }
        _ => unreachable!("only SASL requests are decoded here"),
    }
}
