//! `[led]` and `[admin]`: how health is shown, and when facts count as degraded.

use std::path::PathBuf;

use serde::Deserialize;

use super::pattern::Pattern;
use super::state::{State, Thresholds};

/// Which LED driver to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LedBackend {
    /// The kernel LED class (`/sys/class/leds/ACT`): no wiring on a bare Pi.
    Sysfs,
    /// GPIO lines through the GPIO character device (gpiocdev), BCM numbering.
    Gpio,
    /// GPIO through rppal and /dev/gpiomem; needs the `rppal` cargo feature.
    Rppal,
    /// Append `<unix_ms> <state> <pattern>` to a file on every change (tests, debugging).
    File,
    /// No LED.
    #[default]
    None,
}

/// `[led]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedConfig {
    /// The driver.
    pub backend: LedBackend,
    /// `sysfs`: the status LED's directory; `file`: the file to append to.
    pub path: PathBuf,
    /// `sysfs`: a second LED's directory (e.g. `/sys/class/leds/PWR`), lit in degraded and
    /// fault.
    pub fault_path: Option<PathBuf>,
    /// `gpio`: the chip's label (`pinctrl-bcm2711`) or device path (`/dev/gpiochip0`);
    /// empty = the first chip whose label is a known Raspberry Pi header controller.
    pub chip: String,
    /// `gpio`/`rppal`: BCM line number of the status LED.
    pub line: Option<u32>,
    /// `gpio`/`rppal`: BCM line number of the fault LED (lit in degraded and fault).
    pub fault_line: Option<u32>,
    /// The LED is lit when the line is low.
    pub active_low: bool,
    /// `[led.patterns]`: the blink pattern of each state.
    pub patterns: PatternConfig,
}

impl Default for LedConfig {
    fn default() -> Self {
        LedConfig {
            backend: LedBackend::None,
            path: PathBuf::from("/sys/class/leds/ACT"),
            fault_path: None,
            chip: String::new(),
            line: None,
            fault_line: None,
            active_low: false,
            patterns: PatternConfig::default(),
        }
    }
}

/// `[led.patterns]`: a preset name or `"on,off,..."` milliseconds per state.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PatternConfig {
    /// While starting.
    pub booting: String,
    /// Without a quorum leader.
    #[serde(rename = "no-quorum", alias = "no_quorum")]
    pub no_quorum: String,
    /// Healthy follower.
    pub follower: String,
    /// Healthy leader.
    pub leader: String,
    /// Serving with a problem.
    pub degraded: String,
    /// Storage or config fault.
    pub fault: String,
}

impl Default for PatternConfig {
    fn default() -> Self {
        PatternConfig {
            booting: "flash".into(),
            no_quorum: "fast-blink".into(),
            follower: "slow-blink".into(),
            leader: "solid".into(),
            degraded: "double-blink".into(),
            fault: "sos".into(),
        }
    }
}

impl PatternConfig {
    /// The spec string for `state`.
    fn spec(&self, state: State) -> &str {
        match state {
            State::Booting => &self.booting,
            State::NoQuorum => &self.no_quorum,
            State::Follower => &self.follower,
            State::Leader => &self.leader,
            State::Degraded => &self.degraded,
            State::Fault => &self.fault,
        }
    }

    /// The parsed pattern for `state` (validated at load, so this cannot fail after).
    pub fn pattern(&self, state: State) -> Pattern {
        Pattern::parse(self.spec(state)).unwrap_or_else(|_| Pattern::parse("off").expect("preset"))
    }
}

/// `[admin]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// The HTTP listener (`/health`, `/metrics`, `/commands/<word>`); `""` turns it off.
    pub listen: String,
    /// Serve HTTPS with `[tls]`'s certificate instead of plain HTTP.
    pub tls: bool,
    /// Disk usage of the log directory that makes the node degraded, in percent.
    pub disk_usage_degraded_percent: u8,
    /// CPU temperature that makes the node degraded, in degrees Celsius.
    pub temperature_degraded_celsius: f32,
    /// How often the health facts are gathered.
    pub health_interval_ms: u32,
    /// A wall-clock jump larger than this (against the monotonic clock) degrades the node.
    pub clock_jump_ms: u32,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: "127.0.0.1:8080".into(),
            tls: false,
            disk_usage_degraded_percent: 90,
            temperature_degraded_celsius: 80.0,
            health_interval_ms: 1000,
            clock_jump_ms: 2000,
        }
    }
}

impl AdminConfig {
    /// The degraded thresholds these settings give.
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            disk_usage_percent: self.disk_usage_degraded_percent,
            temperature_celsius: self.temperature_degraded_celsius,
            clock_jump_ms: u64::from(self.clock_jump_ms),
            ..Thresholds::default()
        }
    }

    /// Check every value; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !self.listen.is_empty() {
            crate::config::parse_listener(&self.listen).map_err(|m| ("admin.listen", m))?;
        }
        if !(1..=100).contains(&self.disk_usage_degraded_percent) {
            return Err((
                "admin.disk_usage_degraded_percent",
                "must be between 1 and 100".into(),
            ));
        }
        if !(20.0..=150.0).contains(&self.temperature_degraded_celsius) {
            return Err((
                "admin.temperature_degraded_celsius",
                "must be between 20 and 150".into(),
            ));
        }
        if !(100..=60_000).contains(&self.health_interval_ms) {
            return Err((
                "admin.health_interval_ms",
                "must be between 100 and 60000".into(),
            ));
        }
        if self.clock_jump_ms < 100 {
            return Err(("admin.clock_jump_ms", "must be at least 100".into()));
        }
        Ok(())
    }
}

impl LedConfig {
    /// Check every value; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let keys = [
            (State::Booting, "led.patterns.booting"),
            (State::NoQuorum, "led.patterns.no-quorum"),
            (State::Follower, "led.patterns.follower"),
            (State::Leader, "led.patterns.leader"),
            (State::Degraded, "led.patterns.degraded"),
            (State::Fault, "led.patterns.fault"),
        ];
        for (state, key) in keys {
            Pattern::parse(self.patterns.spec(state)).map_err(|m| (key, m))?;
        }
        match self.backend {
            LedBackend::Gpio | LedBackend::Rppal if self.line.is_none() => {
                Err(("led.line", "the gpio and rppal backends need the status LED's BCM line number".into()))
            }
            LedBackend::Rppal if !cfg!(feature = "rppal") => Err((
                "led.backend",
                "this bramble was built without the `rppal` feature; use \"gpio\" (gpiocdev) instead".into(),
            )),
            LedBackend::Sysfs | LedBackend::File if self.path.as_os_str().is_empty() => {
                Err(("led.path", "give the LED directory (sysfs) or the file to append to (file)".into()))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn defaults_are_quiet_and_local() {
        let config = Config::parse("").unwrap();
        assert_eq!(config.admin.listen, "127.0.0.1:8080");
        assert_eq!(config.led.backend, super::LedBackend::None);
        assert_eq!(config.led.patterns.leader, "solid");
    }

    #[test]
    fn led_and_admin_settings_parse() {
        let text =
            "[led]\nbackend = \"gpio\"\nchip = \"pinctrl-rp1\"\nline = 17\nfault_line = 27\n\
                    [led.patterns]\nno-quorum = \"100,100\"\n[admin]\nlisten = \"0.0.0.0:9999\"\n\
                    disk_usage_degraded_percent = 80\n";
        let config = Config::parse(text).unwrap();
        assert_eq!(config.led.line, Some(17));
        assert_eq!(config.led.patterns.no_quorum, "100,100");
        assert_eq!(config.admin.thresholds().disk_usage_percent, 80);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            ("[led]\nbackend = \"gpio\"\n", "led.line"),
            (
                "[led.patterns]\nleader = \"sparkle\"\n",
                "led.patterns.leader",
            ),
            (
                "[admin]\ndisk_usage_degraded_percent = 0\n",
                "admin.disk_usage_degraded_percent",
            ),
            ("[admin]\nlisten = \"nowhere\"\n", "admin.listen"),
            ("[led]\nbrightness = 3\n", "brightness"),
        ] {
            let error = Config::parse(text).unwrap_err().to_string();
            assert!(error.contains(key), "{text}: {error}");
        }
    }
}
