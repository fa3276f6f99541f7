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

/// The mmdebstrap command line (run inside the namespace by [`build`]).
pub fn mmdebstrap_command(args: &Args, target: &Path) -> Vec<String> {
    let mut packages: Vec<&str> = PACKAGES.to_vec();
    packages.push(kernel(args));
    vec![
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
        // Build the initramfs once, at the end, instead of after every kernel-related package.
        "--essential-hook=mkdir -p \"$1/etc/initramfs-tools\" && echo update_initramfs=no > \"$1/etc/initramfs-tools/update-initramfs.conf\"".into(),
        "--customize-hook=echo update_initramfs=yes > \"$1/etc/initramfs-tools/update-initramfs.conf\" && chroot \"$1\" update-initramfs -c -k all".into(),
        "--customize-hook=chroot \"$1\" systemctl enable systemd-networkd systemd-resolved systemd-timesyncd ssh avahi-daemon".into(),
        // raspi-firmware's hooks copy kernel, initramfs and dtbs into /boot/firmware.
        "--customize-hook=chroot \"$1\" sh -c 'ls /boot/vmlinuz-* >/dev/null && dpkg-reconfigure raspi-firmware || true'".into(),
        "bookworm".into(),
        target.display().to_string(),
        args.mirror.clone(),
    ]
}

/// Build (or reuse from the cache) the root file system; returns its directory.
pub fn build(args: &Args) -> anyhow::Result<PathBuf> {
    let key = tools::fnv64(
        0,
        format!(
            "{}|{}|{}|{}",
            args.arch.debian(),
            args.mirror,
            PACKAGES.join(","),
            kernel(args)
        )
        .as_bytes(),
    );
    let dir = args
        .cache
        .join(format!("rootfs-{}-{key:016x}", args.arch.debian()));
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
    let command: Vec<String> = mmdebstrap_command(args, &dir)
        .iter()
        .map(|a| shell_quote(a))
        .collect();
    // A user namespace with the whole subordinate id range mapped (--map-auto), its own
    // binfmt_misc (namespaced since Linux 6.7) with qemu registered, and mmdebstrap as "root".
    let script = format!(
        "set -e; mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; \
         cat {} > /proc/sys/fs/binfmt_misc/register; {}",
        register.display(),
        command.join(" ")
    );
    eprintln!(
        "cargo image: mmdebstrap bookworm {} (about 30 minutes under qemu-user)…",
        args.arch.debian()
    );
    tools::run(
        "unshare",
        &[
            "--map-auto",
            "--map-root-user",
            "--mount",
            "--pid",
            "--fork",
            "--mount-proc",
            "sh",
            "-c",
            &script,
        ],
        &[],
    )?;
    std::fs::write(&done, "")?;
    Ok(dir)
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
