#!/usr/bin/env bash
# GPU check of the CUDA backend (issue 6): build, GPU tests, benchmark.
#
#   scripts/gpu-check.sh prepare   # here (no GPU needed): build for sm_90 and
#                                  # bundle the binaries and their shared
#                                  # libraries into .gpucheck/bundle.tar.gz
#   scripts/gpu-check.sh run       # on the GPU machine: nvidia-smi, the GPU
#                                  # tests (kernels, then the whole model vs
#                                  # the CPU), the benchmarks (kernels, then
#                                  # the forward pass), and where ncu exists
#                                  # the kernel times of a 4096-token prefill
#                                  # (ncu_prefill.csv; summarize it here with
#                                  # scripts/ncu_summary.py); all to $OUT
#   scripts/gpu-check.sh build-run # on a GPU machine with the project's
#                                  # dependencies installed: configure, build
#                                  # (-j16) and run, no bundle
#
# The lent GPU machines have CUDA, CMake and ninja but not the project's C++
# dependencies (abseil, GoogleTest, OpenBLAS), and nothing can be installed
# there, hence `prepare` + `run`: the bundle travels with the working tree
# (.gpucheck is git-ignored through .git/info/exclude) and needs only the
# machine's libcublas (CUDA 13).
#
# Environment: BUILD_DIR (prepare/build-run; default build-gpu),
# CMAKE_SOURCE (prepare; a CMake project building the targets in BINS;
# default the repository), OUT (run; default /tmp/gpu-check),
# HEADROOM_SHARED_DIR (prepare, build-run; default ../shared),
# MODEL_BENCH_FLAGS (run; extra flags of cuda_model_bench).
set -u -o pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}
OUT=${OUT:-/tmp/gpu-check}
BUILD_DIR=${BUILD_DIR:-build-gpu}
BINS="kernels_cuda_test cuda_model_test cuda_engine_test cuda_bench cuda_model_bench"
SHARED=${HEADROOM_SHARED_DIR:-$(pwd)/../shared}

build() {
  cmake -S "${CMAKE_SOURCE:-.}" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CUDA_ARCHITECTURES=90 >"$1" 2>&1 || { tail -30 "$1"; return 1; }
  ninja -C "$BUILD_DIR" -j"${JOBS:-16}" $BINS >>"$1" 2>&1 || { tail -30 "$1"; return 1; }
}

find_bin() {  # the repository's build puts them under tests/unit, tests/engine and bench
  local f
  for f in "$BUILD_DIR/$1" "$BUILD_DIR/tests/unit/$1" "$BUILD_DIR/tests/engine/$1" "$BUILD_DIR/bench/$1"; do
    [ -x "$f" ] && { echo "$f"; return; }
  done
}

run_checks() {  # $1: folder holding the binaries of BINS
  local bin=$1 test_rc=0 bench_rc=0 t0 rc
  mkdir -p "$OUT"
  echo "== nvidia-smi"
  nvidia-smi 2>&1 | tee "$OUT/nvidia-smi.txt"
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem,driver_version --format=csv 2>&1 |
    tee -a "$OUT/nvidia-smi.txt"
  : >"$OUT/gpu_tests.txt"
  for t in kernels_cuda_test:60 cuda_model_test:100 cuda_engine_test:60; do  # ctest label gpu: the same binaries
    echo "== GPU tests: ${t%%:*}" | tee -a "$OUT/gpu_tests.txt"
    t0=$SECONDS
    timeout "${t##*:}" "$bin/${t%%:*}" --gtest_color=no 2>&1 | tee -a "$OUT/gpu_tests.txt"
    rc=$?
    [ "$rc" = 0 ] || test_rc=$rc
    echo "${t%%:*}: exit $rc, $((SECONDS - t0)) s" | tee -a "$OUT/gpu_tests.txt"
  done
  : >"$OUT/bench.stderr"
  for b in cuda_bench:45 cuda_model_bench:90; do
    echo "== benchmark: ${b%%:*}"
    t0=$SECONDS
    local flags=""
    [ "${b%%:*}" = cuda_model_bench ] && flags=${MODEL_BENCH_FLAGS:-}
    # shellcheck disable=SC2086
    timeout "${b##*:}" "$bin/${b%%:*}" $flags 2>>"$OUT/bench.stderr" | tee "$OUT/${b%%:*}.md"
    rc=$?
    [ "$rc" = 0 ] || bench_rc=$rc
    echo "${b%%:*}: exit $rc, $((SECONDS - t0)) s" | tee -a "$OUT/bench.stderr"
  done
  cat "$OUT/bench.stderr"
  [ "$test_rc" = 0 ] && [ "$bench_rc" = 0 ]
}

profile_prefill() {  # $1: folder holding cuda_model_bench; kernel durations, one row per launch
  local ncu
  ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null)
  [ -n "$ncu" ] || { echo "no ncu: prefill profile skipped"; return 0; }
  echo "== ncu: kernel times of 4096-token prefills (cuda_model_bench)"
  (cd /tmp && timeout 120 "$ncu" --metrics gpu__time_duration.sum --csv --launch-count 1200 \
    "$1/cuda_model_bench" --prefill_tokens 4096 --decode_contexts 4096 --reps 1 --decode_tokens 2 \
    >"$OUT/ncu_prefill.csv" 2>"$OUT/ncu_prefill.err")
  echo "ncu: exit $?"
}

case "$mode" in
  prepare)
    JOBS=${JOBS:-2} build /tmp/gpu-check-build.log || exit 1
    rm -rf .gpucheck && mkdir -p .gpucheck/pkg/lib
    for b in $BINS; do
      f=$(find_bin $b)
      [ -n "$f" ] || { echo "missing $b"; exit 1; }
      strip --strip-debug -o ".gpucheck/pkg/$b" "$f"
      # Shared libraries outside glibc/libstdc++ and cuBLAS (on the machine).
      ldd "$f" | awk '/=> \//{print $3}' |
        grep -v -E '/(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s)\.so|libcublas' |
        xargs -r -I{} cp -nL {} .gpucheck/pkg/lib/
    done
    mkdir -p .gpucheck/pkg/shared/models
    cp "$SHARED"/models/stories260K.* .gpucheck/pkg/shared/models/ || exit 1
    tar -C .gpucheck -czf .gpucheck/bundle.tar.gz pkg && rm -rf .gpucheck/pkg
    grep -qx '/.gpucheck/' .git/info/exclude 2>/dev/null || echo '/.gpucheck/' >>.git/info/exclude
    ls -la .gpucheck
    ;;
  run)
    mkdir -p "$OUT" /tmp/gpucheck && tar -C /tmp/gpucheck -xzf .gpucheck/bundle.tar.gz || exit 1
    cublas=$(ls -d /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib 2>/dev/null | tr '\n' ':')
    pycublas=$(python3 -c 'import nvidia.cublas, os; print(os.path.dirname(nvidia.cublas.__file__) + "/lib")' 2>/dev/null)
    export LD_LIBRARY_PATH="/tmp/gpucheck/pkg/lib:${cublas}${pycublas}:${LD_LIBRARY_PATH:-}"
    export HEADROOM_SHARED_DIR=/tmp/gpucheck/pkg/shared
    for b in $BINS; do ldd "/tmp/gpucheck/pkg/$b" | grep -i 'not found'; done
    run_checks /tmp/gpucheck/pkg
    rc=$?
    profile_prefill /tmp/gpucheck/pkg
    exit $rc
    ;;
  build-run)
    build "$OUT/build.log" || exit 1
    mkdir -p "$BUILD_DIR/gpucheck-bin"
    for b in $BINS; do ln -sf "$(realpath "$(find_bin $b)")" "$BUILD_DIR/gpucheck-bin/$b"; done
    export HEADROOM_SHARED_DIR=$SHARED
    run_checks "$BUILD_DIR/gpucheck-bin"
    ;;
  *)
    echo "usage: $0 prepare|run|build-run" >&2
    exit 2
    ;;
esac
