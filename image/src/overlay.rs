//! What bramble adds to a root file system, and how it gets there: a `debugfs -w` script, so
//! every file lands root-owned with a fixed mode and time whoever runs the build, and the same
//! code serves the Debian image and a user's Raspberry Pi OS image.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::tools;

/// The units and files shipped from the repository.
const BRAMBLE_SERVICE: &str = include_str!("../../systemd/bramble.service");
const FIRSTBOOT_SERVICE: &str = include_str!("../../systemd/bramble-firstboot.service");
const CONFIG_EXAMPLE: &str = include_str!("../files/bramble.toml.example");
const SYSUSERS: &str = include_str!("../files/bramble.sysusers");
const WIRED_NETWORK: &str = include_str!("../files/20-wired.network");
const SSH_HOST_KEYS: &str = include_str!("../files/ssh-host-keys.conf");

/// One thing to put into the root file system.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A directory (parents are created as needed).
    Dir { path: String, mode: u32 },
    /// A file copied from the host.
    File {
        path: String,
        source: PathBuf,
        mode: u32,
    },
    /// A symbolic link.
    Symlink { path: String, target: String },
    /// A file the root file system must not ship (removed if present).
    Absent { path: String },
}

/// Which system the overlay goes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// bramble's own Debian image: also networking by DHCP, fstab, hostname.
    Debian {
        /// The MBR disk id, for `PARTUUID=` in fstab.
        disk_id: u32,
    },
    /// A user's Raspberry Pi OS image: only bramble's own files.
    RaspiOs,
}

/// Build the entry list; generated files are written into `staging`.
pub fn entries(
    staging: &Path,
    binary: &Path,
    ssh_key: Option<&Path>,
    flavour: Flavour,
) -> anyhow::Result<Vec<Entry>> {
    std::fs::create_dir_all(staging)?;
    let stage = |name: &str, contents: &str| -> anyhow::Result<PathBuf> {
        let path = staging.join(name);
        std::fs::write(&path, contents)?;
        Ok(path)
    };
    let dir = |path: &str, mode: u32| Entry::Dir {
        path: path.into(),
        mode,
    };
    let file = |path: &str, source: PathBuf, mode: u32| Entry::File {
        path: path.into(),
        source,
        mode,
    };
    let mut list = vec![
        file("/usr/bin/bramble", binary.to_path_buf(), 0o755),
        file(
            "/usr/lib/systemd/system/bramble.service",
            stage("bramble.service", BRAMBLE_SERVICE)?,
            0o644,
        ),
        file(
            "/usr/lib/systemd/system/bramble-firstboot.service",
            stage("bramble-firstboot.service", FIRSTBOOT_SERVICE)?,
            0o644,
        ),
        file(
            "/usr/lib/sysusers.d/bramble.conf",
            stage("bramble.sysusers", SYSUSERS)?,
            0o644,
        ),
        dir("/etc/bramble", 0o755),
        file(
            "/etc/bramble/bramble.toml.example",
            stage("bramble.toml.example", CONFIG_EXAMPLE)?,
            0o644,
        ),
        dir("/var/lib/zookeeper", 0o750),
        dir("/var/lib/kafka-logs", 0o750),
        dir("/var/lib/bramble", 0o755),
        // `systemctl enable`, done the way it does it: symlinks in the target's wants dir.
        Entry::Symlink {
            path: "/etc/systemd/system/multi-user.target.wants/bramble.service".into(),
            target: "/usr/lib/systemd/system/bramble.service".into(),
        },
        Entry::Symlink {
            path: "/etc/systemd/system/multi-user.target.wants/bramble-firstboot.service".into(),
            target: "/usr/lib/systemd/system/bramble-firstboot.service".into(),
        },
    ];
    if let Flavour::Debian { disk_id } = flavour {
        let fstab = format!(
            "# bramble image: partitions by MBR PARTUUID (disk id {disk_id:08x}).\n\
             PARTUUID={disk_id:08x}-02\t/\text4\trw,noatime,errors=remount-ro\t0\t1\n\
             PARTUUID={disk_id:08x}-01\t/boot/firmware\tvfat\trw,noatime,umask=0022\t0\t2\n"
        );
        list.push(file("/etc/fstab", stage("fstab", &fstab)?, 0o644));
        list.push(dir("/boot/firmware", 0o755));
        list.push(dir("/etc/systemd/network", 0o755));
        list.push(file(
            "/etc/systemd/network/20-wired.network",
            stage("20-wired.network", WIRED_NETWORK)?,
            0o644,
        ));
        // First boot sets the real hostname; until then the image is "bramble".
        list.push(file(
            "/etc/hostname",
            stage("hostname", "bramble\n")?,
            0o644,
        ));
        // openssh-server's postinst made host keys while the root file system was built; every
        // card would share them. The image ships none and sshd makes its own on first start.
        for kind in ["rsa", "ecdsa", "ed25519"] {
            for suffix in ["", ".pub"] {
                list.push(Entry::Absent {
                    path: format!("/etc/ssh/ssh_host_{kind}_key{suffix}"),
                });
            }
        }
        // systemd's interactive first-boot wizard (locale, time zone, root password on the
        // console) would wait for a keyboard a headless node does not have; bramble-firstboot
        // does this image's first boot.
        list.push(Entry::Symlink {
            path: "/etc/systemd/system/systemd-firstboot.service".into(),
            target: "/dev/null".into(),
        });
        list.push(file(
            "/etc/systemd/system/ssh.service.d/bramble-host-keys.conf",
            stage("ssh-host-keys.conf", SSH_HOST_KEYS)?,
            0o644,
        ));
        for unit in ["systemd-networkd.service", "systemd-resolved.service"] {
            list.push(Entry::Symlink {
                path: format!("/etc/systemd/system/multi-user.target.wants/{unit}"),
                target: format!("/usr/lib/systemd/system/{unit}"),
            });
        }
    }
    if let Some(key) = ssh_key {
        let text = std::fs::read_to_string(key)
            .map_err(|e| anyhow::anyhow!("--ssh-key {}: {e}", key.display()))?;
        anyhow::ensure!(
            text.starts_with("ssh-") || text.starts_with("ecdsa-"),
            "--ssh-key {} is not an SSH public key",
            key.display()
        );
        list.push(dir("/root/.ssh", 0o700));
        list.push(file(
            "/root/.ssh/authorized_keys",
            stage("authorized_keys", &text)?,
            0o600,
        ));
    }
    Ok(list)
}

/// The debugfs script that writes `entries`, every inode owned by root with mtime `epoch`.
pub fn debugfs_script(entries: &[Entry], epoch: u64) -> String {
    let mut script = String::new();
    let mut made = std::collections::BTreeSet::new();
    let mut mkdirs = |script: &mut String, path: &str| {
        let mut at = String::new();
        for part in path
            .trim_start_matches('/')
            .split('/')
            .filter(|p| !p.is_empty())
        {
            at.push('/');
            at.push_str(part);
            if made.insert(at.clone()) {
                let _ = writeln!(script, "mkdir {at}");
            }
        }
    };
    let parent = |path: &str| {
        path.rsplit_once('/')
            .map(|(p, _)| p.to_string())
            .unwrap_or_default()
    };
    for entry in entries {
        match entry {
            Entry::Dir { path, mode } => {
                mkdirs(&mut script, path);
                let _ = writeln!(script, "sif {path} mode 0{:o}", 0o040000 | mode);
                owner_and_time(&mut script, path, epoch);
            }
            Entry::File { path, source, mode } => {
                mkdirs(&mut script, &parent(path));
                let _ = writeln!(script, "rm {path}");
                let _ = writeln!(script, "write {} {path}", source.display());
                let _ = writeln!(script, "sif {path} mode 0{:o}", 0o100000 | mode);
                owner_and_time(&mut script, path, epoch);
            }
            Entry::Symlink { path, target } => {
                mkdirs(&mut script, &parent(path));
                let _ = writeln!(script, "rm {path}");
                let _ = writeln!(script, "symlink {path} {target}");
                owner_and_time(&mut script, path, epoch);
            }
            Entry::Absent { path } => {
                let _ = writeln!(script, "rm {path}");
            }
        }
    }
    script
}

fn owner_and_time(script: &mut String, path: &str, epoch: u64) {
    for field in ["uid 0", "gid 0"] {
        let _ = writeln!(script, "sif {path} {field}");
    }
    for field in ["mtime", "ctime", "atime", "crtime"] {
        let _ = writeln!(script, "sif {path} {field} @{epoch}");
    }
}

/// Write the overlay into the ext4 file system at `offset` bytes into `image`.
pub fn apply(image: &Path, offset: u64, entries: &[Entry], epoch: u64) -> anyhow::Result<()> {
    for entry in entries {
        if let Entry::File { source, .. } = entry {
            anyhow::ensure!(
                !source.to_string_lossy().contains(char::is_whitespace),
                "debugfs cannot take the path {}",
                source.display()
            );
        }
    }
    tools::debugfs_script(image, offset, &debugfs_script(entries, epoch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_makes_parents_once_and_owns_everything_by_root() {
        let entries = vec![
            Entry::Dir {
                path: "/var/lib/zookeeper".into(),
                mode: 0o750,
            },
            Entry::File {
                path: "/var/lib/bramble/x".into(),
                source: "/tmp/x".into(),
                mode: 0o644,
            },
        ];
        let script = debugfs_script(&entries, 7);
        assert_eq!(script.matches("mkdir /var\n").count(), 1);
        assert_eq!(script.matches("mkdir /var/lib\n").count(), 1);
        assert!(script.contains("sif /var/lib/zookeeper mode 040750\n"));
        assert!(script.contains("rm /var/lib/bramble/x\nwrite /tmp/x /var/lib/bramble/x\nsif /var/lib/bramble/x mode 0100644\n"));
        assert!(script.contains("sif /var/lib/bramble/x uid 0\nsif /var/lib/bramble/x gid 0\nsif /var/lib/bramble/x mtime @7\n"));
    }
}
