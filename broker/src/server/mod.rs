//! Start-up and shutdown: the shards, their listeners, background work.

pub mod connection;
pub mod frame;
pub mod limits;
pub mod tls_accept;
pub mod watchdog;

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use shard::mesh::{Inbox, Mesh};
use shard::rt::{sleep, spawn_detached, spawn_local, TcpListener};
use shard::runtime::{run_shards, Gate, RuntimeConfig, Stop};

use self::limits::{ConnectionLimits, RateLimitedLog};
use crate::config::BrokerConfig;
use crate::listeners::Listener;
use crate::metadata::MetadataStore;
use crate::security::tls::TlsConfigHandle;
use crate::shard_state::ShardState;

/// The TLS config of each SSL / SASL_SSL listener, by listener name, shared
/// by all shards (each reloads it when the certificate files change).
pub type TlsHandles = Arc<HashMap<String, Arc<TlsConfigHandle>>>;

/// Load the certificates of every TLS listener: a bad file stops start-up
/// with its path and the reason.
fn load_tls(config: &BrokerConfig) -> Result<TlsHandles> {
    let mut handles = HashMap::new();
    for l in config
        .resolved_listeners
        .iter()
        .filter(|l| l.protocol.is_tls())
    {
        let settings = config.tls_settings(l)?;
        let check = Duration::from_millis(config.ssl_reload_check_ms.max(1));
        let handle = TlsConfigHandle::new(settings, check)
            .with_context(|| format!("listener {}: loading TLS certificates", l.name))?;
        tracing::info!(
            "listener {}: TLS with {} (client auth: {})",
            l.name,
            handle.settings().cert_chain.display(),
            handle.settings().client_auth
        );
        handles.insert(l.name.clone(), handle);
    }
    Ok(Arc::new(handles))
}

/// Run a broker until SIGINT/SIGTERM, or until a shard fails.
pub fn run(config: BrokerConfig) -> Result<()> {
    let config = Arc::new(config);
    let metadata = Arc::new(MetadataStore::open(&config)?);
    crate::metrics::cluster::register(Arc::new(crate::metrics::cluster::MetadataGauges::new(
        &metadata,
        config.node_id,
    )));
    // The console's cluster-wide charts find the other brokers' admin
    // listeners in the metadata.
    crate::console::peers::set_metadata(&metadata);
    let observer = crate::quorum::observe::QuorumObserver::new(&metadata);
    crate::metrics::cluster::register(observer.clone());
    crate::admin::health::register(observer);
    // Kafka's broker serves clients once the active controller has it
    // registered and unfenced; so does this one.
    metadata.join_cluster(&config)?;
    // Off the shards: its own thread, active only on the controller.
    crate::console::alerts::start(&config, metadata.clone());
    let security = Arc::new(
        crate::security::sasl::Security::open(&config, &config.data_dir, &metadata.source())
            .context("opening the SCRAM credential store and the ACLs")?,
    );
    let tls = load_tls(&config)?;
    // Before any partition is opened: redo what the write-ahead rings
    // acknowledged after their last checkpoints (see shard::log::wal).
    let (wal_lsns, redone) =
        shard::log::wal::replay::prepare(&config.data_dir, config.shards, config.wal_ring_bytes())
            .with_context(|| {
                format!(
                    "replaying the write-ahead rings in {}",
                    config.data_dir.join("wal").display()
                )
            })?;
    if redone.entries > 0 || redone.skipped > 0 {
        tracing::info!(
            "write-ahead rings: redid {} write(s), {} bytes, from {} frame(s) ({} of deleted partitions skipped)",
            redone.entries,
            redone.bytes,
            redone.frames,
            redone.skipped
        );
    }
    let wal_lsns = Arc::new(wal_lsns);
    let quotas = Arc::new(crate::quotas::Quotas::new(
        crate::quotas::store::QuotaStore::new(metadata.source()),
        config.quota_window_num,
        config.quota_window_size_seconds,
    ));
    let limits = ConnectionLimits::new(config.max_connections, config.max_connections_per_ip);
    let group_census = crate::groups::census::GroupCensus::new(config.max_groups);
    let (mesh, inboxes) = Mesh::<ShardState>::new(config.shards, config.cross_shard_queue_depth);
    let inboxes: Arc<Mutex<Vec<Option<Inbox<ShardState>>>>> =
        Arc::new(Mutex::new(inboxes.into_iter().map(Some).collect()));
    let rt = RuntimeConfig {
        shards: config.shards,
        io_memory: config.io_memory_bytes,
        pin: config.pin_shards,
        // A node of a cluster hands over what it leads before it stops.
        before_stop: config.is_clustered().then(|| {
            let metadata = metadata.clone();
            let within = std::time::Duration::from_millis(config.broker_session_timeout_ms);
            Arc::new(move || metadata.controlled_shutdown(within)) as Arc<dyn Fn() + Send + Sync>
        }),
    };
    run_shards(&rt, move |id, gate, stop| {
        let inbox = inboxes.lock().expect("inbox lock")[id]
            .take()
            .expect("each shard starts once");
        let state = ShardState::new(
            id,
            config.clone(),
            metadata.clone(),
            mesh.clone(),
            security.clone(),
        )
        .with_quotas(quotas.clone())
        .with_connection_limits(limits.clone())
        .with_group_census(group_census.clone());
        let wal_lsn = wal_lsns[id];
        shard_main(state, tls.clone(), inbox, gate, stop, wal_lsn)
    })?;
    println!("shardline stopped cleanly");
    Ok(())
}

async fn shard_main(
    state: ShardState,
    tls: TlsHandles,
    inbox: Inbox<ShardState>,
    gate: Gate,
    stop: Stop,
    wal_lsn: Option<u64>,
) -> Result<()> {
    let state = Rc::new(state);
    let id = state.id;
    let config = state.config.clone();
    shard::log::tail_cache::set_shard_budget(config.tail_cache_shard_bytes);
    if let Some(lsn) = wal_lsn {
        shard::log::wal::install(&config.data_dir, id, lsn)
            .await
            .with_context(|| format!("shard {id}: opening the write-ahead ring"))?;
    }
    spawn_detached(inbox.serve(state.clone()));
    crate::txn::install(&state);
    let opened = state
        .partitions
        .open_owned_partitions()
        .await
        .with_context(|| format!("shard {id}: recovering partitions"))?;
    tracing::info!("shard {id}: {opened} partition(s) open");
    // Followers that lag (or are fenced) leave the ISRs led here.
    spawn_detached(crate::replica::check_lagging(
        state.partitions.clone(),
        config.replica_lag_time_max_ms,
    ));
    state
        .open_group_log()
        .await
        .with_context(|| format!("shard {id}: restoring consumer groups"))?;
    spawn_detached(crate::groups::run_timers(state.clone()));
    if id == crate::controller::CONTROLLER_SHARD {
        // Changes other brokers make (and leader changes) reach the local
        // logs through the reconciler.
        let changes = state.metadata.quorum().subscribe();
        spawn_detached(crate::reconcile::follow(state.clone(), changes));
        spawn_detached(crate::controller::replicas::balance_leaders(state.clone()));
    }
    // Every shard binds every listener (SO_REUSEPORT): a connection stays
    // on the shard that accepted it.
    let mut bound = Vec::new();
    for l in &config.resolved_listeners {
        let listener = TcpListener::bind(l.bind)
            .map_err(|e| anyhow::anyhow!("binding listener {} at {}: {e}", l.name, l.bind))?;
        bound.push((Arc::new(l.clone()), tls.get(&l.name).cloned(), listener));
    }
    // A client's requests may go to any shard: none accepts before all have
    // recovered (connections wait in the backlog meanwhile, as with Kafka,
    // which binds early and enables request processing after recovery).
    if !gate.all_ready().await {
        state.close_all().await;
        close_wal(id).await;
        return Ok(());
    }
    if id == 0 {
        let listeners = config
            .resolved_listeners
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "shardline listening on {listeners}; shards: {}; data dir: {}; durability: log_flush = {}",
            config.shards,
            config.data_dir.display(),
            config.flush_mode_name()
        );
        match &config.inter_broker {
            Some(i) => tracing::info!(
                "inter-broker listener: {} (peers see {})",
                i.listener.name,
                i.principal().unwrap_or_else(|| "User:ANONYMOUS".into())
            ),
            None => tracing::warn!(
                "no listener is usable between brokers (a PLAINTEXT one, or a SASL one with \
                 inter_broker_sasl_username, or TLS with ssl_truststore_location): followers \
                 cannot fetch from this broker and its transactions cannot complete"
            ),
        }
    }
    let background = spawn_local(crate::background::run(state.clone()));
    let expiry = spawn_local(crate::background::expire_producers(state.clone()));
    // Each accept loop is a task of its own, woken only by its listener;
    // dropping the handles at shutdown cancels them.
    let accepts: Vec<_> = bound
        .into_iter()
        .map(|(info, tls, listener)| spawn_local(accept_loop(state.clone(), listener, info, tls)))
        .collect();
    crate::admin::health::READINESS.shard_serving();
    stop.requested().await;
    crate::admin::health::READINESS.stopping();
    drop(accepts);
    drop(background);
    drop(expiry);
    state.close_all().await;
    close_wal(id).await;
    tracing::info!("shard {id}: logs flushed and closed");
    Ok(())
}

/// After every log of the shard is closed: a last checkpoint, so the next
/// start has nothing to redo (a failure only means it redoes more).
async fn close_wal(id: usize) {
    if let Err(e) = shard::log::wal::shutdown().await {
        tracing::warn!("shard {id}: closing the write-ahead ring: {e}");
    }
}

/// Accept connections on one listener forever, each served by its own task.
async fn accept_loop(
    state: Rc<ShardState>,
    listener: TcpListener,
    info: Arc<Listener>,
    tls: Option<Arc<TlsConfigHandle>>,
) {
    let failures = RateLimitedLog::new(LOG_EVERY);
    let refusals = RateLimitedLog::new(LOG_EVERY);
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(e) => {
                if let Some(line) = failures.note(Instant::now(), || {
                    format!("accept on listener {} failed: {e}", info.name)
                }) {
                    tracing::warn!("{line}");
                }
                // EMFILE and friends fail at once while the connection
                // waits in the backlog: back off instead of spinning.
                sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let peer = stream
            .peer_addr()
            .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
        let admission = match limits::admit(&state, peer.ip()).await {
            Ok(a) => a,
            Err(why) => {
                if let Some(line) = refusals.note(Instant::now(), || {
                    format!(
                        "refused connection from {peer} on listener {}: {why}",
                        info.name
                    )
                }) {
                    tracing::warn!("{line}");
                }
                drop(stream);
                continue;
            }
        };
        let state = state.clone();
        let (info, tls) = (info.clone(), tls.clone());
        spawn_detached(async move {
            connection::serve(state.clone(), stream, peer, info, tls).await;
            admission.release(&state).await;
        });
    }
}

/// How often a repeating accept failure or refusal is logged.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// Pause after a failed accept (EMFILE fails again at once otherwise).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
