"""The appliance, booted: the arm64 Debian image from `cargo image` under qemu-system-aarch64.

Slow (`--slow`, BRAMBLE_SLOW_TESTS=1 in tests/run-all.sh): a cached root file system makes the
image in a minute or two and the boot to READY takes a few minutes under TCG; without the cache
`cargo image` first runs mmdebstrap (about 30 minutes). Skipped, with the reason printed,
without the switch.

The `virt` machine has no Raspberry Pi firmware, so the kernel and initramfs are taken from the
image's FAT boot partition (mtools, no mounts) and passed with -kernel/-initrd; the kernel
command line is the image's own cmdline.txt (root=PARTUUID=...) with the Pi's consoles replaced
by the virt board's PL011 (ttyAMA0). The image is a virtio disk grown by 1 GiB, as if flashed
onto a larger card. User-mode networking forwards private loopback ports to the guest's Kafka
(9092), ZooKeeper (2181), admin HTTP (8080) and SSH (22); the node file on the boot partition
says `advertised_port` = the forwarded Kafka port, so Kafka clients on the host follow the
metadata back through the forward.

Checked: first boot read bramble-node.toml (id 3) and wrote myid, meta.properties, the hostname
and the stamp, and grew the root file system into the extra gigabyte; bramble.service reached
READY under systemd (Type=notify: `active` only after READY=1) as the `bramble` user;
`bramble status` answers on the node and from the host through the forwarded admin port; kcat
produces and consumes through the forwarded Kafka port; kazoo writes and reads a znode through
the forwarded ZooKeeper port; after a clean poweroff the image's ext4 holds myid (debugfs).
"""
import json
import os
import pathlib
import re
import shutil
import subprocess
import time

import pytest

from conftest import BINARY, ROOT, free_port, require_tool

pytestmark = pytest.mark.slow

NODE_ID = 3
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
ARM64_BRAMBLE = TARGET / "aarch64-unknown-linux-gnu" / "release" / "bramble"
# The builder's default cache is target/image-cache of the directory it runs in (here ROOT).
CACHE = pathlib.Path(os.environ.get("BRAMBLE_IMAGE_CACHE", ROOT / "target" / "image-cache"))
# Under TCG on a busy 2-core machine a Debian boot to multi-user takes minutes.
BOOT_TIMEOUT = float(os.environ.get("BRAMBLE_BOOT_TIMEOUT", "900"))


def run(args, timeout=120, **kwargs):
    out = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert out.returncode == 0, f"{args}: exit {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out.stdout


def partitions(image):
    table = json.loads(run(["sfdisk", "--json", str(image)]))["partitiontable"]
    boot, root = table["partitions"]
    return table["id"].removeprefix("0x"), boot["start"] * 512, root["start"] * 512


def build_image(out_dir, ssh_key):
    """`cargo image` for aarch64, raw (no xz), root's SSH key for the checks."""
    if not ARM64_BRAMBLE.exists():
        pytest.fail(f"{ARM64_BRAMBLE} is missing: build it with tests/cross-build.sh "
                    "(JEMALLOC_SYS_WITH_LG_PAGE=14 cargo build --release --target aarch64-unknown-linux-gnu)")
    cargo = os.environ.get("CARGO", "cargo")
    started = time.monotonic()
    # Without a cached root file system this runs mmdebstrap: allow for it.
    run([cargo, "run", "--quiet", "--package", "bramble-image", "--", "--arch", "aarch64",
         "--out", str(out_dir), "--no-xz", "--cache", str(CACHE), "--ssh-key", str(ssh_key)],
        timeout=3600, cwd=ROOT)
    print(f"image built in {time.monotonic() - started:.0f}s")
    image = out_dir / "bramble-aarch64.img"
    assert image.exists(), sorted(p.name for p in out_dir.iterdir())
    return image


class Vm:
    """One qemu-system-aarch64 `virt` guest with its serial console in a file."""

    def __init__(self, workdir, image, kernel, initrd, append, forwards):
        self.console_path = workdir / "console.log"
        self.forwards = forwards
        hostfwd = ",".join(f"hostfwd=tcp:127.0.0.1:{host}-:{guest}" for guest, host in forwards.items())
        self.args = [
            "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a53", "-smp", "2", "-m", "1024",
            "-nographic", "-no-reboot",
            "-kernel", str(kernel), "-initrd", str(initrd), "-append", append,
            "-drive", f"file={image},if=virtio,format=raw",
            "-netdev", f"user,id=net0,{hostfwd}", "-device", "virtio-net-device,netdev=net0",
        ]
        self.console = open(self.console_path, "wb")
        self.started = time.monotonic()
        self.process = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self.console,
                                        stderr=subprocess.STDOUT)

    def elapsed(self):
        return time.monotonic() - self.started

    def console_text(self):
        return self.console_path.read_bytes().decode("utf-8", "replace")

    def console_tail(self, lines=60):
        return "\n".join(self.console_text().splitlines()[-lines:])

    def alive(self):
        return self.process.poll() is None

    def stop(self):
        if self.alive():
            self.process.kill()
            self.process.wait(timeout=30)
        self.console.close()


class Ssh:
    def __init__(self, port, key):
        self.base = ["ssh", "-p", str(port), "-i", str(key), "-o", "BatchMode=yes",
                     "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                     "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", "root@127.0.0.1"]

    def run(self, command, timeout=60, check=True):
        out = subprocess.run(self.base + [command], capture_output=True, text=True, timeout=timeout)
        if check:
            assert out.returncode == 0, f"{command}: exit {out.returncode}\n{out.stdout}\n{out.stderr}"
        return out


def wait_until(vm, what, probe, timeout):
    """Poll `probe` (returns a truthy value when done) until `timeout` seconds of VM time."""
    deadline = vm.started + timeout
    while time.monotonic() < deadline:
        if not vm.alive():
            pytest.fail(f"qemu exited ({vm.process.returncode}) waiting for {what}; console:\n"
                        f"{vm.console_tail()}")
        try:
            value = probe()
        except (subprocess.TimeoutExpired, OSError):
            value = None
        if value:
            return value
        time.sleep(3)
    pytest.fail(f"no {what} after {timeout:.0f}s; console:\n{vm.console_tail()}")


def test_the_arm64_image_boots_to_ready_and_serves_kafka_and_zookeeper(tmp_path):
    for tool in ["qemu-system-aarch64", "mcopy", "mdir", "sfdisk", "debugfs", "ssh", "ssh-keygen",
                 "kcat", "mmdebstrap", "qemu-aarch64-static"]:
        require_tool(tool)
    key = tmp_path / "id_ed25519"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bramble-boot-test", "-f", str(key)])
    image = build_image(tmp_path / "out", key.with_suffix(".pub"))
    image_bytes = image.stat().st_size
    disk_id, boot_offset, root_offset = partitions(image)
    fat = f"{image}@@{boot_offset}"
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")

    # This node's file, as a user would edit it on a PC: id 3, and Kafka's advertised address is
    # the host side of the port forward.
    ports = {9092: free_port(), 2181: free_port(), 8080: free_port(), 22: free_port()}
    node_file = tmp_path / "bramble-node.toml"
    node_file.write_text(f'id = {NODE_ID}\nadvertised_host = "127.0.0.1"\n'
                         f'advertised_port = {ports[9092]}\n')
    run(["mcopy", "-o", "-i", fat, str(node_file), "::/bramble-node.toml"], env=env)

    # Kernel and initramfs from the boot partition (what the Pi firmware would load).
    names = run(["mdir", "-b", "-i", fat, "::/"], env=env).split()
    names = [n.removeprefix("::/") for n in names]
    kernel = next(n for n in names if n.startswith("vmlinuz-"))
    initrd = next(n for n in names if n.startswith("initrd.img-"))
    for name in (kernel, initrd):
        run(["mcopy", "-n", "-i", fat, f"::/{name}", str(tmp_path / name)], env=env)
    cmdline = run(["mtype", "-i", fat, "::/cmdline.txt"], env=env).split()
    assert f"root=PARTUUID={disk_id}-02" in cmdline, cmdline
    append = " ".join([w for w in cmdline if not w.startswith("console=")] + ["console=ttyAMA0"])

    # A bigger "card": first boot grows the root partition and file system into it.
    with open(image, "r+b") as f:
        f.truncate(image_bytes + (1 << 30))

    vm = Vm(tmp_path, image, tmp_path / kernel, tmp_path / initrd, append, ports)
    ssh = Ssh(ports[22], key)
    try:
        wait_until(vm, "SSH login", lambda: ssh.run("true", timeout=30, check=False).returncode == 0,
                   BOOT_TIMEOUT)
        ssh_at = vm.elapsed()

        def bramble_active():
            out = ssh.run("systemctl show -p ActiveState -p SubState -p Result bramble", check=False)
            if "ActiveState=failed" in out.stdout:
                journal = ssh.run("journalctl -b -u bramble -u bramble-firstboot --no-pager | tail -40",
                                  check=False).stdout
                pytest.fail(f"bramble.service failed:\n{out.stdout}\n{journal}")
            return "ActiveState=active" in out.stdout and "SubState=running" in out.stdout

        wait_until(vm, "bramble.service active (READY=1)", bramble_active, BOOT_TIMEOUT)
        ready_at = vm.elapsed()

        # First boot: myid, meta.properties, hostname, the stamp and its log line, root grown.
        assert ssh.run("cat /var/lib/zookeeper/myid").stdout == f"{NODE_ID}\n"
        meta = ssh.run("cat /var/lib/kafka-logs/meta.properties").stdout
        assert f"broker.id={NODE_ID}\n" in meta, meta
        assert ssh.run("hostname").stdout.strip() == f"bramble-{NODE_ID}"
        assert ssh.run("cat /var/lib/bramble/firstboot.done").stdout == f"id = {NODE_ID}\n"
        boot_log = ssh.run("cat /boot/firmware/bramble-firstboot.log").stdout
        assert f"ok: node {NODE_ID} (bramble-{NODE_ID}) initialised" in boot_log, boot_log
        assert ssh.run("systemctl is-active bramble-firstboot").stdout.strip() == "active"
        root_bytes = int(ssh.run("findmnt -bno SIZE /").stdout)
        assert root_bytes > image_bytes, f"root file system not grown: {root_bytes} bytes"
        config = ssh.run("cat /etc/bramble/bramble.toml").stdout
        assert f'advertised_listeners = ["127.0.0.1:{ports[9092]}"]' in config, config

        # bramble under systemd: the service's user, its notify status.
        user = ssh.run("ps -o user= -C bramble").stdout.split()
        assert user == ["bramble"], user
        status_text = ssh.run("systemctl show -p StatusText --value bramble").stdout
        assert status_text.startswith(f"serving as node {NODE_ID}"), status_text
        # Every card makes its own SSH host keys (the image ships none).
        assert "ssh_host_ed25519_key" in ssh.run("ls /etc/ssh").stdout
        # The serial console showed the boot and the firstboot unit's output.
        console = vm.console_text()
        assert "Booting Linux" in console and "bramble" in console, vm.console_tail()

        # `bramble status` on the node, and from the host through the forwarded admin port.
        on_node = ssh.run("bramble status").stdout
        assert re.search(rf"^{NODE_ID}\s", on_node, re.M), on_node
        from_host = run([str(BINARY), "status", "--json", "--admin", f"127.0.0.1:{ports[8080]}",
                         "--bootstrap-server", f"127.0.0.1:{ports[9092]}"], timeout=60)
        health = json.loads(from_host)["nodes"][0].get("health", {})
        assert health.get("node") == NODE_ID and health.get("serving") is True, from_host

        # kcat through the forwarded Kafka port (the metadata points back at it).
        broker = f"127.0.0.1:{ports[9092]}"
        run(["kcat", "-b", broker, "-P", "-t", "appliance"], input="one\ntwo\nthree\n", timeout=120)
        got = run(["kcat", "-b", broker, "-C", "-t", "appliance", "-o", "beginning", "-e", "-q"],
                  timeout=120)
        assert got.split() == ["one", "two", "three"], got

        # kazoo through the forwarded ZooKeeper port.
        from kazoo.client import KazooClient
        zk = KazooClient(hosts=f"127.0.0.1:{ports[2181]}", timeout=30)
        zk.start(timeout=60)
        try:
            zk.create("/appliance", b"booted")
            assert zk.get("/appliance")[0] == b"booted"
        finally:
            zk.stop()
            zk.close()

        # A clean poweroff; then the image file itself holds what first boot wrote.
        ssh.run("systemctl poweroff", check=False)
        vm.process.wait(timeout=300)
        halted_at = vm.elapsed()
    finally:
        vm.stop()
    myid = run(["debugfs", "-R", "cat /var/lib/zookeeper/myid", f"{image}?offset={root_offset}"])
    assert myid == f"{NODE_ID}\n", myid
    print(f"\nemulated boot: SSH up after {ssh_at:.0f}s, bramble READY after {ready_at:.0f}s, "
          f"powered off after {halted_at:.0f}s (qemu start = 0); image {image_bytes} bytes")
