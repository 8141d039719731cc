#!/usr/bin/env bash
# Install what srlm needs (Debian 12 packages), configure and build into build/.
# Used by both quick-start commands in README.md and by .ci/run.
#   SRLM_WERROR=OFF  build without -Werror (e.g. with a newer compiler than Debian 12's)
#   SRLM_CUDA=OFF    skip the CUDA targets even when the toolkit is installed
#   BUILD_DIR=...    build somewhere other than build/
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config libopenmpi-dev openmpi-bin libyaml-dev
          libopenblas-openmp-dev libcjson-dev libsentencepiece-dev sentencepiece)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

build="${BUILD_DIR:-build}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSRLM_WERROR="${SRLM_WERROR:-ON}" \
      -DSRLM_CUDA="${SRLM_CUDA:-AUTO}"
cmake --build "$build" -j "$(nproc)"
