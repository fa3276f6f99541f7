//! `[mqtt]`: the listener, routes, bridges, credentials and limits.
//!
//! ```toml
//! [mqtt]
//! listen = "0.0.0.0:1883"          # absent = no listener
//! users = { sensor = "secret" }    # absent = anonymous clients allowed
//! require_auth = false             # true: log in with a user of `bramble user add` instead
//! [[mqtt.route]]
//! filter = "sensors/#"
//! topic = "sensors"
//! key = "{topic}"                  # the default; also {client_id}, {1}, {2}, ...
//! [[mqtt.bridge]]
//! url = "mqtt://localhost:1883"
//! subscribe = ["bridge/#"]
//! topic = "bridged"
//! qos = 1
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use super::routes::{FilterError, KeyTemplate, TopicFilter};
use crate::config::{parse_listener, split_host_port, ConfigError};

/// `[mqtt]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Address of the built-in listener; `None` runs no listener (bridges still run).
    pub listen: Option<String>,
    /// Address of a second listener whose connections are TLS (port 8883), with `[tls]`'s
    /// certificate; `None` runs none.
    pub tls_listen: Option<String>,
    /// Username → password; when not empty, clients must present one of them.
    pub users: BTreeMap<String, String>,
    /// Let clients connect without a username; defaults to "only when `users` is empty".
    pub allow_anonymous: Option<bool>,
    /// Every client must log in with a user of the shared store (`bramble user add`),
    /// checked like a Kafka PLAIN login; `users` must then be empty.
    pub require_auth: bool,
    /// Most MQTT clients connected at once; further ones are closed at accept.
    pub max_connections: u32,
    /// Largest MQTT packet accepted; a larger one closes its connection (v5 clients are
    /// told the limit in CONNACK).
    pub max_packet_bytes: u32,
    /// Most QoS 1 and 2 publishes of one client waiting for their commit (v5: the Receive
    /// Maximum told to clients; v3.1.1 clients are simply not read beyond it).
    pub max_inflight_messages: u16,
    /// Persistent sessions (clean session off) remembered at once; the oldest
    /// disconnected one is forgotten past this.
    pub max_sessions: u32,
    /// A connection that sends no CONNECT within this time is closed.
    pub connect_timeout_ms: u64,
    /// Largest record batch the ingest builds for one partition at once; defaults to
    /// `broker.message_max_bytes`.
    pub batch_bytes_max: Option<u32>,
    /// `[[mqtt.route]]`: MQTT topic filter → log topic; the first match wins.
    #[serde(rename = "route")]
    pub routes: Vec<RouteConfig>,
    /// `[[mqtt.bridge]]`: external brokers to subscribe to.
    #[serde(rename = "bridge")]
    pub bridges: Vec<BridgeConfig>,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            listen: None,
            tls_listen: None,
            users: BTreeMap::new(),
            allow_anonymous: None,
            require_auth: false,
            max_connections: 1000,
            max_packet_bytes: 256 * 1024,
            max_inflight_messages: 1000,
            max_sessions: 10_000,
            connect_timeout_ms: 10_000,
            batch_bytes_max: None,
            routes: Vec::new(),
            bridges: Vec::new(),
        }
    }
}

/// `[[mqtt.route]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// MQTT topic filter, with `+` (one level) and `#` (the rest).
    pub filter: String,
    /// The log topic messages go to (created on demand with the broker's defaults).
    pub topic: String,
    /// Record key template: `{topic}` (the default), `{client_id}`, `{1}`… (a topic level).
    #[serde(default)]
    pub key: Option<String>,
    /// Put MQTT metadata (topic, qos, retain, client id, v5 user properties) in headers.
    #[serde(default = "yes")]
    pub headers: bool,
}

fn yes() -> bool {
    true
}

/// `[[mqtt.bridge]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    /// A name for logs and metrics; defaults to `bridge<N>`.
    #[serde(default)]
    pub name: Option<String>,
    /// `mqtt://host:port` (TLS, `mqtts://`, is not built in yet).
    pub url: String,
    /// Topic filters to subscribe to.
    pub subscribe: Vec<String>,
    /// Log topic for everything this bridge receives; absent = the shared routes decide.
    #[serde(default)]
    pub topic: Option<String>,
    /// Record key template when `topic` is set (default `{topic}`).
    #[serde(default)]
    pub key: Option<String>,
    /// Subscription QoS: 0 or 1 (QoS 1 acknowledges each message after its commit).
    #[serde(default = "one")]
    pub qos: u8,
    /// Client id at the external broker; defaults to `bramble-<node id>-<name>`. It must be
    /// stable: the persistent session (messages kept while bramble is away) hangs on it.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Username at the external broker.
    #[serde(default)]
    pub username: Option<String>,
    /// Password at the external broker.
    #[serde(default)]
    pub password: Option<String>,
    /// MQTT keep-alive in seconds.
    #[serde(default = "keep_alive_default")]
    pub keep_alive_secs: u16,
    /// First reconnect delay; doubles up to `reconnect_max_ms`.
    #[serde(default = "reconnect_min_default")]
    pub reconnect_min_ms: u64,
    /// Longest delay between reconnect attempts.
    #[serde(default = "reconnect_max_default")]
    pub reconnect_max_ms: u64,
    /// Messages the external broker may have in flight to us (its own limit applies too).
    #[serde(default = "bridge_inflight_default")]
    pub max_inflight_messages: u16,
}

fn one() -> u8 {
    1
}
fn keep_alive_default() -> u16 {
    30
}
fn reconnect_min_default() -> u64 {
    100
}
fn reconnect_max_default() -> u64 {
    30_000
}
fn bridge_inflight_default() -> u16 {
    1000
}

impl BridgeConfig {
    /// Host and port from `url`.
    pub fn host_port(&self) -> Result<(String, u16), String> {
        let rest = if let Some(rest) = self
            .url
            .strip_prefix("mqtt://")
            .or_else(|| self.url.strip_prefix("tcp://"))
        {
            rest
        } else if self.url.starts_with("mqtts://") || self.url.starts_with("ssl://") {
            return Err(format!(
                "`{}`: TLS bridges are not built in yet; use mqtt://",
                self.url
            ));
        } else {
            return Err(format!("`{}` must start with mqtt://", self.url));
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains(':') {
            split_host_port(rest)
        } else {
            Ok((rest.to_string(), 1883))
        }
    }
}

/// A log topic MQTT may write to: a valid name, and not one of the broker's own (`__…`).
fn check_target_topic(topic: &str) -> Result<(), String> {
    crate::broker::topic::validate_topic_name(topic).map_err(|e| format!("`{topic}`: {e}"))?;
    if topic.starts_with("__") {
        return Err(format!(
            "`{topic}`: topics starting with `__` are the broker's own"
        ));
    }
    Ok(())
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

impl MqttConfig {
    /// Check every value; `message_max_bytes` is the broker's batch limit, which one MQTT
    /// message turned into a record must stay under.
    pub fn validate(&self, message_max_bytes: u32) -> Result<(), ConfigError> {
        if self.require_auth && !self.users.is_empty() {
            return Err(invalid(
                "mqtt.require_auth",
                "checks clients against the user store (bramble user add); remove mqtt.users",
            ));
        }
        if let Some(listen) = &self.listen {
            parse_listener(listen).map_err(|message| invalid("mqtt.listen", message))?;
        }
        if let Some(listen) = &self.tls_listen {
            parse_listener(listen).map_err(|message| invalid("mqtt.tls_listen", message))?;
        }
        if self.max_connections == 0 {
            return Err(invalid("mqtt.max_connections", "must be at least 1"));
        }
        // MQTT's own ceiling is 268435455 (four length bytes); we stay far below it.
        if self.max_packet_bytes < 1024 || self.max_packet_bytes > 64 << 20 {
            return Err(invalid(
                "mqtt.max_packet_bytes",
                "must be between 1024 and 67108864",
            ));
        }
        // A record repeats the topic (key and header) next to the payload, so give it room.
        if u64::from(self.max_packet_bytes) * 2 + 4096 > u64::from(message_max_bytes) {
            return Err(invalid(
                "mqtt.max_packet_bytes",
                format!(
                    "at most (broker.message_max_bytes - 4096) / 2 = {}",
                    (message_max_bytes.saturating_sub(4096)) / 2
                ),
            ));
        }
        let batch_bytes_max = self.batch_bytes_max(message_max_bytes);
        if batch_bytes_max < self.max_packet_bytes * 2 + 4096 || batch_bytes_max > message_max_bytes
        {
            return Err(invalid(
                "mqtt.batch_bytes_max",
                "must be at least 2 × mqtt.max_packet_bytes + 4096 and at most broker.message_max_bytes",
            ));
        }
        if self.max_inflight_messages == 0 {
            return Err(invalid("mqtt.max_inflight_messages", "must be at least 1"));
        }
        if self.max_sessions == 0 {
            return Err(invalid("mqtt.max_sessions", "must be at least 1"));
        }
        if self.connect_timeout_ms == 0 {
            return Err(invalid("mqtt.connect_timeout_ms", "must be at least 1"));
        }
        for route in &self.routes {
            TopicFilter::parse(&route.filter).map_err(|e: FilterError| {
                invalid("mqtt.route.filter", format!("`{}`: {e}", route.filter))
            })?;
            check_target_topic(&route.topic).map_err(|e| invalid("mqtt.route.topic", e))?;
            if let Some(key) = &route.key {
                KeyTemplate::parse(key)
                    .map_err(|e| invalid("mqtt.route.key", format!("`{key}`: {e}")))?;
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (index, bridge) in self.bridges.iter().enumerate() {
            if !names.insert(self.bridge_name(index)) {
                return Err(invalid(
                    "mqtt.bridge.name",
                    format!("`{}` is used twice", self.bridge_name(index)),
                ));
            }
            bridge
                .host_port()
                .map_err(|e| invalid("mqtt.bridge.url", e))?;
            if bridge.subscribe.is_empty() {
                return Err(invalid(
                    "mqtt.bridge.subscribe",
                    "give at least one topic filter",
                ));
            }
            for filter in &bridge.subscribe {
                TopicFilter::parse(filter)
                    .map_err(|e| invalid("mqtt.bridge.subscribe", format!("`{filter}`: {e}")))?;
            }
            if let Some(topic) = &bridge.topic {
                check_target_topic(topic).map_err(|e| invalid("mqtt.bridge.topic", e))?;
            } else if self.routes.is_empty() {
                return Err(invalid(
                    "mqtt.bridge.topic",
                    "set it, or add [[mqtt.route]] entries",
                ));
            }
            if let Some(key) = &bridge.key {
                KeyTemplate::parse(key)
                    .map_err(|e| invalid("mqtt.bridge.key", format!("`{key}`: {e}")))?;
            }
            if bridge.qos > 1 {
                return Err(invalid("mqtt.bridge.qos", "must be 0 or 1"));
            }
            if bridge.username.is_none() && bridge.password.is_some() {
                return Err(invalid(
                    "mqtt.bridge.password",
                    "needs mqtt.bridge.username",
                ));
            }
            if bridge.reconnect_min_ms == 0 || bridge.reconnect_max_ms < bridge.reconnect_min_ms {
                return Err(invalid(
                    "mqtt.bridge.reconnect_max_ms",
                    "reconnect_min_ms must be at least 1 and reconnect_max_ms at least reconnect_min_ms",
                ));
            }
            if bridge.max_inflight_messages == 0 {
                return Err(invalid(
                    "mqtt.bridge.max_inflight_messages",
                    "must be at least 1",
                ));
            }
        }
        Ok(())
    }

    /// The name of bridge `index` (its `name`, else `bridge<index>`).
    pub fn bridge_name(&self, index: usize) -> String {
        self.bridges[index]
            .name
            .clone()
            .unwrap_or_else(|| format!("bridge{index}"))
    }

    /// The batch size limit in force (see `batch_bytes_max`).
    pub fn batch_bytes_max(&self, message_max_bytes: u32) -> u32 {
        self.batch_bytes_max.unwrap_or(message_max_bytes)
    }

    /// Whether clients without a username may connect.
    pub fn anonymous_allowed(&self) -> bool {
        self.allow_anonymous.unwrap_or(self.users.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn design_example_parses() {
        let config = Config::parse(
            r#"
[mqtt]
listen = "127.0.0.1:1883"
[[mqtt.route]]
filter = "sensors/#"
topic = "sensors"
[[mqtt.bridge]]
url = "mqtt://localhost:1883"
subscribe = ["bridge/#"]
topic = "bridged"
qos = 1
"#,
        )
        .unwrap();
        let mqtt = config.mqtt.unwrap();
        assert_eq!(mqtt.routes.len(), 1);
        assert_eq!(
            mqtt.bridges[0].host_port().unwrap(),
            ("localhost".to_string(), 1883)
        );
        assert!(mqtt.routes[0].headers);
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key) in [
            ("[mqtt]\nlisten = \"nope\"\n", "mqtt.listen"),
            (
                "[mqtt]\n[[mqtt.route]]\nfilter = \"a/#/b\"\ntopic = \"t\"\n",
                "mqtt.route.filter",
            ),
            (
                "[mqtt]\n[[mqtt.route]]\nfilter = \"a\"\ntopic = \"t\"\nkey = \"{bogus}\"\n",
                "mqtt.route.key",
            ),
            ("[mqtt]\nmax_packet_bytes = 10\n", "mqtt.max_packet_bytes"),
            (
                "[[mqtt.route]]\nfilter = \"#\"\ntopic = \"__consumer_offsets\"\n",
                "mqtt.route.topic",
            ),
            (
                "[[mqtt.bridge]]\nurl = \"mqtts://x\"\nsubscribe = [\"#\"]\ntopic = \"t\"\n",
                "mqtt.bridge.url",
            ),
            (
                "[[mqtt.bridge]]\nurl = \"mqtt://x\"\nsubscribe = [\"#\"]\n",
                "mqtt.bridge.topic",
            ),
        ] {
            let error = Config::parse(text).unwrap_err().to_string();
            assert!(error.contains(key), "{text}: {error}");
        }
        let error = Config::parse("[mqtt]\nlisten_on = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("listen_on"), "{error}");
    }
}
