//! The `rppal` backend (cargo feature `rppal`): GPIO through /dev/gpiomem with rppal 0.22.
//! rppal was retired by its author in July 2025; it stays here for Raspberry Pi OS users who
//! already rely on it. The `gpio` backend (gpiocdev) is the supported one.

use super::Lamp;

/// One output pin, BCM numbering.
pub struct RppalLed {
    pin: rppal::gpio::OutputPin,
    active_low: bool,
}

impl std::fmt::Debug for RppalLed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RppalLed")
            .field("pin", &self.pin.pin())
            .finish()
    }
}

impl RppalLed {
    /// Take BCM pin `line` as an output, initially off.
    pub fn open(line: u32, active_low: bool) -> std::io::Result<RppalLed> {
        let line = u8::try_from(line)
            .map_err(|_| std::io::Error::other(format!("BCM line {line} is out of range")))?;
        let gpio = rppal::gpio::Gpio::new().map_err(std::io::Error::other)?;
        let pin = gpio.get(line).map_err(std::io::Error::other)?;
        let mut led = RppalLed {
            pin: pin.into_output(),
            active_low,
        };
        led.set(false)?;
        Ok(led)
    }
}

impl Lamp for RppalLed {
    fn set(&mut self, on: bool) -> std::io::Result<()> {
        if on != self.active_low {
            self.pin.set_high();
        } else {
            self.pin.set_low();
        }
        Ok(())
    }
}
