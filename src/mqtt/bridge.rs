//! The bridge: subscribe to an external MQTT broker (Mosquitto, EMQX) and write what
//! arrives into the log.
//!
//! rumqttc (MQTT 3.1.1) runs the connection with manual acknowledgements and a persistent
//! session (clean session off, a stable client id), so the external broker keeps QoS 1
//! messages while bramble is away and resends any it never got a PUBACK for. Each QoS 1
//! message is acknowledged only after its record is committed, in arrival order. After a
//! reconnect the subscriptions are sent again; acknowledgements still owed for messages of
//! the previous connection are dropped (the broker resends those messages, which are then
//! written again: at least once).
//!
//! Backpressure: each message holds one of the bridge's `max_inflight_messages` slots and
//! its bytes of the MQTT pool until acknowledged; when they run out, the event loop is not
//! polled, so nothing more is read from the external broker.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, EventLoop, Incoming, MqttOptions, SubscribeFilter,
    SubscribeReasonCode,
};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use super::codec::{Publish, QoS};
use super::config::BridgeConfig;
use super::metrics::{BridgeMetrics, BridgeState};
use super::routes::Route;
use super::sink::{self, Commit, Source};
use super::Ingest;
use crate::memory::Grant;

/// Messages taken from rumqttc's buffered events and written as one batch at most.
const BATCH_MESSAGES_MAX: usize = 512;

/// Acknowledgements owed once a commit is done.
struct Owed {
    /// The connection the messages came on (acks for an older one are dropped).
    generation: u64,
    commit: Commit,
    /// Packet ids of QoS 1 messages, in arrival order.
    packet_ids: Vec<u16>,
    _permits: (OwnedSemaphorePermit, Vec<Grant>),
}

/// Run bridge `index` of the config until `shutdown`.
pub async fn run(ingest: Arc<Ingest>, index: usize, mut shutdown: watch::Receiver<bool>) {
    let config = ingest.config.bridges[index].clone();
    let name = ingest.config.bridge_name(index);
    let client_id = config
        .client_id
        .clone()
        .unwrap_or_else(|| format!("bramble-{}-{name}", ingest.node_id));
    let only_route = config.topic.as_deref().map(|topic| {
        Route::catch_all(topic, config.key.as_deref()).expect("validated with the config")
    });
    let (client, mut eventloop) =
        connect_options(&config, &client_id, ingest.config.max_packet_bytes);
    let generation = Arc::new(AtomicU64::new(0));
    let reset = Arc::new(AtomicBool::new(false));
    let (owed_tx, owed_rx) = mpsc::channel(usize::from(config.max_inflight_messages) + 16);
    let acker = tokio::spawn(ack_loop(
        client.clone(),
        owed_rx,
        ingest.clone(),
        generation.clone(),
        reset.clone(),
        name.clone(),
    ));
    let slots = Arc::new(Semaphore::new(usize::from(config.max_inflight_messages)));
    let metrics = &ingest.metrics.bridges[index];
    let mut bridge = Bridge {
        ingest: &ingest,
        config: &config,
        name: &name,
        client_id: &client_id,
        only_route: only_route.as_ref(),
        metrics,
        slots,
        owed: owed_tx,
        generation,
        backoff: Duration::from_millis(config.reconnect_min_ms),
        routed: Vec::new(),
    };
    tracing::info!(bridge = %name, url = %config.url, client = %client_id, "MQTT bridge starting");
    loop {
        let event = tokio::select! {
            event = eventloop.poll() => event,
            _ = shutdown.changed() => break,
        };
        let result = match event {
            Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                bridge.connected(&client, ack.session_present, ack.code);
                Ok(())
            }
            Ok(Event::Incoming(Incoming::Publish(first))) => {
                bridge.received(first, &mut eventloop, &mut shutdown).await
            }
            Ok(Event::Incoming(Incoming::SubAck(ack))) => {
                for (filter, code) in config.subscribe.iter().zip(&ack.return_codes) {
                    match code {
                        SubscribeReasonCode::Success(qos) => {
                            tracing::info!(bridge = %name, %filter, ?qos, "subscribed")
                        }
                        SubscribeReasonCode::Failure => {
                            tracing::error!(bridge = %name, %filter, "the external broker refused the subscription")
                        }
                    }
                }
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(error) => Err(error.to_string()),
        };
        if reset.swap(false, Ordering::AcqRel) {
            // A commit failed: drop the connection so the broker resends what is unacked.
            eventloop.clean();
        }
        if let Err(error) = result {
            if metrics.state() == BridgeState::Connected {
                tracing::warn!(bridge = %name, %error, "bridge disconnected");
            } else {
                tracing::debug!(bridge = %name, %error, "bridge connect failed");
            }
            metrics.set_state(BridgeState::Disconnected);
            let delay = bridge.backoff;
            bridge.backoff =
                (bridge.backoff * 2).min(Duration::from_millis(config.reconnect_max_ms));
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => break,
            }
        }
    }
    metrics.set_state(BridgeState::Disconnected);
    acker.abort();
    tracing::info!(bridge = %name, "MQTT bridge stopped");
}

fn connect_options(
    config: &BridgeConfig,
    client_id: &str,
    max_packet_bytes: u32,
) -> (AsyncClient, EventLoop) {
    let (host, port) = config.host_port().expect("validated with the config");
    let mut options = MqttOptions::new(client_id, host, port);
    options
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(u64::from(
            config.keep_alive_secs.max(5),
        )))
        .set_max_packet_size(max_packet_bytes as usize, max_packet_bytes as usize);
    if let Some(username) = &config.username {
        options.set_credentials(username, config.password.clone().unwrap_or_default());
    }
    // Room for every acknowledgement the in-flight window can owe, plus subscriptions.
    AsyncClient::new(options, usize::from(config.max_inflight_messages) + 64)
}

struct Bridge<'a> {
    ingest: &'a Ingest,
    config: &'a BridgeConfig,
    name: &'a str,
    client_id: &'a str,
    only_route: Option<&'a Route>,
    metrics: &'a BridgeMetrics,
    slots: Arc<Semaphore>,
    owed: mpsc::Sender<Owed>,
    generation: Arc<AtomicU64>,
    backoff: Duration,
    routed: Vec<bool>,
}

impl Bridge<'_> {
    fn connected(&mut self, client: &AsyncClient, session_present: bool, code: ConnectReturnCode) {
        if code != ConnectReturnCode::Success {
            tracing::error!(bridge = %self.name, ?code, "the external broker refused the connection");
            return;
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.backoff = Duration::from_millis(self.config.reconnect_min_ms);
        self.metrics.set_state(BridgeState::Connected);
        self.metrics.connects.fetch_add(1, Ordering::Relaxed);
        tracing::info!(bridge = %self.name, url = %self.config.url, session_present, "bridge connected");
        let qos = if self.config.qos == 0 {
            rumqttc::QoS::AtMostOnce
        } else {
            rumqttc::QoS::AtLeastOnce
        };
        let filters = self
            .config
            .subscribe
            .iter()
            .map(|f| SubscribeFilter::new(f.clone(), qos));
        // Subscribe on every connect: a resumed session keeps them, a new one needs them.
        if let Err(error) = client.try_subscribe_many(filters) {
            tracing::error!(bridge = %self.name, %error, "could not queue the subscription");
        }
    }

    /// Write `first` and whatever rumqttc already has buffered behind it, then queue the
    /// acknowledgements behind the commit.
    async fn received(
        &mut self,
        first: rumqttc::Publish,
        eventloop: &mut EventLoop,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), String> {
        let mut messages = Vec::new();
        let mut packet_ids = Vec::new();
        let size = first.payload.len() + first.topic.len();
        let Some(mut permits) = self.acquire(size, shutdown).await else {
            return Ok(());
        };
        self.take(first, &mut messages, &mut packet_ids);
        while messages.len() < BATCH_MESSAGES_MAX {
            let Some(Event::Incoming(Incoming::Publish(next))) = eventloop.state.events.front()
            else {
                break;
            };
            let size = next.payload.len() + next.topic.len();
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                break;
            };
            let Some(grant) = self.ingest.pool.try_acquire(size as u64) else {
                break;
            };
            permits.0.merge(slot);
            permits.1.push(grant);
            let Some(Event::Incoming(Incoming::Publish(next))) = eventloop.state.events.pop_front()
            else {
                unreachable!("the front event was just seen");
            };
            self.take(next, &mut messages, &mut packet_ids);
        }
        let source = Source {
            client_id: self.client_id,
            only_route: self.only_route,
        };
        let commit = match self
            .ingest
            .sink
            .ingest(source, &messages, &mut self.routed)
            .await
        {
            Ok(commit) => commit,
            Err(error) => {
                tracing::error!(bridge = %self.name, %error, "bridge ingest failed; reconnecting so the broker resends");
                eventloop.clean();
                return Err(error.to_string());
            }
        };
        let generation = self.generation.load(Ordering::Acquire);
        let owed = Owed {
            generation,
            commit,
            packet_ids,
            _permits: permits,
        };
        self.owed
            .send(owed)
            .await
            .map_err(|_| "acknowledger stopped".to_string())
    }

    fn take(
        &self,
        publish: rumqttc::Publish,
        messages: &mut Vec<Publish>,
        packet_ids: &mut Vec<u16>,
    ) {
        self.metrics.received.add(publish.payload.len());
        let qos = match publish.qos {
            rumqttc::QoS::AtMostOnce => QoS::AtMostOnce,
            rumqttc::QoS::AtLeastOnce => QoS::AtLeastOnce,
            rumqttc::QoS::ExactlyOnce => QoS::ExactlyOnce,
        };
        if qos != QoS::AtMostOnce {
            packet_ids.push(publish.pkid);
        }
        let payload: Bytes = publish.payload;
        messages.push(sink::message(publish.topic, payload, qos, publish.retain));
    }

    async fn acquire(
        &self,
        size: usize,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<(OwnedSemaphorePermit, Vec<Grant>)> {
        tokio::select! {
            permits = async {
                let slot = self.slots.clone().acquire_owned().await.ok()?;
                let grant = self.ingest.pool.acquire(size as u64).await;
                Some((slot, vec![grant]))
            } => permits,
            _ = shutdown.changed() => None,
        }
    }
}

/// Acknowledge in order, each batch once committed. Acknowledgements are queued to rumqttc
/// without ever blocking (its event loop may be paused waiting for the very slots this task
/// frees), and retried shortly when its request channel is full.
async fn ack_loop(
    client: AsyncClient,
    mut owed: mpsc::Receiver<Owed>,
    ingest: Arc<Ingest>,
    generation: Arc<AtomicU64>,
    reset: Arc<AtomicBool>,
    name: String,
) {
    let mut pending: VecDeque<(u64, u16)> = VecDeque::new();
    loop {
        let item = if pending.is_empty() {
            owed.recv().await
        } else {
            tokio::select! {
                item = owed.recv() => item,
                _ = tokio::time::sleep(Duration::from_millis(1)) => {
                    send_acks(&client, &mut pending, &generation);
                    continue;
                }
            }
        };
        let Some(item) = item else { return };
        if let Err(error) = ingest.sink.wait(&item.commit).await {
            tracing::error!(bridge = %name, %error, "commit failed; these messages stay unacknowledged");
            reset.store(true, Ordering::Release);
            continue;
        }
        let Owed {
            generation: from,
            packet_ids,
            _permits,
            ..
        } = item;
        drop(_permits);
        pending.extend(packet_ids.into_iter().map(|id| (from, id)));
        send_acks(&client, &mut pending, &generation);
    }
}

fn send_acks(client: &AsyncClient, pending: &mut VecDeque<(u64, u16)>, generation: &AtomicU64) {
    let current = generation.load(Ordering::Acquire);
    while let Some(&(from, packet_id)) = pending.front() {
        if from != current {
            // The connection these came on is gone; the broker resends them.
            pending.pop_front();
            continue;
        }
        let mut ack = rumqttc::Publish::new("", rumqttc::QoS::AtLeastOnce, Vec::new());
        ack.pkid = packet_id;
        if client.try_ack(&ack).is_err() {
            return;
        }
        pending.pop_front();
    }
}
