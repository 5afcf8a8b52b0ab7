#!/usr/bin/env bash
# Make sure the Debian packages cgunicorn needs are installed.
#
#   tools/deps.sh            build, run and test packages
#   tools/deps.sh fuzz       the above plus the libFuzzer runtime
#   tools/deps.sh bench      the above plus uWSGI and nginx, to compare with
#
# Missing packages are installed with apt-get when running as root (CI runs
# as root on a fresh machine); otherwise the exact command to run is printed
# and the script fails, so nothing is ever half-installed behind your back.
set -euo pipefail

pkgs=(
  make meson ninja-build pkg-config gcc clang
  python3 python3-dev python3-venv libcmocka-dev libuv1-dev libssl-dev zlib1g-dev libnghttp2-dev
  python3-pytest python3-requests python3-psutil python3-flask python3-django python3-trustme
  wrk gunicorn nginx-light
  # the balancers of tests/integration/test_fleet.py
  haproxy
)
if [ "${1:-}" = fuzz ]; then
  # clang's -fsanitize=fuzzer runtime is only a Recommends of clang-14, so a
  # --no-install-recommends install lacks it; llvm puts llvm-symbolizer on
  # PATH, without which a crash's stack has no function names or lines.
  pkgs+=(libclang-rt-14-dev llvm)
fi
if [ "${1:-}" = bench ]; then
  pkgs+=(uwsgi-core uwsgi-plugin-python3 nginx-light nghttp2-client)
fi

missing=()
for p in "${pkgs[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  if [ "$status" != installed ]; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing Debian packages: ${missing[*]}" >&2
  echo "deps: install them with:" >&2
  echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
