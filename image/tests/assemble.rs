//! The assembly step, fed a small fake root file system, builds images whose partition table,
//! FAT boot partition and ext4 root are checked with the tools a user would use (sfdisk,
//! mtools, debugfs, e2fsck); the same for `--nodes 3`, and for `--base` on a synthetic
//! Raspberry Pi OS-like image. No loop devices, no mounts, no root needed.

use std::path::{Path, PathBuf};
use std::process::Command;

const EPOCH: &str = "1700000000";

fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The host build of bramble, stripped, stands in for the cross-built one (assembly does not
/// run it; stripping keeps the images and the test small).
fn bramble_binary(dir: &Path) -> PathBuf {
    let stripped = dir.join("bramble");
    sh(
        "objcopy",
        &[
            "--strip-all",
            &host_bramble().to_string_lossy(),
            &stripped.to_string_lossy(),
        ],
    );
    stripped
}

fn host_bramble() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let binary = profile_dir.join("bramble");
    if !binary.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--package", "bramble", "--bin", "bramble"])
            .status()
            .unwrap();
        assert!(status.success(), "building bramble failed");
    }
    assert!(binary.exists(), "{} missing", binary.display());
    binary
}

fn write(root: &Path, rel: &str, contents: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

/// A few files shaped like a Debian arm64 root with raspi-firmware and a kernel installed.
fn fake_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    write(&root, "etc/os-release", b"PRETTY_NAME=\"fake bookworm\"\n");
    write(&root, "etc/hosts", b"127.0.0.1\tlocalhost\n");
    // Host keys as openssh-server's postinst leaves them in a freshly built root.
    write(&root, "etc/ssh/ssh_host_ed25519_key", b"private");
    write(
        &root,
        "etc/ssh/ssh_host_ed25519_key.pub",
        b"ssh-ed25519 AAAA public",
    );
    write(&root, "etc/ssh/sshd_config", b"# sshd\n");
    write(&root, "usr/lib/raspi-firmware/start4.elf", b"firmware blob");
    write(&root, "usr/lib/raspi-firmware/fixup4.dat", b"fixup");
    write(&root, "boot/vmlinuz-6.1.0-99-arm64", b"kernel");
    write(&root, "boot/initrd.img-6.1.0-99-arm64", b"initramfs");
    write(
        &root,
        "usr/lib/linux-image-6.1.0-99-arm64/broadcom/bcm2711-rpi-4-b.dtb",
        b"dtb",
    );
    write(
        &root,
        "usr/lib/linux-image-6.1.0-99-arm64/broadcom/bcm2837-rpi-3-b.dtb",
        b"dtb3",
    );
    std::fs::create_dir_all(root.join("etc/systemd/system/multi-user.target.wants")).unwrap();
    std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
    // `mkfs.ext4 -d` copies each file's access time, and the first read of a new file moves
    // it (relatime): read everything once, so two builds see the same tree.
    read_all(&root);
    root
}

fn read_all(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = path.symlink_metadata().unwrap();
        if meta.is_dir() {
            read_all(&path);
        } else if meta.is_file() {
            std::fs::read(&path).unwrap();
        }
    }
}

fn build_image(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_bramble-image"))
        .args(args)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "bramble-image {args:?}: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Partitions {
    disk_id: String,
    boot: u64,
    root: u64,
}

fn partitions(image: &Path) -> Partitions {
    let json: serde_json::Value =
        serde_json::from_str(&sh("sfdisk", &["--json", &image.to_string_lossy()])).unwrap();
    let table = &json["partitiontable"];
    assert_eq!(table["label"], "dos");
    let parts = table["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 2, "{json}");
    assert_eq!(parts[0]["type"], "c", "FAT32 (LBA) boot partition");
    assert_eq!(parts[1]["type"], "83", "Linux root partition");
    let start = |i: usize| parts[i]["start"].as_u64().unwrap() * 512;
    let disk_id = table["id"]
        .as_str()
        .unwrap()
        .trim_start_matches("0x")
        .to_string();
    Partitions {
        disk_id,
        boot: start(0),
        root: start(1),
    }
}

fn fat_files(image: &Path, offset: u64) -> Vec<String> {
    let listing = sh(
        "mdir",
        &["-b", "-i", &format!("{}@@{offset}", image.display()), "::/"],
    );
    listing
        .lines()
        .map(|l| l.trim_start_matches("::/").to_string())
        .collect()
}

fn fat_cat(image: &Path, offset: u64, name: &str) -> String {
    sh(
        "mtype",
        &[
            "-i",
            &format!("{}@@{offset}", image.display()),
            &format!("::/{name}"),
        ],
    )
}

fn ext4(image: &Path, offset: u64, request: &str) -> String {
    sh(
        "debugfs",
        &[
            "-R",
            request,
            &format!("{}?offset={offset}", image.display()),
        ],
    )
}

/// What every bramble root must hold, whatever it was built from.
fn check_bramble_root(image: &Path, offset: u64, binary: &Path, dir: &Path) {
    let dumped = dir.join(format!(
        "dumped-{}",
        image.file_name().unwrap().to_string_lossy()
    ));
    ext4(
        image,
        offset,
        &format!("dump /usr/bin/bramble {}", dumped.display()),
    );
    assert_eq!(
        std::fs::read(&dumped).unwrap(),
        std::fs::read(binary).unwrap(),
        "/usr/bin/bramble is the binary given"
    );
    let stat = ext4(image, offset, "stat /usr/bin/bramble");
    assert!(
        stat.contains("Mode:  0755") && stat.contains("User:     0   Group:     0"),
        "{stat}"
    );
    let example = ext4(image, offset, "cat /etc/bramble/bramble.toml.example");
    assert_eq!(example, include_str!("../files/bramble.toml.example"));
    let unit = ext4(image, offset, "cat /usr/lib/systemd/system/bramble.service");
    assert!(
        unit.contains("Type=notify")
            && unit.contains("ExecStart=/usr/bin/bramble serve --config /etc/bramble/bramble.toml")
    );
    let firstboot = ext4(
        image,
        offset,
        "cat /usr/lib/systemd/system/bramble-firstboot.service",
    );
    assert!(firstboot.contains("RequiresMountsFor=/boot/firmware"));
    let wants = ext4(
        image,
        offset,
        "ls /etc/systemd/system/multi-user.target.wants",
    );
    assert!(
        wants.contains("bramble.service") && wants.contains("bramble-firstboot.service"),
        "{wants}"
    );
    let link = ext4(
        image,
        offset,
        "stat /etc/systemd/system/multi-user.target.wants/bramble.service",
    );
    assert!(
        link.contains("Type: symlink") && link.contains("/usr/lib/systemd/system/bramble.service"),
        "{link}"
    );
    assert!(ext4(image, offset, "cat /usr/lib/sysusers.d/bramble.conf").contains("u bramble"));
    for dir in [
        "/var/lib/zookeeper",
        "/var/lib/kafka-logs",
        "/var/lib/bramble",
    ] {
        assert!(
            ext4(image, offset, &format!("stat {dir}")).contains("Type: directory"),
            "{dir}"
        );
    }
    // The file system is clean (e2fsck reads at an offset like debugfs does).
    sh(
        "e2fsck",
        &["-fn", &format!("{}?offset={offset}", image.display())],
    );
}

#[test]
fn a_generic_image_has_the_table_boot_files_and_bramble_root() {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = fake_rootfs(dir.path());
    let binary = bramble_binary(dir.path());
    let out = dir.path().join("out");
    build_image(&[
        "--arch",
        "aarch64",
        "--out",
        &out.to_string_lossy(),
        "--rootfs",
        &rootfs.to_string_lossy(),
        "--binary",
        &binary.to_string_lossy(),
        "--boot-mib",
        "40",
        "--root-free-mib",
        "16",
    ]);
    // .img.xz and a .sha256 that sha256sum -c accepts; the example node file beside them.
    let xz = out.join("bramble-aarch64.img.xz");
    assert!(xz.exists() && !out.join("bramble-aarch64.img").exists());
    let check = Command::new("sha256sum")
        .arg("-c")
        .arg("bramble-aarch64.img.xz.sha256")
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert!(std::fs::read_to_string(out.join("bramble-node.toml"))
        .unwrap()
        .contains("\nid = 1\n"));
    assert!(!out.join(".build").exists(), "scratch files removed");
    sh("xz", &["-dk", &xz.to_string_lossy()]);
    let image = out.join("bramble-aarch64.img");

    let parts = partitions(&image);
    assert_eq!(parts.boot, 4 << 20, "boot partition at 4 MiB");
    assert_eq!(
        parts.root,
        (4 + 40) << 20,
        "root right after the boot partition"
    );

    let files = fat_files(&image, parts.boot);
    for name in [
        "config.txt",
        "cmdline.txt",
        "bramble-node.toml",
        "start4.elf",
        "fixup4.dat",
        "vmlinuz-6.1.0-99-arm64",
        "initrd.img-6.1.0-99-arm64",
        "bcm2711-rpi-4-b.dtb",
        "bcm2837-rpi-3-b.dtb",
    ] {
        assert!(
            files.iter().any(|f| f == name),
            "{name} missing from the boot partition: {files:?}"
        );
    }
    let config = fat_cat(&image, parts.boot, "config.txt");
    assert!(
        config.contains("arm_64bit=1\n") && config.contains("kernel=vmlinuz-6.1.0-99-arm64\n"),
        "{config}"
    );
    assert!(
        config.contains("initramfs initrd.img-6.1.0-99-arm64 followkernel\n"),
        "{config}"
    );
    let cmdline = fat_cat(&image, parts.boot, "cmdline.txt");
    assert!(
        cmdline.contains(&format!("root=PARTUUID={}-02 ", parts.disk_id)),
        "{cmdline} vs {}",
        parts.disk_id
    );
    let node = fat_cat(&image, parts.boot, "bramble-node.toml");
    assert!(
        node.contains("\nid = 1\n") && node.contains("# servers ="),
        "{node}"
    );

    check_bramble_root(&image, parts.root, &binary, dir.path());
    assert_eq!(
        ext4(&image, parts.root, "cat /etc/os-release"),
        "PRETTY_NAME=\"fake bookworm\"\n",
        "the root file system's own files"
    );
    let wizard = ext4(
        &image,
        parts.root,
        "stat /etc/systemd/system/systemd-firstboot.service",
    );
    assert!(
        wizard.contains("Type: symlink") && wizard.contains("\"/dev/null\""),
        "{wizard}"
    );
    // No SSH host keys shared by every card: sshd makes its own on first start.
    let ssh = ext4(&image, parts.root, "ls /etc/ssh");
    assert!(
        ssh.contains("sshd_config") && !ssh.contains("ssh_host_"),
        "{ssh}"
    );
    assert!(ext4(
        &image,
        parts.root,
        "cat /etc/systemd/system/ssh.service.d/bramble-host-keys.conf"
    )
    .contains("ExecStartPre=/usr/bin/ssh-keygen -A\n"));
    let fstab = ext4(&image, parts.root, "cat /etc/fstab");
    assert!(
        fstab.contains(&format!(
            "PARTUUID={}-01\t/boot/firmware\tvfat",
            parts.disk_id
        )),
        "{fstab}"
    );
    assert!(ext4(
        &image,
        parts.root,
        "cat /etc/systemd/network/20-wired.network"
    )
    .contains("DHCP=yes"));
}

#[test]
fn three_nodes_get_three_images_with_their_ids_and_peers() {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = fake_rootfs(dir.path());
    let binary = bramble_binary(dir.path());
    let out = dir.path().join("out");
    build_image(&[
        "--arch",
        "armv7",
        "--nodes",
        "3",
        "--no-xz",
        "--out",
        &out.to_string_lossy(),
        "--rootfs",
        &rootfs.to_string_lossy(),
        "--binary",
        &binary.to_string_lossy(),
        "--boot-mib",
        "40",
        "--root-free-mib",
        "16",
    ]);
    assert!(
        !out.join("bramble-armv7.img").exists(),
        "only per-node images"
    );
    for n in 1..=3u32 {
        let image = out.join(format!("bramble-armv7-node{n}.img"));
        let parts = partitions(&image);
        let node = fat_cat(&image, parts.boot, "bramble-node.toml");
        assert!(node.contains(&format!("\nid = {n}\n")), "node {n}: {node}");
        assert!(
            node.contains(
                "servers = [\"bramble-1.local\", \"bramble-2.local\", \"bramble-3.local\"]"
            ),
            "{node}"
        );
        let config = fat_cat(&image, parts.boot, "config.txt");
        assert!(!config.contains("arm_64bit"), "32-bit: {config}");
        check_bramble_root(&image, parts.root, &binary, dir.path());
        assert!(out
            .join(format!("bramble-armv7-node{n}.img.sha256"))
            .exists());
    }
}

#[test]
fn the_same_inputs_and_source_date_epoch_give_the_same_image() {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = fake_rootfs(dir.path());
    let binary = bramble_binary(dir.path());
    let mut sums = Vec::new();
    for run in ["a", "b"] {
        let out = dir.path().join(run);
        build_image(&[
            "--arch",
            "aarch64",
            "--no-xz",
            "--out",
            &out.to_string_lossy(),
            "--rootfs",
            &rootfs.to_string_lossy(),
            "--binary",
            &binary.to_string_lossy(),
            "--boot-mib",
            "40",
            "--root-free-mib",
            "16",
        ]);
        sums.push(std::fs::read_to_string(out.join("bramble-aarch64.img.sha256")).unwrap());
        // Reading the tree moves its access times; the next build must not carry them.
        let accessed = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        std::fs::File::open(rootfs.join("etc/hosts"))
            .unwrap()
            .set_times(std::fs::FileTimes::new().set_accessed(accessed))
            .unwrap();
    }
    assert_eq!(sums[0], sums[1]);
}

/// An MBR image with a FAT boot and an ext4 root partition, shaped like Raspberry Pi OS.
fn synthetic_raspios(dir: &Path) -> PathBuf {
    let boot_dir = dir.join("base-boot");
    write(
        &boot_dir,
        "config.txt",
        b"# Raspberry Pi OS config\ndtparam=audio=on\n",
    );
    write(
        &boot_dir,
        "cmdline.txt",
        b"console=serial0,115200 root=PARTUUID=abcdef01-02 rootwait\n",
    );
    let root_dir = dir.join("base-root");
    write(
        &root_dir,
        "etc/os-release",
        b"PRETTY_NAME=\"Raspbian GNU/Linux 12 (bookworm)\"\n",
    );
    write(
        &root_dir,
        "etc/fstab",
        b"PARTUUID=abcdef01-02 / ext4 defaults,noatime 0 1\n",
    );
    write(&root_dir, "usr/lib/systemd/system/ssh.service", b"[Unit]\n");
    std::fs::create_dir_all(root_dir.join("etc/systemd/system/multi-user.target.wants")).unwrap();
    std::os::unix::fs::symlink("usr/lib", root_dir.join("lib")).unwrap();
    let boot = dir.join("base-boot.vfat");
    sh(
        "mkfs.vfat",
        &[
            "-F",
            "32",
            "-n",
            "bootfs",
            "-C",
            &boot.to_string_lossy(),
            &(40 * 1024).to_string(),
        ],
    );
    for f in ["config.txt", "cmdline.txt"] {
        sh(
            "mcopy",
            &[
                "-i",
                &boot.to_string_lossy(),
                &boot_dir.join(f).to_string_lossy(),
                "::/",
            ],
        );
    }
    let root = dir.join("base-root.ext4");
    sh(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-L",
            "rootfs",
            "-d",
            &root_dir.to_string_lossy(),
            &root.to_string_lossy(),
            "48M",
        ],
    );
    let image = dir.join("raspios.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len((8 + 40 + 48) << 20)
        .unwrap();
    let table = "label: dos\nlabel-id: 0xabcdef01\nunit: sectors\n\nstart=16384, size=81920, type=c\nstart=98304, size=98304, type=83\n";
    let mut child = Command::new("sfdisk")
        .arg("--quiet")
        .arg(&image)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), table.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
    for (part, seek_mib) in [(&boot, "8"), (&root, "48")] {
        sh(
            "dd",
            &[
                &format!("if={}", part.display()),
                &format!("of={}", image.display()),
                "bs=1M",
                &format!("seek={seek_mib}"),
                "conv=notrunc",
                "status=none",
            ],
        );
    }
    sh("xz", &["-T1", "-0", &image.to_string_lossy()]);
    dir.join("raspios.img.xz")
}

#[test]
fn base_mode_writes_bramble_into_a_raspberry_pi_os_image() {
    let dir = tempfile::tempdir().unwrap();
    let base = synthetic_raspios(dir.path());
    let binary = bramble_binary(dir.path());
    let out = dir.path().join("out");
    build_image(&[
        "--arch",
        "aarch64",
        "--base",
        &base.to_string_lossy(),
        "--nodes",
        "2",
        "--no-xz",
        "--out",
        &out.to_string_lossy(),
        "--binary",
        &binary.to_string_lossy(),
    ]);
    for n in 1..=2u32 {
        let image = out.join(format!("bramble-raspios-aarch64-node{n}.img"));
        let parts = partitions(&image);
        assert_eq!((parts.boot, parts.root), (8 << 20, 48 << 20));
        assert_eq!(parts.disk_id, "abcdef01", "the base image's table is kept");
        let node = fat_cat(&image, parts.boot, "bramble-node.toml");
        assert!(node.contains(&format!("\nid = {n}\n")), "{node}");
        assert!(
            fat_cat(&image, parts.boot, "config.txt").contains("dtparam=audio=on"),
            "the base's boot files are kept"
        );
        check_bramble_root(&image, parts.root, &binary, dir.path());
        assert!(ext4(&image, parts.root, "cat /etc/os-release").contains("Raspbian"));
        assert_eq!(
            ext4(&image, parts.root, "cat /etc/fstab"),
            "PARTUUID=abcdef01-02 / ext4 defaults,noatime 0 1\n",
            "Raspberry Pi OS's fstab is kept"
        );
    }
}
