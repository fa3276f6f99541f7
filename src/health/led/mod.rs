//! LED outputs: the status LED plays the state's pattern, the optional fault LED is lit in
//! `degraded` and `fault`. A backend that cannot be opened (no chip, no LED, no permission)
//! gives one warning and the node carries on without an LED.

pub mod file;
pub mod gpio;
#[cfg(feature = "rppal")]
pub mod rppal;
pub mod sysfs;

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::config::{LedBackend, LedConfig, PatternConfig};
use super::pattern::Ticker;
use super::state::State;

/// One LED that can be switched on and off.
pub trait Lamp: Send {
    /// Light it (`true`) or put it out.
    fn set(&mut self, on: bool) -> std::io::Result<()>;
    /// Give the LED back as it was found (e.g. restore the kernel trigger).
    fn release(&mut self) {}
}

/// Where the health state is shown.
pub enum Display {
    /// Physical LEDs: status, and optionally fault.
    Lamps {
        /// Plays the state's pattern.
        status: Box<dyn Lamp>,
        /// Lit in degraded and fault.
        fault: Option<Box<dyn Lamp>>,
    },
    /// A line per change in a file.
    File(file::FileRecorder),
    /// Nothing.
    None,
}

impl std::fmt::Debug for Display {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Display::Lamps { .. } => "Display::Lamps",
            Display::File(_) => "Display::File",
            Display::None => "Display::None",
        })
    }
}

/// Open the configured backend; on failure warn and return [`Display::None`].
pub fn open(config: &LedConfig) -> Display {
    match try_open(config) {
        Ok(display) => display,
        Err(error) => {
            tracing::warn!(backend = ?config.backend, %error, "status LED not available; continuing without an LED");
            Display::None
        }
    }
}

fn try_open(config: &LedConfig) -> std::io::Result<Display> {
    Ok(match config.backend {
        LedBackend::None => Display::None,
        LedBackend::File => Display::File(file::FileRecorder::open(&config.path)?),
        LedBackend::Sysfs => {
            let status = Box::new(sysfs::SysfsLed::open(&config.path)?) as Box<dyn Lamp>;
            let fault = match &config.fault_path {
                Some(path) => Some(Box::new(sysfs::SysfsLed::open(path)?) as Box<dyn Lamp>),
                None => None,
            };
            Display::Lamps { status, fault }
        }
        LedBackend::Gpio => {
            let chip = gpio::find_chip(&config.chip)?;
            let line = config.line.unwrap_or(0);
            let status =
                Box::new(gpio::GpioLed::open(&chip, line, config.active_low)?) as Box<dyn Lamp>;
            let fault = match config.fault_line {
                Some(line) => Some(
                    Box::new(gpio::GpioLed::open(&chip, line, config.active_low)?) as Box<dyn Lamp>,
                ),
                None => None,
            };
            Display::Lamps { status, fault }
        }
        LedBackend::Rppal => open_rppal(config)?,
    })
}

#[cfg(feature = "rppal")]
fn open_rppal(config: &LedConfig) -> std::io::Result<Display> {
    let status = Box::new(rppal::RppalLed::open(
        config.line.unwrap_or(0),
        config.active_low,
    )?) as Box<dyn Lamp>;
    let fault = match config.fault_line {
        Some(line) => {
            Some(Box::new(rppal::RppalLed::open(line, config.active_low)?) as Box<dyn Lamp>)
        }
        None => None,
    };
    Ok(Display::Lamps { status, fault })
}

#[cfg(not(feature = "rppal"))]
fn open_rppal(_config: &LedConfig) -> std::io::Result<Display> {
    Err(std::io::Error::other("built without the `rppal` feature"))
}

/// Show every state `states` takes until `shutdown`; then put the LEDs out and release them.
pub async fn drive(
    mut display: Display,
    patterns: PatternConfig,
    mut states: watch::Receiver<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    let origin = Instant::now();
    let mono_ms = move || origin.elapsed().as_millis() as u64;
    let mut state = *states.borrow_and_update();
    let mut ticker = Ticker::new(patterns.pattern(state), mono_ms());
    let mut lit: Option<bool> = None;
    show_change(&mut display, state, &ticker);
    loop {
        let next = match &mut display {
            Display::Lamps { status, .. } => {
                let (on, next) = ticker.poll(mono_ms());
                if lit != Some(on) {
                    if let Err(error) = status.set(on) {
                        tracing::warn!(%error, "cannot switch the status LED");
                    }
                    lit = Some(on);
                }
                next
            }
            _ => None,
        };
        // Absolute deadline from the pattern's start: a late wake-up never shifts later edges.
        let deadline = next.map(|ms| origin + Duration::from_millis(ms));
        tokio::select! {
            _ = sleep_until_or_forever(deadline) => {}
            changed = states.changed() => {
                if changed.is_err() { break; }
                let now = *states.borrow_and_update();
                if now != state {
                    state = now;
                    ticker = Ticker::new(patterns.pattern(state), mono_ms());
                    lit = None;
                    show_change(&mut display, state, &ticker);
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    if let Display::Lamps { status, fault } = &mut display {
        let _ = status.set(false);
        status.release();
        if let Some(fault) = fault {
            let _ = fault.set(false);
            fault.release();
        }
    }
}

async fn sleep_until_or_forever(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn show_change(display: &mut Display, state: State, ticker: &Ticker) {
    match display {
        Display::File(recorder) => {
            if let Err(error) = recorder.record(state, ticker.pattern()) {
                tracing::warn!(%error, "cannot append to the LED file");
            }
        }
        Display::Lamps {
            fault: Some(fault), ..
        } => {
            if let Err(error) = fault.set(matches!(state, State::Degraded | State::Fault)) {
                tracing::warn!(%error, "cannot switch the fault LED");
            }
        }
        _ => {}
    }
}
