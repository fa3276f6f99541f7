//! `--base raspios.img[.xz]`: bramble written into a Raspberry Pi OS image the user supplies
//! (the way to a Pi 5, whose device tree Debian 12's raspi-firmware lacks). No mounts: the
//! partition table is read with `sfdisk --json`, the root file system is changed in place
//! with `debugfs -w` at its offset, the boot partition with mtools.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{assemble, overlay, source_date_epoch, tools, Args};

#[derive(Debug, Deserialize)]
struct Dump {
    partitiontable: Table,
}

#[derive(Debug, Deserialize)]
struct Table {
    #[serde(default)]
    sectorsize: Option<u64>,
    partitions: Vec<Partition>,
}

#[derive(Debug, Deserialize)]
struct Partition {
    start: u64,
    #[serde(rename = "type")]
    kind: String,
}

/// Byte offsets of the FAT boot and Linux root partitions of an MBR image.
pub fn partition_offsets(image: &Path) -> anyhow::Result<(u64, u64)> {
    let json = tools::run("sfdisk", &["--json", &image.to_string_lossy()], &[])?;
    let dump: Dump = serde_json::from_str(&json)?;
    let sector = dump.partitiontable.sectorsize.unwrap_or(512);
    let find = |kinds: &[&str]| {
        dump.partitiontable
            .partitions
            .iter()
            .find(|p| kinds.contains(&p.kind.as_str()))
            .map(|p| p.start * sector)
    };
    let boot = find(&["c", "b", "e"])
        .ok_or_else(|| anyhow::anyhow!("{} has no FAT partition", image.display()))?;
    let root = find(&["83"])
        .ok_or_else(|| anyhow::anyhow!("{} has no Linux partition", image.display()))?;
    Ok((boot, root))
}

/// Copy (or decompress) the base image into `--out` and write bramble into it.
pub fn build(args: &Args, base: &Path, binary: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let image = args
        .out
        .join(format!("bramble-raspios-{}.img", args.arch.name()));
    let base_str = base.to_string_lossy();
    if base_str.ends_with(".xz") {
        let output = std::fs::File::create(&image)?;
        let status = std::process::Command::new("xz")
            .args(["-dc", &base_str])
            .stdout(output)
            .status()?;
        anyhow::ensure!(status.success(), "xz -dc {base_str} failed");
    } else {
        tools::run(
            "cp",
            &["--sparse=always", &base_str, &image.to_string_lossy()],
            &[],
        )?;
    }
    let (boot_offset, root_offset) = partition_offsets(&image)?;
    let work = args.out.join(".build");
    let entries = overlay::entries(
        &work.join("overlay"),
        binary,
        args.ssh_key.as_deref(),
        overlay::Flavour::RaspiOs,
    )?;
    overlay::apply(&image, root_offset, &entries, source_date_epoch())?;
    std::fs::remove_dir_all(&work)?;
    crate::boot::put_file(
        &image,
        boot_offset,
        "bramble-node.toml",
        &crate::boot::node_file(1, None),
    )?;
    assemble::stamp_nodes(args, &image, boot_offset)
}
