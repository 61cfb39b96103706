//! Start-up and shutdown: the shards, their listeners, background work.

pub mod connection;
pub mod frame;
pub mod tls_accept;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use futures::future::{select, Either};
use glommio::net::TcpListener;
use shard::mesh::{Inbox, Mesh};
use shard::runtime::{run_shards, RuntimeConfig};

use crate::config::BrokerConfig;
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

/// Run a broker until SIGINT/SIGTERM.
pub fn run(config: BrokerConfig) -> Result<()> {
    let config = Arc::new(config);
    let metadata = Arc::new(MetadataStore::load_or_init(
        &config.data_dir,
        config.shards,
    )?);
    let security = Arc::new(
        crate::security::sasl::Security::open(&config, &config.data_dir)
            .context("opening the SCRAM credential store and the ACLs")?,
    );
    let tls = load_tls(&config)?;
    let quotas = Arc::new(crate::quotas::Quotas::new(
        crate::quotas::store::QuotaStore::open(config.data_dir.join("quotas.json"))
            .map_err(anyhow::Error::msg)?,
        config.quota_window_num,
        config.quota_window_size_seconds,
    ));
    let shutdown = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, shutdown.clone()).context("installing signal handlers")?;
    }
    let (mesh, inboxes) = Mesh::<ShardState>::new(config.shards);
    let inboxes: Arc<Mutex<Vec<Option<Inbox<ShardState>>>>> =
        Arc::new(Mutex::new(inboxes.into_iter().map(Some).collect()));
    let listening = Arc::new(AtomicUsize::new(0));
    let rt = RuntimeConfig {
        shards: config.shards,
        io_memory: config.io_memory_bytes,
        pin: config.pin_shards,
    };
    run_shards(&rt, move |id| {
        let inbox = inboxes.lock().expect("inbox lock")[id]
            .take()
            .expect("each shard starts once");
        shard_main(
            id,
            config.clone(),
            metadata.clone(),
            mesh.clone(),
            security.clone(),
            tls.clone(),
            quotas.clone(),
            inbox,
            shutdown.clone(),
            listening.clone(),
        )
    })?;
    println!("shardline stopped cleanly");
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn shard_main(
    id: usize,
    config: Arc<BrokerConfig>,
    metadata: Arc<MetadataStore>,
    mesh: Mesh<ShardState>,
    security: Arc<crate::security::sasl::Security>,
    tls: TlsHandles,
    quotas: Arc<crate::quotas::Quotas>,
    inbox: Inbox<ShardState>,
    shutdown: Arc<AtomicBool>,
    listening: Arc<AtomicUsize>,
) -> Result<()> {
    let state = std::rc::Rc::new(
        ShardState::new(id, config.clone(), metadata, mesh, security).with_quotas(quotas),
    );
    glommio::spawn_local(inbox.serve(state.clone())).detach();
    let opened = state
        .open_owned_partitions()
        .await
        .with_context(|| format!("shard {id}: recovering partitions"))?;
    tracing::info!("shard {id}: {opened} partition(s) open");
    state
        .open_group_log()
        .await
        .with_context(|| format!("shard {id}: restoring consumer groups"))?;
    glommio::spawn_local(crate::groups::run_timers(state.clone())).detach();
    // Every shard binds every listener (SO_REUSEPORT): a connection stays
    // on the shard that accepted it.
    let mut bound = Vec::new();
    for l in &config.resolved_listeners {
        let listener = TcpListener::bind(l.bind)
            .map_err(|e| anyhow::anyhow!("binding listener {} at {}: {e}", l.name, l.bind))?;
        bound.push((Arc::new(l.clone()), tls.get(&l.name).cloned(), listener));
    }
    if listening.fetch_add(1, Ordering::SeqCst) + 1 == config.shards {
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
    }
    glommio::spawn_local(crate::background::run(state.clone())).detach();

    {
        let accepts = bound.into_iter().map(|(info, tls, listener)| {
            let state = state.clone();
            Box::pin(async move {
                loop {
                    match listener.accept().await {
                        Ok(stream) => {
                            let peer = stream
                                .peer_addr()
                                .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
                            glommio::spawn_local(connection::serve(
                                state.clone(),
                                stream,
                                peer,
                                info.clone(),
                                tls.clone(),
                            ))
                            .detach();
                        }
                        Err(e) => {
                            tracing::warn!("accept on listener {} failed: {e}", info.name);
                            glommio::timer::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
            })
        });
        let accept = futures::future::join_all(accepts);
        let stop = async {
            while !shutdown.load(Ordering::Relaxed) {
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
        };
        futures::pin_mut!(accept, stop);
        if let Either::Left(_) = select(accept, stop).await {
            unreachable!("the accept loops never end");
        }
    }
    state.close_all().await;
    tracing::info!("shard {id}: logs flushed and closed");
    Ok(())
}
