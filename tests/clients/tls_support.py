"""Certificates for TLS tests, made by `bramble certs` (the tool users run), and the `[tls]`
section that points a node at them."""
import subprocess

from conftest import BINARY


def certs(*args):
    result = subprocess.run([str(BINARY), "certs", *args], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout.decode()


class Pki:
    """A cluster CA under `root/name`, node and client certificates signed by it."""

    def __init__(self, root, name="ca"):
        self.root = root
        self.ca_dir = root / name
        certs("ca", "--out", str(self.ca_dir), "--name", f"test {name}")
        self.ca = self.ca_dir / "ca.pem"

    def node(self, node_id=1, ips=("127.0.0.1",), hosts=("localhost",)):
        out = self.root / f"{self.ca_dir.name}-node-{node_id}"
        args = ["node", "--ca", str(self.ca_dir), "--id", str(node_id), "--out", str(out)]
        for ip in ips:
            args += ["--ip", ip]
        for host in hosts:
            args += ["--host", host]
        certs(*args)
        return out

    def client(self, name):
        out = self.root / f"{self.ca_dir.name}-client-{name}"
        certs("client", "--ca", str(self.ca_dir), "--name", name, "--out", str(out))
        return out / f"{name}.pem", out / f"{name}.key"

    def tls_section(self, node_dir, client_auth="none"):
        return (
            "[tls]\n"
            f'cert_file = "{node_dir / "node.pem"}"\n'
            f'key_file = "{node_dir / "node.key"}"\n'
            f'ca_file = "{node_dir / "ca.pem"}"\n'
            f'client_auth = "{client_auth}"\n'
        )
