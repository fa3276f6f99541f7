#!/usr/bin/env bash
# The whole test suite, runnable on a fresh Debian 12 machine as root: installs what the
# tests need (Debian packages, rustup targets, a Python venv with the client libraries),
# then builds and runs everything. `.ci/run` calls exactly this.
#
#   BRAMBLE_SLOW_TESTS=1   also run the slow emulation tests (see README)
#   BRAMBLE_SKIP_CROSS=1   skip the aarch64/armv7 release builds (local iteration only)
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
step() { echo; echo "=== $* [$(( $(date +%s) - started ))s]"; }

APT_PACKAGES=(
  kcat                      # librdkafka's CLI: real-client tests
  zookeeper                 # zkCli.sh and the reference server for differential tests
  mosquitto mosquitto-clients
  python3-venv
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross      # cross linkers
  gcc-arm-linux-gnueabihf libc6-dev-armhf-cross
  qemu-user-static          # run the cross-built binaries
  dosfstools mtools fdisk e2fsprogs xz-utils       # image assembly tests (mkfs.vfat, mcopy, sfdisk, mkfs.ext4/debugfs)
  binutils                  # objcopy, used by the image tests
)

# The emulated boot (BRAMBLE_SLOW_TESTS=1 only: qemu-system-arm and its libraries are ~70 MB):
# mmdebstrap builds the image's root file system (arch-test: its foreign-architecture check),
# qemu-system-aarch64 boots it, ssh logs in with the test's key.
if [[ "${BRAMBLE_SLOW_TESTS:-0}" == 1 ]]; then
  APT_PACKAGES+=(mmdebstrap arch-test qemu-system-arm openssh-client)
fi

step "Debian packages"
missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  # No services are started by these packages' installs (zookeeper is not zookeeperd).
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

step "rustup targets"
rustup target add aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf >/dev/null 2>&1 \
  || rustup target add aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf

step "Python venv with the client libraries"
if [[ ! -x .venv/bin/python ]] || ! cmp -s tests/requirements.txt .venv/requirements.installed; then
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
  cp tests/requirements.txt .venv/requirements.installed
fi

step "build (debug)"
cargo build --locked --bins

if [[ "${BRAMBLE_SKIP_CROSS:-0}" != 1 ]]; then
  step "cross builds (release) and qemu-user smoke tests"
  tests/cross-build.sh
fi

step "cargo test (unit and integration tests, the image builder too)"
cargo test --locked --workspace --lib --bins --tests   # not benches: they drive live servers (bench/)

step "clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings

step "real-client tests (pytest)"
pytest_args=(-q -p no:cacheprovider tests/clients)
[[ "${BRAMBLE_SLOW_TESTS:-0}" == 1 ]] && pytest_args+=(--slow)
.venv/bin/pytest "${pytest_args[@]}"
echo "suite finished in $(( $(date +%s) - started ))s"
