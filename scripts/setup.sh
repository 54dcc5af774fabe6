#!/usr/bin/env bash
# Installs the Debian packages linfuse needs, only when something is missing (idempotent, quiet when done).
# Usage: scripts/setup.sh [core|data|bench|all]   (default: all but the PyTorch peer used by benchmarks)
set -euo pipefail
want="${1:-all}"
core=(build-essential cmake pkg-config libopenblas-dev liblapacke-dev libtbb-dev catch2 libcxxopts-dev
      nlohmann-json3-dev zlib1g-dev libsentencepiece-dev libnlopt-cxx-dev libbenchmark-dev)
data=(gnuplot-nox dataset-fashion-mnist fortunes wamerican nodejs npm)
bench=(python3-torch)
case "$want" in
  core) pkgs=("${core[@]}") ;;
  data) pkgs=("${data[@]}") ;;
  bench) pkgs=("${core[@]}" "${bench[@]}") ;;
  all) pkgs=("${core[@]}" "${data[@]}") ;;
  *) echo "setup.sh: unknown set '$want' (core|data|bench|all)" >&2; exit 2 ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node/npm may come from outside Debian's packages on some machines; accept any working npm.
if command -v npm >/dev/null 2>&1; then
  tmp=(); for p in "${missing[@]}"; do [[ "$p" == nodejs || "$p" == npm ]] || tmp+=("$p"); done; missing=("${tmp[@]}")
fi
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
