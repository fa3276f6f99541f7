//! What the process really uses: resident memory from the kernel and the allocator's own
//! view from jemalloc, for metrics, /health and the budget tests.

/// Resident set size now and at its peak (VmRSS, VmHWM), in bytes.
pub fn resident_bytes() -> (u64, u64) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return (0, 0);
    };
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// jemalloc's allocated and resident bytes (0 when the statistics cannot be read).
pub fn allocator_bytes() -> (u64, u64) {
    use tikv_jemalloc_ctl::{epoch, stats};
    // Statistics are cached until the epoch advances.
    if epoch::advance().is_err() {
        return (0, 0);
    }
    let allocated = stats::allocated::read().map(|b| b as u64).unwrap_or(0);
    let resident = stats::resident::read().map(|b| b as u64).unwrap_or(0);
    (allocated, resident)
}
