#!/usr/bin/env bash
# GPU check of the CUDA backend (issue 6): build, GPU tests, benchmark.
#
#   scripts/gpu-check.sh prepare   # here (no GPU needed): build for sm_90 and
#                                  # bundle the binaries and their shared
#                                  # libraries into .gpucheck/bundle.tar.gz
#   scripts/gpu-check.sh run       # on the GPU machine: nvidia-smi, the GPU
#                                  # tests, the benchmark; everything to $OUT
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
# CMAKE_SOURCE (prepare; a CMake project building the targets kernels_cuda_test
# and cuda_bench; default the repository), OUT (run; default /tmp/gpu-check).
set -u -o pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}
OUT=${OUT:-/tmp/gpu-check}
BUILD_DIR=${BUILD_DIR:-build-gpu}

build() {
  cmake -S "${CMAKE_SOURCE:-.}" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CUDA_ARCHITECTURES=90 >"$1" 2>&1 || { tail -30 "$1"; return 1; }
  ninja -C "$BUILD_DIR" -j"${JOBS:-16}" kernels_cuda_test cuda_bench >>"$1" 2>&1 || { tail -30 "$1"; return 1; }
}

find_bin() {  # the repository's build puts them under tests/unit and bench
  local f
  for f in "$BUILD_DIR/$1" "$BUILD_DIR/tests/unit/$1" "$BUILD_DIR/bench/$1"; do
    [ -x "$f" ] && { echo "$f"; return; }
  done
}

run_checks() {  # $1: kernels_cuda_test, $2: cuda_bench
  mkdir -p "$OUT"
  echo "== nvidia-smi"
  nvidia-smi 2>&1 | tee "$OUT/nvidia-smi.txt"
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem,driver_version --format=csv 2>&1 |
    tee -a "$OUT/nvidia-smi.txt"
  echo "== GPU tests (ctest label gpu: the same binary)"
  local t0=$SECONDS
  timeout 240 "$1" --gtest_color=no 2>&1 | tee "$OUT/gpu_tests.txt"
  local test_rc=$?
  echo "gpu tests: exit $test_rc, $((SECONDS - t0)) s" | tee -a "$OUT/gpu_tests.txt"
  echo "== benchmark"
  t0=$SECONDS
  timeout 300 "$2" 2>"$OUT/cuda_bench.stderr" | tee "$OUT/cuda_bench.md"
  local bench_rc=$?
  echo "bench: exit $bench_rc, $((SECONDS - t0)) s" | tee -a "$OUT/cuda_bench.stderr"
  cat "$OUT/cuda_bench.stderr"
  [ "$test_rc" = 0 ] && [ "$bench_rc" = 0 ]
}

case "$mode" in
  prepare)
    JOBS=${JOBS:-2} build /tmp/gpu-check-build.log || exit 1
    rm -rf .gpucheck && mkdir -p .gpucheck/pkg/lib
    for b in kernels_cuda_test cuda_bench; do
      f=$(find_bin $b)
      [ -n "$f" ] || { echo "missing $b"; exit 1; }
      strip --strip-debug -o ".gpucheck/pkg/$b" "$f"
      # Shared libraries outside glibc/libstdc++ and cuBLAS (on the machine).
      ldd "$f" | awk '/=> \//{print $3}' |
        grep -v -E '/(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s)\.so|libcublas' |
        xargs -r -I{} cp -nL {} .gpucheck/pkg/lib/
    done
    tar -C .gpucheck -czf .gpucheck/bundle.tar.gz pkg && rm -rf .gpucheck/pkg
    grep -qx '/.gpucheck/' .git/info/exclude 2>/dev/null || echo '/.gpucheck/' >>.git/info/exclude
    ls -la .gpucheck
    ;;
  run)
    mkdir -p "$OUT" /tmp/gpucheck && tar -C /tmp/gpucheck -xzf .gpucheck/bundle.tar.gz || exit 1
    cublas=$(ls -d /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib 2>/dev/null | tr '\n' ':')
    pycublas=$(python3 -c 'import nvidia.cublas, os; print(os.path.dirname(nvidia.cublas.__file__) + "/lib")' 2>/dev/null)
    export LD_LIBRARY_PATH="/tmp/gpucheck/pkg/lib:${cublas}${pycublas}:${LD_LIBRARY_PATH:-}"
    ldd /tmp/gpucheck/pkg/cuda_bench | grep -i 'not found'
    run_checks /tmp/gpucheck/pkg/kernels_cuda_test /tmp/gpucheck/pkg/cuda_bench
    ;;
  build-run)
    build "$OUT/build.log" || exit 1
    run_checks "$(find_bin kernels_cuda_test)" "$(find_bin cuda_bench)"
    ;;
  *)
    echo "usage: $0 prepare|run|build-run" >&2
    exit 2
    ;;
esac
