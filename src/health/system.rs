//! Readings of the machine the node runs on: CPU temperature and throttling, disk usage of
//! the log directory, resident memory. Each reading is `None` where the machine has no such
//! thing (no thermal zone in a container, no Raspberry Pi firmware on a laptop).

use std::path::{Path, PathBuf};

/// One set of readings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Readings {
    /// CPU temperature in °C (the `cpu` thermal zone, else the hottest zone).
    pub temperature_celsius: Option<f32>,
    /// The Pi firmware's `get_throttled` flags (`None` off a Pi).
    pub throttled_flags: Option<u32>,
    /// (used, total) bytes of the file system holding the first log directory.
    pub disk_bytes: Option<(u64, u64)>,
    /// VmRSS of this process.
    pub resident_bytes: Option<u64>,
    /// Bytes allocated through jemalloc, and jemalloc's resident bytes.
    pub jemalloc: Option<(u64, u64)>,
}

impl Readings {
    /// Under-voltage, frequency capping, throttling or soft temperature limit, now
    /// (bits 0 to 3 of `get_throttled`; the "has occurred" bits 16 to 19 are history).
    pub fn throttled_now(&self) -> bool {
        self.throttled_flags.is_some_and(|flags| flags & 0xf != 0)
    }
}

/// Reads the machine; owns what is worth keeping between readings.
#[derive(Debug)]
pub struct Sensors {
    sys: PathBuf,
    log_dir: PathBuf,
    disks: sysinfo::Disks,
}

impl Sensors {
    /// Sensors for a node whose logs live in `log_dir`, reading the real `/sys`.
    pub fn new(log_dir: &Path) -> Sensors {
        Sensors::with_sys_root(log_dir, Path::new("/sys"))
    }

    /// Sensors reading a `/sys` tree at `sys` (tests give a fake one).
    pub fn with_sys_root(log_dir: &Path, sys: &Path) -> Sensors {
        Sensors {
            sys: sys.to_path_buf(),
            log_dir: log_dir.to_path_buf(),
            disks: sysinfo::Disks::new(),
        }
    }

    /// Take every reading now.
    pub fn read(&mut self) -> Readings {
        Readings {
            temperature_celsius: cpu_temperature(&self.sys.join("class/thermal")),
            throttled_flags: throttled_flags(&self.sys.join("devices/platform")),
            disk_bytes: self.disk_bytes(),
            resident_bytes: Some(crate::memory::stats::resident_bytes().0).filter(|&b| b > 0),
            jemalloc: Some(crate::memory::stats::allocator_bytes())
                .filter(|&(allocated, _)| allocated > 0),
        }
    }

    fn disk_bytes(&mut self) -> Option<(u64, u64)> {
        self.disks.refresh(true);
        if self.disks.list().is_empty() {
            self.disks = sysinfo::Disks::new_with_refreshed_list();
        }
        let dir = std::fs::canonicalize(&self.log_dir).ok()?;
        // The disk mounted at the longest prefix of the log directory holds it.
        let disk = self
            .disks
            .list()
            .iter()
            .filter(|d| dir.starts_with(d.mount_point()))
            .max_by_key(|d| d.mount_point().as_os_str().len())?;
        let total = disk.total_space();
        Some((total.saturating_sub(disk.available_space()), total))
    }
}

/// The `cpu` zone's temperature if there is one, else the hottest zone's.
fn cpu_temperature(thermal: &Path) -> Option<f32> {
    let mut hottest: Option<f32> = None;
    for entry in std::fs::read_dir(thermal).ok()?.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with("thermal_zone")
        {
            continue;
        }
        let Some(milli) =
            read_trimmed(&entry.path().join("temp")).and_then(|t| t.parse::<i64>().ok())
        else {
            continue;
        };
        let celsius = milli as f32 / 1000.0;
        let kind = read_trimmed(&entry.path().join("type")).unwrap_or_default();
        if kind.contains("cpu") {
            return Some(celsius);
        }
        hottest = Some(hottest.map_or(celsius, |h| h.max(celsius)));
    }
    hottest
}

/// The Raspberry Pi firmware's `get_throttled` (hex), under any `…firmware` platform device
/// (its parent differs between Pi 4 and Pi 5 device trees).
fn throttled_flags(platform: &Path) -> Option<u32> {
    let parse = |p: &Path| {
        read_trimmed(p).and_then(|t| u32::from_str_radix(t.trim_start_matches("0x"), 16).ok())
    };
    for soc in std::fs::read_dir(platform).ok()?.flatten() {
        let direct = soc.path().join("get_throttled");
        if let Some(flags) = parse(&direct) {
            return Some(flags);
        }
        let Ok(children) = std::fs::read_dir(soc.path()) else {
            continue;
        };
        for child in children.flatten() {
            if child.file_name().to_string_lossy().ends_with("firmware") {
                if let Some(flags) = parse(&child.path().join("get_throttled")) {
                    return Some(flags);
                }
            }
        }
    }
    None
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(sys: &Path, n: u32, kind: &str, milli: i64) {
        let dir = sys.join(format!("class/thermal/thermal_zone{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("type"), format!("{kind}\n")).unwrap();
        std::fs::write(dir.join("temp"), format!("{milli}\n")).unwrap();
    }

    #[test]
    fn reads_the_cpu_zone_and_the_pi_throttled_flag() {
        let sys = tempfile::tempdir().unwrap();
        zone(sys.path(), 0, "gpu-thermal", 90_000);
        zone(sys.path(), 1, "cpu-thermal", 61_500);
        let firmware = sys.path().join("devices/platform/soc/soc:firmware");
        std::fs::create_dir_all(&firmware).unwrap();
        std::fs::write(firmware.join("get_throttled"), "0x50005\n").unwrap();
        let mut sensors = Sensors::with_sys_root(sys.path(), sys.path());
        let readings = sensors.read();
        assert_eq!(readings.temperature_celsius, Some(61.5));
        assert_eq!(readings.throttled_flags, Some(0x50005));
        assert!(readings.throttled_now());
    }

    #[test]
    fn past_throttling_alone_is_not_throttled_now() {
        let readings = Readings {
            throttled_flags: Some(0x50000),
            ..Readings::default()
        };
        assert!(!readings.throttled_now());
    }

    #[test]
    fn without_a_cpu_zone_the_hottest_counts_and_a_bare_machine_reads_none() {
        let sys = tempfile::tempdir().unwrap();
        zone(sys.path(), 0, "acpitz", 40_000);
        zone(sys.path(), 1, "x86_pkg_temp", 55_000);
        assert_eq!(
            cpu_temperature(&sys.path().join("class/thermal")),
            Some(55.0)
        );
        let empty = tempfile::tempdir().unwrap();
        let readings = Sensors::with_sys_root(empty.path(), empty.path()).read();
        assert_eq!(
            (readings.temperature_celsius, readings.throttled_flags),
            (None, None)
        );
    }

    #[test]
    fn disk_and_memory_readings_exist_here() {
        let dir = tempfile::tempdir().unwrap();
        let readings = Sensors::new(dir.path()).read();
        let (used, total) = readings.disk_bytes.expect("the temp dir is on some disk");
        assert!(total > 0 && used <= total);
        assert!(readings.resident_bytes.unwrap() > 0);
    }
}
