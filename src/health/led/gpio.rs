//! The `gpio` backend: a line of the GPIO character device through gpiocdev. Works on
//! Debian's kernel (no /dev/gpiomem) and on Raspberry Pi OS. The chip is found by its label,
//! not its number: the header chip moved from gpiochip4 to gpiochip0 on Pi 5 kernels.

use std::path::PathBuf;

use gpiocdev::line::Value;

use super::Lamp;

/// Labels of the chips that drive the 40-pin header: Pi 5 (RP1), Pi 4, Pi 3 and older.
pub const HEADER_CHIP_LABELS: [&str; 3] = ["pinctrl-rp1", "pinctrl-bcm2711", "pinctrl-bcm2835"];

/// The device path of the chip named by `spec`: a path, a label, or (empty) the first chip
/// with a known header label.
pub fn find_chip(spec: &str) -> std::io::Result<PathBuf> {
    if spec.starts_with('/') {
        return Ok(PathBuf::from(spec));
    }
    let chips = gpiocdev::chip::chips().map_err(std::io::Error::other)?;
    let mut seen = Vec::new();
    for path in chips {
        let Ok(label) = gpiocdev::Chip::from_path(&path)
            .and_then(|c| c.info())
            .map(|i| i.label)
        else {
            continue;
        };
        let wanted = if spec.is_empty() {
            HEADER_CHIP_LABELS.contains(&label.as_str())
        } else {
            label == spec
        };
        if wanted {
            return Ok(path);
        }
        seen.push(format!("{} ({label})", path.display()));
    }
    let wanted = if spec.is_empty() {
        HEADER_CHIP_LABELS.join(" or ")
    } else {
        spec.to_string()
    };
    Err(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!(
            "no GPIO chip labelled {wanted}; chips found: [{}]",
            seen.join(", ")
        ),
    ))
}

/// One output line.
#[derive(Debug)]
pub struct GpioLed {
    request: gpiocdev::Request,
    line: u32,
}

impl GpioLed {
    /// Request `line` (BCM number) on `chip` as an output, initially off.
    pub fn open(chip: &std::path::Path, line: u32, active_low: bool) -> std::io::Result<GpioLed> {
        let mut builder = gpiocdev::Request::builder();
        builder
            .on_chip(chip)
            .with_consumer("bramble")
            .with_line(line)
            .as_output(Value::Inactive);
        if active_low {
            builder.as_active_low();
        }
        let request = builder
            .request()
            .map_err(|e| std::io::Error::other(format!("{} line {line}: {e}", chip.display())))?;
        tracing::info!(chip = %chip.display(), line, "status LED on GPIO");
        Ok(GpioLed { request, line })
    }
}

impl Lamp for GpioLed {
    fn set(&mut self, on: bool) -> std::io::Result<()> {
        let value = if on { Value::Active } else { Value::Inactive };
        self.request
            .set_value(self.line, value)
            .map_err(std::io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_unknown_chip_label_is_a_clear_error() {
        let error = super::find_chip("no-such-chip-label").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("no GPIO chip labelled no-such-chip-label"),
            "{error}"
        );
    }
}
