//! Assembly without loop devices or mounts: the boot partition and the root file system are
//! built as files, an MBR partition table is written on the image file with `sfdisk`, and
//! each partition is copied in at its offset (skipping zero blocks, so the image stays sparse).

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{boot, overlay, rootfs, source_date_epoch, tools, Args};

/// Where the boot partition starts (4 MiB, the alignment Debian's Pi images use).
pub const BOOT_START_MIB: u64 = 4;
const MIB: u64 = 1 << 20;
const SECTOR: u64 = 512;

/// Partition offsets of an image, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Start of the FAT boot partition.
    pub boot_offset: u64,
    /// Size of the boot partition.
    pub boot_bytes: u64,
    /// Start of the ext4 root partition.
    pub root_offset: u64,
    /// Size of the root partition.
    pub root_bytes: u64,
}

impl Layout {
    fn new(boot_mib: u32, root_mib: u64) -> Layout {
        let boot_offset = BOOT_START_MIB * MIB;
        let boot_bytes = u64::from(boot_mib) * MIB;
        Layout {
            boot_offset,
            boot_bytes,
            root_offset: boot_offset + boot_bytes,
            root_bytes: root_mib * MIB,
        }
    }

    fn total_bytes(&self) -> u64 {
        self.root_offset + self.root_bytes
    }

    /// The sfdisk script: MBR, FAT32 (LBA) boot partition, Linux root partition.
    pub fn sfdisk_script(&self, disk_id: u32) -> String {
        format!(
            "label: dos\nlabel-id: 0x{disk_id:08x}\nunit: sectors\nsector-size: 512\n\n\
             start={}, size={}, type=c\nstart={}, size={}, type=83\n",
            self.boot_offset / SECTOR,
            self.boot_bytes / SECTOR,
            self.root_offset / SECTOR,
            self.root_bytes / SECTOR
        )
    }
}

/// The MBR disk id: derived from the build's date and arch, so a rebuild gives the same one.
pub fn disk_id(args: &Args, epoch: u64) -> u32 {
    let id = tools::fnv64(epoch, args.arch.name().as_bytes()) as u32;
    id.max(1)
}

/// Build the Debian image(s) from `rootfs`; returns the raw image files.
pub fn build(args: &Args, rootfs: &Path, binary: &Path) -> anyhow::Result<Vec<PathBuf>> {
    anyhow::ensure!(
        rootfs.is_dir(),
        "root file system {} is not a directory",
        rootfs.display()
    );
    let epoch = source_date_epoch();
    let disk_id = disk_id(args, epoch);
    let work = args.out.join(".build");
    std::fs::create_dir_all(&work)?;

    let firmware = boot::firmware_files(rootfs)?;
    let name_of = |prefix: &str| {
        firmware
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .rfind(|n| n.starts_with(prefix))
    };
    let generated = vec![
        (
            "config.txt",
            boot::config_txt(
                args.arch,
                name_of("vmlinuz-").as_deref(),
                name_of("initrd.img-").as_deref(),
            ),
        ),
        ("cmdline.txt", boot::cmdline(disk_id)),
        ("bramble-node.toml", boot::node_file(1, None)),
    ];
    let boot_fat = work.join("boot.vfat");
    boot::make_fat(
        &boot_fat,
        args.boot_mib,
        disk_id,
        &firmware,
        &generated,
        epoch,
    )?;

    let content = tree_bytes(rootfs)? + std::fs::metadata(binary)?.len();
    let root_mib = (content + content / 4).div_ceil(MIB) + u64::from(args.root_free_mib);
    let root_mib = root_mib.div_ceil(4) * 4;
    let root_ext4 = work.join("root.ext4");
    make_ext4(
        &root_ext4,
        rootfs,
        root_mib,
        &format!("{epoch}-{}", args.arch.name()),
        epoch,
    )?;
    let entries = overlay::entries(
        &work.join("overlay"),
        binary,
        args.ssh_key.as_deref(),
        overlay::Flavour::Debian { disk_id },
    )?;
    overlay::apply(&root_ext4, 0, &entries, epoch)?;

    let layout = Layout::new(args.boot_mib, root_mib);
    let image = args.out.join(format!("bramble-{}.img", args.arch.name()));
    write_image(&image, &layout, disk_id, &boot_fat, &root_ext4)?;
    std::fs::remove_dir_all(&work)?;
    stamp_nodes(args, &image, layout.boot_offset)
}

/// With `--nodes N`, one copy of `image` per node with its own bramble-node.toml (and the
/// generic image removed); without, the generic image plus an example node file next to it.
pub fn stamp_nodes(args: &Args, image: &Path, boot_offset: u64) -> anyhow::Result<Vec<PathBuf>> {
    let Some(nodes) = args.nodes else {
        std::fs::write(args.out.join("bramble-node.toml"), boot::node_file(1, None))?;
        return Ok(vec![image.to_path_buf()]);
    };
    anyhow::ensure!(
        (1..=255).contains(&nodes),
        "--nodes must be between 1 and 255"
    );
    let stem = image
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut images = Vec::new();
    for n in 1..=nodes {
        let copy = image.with_file_name(format!("{stem}-node{n}.img"));
        tools::run(
            "cp",
            &[
                "--sparse=always",
                &image.to_string_lossy(),
                &copy.to_string_lossy(),
            ],
            &[],
        )?;
        boot::put_file(
            &copy,
            boot_offset,
            "bramble-node.toml",
            &boot::node_file(n, Some(nodes)),
        )?;
        images.push(copy);
    }
    std::fs::remove_file(image)?;
    Ok(images)
}

/// `mkfs.ext4 -d`: the root file system from a directory, with a UUID and hash seed derived
/// from `seed` and timestamps from `epoch` (E2FSPROGS_FAKE_TIME), so rebuilds match.
fn make_ext4(
    path: &Path,
    rootfs: &Path,
    size_mib: u64,
    seed: &str,
    epoch: u64,
) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(path);
    let uuid = tools::derived_uuid(seed);
    let options = format!("hash_seed={uuid},root_owner=0:0");
    let source = rootfs.to_string_lossy();
    let target = path.to_string_lossy();
    let size = format!("{size_mib}M");
    let mkfs = [
        "-q",
        "-F",
        "-t",
        "ext4",
        "-b",
        "4096",
        "-m",
        "1",
        "-L",
        "RASPIROOT",
        "-U",
        &uuid,
        "-E",
        &options,
        "-d",
        &source,
        &target,
        &size,
    ];
    // An unprivileged build's root file system is owned by subordinate ids: read it through
    // the id mapping it was built with, so the ext4 records 0 for root and so on.
    let prefix = rootfs::namespace_prefix(rootfs);
    let (program, argv): (&str, Vec<&str>) = match &prefix {
        Some(prefix) => (
            "unshare",
            prefix
                .iter()
                .map(String::as_str)
                .chain(["mkfs.ext4"])
                .chain(mkfs)
                .collect(),
        ),
        None => ("mkfs.ext4", mkfs.to_vec()),
    };
    tools::run(
        program,
        &argv,
        &[("E2FSPROGS_FAKE_TIME", epoch.to_string())],
    )?;
    settle_times(path, epoch)
}

/// Sets every inode's atime and ctime to `epoch`. `mkfs.ext4 -d` copies them from the source
/// tree, and reading that tree for one build moves its atimes (relatime), so two builds of
/// the same tree would differ; ctime is when the tree was unpacked, not an input either.
/// Modification times are kept: they are the packages' own.
fn settle_times(path: &Path, epoch: u64) -> anyhow::Result<()> {
    let mut script = String::new();
    for inode in all_inodes(path)? {
        for field in ["atime", "ctime"] {
            script.push_str(&format!("sif <{inode}> {field} @{epoch}\n"));
        }
    }
    tools::debugfs_script(path, 0, &script)
}

/// Every inode reachable from the root directory, listed a directory level at a time (one
/// debugfs run per level of depth).
fn all_inodes(path: &Path) -> anyhow::Result<BTreeSet<u64>> {
    const ROOT: u64 = 2;
    let mut seen = BTreeSet::from([ROOT]);
    let mut level = vec![ROOT];
    while !level.is_empty() {
        let script: String = level.iter().map(|d| format!("ls -p <{d}>\n")).collect();
        let listing = tools::debugfs_read(path, 0, &script)?;
        level = Vec::new();
        for (inode, is_dir) in listing.lines().filter_map(parse_ls_p) {
            if seen.insert(inode) && is_dir {
                level.push(inode);
            }
        }
    }
    Ok(seen)
}

/// One line of debugfs `ls -p` (`/<inode>/<octal mode>/<uid>/<gid>/<name>/<size>/`):
/// the inode and whether it is a directory. Other lines (debugfs echoing its commands) are
/// `None`.
fn parse_ls_p(line: &str) -> Option<(u64, bool)> {
    let mut fields = line.strip_prefix('/')?.split('/');
    let inode = fields.next()?.parse().ok()?;
    let mode = u32::from_str_radix(fields.next()?, 8).ok()?;
    Some((inode, mode & 0o170000 == 0o040000))
}

/// Bytes of everything under `dir` (4 KiB at least per entry, as ext4 allocates).
fn tree_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let meta = entry.path().symlink_metadata()?;
            total += meta.len().div_ceil(4096).max(1) * 4096;
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok(total)
}

/// Create the image file, write its partition table, copy both partitions in.
fn write_image(
    image: &Path,
    layout: &Layout,
    disk_id: u32,
    boot_fat: &Path,
    root_ext4: &Path,
) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(image);
    std::fs::File::create(image)?.set_len(layout.total_bytes())?;
    // Table first: sfdisk would warn about (and may wipe) signatures it finds in the way.
    tools::run_with_input(
        "sfdisk",
        &[
            "--quiet",
            "--no-reread",
            "--no-tell-kernel",
            &image.to_string_lossy(),
        ],
        &layout.sfdisk_script(disk_id),
    )?;
    copy_at(boot_fat, image, layout.boot_offset, layout.boot_bytes)?;
    copy_at(root_ext4, image, layout.root_offset, layout.root_bytes)?;
    Ok(())
}

/// `dd conv=notrunc seek=offset`, in Rust: copy `source` into `image` at `offset`, seeking over
/// all-zero blocks (the image file is sparse and already zero there).
pub fn copy_at(source: &Path, image: &Path, offset: u64, room: u64) -> anyhow::Result<()> {
    let mut input = std::fs::File::open(source)?;
    let length = input.metadata()?.len();
    anyhow::ensure!(
        length <= room,
        "{} ({length} bytes) does not fit its partition ({room} bytes)",
        source.display()
    );
    let mut output = std::fs::OpenOptions::new().write(true).open(image)?;
    let mut block = vec![0u8; 1 << 16];
    let mut at = offset;
    loop {
        let n = read_full(&mut input, &mut block)?;
        if n == 0 {
            break;
        }
        if block[..n].iter().any(|b| *b != 0) {
            output.seek(SeekFrom::Start(at))?;
            output.write_all(&block[..n])?;
        }
        at += n as u64;
    }
    output.sync_all()?;
    Ok(())
}

fn read_full(input: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Compress each image to `.img.xz` (unless `--no-xz`) and write a `.sha256` beside it, in
/// `sha256sum -c` format. Returns the files written.
pub fn finish(args: &Args, images: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut outputs = Vec::new();
    for image in images {
        let artefact = if args.no_xz {
            image.clone()
        } else {
            // -T2: the build shares small machines; xz's output does not depend on timing.
            tools::run("xz", &["-T2", "-6", "-f", &image.to_string_lossy()], &[])?;
            PathBuf::from(format!("{}.xz", image.display()))
        };
        let sum = tools::run("sha256sum", &[&artefact.to_string_lossy()], &[])?;
        let hash = sum.split_whitespace().next().unwrap_or_default();
        let name = artefact
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let sum_path = PathBuf::from(format!("{}.sha256", artefact.display()));
        std::fs::write(&sum_path, format!("{hash}  {name}\n"))?;
        outputs.push(artefact);
        outputs.push(sum_path);
    }
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_p_lines_give_the_inode_and_whether_it_is_a_directory() {
        assert_eq!(parse_ls_p("/12/040755/0/0/boot//"), Some((12, true)));
        assert_eq!(parse_ls_p("/25/120777/0/0/lib/7/"), Some((25, false)));
        assert_eq!(parse_ls_p("/30/100644/0/0/a file/12/"), Some((30, false)));
        assert_eq!(parse_ls_p("debugfs: ls -p <2>"), None);
        assert_eq!(parse_ls_p(""), None);
    }

    #[test]
    fn partitions_are_4mib_aligned_and_adjacent() {
        let layout = Layout::new(256, 1024);
        let script = layout.sfdisk_script(0x1234_abcd);
        assert!(script.contains("label-id: 0x1234abcd"));
        assert!(script.contains("start=8192, size=524288, type=c\n"));
        assert!(script.contains("start=532480, size=2097152, type=83\n"));
        assert_eq!(layout.total_bytes(), (4 + 256 + 1024) * MIB);
    }
}
