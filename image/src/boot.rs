//! The FAT32 boot partition: firmware, kernel and initramfs from the root file system,
//! `config.txt`, `cmdline.txt`, and `bramble-node.toml` where the user sets the node id.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::{tools, Arch};

/// The node file as the image ships it. `id` is the only key first boot needs.
pub fn node_file(id: u32, nodes: Option<u32>) -> String {
    let mut text = String::from(
        "# bramble node settings, read once on first boot by `bramble node init`.\n\
         # Edit this file on any PC after flashing. Give every node its own id.\n\
         # If first boot fails, it says why in bramble-firstboot.log next to this file.\n\n",
    );
    let _ = writeln!(
        text,
        "# This node's id, 1 to 255 (written to /var/lib/zookeeper/myid)."
    );
    let _ = writeln!(text, "id = {id}\n");
    let _ = writeln!(
        text,
        "# hostname = \"bramble-{id}\"          # default: bramble-<id>"
    );
    let _ = writeln!(
        text,
        "# address = \"192.168.1.2{id}/24\"     # static address instead of DHCP"
    );
    let _ = writeln!(text, "# gateway = \"192.168.1.1\"");
    let _ = writeln!(text, "# dns = [\"192.168.1.1\"]\n");
    let _ = writeln!(
        text,
        "# The cluster's nodes, by id (a list means ids 1, 2, 3…); absent: a single node."
    );
    match nodes {
        Some(n) if n > 1 => {
            let peers: Vec<String> = (1..=n).map(|i| format!("\"bramble-{i}.local\"")).collect();
            let _ = writeln!(text, "servers = [{}]", peers.join(", "));
        }
        _ => {
            let _ = writeln!(
                text,
                "# servers = [\"bramble-1.local\", \"bramble-2.local\", \"bramble-3.local\"]"
            );
        }
    }
    text
}

/// `cmdline.txt`: the root by PARTUUID (works with or without an initramfs), serial console.
pub fn cmdline(disk_id: u32) -> String {
    format!("console=serial0,115200 console=tty1 root=PARTUUID={disk_id:08x}-02 rootfstype=ext4 rootwait fsck.repair=yes net.ifnames=0\n")
}

/// `config.txt` for the Pi firmware with Debian's kernel and initramfs, if present.
pub fn config_txt(arch: Arch, kernel: Option<&str>, initrd: Option<&str>) -> String {
    let mut text = String::from("# bramble: Raspberry Pi firmware settings (https://www.raspberrypi.com/documentation/computers/config_txt.html)\n[all]\n");
    if arch == Arch::Aarch64 {
        text.push_str("arm_64bit=1\n");
    }
    text.push_str("enable_uart=1\nupstream_kernel=1\ndisable_overscan=1\n");
    match kernel {
        Some(kernel) => {
            let _ = writeln!(text, "kernel={kernel}");
        }
        None => text.push_str("# no kernel found in the root file system: add kernel= here\n"),
    }
    if let Some(initrd) = initrd {
        let _ = writeln!(text, "initramfs {initrd} followkernel");
    }
    text
}

/// Files for the boot partition found in the root file system: what raspi-firmware put in
/// `/boot/firmware`, else the firmware blobs of `/usr/lib/raspi-firmware`, the newest kernel and
/// initramfs of `/boot`, and the Pi device trees of the kernel package.
pub fn firmware_files(rootfs: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let list = |dir: &Path| -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.is_file())
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    };
    let prepared = list(&rootfs.join("boot/firmware"));
    if !prepared.is_empty() {
        return Ok(prepared);
    }
    let mut files = list(&rootfs.join("usr/lib/raspi-firmware"));
    let boot = list(&rootfs.join("boot"));
    let newest = |prefix: &str| {
        boot.iter()
            .rfind(|p| file_name(p).starts_with(prefix))
            .cloned()
    };
    files.extend(newest("vmlinuz-"));
    files.extend(newest("initrd.img-"));
    if let Ok(kernels) = std::fs::read_dir(rootfs.join("usr/lib")) {
        for kernel_dir in kernels
            .filter_map(Result::ok)
            .filter(|e| file_name(&e.path()).starts_with("linux-image-"))
        {
            // arm64 kernels keep device trees under broadcom/, armhf (armmp) ones flat.
            for dir in [kernel_dir.path().join("broadcom"), kernel_dir.path()] {
                let pi = |p: &PathBuf| {
                    [
                        "bcm2709", "bcm2710", "bcm2711", "bcm2835", "bcm2836", "bcm2837",
                    ]
                    .iter()
                    .any(|soc| file_name(p).starts_with(soc))
                };
                files.extend(list(&dir).into_iter().filter(pi));
            }
        }
    }
    Ok(files)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Make the FAT32 file system at `path` (`size_mib`), labelled RASPIFIRM like Debian's images,
/// holding `files` plus the generated ones. Timestamps are `epoch` (mcopy -m keeps them).
pub fn make_fat(
    path: &Path,
    size_mib: u32,
    volume_id: u32,
    files: &[PathBuf],
    generated: &[(&str, String)],
    epoch: u64,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        size_mib >= 33,
        "--boot-mib must be at least 33 (FAT32's minimum)"
    );
    let _ = std::fs::remove_file(path);
    let kib = (u64::from(size_mib) * 1024).to_string();
    let id = format!("{volume_id:08x}");
    let path_str = path.to_string_lossy();
    let mut mkfs = vec!["-F", "32", "-n", "RASPIFIRM", "-i", &id];
    // Reproducible builds: no build time in the volume label entry.
    if std::env::var_os("SOURCE_DATE_EPOCH").is_some() {
        mkfs.push("--invariant");
    }
    mkfs.extend(["-C", &path_str, &kib]);
    tools::run("mkfs.vfat", &mkfs, &[])?;
    let staging = tools::tempfile_dir()?;
    let mut sources: Vec<PathBuf> = Vec::new();
    for file in files {
        let copy = staging.join(file_name(file));
        std::fs::copy(file, &copy)?;
        sources.push(copy);
    }
    for (name, contents) in generated {
        let dest = staging.join(name);
        std::fs::write(&dest, contents)?;
        sources.retain(|p| p != &dest);
        sources.push(dest);
    }
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch);
    for source in &sources {
        std::fs::File::options()
            .write(true)
            .open(source)?
            .set_modified(time)?;
    }
    if !sources.is_empty() {
        let mut args = vec!["-i", &path_str, "-o", "-m"];
        let names: Vec<String> = sources
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        args.extend(names.iter().map(String::as_str));
        args.push("::/");
        tools::run("mcopy", &args, &[])?;
    }
    std::fs::remove_dir_all(&staging)?;
    Ok(())
}

/// Replace one file in the FAT file system at `offset` bytes into `image` (per-node stamping).
pub fn put_file(image: &Path, offset: u64, name: &str, contents: &str) -> anyhow::Result<()> {
    let staging = tools::tempfile_dir()?;
    let source = staging.join(name);
    std::fs::write(&source, contents)?;
    let target = format!("{}@@{offset}", image.display());
    let result = tools::run(
        "mcopy",
        &[
            "-i",
            &target,
            "-o",
            &source.to_string_lossy(),
            &format!("::/{name}"),
        ],
        &[],
    );
    std::fs::remove_dir_all(&staging)?;
    result.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_files_parse_as_toml_with_the_right_id_and_peers() {
        let generic = node_file(1, None);
        assert!(generic.contains("\nid = 1\n") && generic.contains("# servers ="));
        let second = node_file(2, Some(3));
        assert!(second.contains("\nid = 2\n"));
        assert!(second.contains(
            "servers = [\"bramble-1.local\", \"bramble-2.local\", \"bramble-3.local\"]\n"
        ));
    }

    #[test]
    fn cmdline_is_one_line_with_the_root_partuuid() {
        let line = cmdline(0xb4a3_b1e0);
        assert_eq!(line.lines().count(), 1);
        assert!(line.contains("root=PARTUUID=b4a3b1e0-02 "));
    }
}
