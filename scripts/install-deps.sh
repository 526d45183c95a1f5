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
# client with (its test runs the script). Needs root (or sudo) the first time
# only.
set -euo pipefail

packages=(librocksdb-dev libclang-dev prometheus systemd iproute2 iptables util-linux fuse3 chromium chromium-driver curl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing system packages: ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root or sudo to apt-get install ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
