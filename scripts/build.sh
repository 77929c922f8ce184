#!/usr/bin/env bash
# Configures and builds Headroom into ./build (Release with debug info).
# CUDA kernels are compiled when nvcc is found (e.g. /usr/local/cuda/bin/nvcc).
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${JOBS:-$(nproc)}"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
cmake --build build -j "$JOBS"
