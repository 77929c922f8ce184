#!/usr/bin/env bash
# Configures and builds Headroom into ./build (Release with debug info).
# CUDA kernels are compiled when nvcc is found (e.g. /usr/local/cuda/bin/nvcc).
# Extra arguments go to the CMake configure step. TARGETS (optional, space-
# separated) builds only those targets, e.g. the Docker image's
# TARGETS="headroom-server headroom"; unset (as in CI) builds everything.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${JOBS:-$(nproc)}"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
target_args=()
if [ -n "${TARGETS:-}" ]; then
  read -r -a target_list <<<"$TARGETS"
  target_args=(--target "${target_list[@]}")
fi
cmake --build build -j "$JOBS" "${target_args[@]}"
