#!/usr/bin/env bash
# Release builds for the Pi targets, then each binary under qemu-user: `--version`, and a
# short smoke test (start, produce, consume on loopback with kcat).
set -euo pipefail
cd "$(dirname "$0")/.."

smoke() {
  local qemu=$1 binary=$2
  # qemu-user finds the target's dynamic loader and libc in the cross sysroot.
  export QEMU_LD_PREFIX=$3
  "$qemu" "$binary" --version
  local dir port pid
  dir=$(mktemp -d)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  printf '[node]\nid = 1\n[broker]\nlisteners = ["127.0.0.1:%s"]\nlog_dirs = ["%s/kafka-logs"]\n' "$port" "$dir" > "$dir/bramble.toml"
  "$qemu" "$binary" serve --config "$dir/bramble.toml" 2>"$dir/log" &
  pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.2
  done
  printf 'one\ntwo\nthree\n' | kcat -b "127.0.0.1:$port" -P -t smoke
  local got
  got=$(kcat -b "127.0.0.1:$port" -C -t smoke -e -q | tr '\n' ' ')
  kill -TERM "$pid"; wait "$pid"
  rm -rf "$dir"
  if [[ "$got" != "one two three " ]]; then
    echo "smoke test under $qemu failed: got '$got'" >&2
    exit 1
  fi
  echo "smoke test under $qemu: ok"
}

# 16 KiB jemalloc pages on aarch64 (Pi 5 kernels); see .cargo/config.toml.
JEMALLOC_SYS_WITH_LG_PAGE=14 cargo build --locked --release --target aarch64-unknown-linux-gnu
cargo build --locked --release --target armv7-unknown-linux-gnueabihf
ls -l target/aarch64-unknown-linux-gnu/release/bramble target/armv7-unknown-linux-gnueabihf/release/bramble

smoke qemu-aarch64-static target/aarch64-unknown-linux-gnu/release/bramble /usr/aarch64-linux-gnu
smoke qemu-arm-static target/armv7-unknown-linux-gnueabihf/release/bramble /usr/arm-linux-gnueabihf
