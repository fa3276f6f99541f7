//! `cargo image`: bramble's SD-card image builder (the xtask pattern: build tooling in Rust).
//!
//! Three stages, each usable on its own:
//! 1. [`rootfs`]: a Debian bookworm root file system for arm64/armhf from Debian's packages
//!    (mmdebstrap in a user namespace, cached), or a directory given with `--rootfs`;
//! 2. [`overlay`]: bramble itself (binary, units, config template, state directories, the
//!    sysusers entry) written into an ext4 file system with `debugfs -w`, root-owned;
//! 3. [`assemble`]: FAT32 boot partition (`mkfs.vfat` + `mcopy`), ext4 root (`mkfs.ext4 -d`),
//!    an MBR table (`sfdisk` on the image file), both partitions copied in at their offsets;
//!    then one image per node, `.img.xz` and `.sha256`.
//!
//! No loop devices, no mounts, no root: it runs in CI. `--base raspios.img[.xz]` instead
//! writes bramble into a Raspberry Pi OS image the user supplies ([`base`]).

mod assemble;
mod base;
mod boot;
mod overlay;
mod rootfs;
mod tools;

use std::path::{Path, PathBuf};

use clap::Parser;

/// Build flashable bramble images for Raspberry Pi.
#[derive(Debug, Parser)]
#[command(name = "cargo image", version)]
pub struct Args {
    /// Target: aarch64 (Pi 3/4, 64-bit) or armv7 (Pi 2/3, 32-bit).
    #[arg(long, value_enum, default_value_t = Arch::Aarch64)]
    pub arch: Arch,
    /// One image per node with its bramble-node.toml (id = n, peers listed); default: one
    /// generic image whose node file says id = 1.
    #[arg(long)]
    pub nodes: Option<u32>,
    /// Where images go.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// A prepared root file system directory instead of running mmdebstrap.
    #[arg(long, conflicts_with = "base")]
    pub rootfs: Option<PathBuf>,
    /// A Raspberry Pi OS image (.img or .img.xz) to write bramble into, instead of Debian.
    #[arg(long)]
    pub base: Option<PathBuf>,
    /// The bramble binary (default: target/<triple>/release/bramble of this workspace).
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// An SSH public key for root's authorized_keys (password login stays disabled).
    #[arg(long)]
    pub ssh_key: Option<PathBuf>,
    /// Keep the raw .img and skip compression.
    #[arg(long)]
    pub no_xz: bool,
    /// Size of the FAT32 boot partition.
    #[arg(long, default_value_t = 256)]
    pub boot_mib: u32,
    /// Free space in the root file system beyond its contents (first boot grows it anyway).
    #[arg(long, default_value_t = 256)]
    pub root_free_mib: u32,
    /// Cache for the mmdebstrap root file system.
    #[arg(long, default_value = "target/image-cache")]
    pub cache: PathBuf,
    /// Debian mirror, or a snapshot.debian.org URL for a pinned package set.
    #[arg(long, default_value = "http://deb.debian.org/debian")]
    pub mirror: String,
    /// Only build (or find in the cache) the Debian root file system and print its directory.
    #[arg(long, conflicts_with_all = ["base", "rootfs"])]
    pub rootfs_only: bool,
}

/// The two Raspberry Pi targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    /// 64-bit: Debian arm64, Pi 3/4 (Pi 5 through `--base`).
    Aarch64,
    /// 32-bit: Debian armhf, Pi 2/3.
    Armv7,
}

impl Arch {
    /// Rust's target triple.
    pub fn triple(self) -> &'static str {
        match self {
            Arch::Aarch64 => "aarch64-unknown-linux-gnu",
            Arch::Armv7 => "armv7-unknown-linux-gnueabihf",
        }
    }

    /// Debian's architecture name.
    pub fn debian(self) -> &'static str {
        match self {
            Arch::Aarch64 => "arm64",
            Arch::Armv7 => "armhf",
        }
    }

    /// Short name used in file names.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Aarch64 => "aarch64",
            Arch::Armv7 => "armv7",
        }
    }
}

/// Seconds since the epoch for timestamps and derived ids: `$SOURCE_DATE_EPOCH` when set
/// (reproducible builds), else now.
pub fn source_date_epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        })
}

/// The workspace root (this crate lives in `<root>/image`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cargo image: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    if args.rootfs_only {
        println!("{}", rootfs::build(args)?.display());
        return Ok(());
    }
    std::fs::create_dir_all(&args.out)?;
    let binary = match &args.binary {
        Some(path) => path.clone(),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| workspace_root().join("target"), PathBuf::from);
            target.join(args.arch.triple()).join("release/bramble")
        }
    };
    anyhow::ensure!(
        binary.is_file(),
        "no bramble binary at {}: build it with tests/cross-build.sh (or `cargo build --release --target {}`), or pass --binary",
        binary.display(),
        args.arch.triple()
    );
    let started = std::time::Instant::now();
    let images = match &args.base {
        Some(base_image) => base::build(args, base_image, &binary)?,
        None => {
            let rootfs = match &args.rootfs {
                Some(dir) => dir.clone(),
                None => rootfs::build(args)?,
            };
            assemble::build(args, &rootfs, &binary)?
        }
    };
    let outputs = assemble::finish(args, &images)?;
    for path in &outputs {
        let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
        println!("{}\t{} bytes", path.display(), bytes);
    }
    eprintln!(
        "cargo image: done in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
