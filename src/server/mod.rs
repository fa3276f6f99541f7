//! Listeners, background tasks and shutdown: the only place that touches sockets.

pub mod admin;
pub mod groups;
pub mod kafka;
pub mod mqtt;
pub mod peer;
pub mod zk;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::producer_ids::ProducerIdAllocator;
use crate::broker::{now_ms, Broker};
use crate::config::{parse_kafka_listener, parse_listener, Config};
use crate::group::GroupCoordinator;
use crate::health::{self, Health};

/// Open the broker, bind every listener, and serve until `shutdown` turns true; then close
/// the logs cleanly.
pub async fn run(
    config: Config,
    node_id: u32,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    // Health first, so the LED says `booting` while the logs recover.
    let health = Health::new(node_id, health::notify::Notifier::from_env());
    let mut health_tasks = start_health(&config, &health, shutdown.clone());
    let broker_config = config.broker.clone();
    let broker = Arc::new(tokio::task::block_in_place(|| {
        Broker::open(broker_config, node_id as i32)
    })?);
    let groups = Arc::new(GroupCoordinator::new(broker.clone()));
    // In a cluster the coordinator loads a partition's groups when it becomes its leader.
    if config.cluster.is_none() {
        tokio::task::block_in_place(|| groups.load())?;
    }
    let producer_ids = Arc::new(ProducerIdAllocator::open(&config.broker.log_dirs[0])?);
    let budget = Arc::new(config.budget()?);
    tracing::info!(budget_mib = budget.total_bytes >> 20, "memory budget");
    groups.set_memory_pool(&budget.group_state);
    health.inputs.set_budget(budget.clone());
    let mut tasks = tokio::task::JoinSet::new();
    // ZooKeeper protocol (coordinator): open the tree from coordinator.data_dir, then serve.
    let mut cluster = None;
    let mut zk_handle = None;
    let coordinator = {
        let coordinator = match &config.cluster {
            None => tokio::task::block_in_place(|| {
                zk::open(&config.coordinator, budget.znodes.limit_bytes())
            })?,
            Some(cc) => {
                // The quorum replaces the txn log: open the coordinator empty, let the Raft
                // state machine load its snapshot and replay the committed log into it.
                let zk =
                    zk::open_clustered(&config.coordinator, node_id, budget.znodes.limit_bytes())?;
                cc.validate(u64::from(node_id))
                    .map_err(anyhow::Error::msg)?;
                let peer_addr = parse_listener(&cc.listen).map_err(anyhow::Error::msg)?;
                let peer_listener = TcpListener::bind(peer_addr).await.map_err(|e| {
                    anyhow::anyhow!("cannot listen on {peer_addr} (cluster.listen): {e}")
                })?;
                let (peer_acceptor, peer_connector) = if cc.tls {
                    (
                        Some(config.tls.peer_acceptor()?),
                        Some(config.tls.peer_connector()?),
                    )
                } else {
                    (None, None)
                };
                let applier: Arc<dyn crate::cluster::state_machine::Applier> = zk.clone();
                let c = crate::cluster::Cluster::start(
                    cc,
                    u64::from(node_id),
                    std::path::Path::new(&config.coordinator.data_dir),
                    applier,
                    peer_connector,
                )
                .await?;
                c.set_znode_cap_bytes(budget.znodes.limit_bytes());
                zk.attach_cluster(c.clone(), cc.broker_session_timeout_ms);
                tasks.spawn(peer::serve(
                    peer_listener,
                    c.clone(),
                    peer_acceptor,
                    shutdown.clone(),
                ));
                cluster = Some(c);
                zk_handle = Some(zk.clone());
                zk
            }
        };
        let listener = TcpListener::bind(&config.coordinator.listen)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on {} (coordinator.listen): {e}",
                    config.coordinator.listen
                )
            })?;
        let secure = match &config.coordinator.secure_listen {
            Some(addr) => {
                let tls = config.tls.acceptor("coordinator.secure_listen")?;
                let listener = TcpListener::bind(addr).await.map_err(|e| {
                    anyhow::anyhow!("cannot listen on {addr} (coordinator.secure_listen): {e}")
                })?;
                Some((listener, tls))
            }
            None => None,
        };
        coordinator.set_requests_per_second(config.security.max_requests_per_second_per_connection);
        let stop = shutdown.clone();
        let serving = coordinator.clone();
        let requests = budget.kafka_requests.clone();
        tasks.spawn(async move {
            if let Err(error) = zk::serve(listener, serving, secure, requests, stop).await {
                tracing::error!(error = %error, "ZooKeeper listener failed");
            }
        });
        coordinator
    };
    // Cluster mode: broker registration, topic assignment, controller and replication.
    let replication = match (&cluster, &zk_handle) {
        (Some(c), Some(zk)) => Some(crate::replication::Replication::start(
            broker.clone(),
            groups.clone(),
            zk.clone(),
            c.clone(),
            budget.replication.clone(),
            health.clone(),
            shutdown.clone(),
        )),
        _ => None,
    };
    let ctx = crate::kafka::Context {
        broker: broker.clone(),
        groups: groups.clone(),
        producer_ids,
        peer: None,
        protocol: crate::config::SecurityProtocol::Plaintext,
        listener: 0,
        tls_client_cn: None,
        inter_broker: false,
        replication,
        memory: budget.clone(),
        security: crate::security::Security::new(
            config.security.clone(),
            config.broker.max_connections_per_ip,
            coordinator.clone(),
        ),
        principal: std::sync::Arc::from(crate::security::sasl::ANONYMOUS),
    };
    let limits = kafka::Limits {
        max_connections: config.broker.max_connections,
        request_max_bytes: config.broker.socket_request_max_bytes,
    };
    if let Some(inbound) = cluster.as_ref().and_then(|c| c.take_brkf_inbound()) {
        let mut peer_ctx = ctx.clone();
        if config.cluster.as_ref().is_some_and(|cc| cc.tls) {
            peer_ctx.protocol = crate::config::SecurityProtocol::Ssl;
        }
        tasks.spawn(kafka::serve_peers(
            inbound,
            peer_ctx,
            limits,
            budget.kafka_requests.clone(),
            shutdown.clone(),
        ));
    }
    for (index, entry) in config.broker.listeners.iter().enumerate() {
        let (protocol, addr) = parse_kafka_listener(entry).map_err(anyhow::Error::msg)?;
        let tls = if protocol.uses_tls() {
            Some(config.tls.acceptor(&format!("listener `{entry}`"))?)
        } else {
            None
        };
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (broker.listeners): {e}"))?;
        tracing::info!(addr = %listener.local_addr()?, protocol = protocol.name(), "Kafka listener up");
        let mut ctx = ctx.clone();
        ctx.protocol = protocol;
        ctx.listener = index;
        tasks.spawn(kafka::serve(
            listener,
            ctx,
            limits,
            budget.kafka_requests.clone(),
            tls,
            shutdown.clone(),
        ));
    }
    if let Some(mqtt_config) = config.mqtt.clone() {
        let ingest = crate::mqtt::Ingest::new(
            mqtt_config,
            broker.clone(),
            ctx.replication.clone(),
            node_id,
            budget.mqtt_inflight.clone(),
            ctx.security.clone(),
        )?;
        start_mqtt(ingest, &config.tls, &mut tasks, &shutdown).await?;
    }
    tasks.spawn(retention_loop(broker.clone(), shutdown.clone()));
    tasks.spawn(groups::timers(groups.clone(), shutdown.clone()));
    tasks.spawn(groups::offset_expiry(
        groups.clone(),
        config.broker.offsets_retention_check_interval_ms,
        shutdown.clone(),
    ));
    if config.broker.log_cleaner_enable {
        tasks.spawn(cleaner_loop(broker.clone(), shutdown.clone()));
    }
    tasks.spawn(memory_report_loop(budget.clone(), shutdown.clone()));
    tasks.spawn(checkpoint_loop(
        broker.clone(),
        health.clone(),
        shutdown.clone(),
    ));
    if !config.broker.log_flush_on_ack {
        tasks.spawn(flush_loop(
            broker.clone(),
            config.broker.log_flush_interval_ms,
            shutdown.clone(),
        ));
    }
    let admin = admin::AdminContext {
        health: health.clone(),
        broker: broker.clone(),
        groups: groups.clone(),
        zk: coordinator.clone(),
        log_dir: config.broker.log_dirs[0].clone(),
        kafka: config
            .broker
            .advertised()
            .first()
            .map(|(host, port)| format!("{host}:{port}")),
    };
    start_admin(&config, admin, &mut tasks, shutdown.clone()).await;
    tasks.spawn(measure_znode_pool(
        coordinator.clone(),
        budget.znodes.clone(),
        Duration::from_millis(u64::from(config.admin.health_interval_ms)),
        shutdown.clone(),
    ));
    match &cluster {
        // A single node is its own leader.
        None => health
            .inputs
            .set_quorum(health::QuorumStatus::single_node(node_id)),
        Some(c) => {
            tasks.spawn(feed_quorum(c.clone(), health.clone(), shutdown.clone()));
        }
    }
    warn_exposed(&config);
    tracing::info!(node = node_id, cluster = %broker.cluster_id, "bramble serving");
    // The health loop sends READY=1 (with the status line) once it sees this.
    health.serving();
    let _ = shutdown.changed().await;
    tracing::info!("shutting down");
    health.stopping();
    tasks.shutdown().await;
    if let Some(c) = cluster {
        c.shutdown().await;
    }
    broker.flush_all().await;
    tokio::task::block_in_place(|| broker.close());
    tracing::info!("logs closed cleanly");
    health_tasks.shutdown().await;
    Ok(())
}

/// One loud warning naming every listener open to the network with neither TLS nor
/// authentication, and how to secure them.
fn warn_exposed(config: &Config) {
    let exposed = config.exposed_listeners();
    if exposed.is_empty() {
        return;
    }
    tracing::warn!(
        listeners = %exposed.join(", "),
        "INSECURE: these listeners accept anyone on the network, unencrypted and unauthenticated; \
         bind them to 127.0.0.1, or secure them: make certificates with `bramble certs`, set [tls] \
         cert_file/key_file/ca_file, then use SSL:// Kafka listeners, coordinator.secure_listen, \
         mqtt.tls_listen (or mqtt.users), admin.tls and cluster.tls = true (see the README's Security section)"
    );
}

/// Start the MQTT listeners (`mqtt.listen`, `mqtt.tls_listen`) and one task per bridge.
async fn start_mqtt(
    ingest: Arc<crate::mqtt::Ingest>,
    tls: &crate::tls::TlsConfig,
    tasks: &mut tokio::task::JoinSet<()>,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let connections = Arc::new(tokio::sync::Semaphore::new(
        ingest.config.max_connections as usize,
    ));
    let listeners = [
        (ingest.config.listen.as_ref(), "mqtt.listen"),
        (ingest.config.tls_listen.as_ref(), "mqtt.tls_listen"),
    ];
    for (listen, key) in listeners {
        let Some(listen) = listen else { continue };
        let tls = if key == "mqtt.tls_listen" {
            Some(tls.acceptor(key)?)
        } else {
            None
        };
        let addr = parse_listener(listen).map_err(anyhow::Error::msg)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} ({key}): {e}"))?;
        tracing::info!(addr = %listener.local_addr()?, tls = tls.is_some(), "MQTT listener up");
        tasks.spawn(mqtt::serve(
            listener,
            ingest.clone(),
            tls,
            connections.clone(),
            shutdown.clone(),
        ));
    }
    for index in 0..ingest.config.bridges.len() {
        tasks.spawn(crate::mqtt::bridge::run(
            ingest.clone(),
            index,
            shutdown.clone(),
        ));
    }
    Ok(())
}

/// Feed the quorum's role, term and leader into health on every change of openraft's
/// metrics.
async fn feed_quorum(
    cluster: Arc<crate::cluster::Cluster>,
    health: Arc<Health>,
    mut shutdown: watch::Receiver<bool>,
) {
    use openraft::ServerState;
    let mut metrics = cluster.raft().metrics();
    let mut leader = cluster.leader();
    let voters = u32::try_from(cluster.members().len()).unwrap_or(u32::MAX);
    loop {
        let (state, term) = {
            let m = metrics.borrow_and_update();
            (m.state, m.current_term)
        };
        let known_leader = *leader.borrow_and_update();
        let role = match state {
            ServerState::Leader => health::state::Role::Leader,
            ServerState::Follower => health::state::Role::Follower,
            ServerState::Learner => health::state::Role::Learner,
            ServerState::Candidate | ServerState::Shutdown => health::state::Role::Candidate,
        };
        let leader_id = known_leader.and_then(|l| u32::try_from(l).ok());
        health.inputs.set_quorum(health::QuorumStatus {
            role,
            term,
            leader: leader_id,
            quorum: leader_id.is_some(),
            voters,
        });
        health.poke();
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            changed = leader.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

/// Keeps the znode pool's figure current for `/metrics` and `/health`: the coordinator
/// checks writes and watches against the pool's limit itself, so the pool holds no grants.
async fn measure_znode_pool(
    coordinator: zk::ZkHandle,
    pool: std::sync::Arc<crate::memory::Pool>,
    every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        pool.set_measured_bytes(coordinator.znode_pool_used_bytes());
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => break,
        }
    }
}

/// The health loop and the LED driver; they run until `shutdown`.
fn start_health(
    config: &Config,
    health: &std::sync::Arc<Health>,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinSet<()> {
    let mut tasks = tokio::task::JoinSet::new();
    let display = tokio::task::block_in_place(|| health::led::open(&config.led));
    tasks.spawn(health::led::drive(
        display,
        config.led.patterns.clone(),
        health.watch(),
        shutdown.clone(),
    ));
    let sensors = health::system::Sensors::new(&config.broker.log_dirs[0]);
    let interval = Duration::from_millis(u64::from(config.admin.health_interval_ms));
    tasks.spawn(health::run(
        health.clone(),
        sensors,
        config.admin.thresholds(),
        interval,
        shutdown,
    ));
    tasks
}

/// Bind `[admin] listen` and serve it. Admin is for eyes and scrapers, not for clients: a
/// port already taken is a loud error, not a reason to stop serving Kafka and ZooKeeper.
async fn start_admin(
    config: &Config,
    ctx: admin::AdminContext,
    tasks: &mut tokio::task::JoinSet<()>,
    shutdown: watch::Receiver<bool>,
) {
    if config.admin.listen.is_empty() {
        return;
    }
    let tls = if config.admin.tls {
        match config.tls.acceptor("admin.tls") {
            Ok(tls) => Some(tls),
            Err(error) => {
                tracing::error!(%error, "admin HTTPS cannot start; /health and /metrics are off");
                return;
            }
        }
    } else {
        None
    };
    let bound = match parse_listener(&config.admin.listen) {
        Ok(addr) => TcpListener::bind(addr).await.map_err(|e| e.to_string()),
        Err(message) => Err(message),
    };
    match bound {
        Ok(listener) => {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, tls = tls.is_some(), "admin HTTP listener up");
            }
            tasks.spawn(admin::serve(listener, ctx, tls, shutdown));
        }
        Err(error) => {
            tracing::error!(listen = %config.admin.listen, %error, "cannot listen (admin.listen); /health and /metrics are off")
        }
    }
}

async fn retention_loop(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let period = Duration::from_millis(broker.config.log_retention_check_interval_ms.max(100));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.changed() => return,
        }
        let broker = broker.clone();
        let _ = tokio::task::spawn_blocking(move || broker.run_retention(now_ms())).await;
    }
}

async fn cleaner_loop(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let period = Duration::from_millis(broker.config.log_cleaner_backoff_ms);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.changed() => return,
        }
        let broker = broker.clone();
        let _ = tokio::task::spawn_blocking(move || broker.run_cleaner(now_ms())).await;
    }
}

/// How often memory use is logged at debug level.
const MEMORY_REPORT_INTERVAL: Duration = Duration::from_secs(5);

async fn memory_report_loop(
    budget: Arc<crate::memory::Budget>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(MEMORY_REPORT_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
        let (rss, hwm) = crate::memory::stats::resident_bytes();
        let (allocated, resident) = crate::memory::stats::allocator_bytes();
        let pools: Vec<String> = budget
            .pools()
            .iter()
            .map(|p| {
                format!(
                    "{}={}/{}KiB",
                    p.name(),
                    p.used_bytes() >> 10,
                    p.peak_bytes() >> 10
                )
            })
            .collect();
        tracing::debug!(rss_kib = rss >> 10, hwm_kib = hwm >> 10, allocated_kib = allocated >> 10, allocator_resident_kib = resident >> 10, pools = %pools.join(" "), "memory");
    }
}

/// Kafka writes its high-watermark checkpoint every 5 s; so does bramble.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);

async fn checkpoint_loop(
    broker: Arc<Broker>,
    health: Arc<Health>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECKPOINT_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
        let broker = broker.clone();
        if let Ok(Err(error)) =
            tokio::task::spawn_blocking(move || broker.write_checkpoints()).await
        {
            tracing::error!(%error, "writing checkpoints failed");
            health
                .inputs
                .storage_error(format_args!("writing checkpoints: {error}"));
            health.poke();
        }
    }
}

async fn flush_loop(broker: Arc<Broker>, interval_ms: u64, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(interval_ms)) => {}
            _ = shutdown.changed() => return,
        }
        broker.flush_all().await;
    }
}
