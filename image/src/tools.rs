//! Running the host tools (mkfs.vfat, mcopy, mkfs.ext4, debugfs, sfdisk, xz) with errors that
//! say which command failed and what it printed.

use std::path::Path;
use std::process::{Command, Stdio};

/// Run `program args…`; fail with its stderr when it exits non-zero. Returns stdout.
pub fn run(program: &str, args: &[&str], envs: &[(&str, String)]) -> anyhow::Result<String> {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .env("MTOOLS_SKIP_CHECK", "1");
    for (key, value) in envs {
        command.env(key, value);
    }
    let output = command.output().map_err(|e| missing_tool(program, e))?;
    anyhow::ensure!(
        output.status.success(),
        "`{program} {}` failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Run `program` with `input` on stdin.
pub fn run_with_input(program: &str, args: &[&str], input: &str) -> anyhow::Result<String> {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| missing_tool(program, e))?;
    child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(input.as_bytes()))
        .transpose()?;
    let output = child.wait_with_output()?;
    anyhow::ensure!(
        output.status.success(),
        "`{program} {}` failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn missing_tool(program: &str, error: std::io::Error) -> anyhow::Error {
    let package = match program {
        "mkfs.vfat" => "dosfstools",
        "mcopy" | "mdir" | "mtype" => "mtools",
        "mkfs.ext4" | "debugfs" => "e2fsprogs",
        "sfdisk" => "fdisk",
        "xz" => "xz-utils",
        "mmdebstrap" => "mmdebstrap",
        _ => "its package",
    };
    anyhow::anyhow!("cannot run {program} ({error}); install {package}")
}

/// Runs debugfs with `script` (from a scratch file) on the file system at `offset` bytes into
/// `image`, writable with `write`; the device string (for messages) and debugfs's output.
fn run_debugfs(
    image: &Path,
    offset: u64,
    script: &str,
    write: bool,
) -> anyhow::Result<(String, std::process::Output)> {
    let dir = tempfile_dir()?;
    let script_path = dir.join("debugfs.script");
    std::fs::write(&script_path, script)?;
    let device = format!("{}?offset={offset}", image.display());
    let mut command = Command::new("debugfs");
    command.env(
        "E2FSPROGS_FAKE_TIME",
        crate::source_date_epoch().to_string(),
    );
    if write {
        command.arg("-w");
    }
    let output = command
        .arg("-f")
        .arg(&script_path)
        .arg(&device)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| missing_tool("debugfs", e));
    let _ = std::fs::remove_dir_all(&dir);
    Ok((device, output?))
}

/// Run a `debugfs -w` script on the ext4 file system at `offset` bytes into `image`.
/// debugfs exits 0 even when a command fails, so its stderr is checked: only "already exists"
/// from `mkdir` and "not found" from `rm` (both expected, the script is idempotent) pass.
pub fn debugfs_script(image: &Path, offset: u64, script: &str) -> anyhow::Result<()> {
    let (device, output) = run_debugfs(image, offset, script, true)?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("debugfs "))
        .filter(|l| !l.contains("directory already exists"))
        .filter(|l| !l.starts_with("rm: File not found"))
        .collect();
    let first: Vec<&str> = problems.iter().take(3).copied().collect();
    anyhow::ensure!(
        output.status.success() && problems.is_empty(),
        "debugfs on {device}: {}",
        first.join("; ")
    );
    Ok(())
}

/// Run a read-only debugfs `script` against the file system at `offset` bytes into `image` and
/// return what it printed.
pub fn debugfs_read(image: &Path, offset: u64, script: &str) -> anyhow::Result<String> {
    let (device, output) = run_debugfs(image, offset, script, false)?;
    anyhow::ensure!(
        output.status.success(),
        "debugfs on {device}: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A fresh scratch directory under the system temp dir.
pub fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "bramble-image-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A stable 64-bit hash (FNV-1a) for ids derived from the build's inputs.
pub fn fnv64(seed: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A UUID string derived from `seed` text (for file system UUIDs and hash seeds).
pub fn derived_uuid(seed: &str) -> String {
    let a = fnv64(1, seed.as_bytes());
    let b = fnv64(2, seed.as_bytes());
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_be_bytes());
    bytes[8..].copy_from_slice(&b.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
