//! The `sysfs` backend: the kernel LED class (`/sys/class/leds/ACT`, `PWR`, or `led0`/`led1`
//! on older kernels). The trigger is set to `none` and `brightness` is driven from bramble's
//! own timer (the kernel's `timer` trigger is a module that may not be loaded); the trigger
//! found at start is put back on release, so ACT shows SD card activity again after a stop.

use std::path::{Path, PathBuf};

use super::Lamp;

/// One LED of the kernel LED class.
#[derive(Debug)]
pub struct SysfsLed {
    dir: PathBuf,
    on_value: String,
    saved_trigger: Option<String>,
}

impl SysfsLed {
    /// Take over the LED in `dir`: remember its trigger, set it to `none`.
    pub fn open(dir: &Path) -> std::io::Result<SysfsLed> {
        let context = |what: &str, e: std::io::Error| {
            std::io::Error::new(e.kind(), format!("{}/{what}: {e}", dir.display()))
        };
        if !dir.join("brightness").exists() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "{} is not an LED (no brightness file); see ls /sys/class/leds",
                    dir.display()
                ),
            ));
        }
        let saved_trigger = std::fs::read_to_string(dir.join("trigger"))
            .ok()
            .and_then(|t| active_trigger(&t));
        std::fs::write(dir.join("trigger"), "none").map_err(|e| context("trigger", e))?;
        let max = std::fs::read_to_string(dir.join("max_brightness"))
            .ok()
            .and_then(|m| m.trim().parse::<u32>().ok())
            .filter(|&m| m > 0)
            .unwrap_or(1);
        let led = SysfsLed {
            dir: dir.to_path_buf(),
            on_value: max.to_string(),
            saved_trigger,
        };
        tracing::info!(led = %dir.display(), previous_trigger = ?led.saved_trigger, "status LED taken over");
        Ok(led)
    }
}

/// The bracketed entry of a trigger file: `none [mmc0] timer` gives `mmc0`.
fn active_trigger(text: &str) -> Option<String> {
    text.split_whitespace()
        .find_map(|t| t.strip_prefix('[').and_then(|t| t.strip_suffix(']')))
        .filter(|t| *t != "none")
        .map(str::to_string)
}

impl Lamp for SysfsLed {
    fn set(&mut self, on: bool) -> std::io::Result<()> {
        std::fs::write(
            self.dir.join("brightness"),
            if on { self.on_value.as_str() } else { "0" },
        )
    }

    fn release(&mut self) {
        if let Some(trigger) = self.saved_trigger.take() {
            if let Err(error) = std::fs::write(self.dir.join("trigger"), &trigger) {
                tracing::warn!(led = %self.dir.display(), %trigger, %error, "cannot restore the LED trigger");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_over_and_gives_back_the_led() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("trigger"), "none [mmc0] timer heartbeat\n").unwrap();
        std::fs::write(dir.path().join("brightness"), "0\n").unwrap();
        std::fs::write(dir.path().join("max_brightness"), "255\n").unwrap();
        let mut led = SysfsLed::open(dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("trigger")).unwrap(),
            "none"
        );
        led.set(true).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("brightness")).unwrap(),
            "255"
        );
        led.set(false).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("brightness")).unwrap(),
            "0"
        );
        led.release();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("trigger")).unwrap(),
            "mmc0"
        );
    }

    #[test]
    fn a_missing_led_is_a_clear_error() {
        let error = SysfsLed::open(Path::new("/nonexistent/leds/ACT")).unwrap_err();
        assert!(error.to_string().contains("not an LED"), "{error}");
    }
}
