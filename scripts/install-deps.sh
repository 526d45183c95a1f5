#!/usr/bin/env bash
# Installs the Debian packages Cairn needs to build and test, only if they
# are missing: Debian's RocksDB (linked instead of compiled, see DESIGN.md
# §10), libclang for the RocksDB bindings, Prometheus (promtool and the
# server, for the metrics, rules and alert tests), systemd
# (`systemd-analyze verify` of the units in deploy/systemd), iproute2 and
# iptables for the fault-injection harness (`cairn-jepsen`: network
# namespaces, partitions, packet loss) and util-linux's setpriv for its
# no-root test, and fuse3 for `cairn mount` (fusermount3 for non-root users)
# and the harness's power-loss filesystem (both tests mount as root through
# /dev/fuse, without libfuse), chromium with chromium-driver for the web
# console's browser tests (node/tests/web.rs drives headless Chromium over
# WebDriver), and curl, which the downloads role's install script fetches the
# client with (its test runs the script). The object-vault tests
# (client/tests/object.rs) need openssh-server (sshd, started by the test on
# loopback) and openssh-client (ssh, which OpenDAL's SFTP service drives;
# ssh-keygen), and two S3 servers installed into $CAIRN_TOOLS (default
# ~/.cache/cairn-tools): moto's server from PyPI in a venv (python3-venv:
# Debian's pip refuses to install into the system Python) and s3s-fs from
# crates.io. Needs root (or sudo) the first time only.
set -euo pipefail

packages=(librocksdb-dev libclang-dev prometheus systemd iproute2 iptables util-linux fuse3
  chromium chromium-driver curl openssh-server openssh-client python3-venv)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages: ${missing[*]}" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "need root or sudo to apt-get install ${missing[*]}" >&2; exit 1; }
    sudo=sudo
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The S3 test servers (the tests look on PATH, then here).
tools="${CAIRN_TOOLS:-$HOME/.cache/cairn-tools}"
if ! command -v moto_server >/dev/null && [ ! -x "$tools/moto/bin/moto_server" ]; then
  echo "installing moto[server] into $tools/moto" >&2
  /usr/bin/python3 -m venv "$tools/moto"
  "$tools/moto/bin/pip" install -q 'moto[server]'
fi
if ! command -v s3s-fs >/dev/null && [ ! -x "$tools/bin/s3s-fs" ]; then
  echo "installing s3s-fs into $tools/bin" >&2
  # 0.14 is the newest release that builds with our toolchain.
  CARGO_TARGET_DIR="$tools/target" cargo install -q s3s-fs@0.14.1 --locked \
    --features binary --root "$tools"
  rm -rf "$tools/target"
fi
