//! The Debian root file system: mmdebstrap of bookworm for arm64/armhf from Debian's packages,
//! run in a user namespace that mounts its own binfmt_misc and registers qemu-user there
//! (the host needs neither root nor binfmt_misc). Cached under `--cache` by its inputs: the run
//! takes about 30 minutes under qemu-user, most of it the initramfs, which is built once.
//!
//! NOT exercised by the default test suite (it needs the network and half an hour); the
//! assembly that follows is, fed a fake root file system.

use std::path::{Path, PathBuf};

use crate::{tools, Args};

/// Debian packages of the image, besides the essential set.
pub const PACKAGES: &[&str] = &[
    "systemd-sysv",
    "systemd-timesyncd",
    "systemd-resolved",
    "udev",
    "dbus",
    "kmod",
    "iproute2",
    "openssh-server",
    "ca-certificates",
    "avahi-daemon",
    "libnss-mdns",
    "fake-hwclock",
    "cloud-guest-utils",
    "e2fsprogs",
    "dosfstools",
    "initramfs-tools",
    "raspi-firmware",
    "firmware-brcm80211",
    "wireless-regdb",
];

fn kernel(args: &Args) -> &'static str {
    match args.arch {
        crate::Arch::Aarch64 => "linux-image-arm64",
        crate::Arch::Armv7 => "linux-image-armmp",
    }
}

/// The stub that stands in for `update-initramfs` while packages install (see [`HOOKS`]).
const STUB: &str = "/usr/sbin/update-initramfs";

/// mmdebstrap hooks. The initramfs is built once, at the end: during installation a dpkg
/// diversion puts a no-op in place of `update-initramfs`, so neither the kernel's postinst
/// (`-c`) nor the initramfs-tools trigger (`-u`) builds one under qemu-user (each takes about
/// ten minutes here). A customize hook removes the diversion and runs the real one, whose
/// post-update hook (raspi-firmware's) copies kernel, initramfs and Pi device trees into
/// `/boot/firmware` next to the firmware blobs raspi-firmware's postinst put there.
fn hooks() -> Vec<String> {
    vec![
        format!(
            "--essential-hook=chroot \"$1\" dpkg-divert --quiet --local --rename --divert {STUB}.real --add {STUB} && printf '#!/bin/sh\\nexit 0\\n' > \"$1{STUB}\" && chmod 755 \"$1{STUB}\""
        ),
        format!(
            "--customize-hook=rm -f \"$1{STUB}\" && chroot \"$1\" dpkg-divert --quiet --local --rename --remove {STUB} && chroot \"$1\" update-initramfs -c -k all"
        ),
        "--customize-hook=chroot \"$1\" systemctl enable systemd-networkd systemd-resolved systemd-timesyncd ssh avahi-daemon".into(),
        // The build host's resolver must not stay in the image: systemd-resolved's stub.
        "--customize-hook=ln -sf ../run/systemd/resolve/stub-resolv.conf \"$1/etc/resolv.conf\"".into(),
        "--customize-hook=test -s \"$1\"/boot/vmlinuz-* && test -s \"$1\"/boot/initrd.img-* && ls \"$1/boot/firmware\"/vmlinuz-* >/dev/null".into(),
    ]
}

/// The mmdebstrap command line (run inside the namespace by [`build`]).
pub fn mmdebstrap_command(args: &Args, target: &Path) -> Vec<String> {
    let mut packages: Vec<&str> = PACKAGES.to_vec();
    packages.push(kernel(args));
    let mut command: Vec<String> = vec![
        "mmdebstrap".into(),
        "--mode=root".into(),
        "--variant=minbase".into(),
        format!("--architectures={}", args.arch.debian()),
        "--components=main,non-free-firmware".into(),
        format!("--include={}", packages.join(",")),
        // Docs and man pages are dead weight on an SD card; copyright files stay.
        "--dpkgopt=path-exclude=/usr/share/man/*".into(),
        "--dpkgopt=path-exclude=/usr/share/doc/*".into(),
        "--dpkgopt=path-include=/usr/share/doc/*/copyright".into(),
    ];
    command.extend(hooks());
    command.extend([
        "bookworm".into(),
        target.display().to_string(),
        args.mirror.clone(),
    ]);
    command
}

/// Where the root file system for `args` is cached: keyed by the whole mmdebstrap command, so
/// a changed package list, hook or mirror builds afresh.
pub fn cache_dir(args: &Args) -> PathBuf {
    let key = tools::fnv64(
        0,
        mmdebstrap_command(args, Path::new("TARGET"))
            .join("\n")
            .as_bytes(),
    );
    args.cache
        .join(format!("rootfs-{}-{key:016x}", args.arch.debian()))
}

/// Whether this process is root in the initial user namespace's sense (owns /proc/self).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Build (or reuse from the cache) the root file system; returns its directory.
pub fn build(args: &Args) -> anyhow::Result<PathBuf> {
    let dir = cache_dir(args);
    let done = dir.with_extension("done");
    if done.exists() {
        eprintln!(
            "cargo image: using the cached root file system {}",
            dir.display()
        );
        return Ok(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&args.cache)?;
    let qemu = match args.arch {
        crate::Arch::Aarch64 => "qemu-aarch64",
        crate::Arch::Armv7 => "qemu-arm",
    };
    let register = Path::new("/usr/lib/binfmt.d").join(format!("{qemu}.conf"));
    anyhow::ensure!(
        register.exists(),
        "{} is missing: install qemu-user-static",
        register.display()
    );
    let command: Vec<String> = mmdebstrap_command(args, &std::path::absolute(&dir)?)
        .iter()
        .map(|a| shell_quote(a))
        .collect();
    // Inside a new user namespace with its own binfmt_misc (namespaced since Linux 6.7):
    // register qemu (the F flag opens the interpreter now, so the chroot needs no copy of it)
    // and run mmdebstrap as that namespace's root.
    let script = format!(
        "set -e; mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; \
         cat {} > /proc/sys/fs/binfmt_misc/register; exec {} </dev/null",
        register.display(),
        command.join(" ")
    );
    eprintln!(
        "cargo image: mmdebstrap bookworm {} into {} (about 30 minutes under qemu-user)…",
        args.arch.debian(),
        dir.display()
    );
    let started = std::time::Instant::now();
    let status = if running_as_root() {
        in_identity_namespace(&script)?
    } else {
        // Unprivileged: the subordinate id range (/etc/subuid, newuidmap from `uidmap`) maps
        // onto the namespace's 0..65535.
        std::process::Command::new("unshare")
            .args(UNPRIVILEGED)
            .args([
                "--mount",
                "--pid",
                "--fork",
                "--mount-proc",
                "sh",
                "-c",
                &script,
            ])
            .stdin(std::process::Stdio::null())
            .status()
            .map_err(|e| anyhow::anyhow!("cannot run unshare ({e}); install util-linux"))?
    };
    anyhow::ensure!(
        status.success(),
        "mmdebstrap failed ({status}); its output is above. The partial root file system is {}",
        dir.display()
    );
    std::fs::write(&done, format!("{}\n", started.elapsed().as_secs()))?;
    eprintln!(
        "cargo image: root file system built in {:.0}s, cached as {}",
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    Ok(dir)
}

/// The unprivileged build's namespace flags (subordinate ids onto 0..65535, the user onto 0).
const UNPRIVILEGED: &[&str] = &["--map-auto", "--map-root-user"];

/// For reading a root file system this module built unprivileged (it is owned by subordinate
/// ids): the `unshare` arguments that map them back, to put before the reading command. None
/// when running as root (ids are real) or for a directory from elsewhere (`--rootfs`).
pub fn namespace_prefix(rootfs: &Path) -> Option<Vec<String>> {
    let ours = rootfs
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("rootfs-"))
        && rootfs.with_extension("done").exists();
    (ours && !running_as_root()).then(|| UNPRIVILEGED.iter().map(|a| a.to_string()).collect())
}

/// Run `script` as root of a new user namespace (with its own mount and pid namespaces) that
/// maps every id onto itself. For a real root, which has no subordinate ids to hand to
/// `unshare --map-auto`: this process writes the namespace's id maps itself, then tells the
/// shell inside to go on; the shell re-executes so it holds the namespace's capabilities as uid 0.
fn in_identity_namespace(script: &str) -> anyhow::Result<std::process::ExitStatus> {
    use std::io::Write;
    let mut child = std::process::Command::new("unshare")
        .args([
            "--user",
            "--mount",
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
            "sh",
            "-c",
            "read go && exec sh -c \"$0\"",
            script,
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run unshare ({e}); install util-linux"))?;
    let pid = child.id();
    let ours = std::fs::read_link("/proc/self/ns/user")?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_link(format!("/proc/{pid}/ns/user")).is_ok_and(|ns| ns == ours) {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            anyhow::bail!("unshare did not create a user namespace");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for map in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{pid}/{map}"), "0 0 4294967295\n")
            .map_err(|e| anyhow::anyhow!("writing the namespace's {map}: {e}"))?;
    }
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(b"go\n")?;
    }
    Ok(child.wait()?)
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(shell_quote("a'b"), "'a'\\''b'");
    }
}
