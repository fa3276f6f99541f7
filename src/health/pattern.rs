//! Blink patterns and the ticker that plays them without drift.
//!
//! A pattern is either constant (`solid`, `off`) or a cycle of on/off durations in
//! milliseconds, starting with on. Presets: `solid`, `off`, `slow-blink` (1 s on, 1 s off),
//! `fast-blink` (125 ms on, 125 ms off), `double-blink` (two 150 ms flashes, then 1.05 s
//! dark), `flash` (50 ms every second), `sos` (· · · − − − · · · in Morse). A custom
//! pattern is a comma-separated list with an even number of durations: `"300,700"`.
//!
//! The ticker never sleeps "for" a duration after doing its work: every edge is scheduled
//! against the absolute start of the pattern, so a late wake-up (a busy Pi) delays one edge
//! but never shifts the ones after it.

use std::fmt;

/// Longest single on or off step, so a typo cannot freeze the LED for hours.
pub const STEP_MAX_MS: u32 = 60_000;
/// Shortest step: faster than this is not visible and only costs wake-ups.
pub const STEP_MIN_MS: u32 = 20;
/// Most steps in one cycle.
pub const STEPS_MAX: usize = 64;

/// How an LED shows one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    name: String,
    shape: Shape,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    Constant(bool),
    /// Durations in ms, alternating on, off, on, off ...; even length, never empty.
    Cycle(Vec<u32>),
}

const DOT: u32 = 200;
const DASH: u32 = 600;

impl Pattern {
    /// Parse a preset name or a comma-separated list of durations.
    pub fn parse(spec: &str) -> Result<Pattern, String> {
        let spec = spec.trim();
        let shape = match spec {
            "solid" | "on" => Shape::Constant(true),
            "off" => Shape::Constant(false),
            "slow-blink" => Shape::Cycle(vec![1000, 1000]),
            "fast-blink" => Shape::Cycle(vec![125, 125]),
            "double-blink" => Shape::Cycle(vec![150, 150, 150, 1050]),
            "flash" => Shape::Cycle(vec![50, 950]),
            "sos" => Shape::Cycle(vec![
                DOT,
                DOT,
                DOT,
                DOT,
                DOT,
                DASH, // S, letter gap
                DASH,
                DOT,
                DASH,
                DOT,
                DASH,
                DASH, // O, letter gap
                DOT,
                DOT,
                DOT,
                DOT,
                DOT,
                7 * DOT, // S, word gap
            ]),
            custom => Shape::Cycle(parse_custom(custom)?),
        };
        if let Shape::Cycle(steps) = &shape {
            // The presets' own steps are all >= 20 ms; keep this true for custom ones too.
            debug_assert!(steps
                .iter()
                .all(|s| (STEP_MIN_MS..=STEP_MAX_MS).contains(s)));
        }
        Ok(Pattern {
            name: spec.to_string(),
            shape,
        })
    }

    /// The pattern as written in the config (`slow-blink`, `300,700`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Length of one cycle in ms; 0 for a constant pattern.
    pub fn period_ms(&self) -> u64 {
        match &self.shape {
            Shape::Constant(_) => 0,
            Shape::Cycle(steps) => steps.iter().map(|&s| u64::from(s)).sum(),
        }
    }

    /// Whether the LED is lit `elapsed_ms` after the pattern started, and when (in ms since
    /// the start) it next changes; `None` for a constant pattern.
    pub fn at(&self, elapsed_ms: u64) -> (bool, Option<u64>) {
        match &self.shape {
            Shape::Constant(on) => (*on, None),
            Shape::Cycle(steps) => {
                let period = self.period_ms();
                let cycle_start = elapsed_ms - elapsed_ms % period;
                let mut edge = cycle_start;
                for (i, &step) in steps.iter().enumerate() {
                    edge += u64::from(step);
                    if elapsed_ms < edge {
                        return (i % 2 == 0, Some(edge));
                    }
                }
                unreachable!("elapsed % period is inside the cycle")
            }
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

fn parse_custom(spec: &str) -> Result<Vec<u32>, String> {
    let steps = spec
        .split(',')
        .map(|s| s.trim().parse::<u32>().map_err(|_| format!("`{spec}` is neither a preset (solid, off, slow-blink, fast-blink, double-blink, flash, sos) nor a list of milliseconds like \"300,700\"")))
        .collect::<Result<Vec<_>, _>>()?;
    if steps.len() % 2 != 0 || steps.len() > STEPS_MAX {
        return Err(format!(
            "`{spec}`: give an even number (at most {STEPS_MAX}) of on,off durations"
        ));
    }
    if let Some(bad) = steps
        .iter()
        .find(|s| !(STEP_MIN_MS..=STEP_MAX_MS).contains(s))
    {
        return Err(format!(
            "`{spec}`: {bad} ms is outside {STEP_MIN_MS}..={STEP_MAX_MS}"
        ));
    }
    Ok(steps)
}

/// Plays a pattern from an absolute start time. Pure: the caller reads the clock.
#[derive(Debug, Clone)]
pub struct Ticker {
    pattern: Pattern,
    start_ms: u64,
}

impl Ticker {
    /// Start `pattern` at monotonic time `start_ms`.
    pub fn new(pattern: Pattern, start_ms: u64) -> Ticker {
        Ticker { pattern, start_ms }
    }

    /// The pattern being played.
    pub fn pattern(&self) -> &Pattern {
        &self.pattern
    }

    /// The level at `now_ms` and the absolute time of the next edge (`None`: never).
    pub fn poll(&self, now_ms: u64) -> (bool, Option<u64>) {
        let elapsed = now_ms.saturating_sub(self.start_ms);
        let (level, next) = self.pattern.at(elapsed);
        (level, next.map(|edge| self.start_ms + edge))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_custom_patterns_parse() {
        assert_eq!(Pattern::parse("solid").unwrap().at(12_345), (true, None));
        assert_eq!(Pattern::parse("off").unwrap().at(0), (false, None));
        assert_eq!(Pattern::parse("slow-blink").unwrap().period_ms(), 2000);
        assert_eq!(Pattern::parse("double-blink").unwrap().period_ms(), 1500);
        assert_eq!(
            Pattern::parse("300,700").unwrap().at(350),
            (false, Some(1000))
        );
        assert!(Pattern::parse("sos").unwrap().period_ms() > 5000);
    }

    #[test]
    fn bad_patterns_say_what_is_allowed() {
        assert!(Pattern::parse("blinky").unwrap_err().contains("preset"));
        assert!(Pattern::parse("100,100,100").unwrap_err().contains("even"));
        assert!(Pattern::parse("5,100").unwrap_err().contains("outside"));
    }

    #[test]
    fn double_blink_levels_over_one_cycle() {
        let p = Pattern::parse("double-blink").unwrap();
        let levels: Vec<bool> = [0, 149, 150, 299, 300, 449, 450, 1499, 1500]
            .iter()
            .map(|&t| p.at(t).0)
            .collect();
        assert_eq!(
            levels,
            [true, true, false, false, true, true, false, false, true]
        );
        assert_eq!(p.at(460).1, Some(1500));
    }

    /// A fake clock that wakes the ticker late by a varying amount each time, as a loaded
    /// Pi would; the edges must stay on the absolute schedule.
    #[test]
    fn ticker_does_not_drift_when_wakeups_are_late() {
        let start = 5_000;
        let ticker = Ticker::new(Pattern::parse("fast-blink").unwrap(), start);
        let mut now = start;
        let mut level = None;
        let mut edges = Vec::new();
        let jitter = [0u64, 7, 31, 3, 49, 12, 0, 22];
        for i in 0..400 {
            let (on, next) = ticker.poll(now);
            if level != Some(on) {
                edges.push((now, on));
                level = Some(on);
            }
            // Sleep until the next edge, then oversleep by the jitter.
            now = next.unwrap() + jitter[i % jitter.len()];
        }
        // 400 wake-ups, each 125 ms apart on the schedule: the last edge is at 400 * 125,
        // late by at most the largest jitter, not by the sum of all of them.
        let (last, _) = *edges.last().unwrap();
        let scheduled = start + 399 * 125;
        assert!(
            last >= scheduled && last - scheduled < 50,
            "last edge at {last}, scheduled {scheduled}"
        );
        for (i, (t, on)) in edges.iter().enumerate() {
            let due = start + i as u64 * 125;
            assert!(*t >= due && *t - due < 50, "edge {i} at {t}, due {due}");
            assert_eq!(*on, i % 2 == 0);
        }
    }

    #[test]
    fn sleep_after_work_would_drift() {
        // The contrast, for the reader: adding the period to the wake-up time accumulates
        // every late wake-up.
        let mut naive = 0u64;
        for i in 0..400 {
            naive += 125 + [0u64, 7, 31, 3, 49, 12, 0, 22][i % 8];
        }
        let ticker = Ticker::new(Pattern::parse("fast-blink").unwrap(), 0);
        assert_eq!(ticker.poll(399 * 125 + 10).1, Some(400 * 125));
        assert!(naive > 400 * 125 + 5_000);
    }

    #[test]
    fn constant_pattern_has_no_next_edge() {
        let ticker = Ticker::new(Pattern::parse("solid").unwrap(), 100);
        assert_eq!(ticker.poll(1_000_000), (true, None));
    }
}
