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
  local dir port zk_port admin_port pid
  dir=$(mktemp -d)
  free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  port=$(free_port); zk_port=$(free_port); admin_port=$(free_port)
  # Every listener on a private port and every directory under $dir: nothing of the host's.
  cat > "$dir/bramble.toml" <<TOML
[node]
id = 1
[broker]
listeners = ["127.0.0.1:$port"]
log_dirs = ["$dir/kafka-logs"]
[coordinator]
listen = "127.0.0.1:$zk_port"
data_dir = "$dir/zookeeper"
[admin]
listen = "127.0.0.1:$admin_port"
TOML
  "$qemu" "$binary" serve --config "$dir/bramble.toml" 2>"$dir/log" &
  pid=$!
  local up=0
  for _ in $(seq 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then up=1; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if [[ $up != 1 ]]; then
    echo "bramble under $qemu did not start listening; its log:" >&2
    cat "$dir/log" >&2
    exit 1
  fi
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

# Both targets build at once: most of a release build is the final fat-LTO step, which uses one
# core, so two of them side by side fill a 2-core machine. armv7 gets its own target directory
# because cargo locks the host build directory (build scripts) that both would share.
# 16 KiB jemalloc pages on aarch64 (Pi 5 kernels); see .cargo/config.toml.
JEMALLOC_SYS_WITH_LG_PAGE=14 cargo build --locked --release --target aarch64-unknown-linux-gnu &
aarch64_build=$!
CARGO_TARGET_DIR=target/armv7 cargo build --locked --release --target armv7-unknown-linux-gnueabihf
wait "$aarch64_build"
aarch64_bin=target/aarch64-unknown-linux-gnu/release/bramble
armv7_bin=target/armv7/armv7-unknown-linux-gnueabihf/release/bramble
ls -l "$aarch64_bin" "$armv7_bin"

smoke qemu-aarch64-static "$aarch64_bin" /usr/aarch64-linux-gnu
smoke qemu-arm-static "$armv7_bin" /usr/arm-linux-gnueabihf
