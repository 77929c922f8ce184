#!/usr/bin/env bash
# GPU check of the CUDA backend (issue 6): build, GPU tests, benchmark.
#
#   scripts/gpu-check.sh prepare   # here (no GPU needed): build for sm_90 and
#                                  # bundle the binaries and their shared
#                                  # libraries into .gpucheck/bundle.tar.gz
#   scripts/gpu-check.sh run       # on the GPU machine: nvidia-smi, the GPU
#                                  # tests (kernels, then the whole model vs
#                                  # the CPU), a server smoke test (the real
#                                  # server with its defaults, then its fault
#                                  # drill), the benchmarks (kernels, then
#                                  # the forward pass, then the server on the
#                                  # ~134M benchmark model: serving_gpu.md),
#                                  # and where ncu exists
#                                  # the kernel times of 4096- and 512-token
#                                  # prefills and of decode steps at a 4096
#                                  # context (ncu_prefill*.csv,
#                                  # ncu_decode.csv; summarize them here with
#                                  # scripts/ncu_summary.py)
#                                  # and the prefill kernel's sections and
#                                  # SASS hot spots; all to $OUT, whose
#                                  # small files end up in all.tar.gz only
#   BASELINE=rev scripts/gpu-check.sh prepare
#                                  # also builds the benchmarks of commit
#                                  # `rev` (a git worktree) into the bundle;
#                                  # `run` then runs them after the current
#                                  # ones on the same card (baseline_*.md), so
#                                  # that a change is measured against its
#                                  # baseline in one call. Several commits
#                                  # (BASELINE="rev1 rev2 ...") each get
#                                  # theirs (baseline_<rev>_*.md beside the
#                                  # first's baseline_*.md), to attribute a
#                                  # series of changes in one call; keep their
#                                  # run short with MODEL_BENCH_FLAGS
#   scripts/gpu-check.sh smoke     # the server smoke test and the serving
#                                  # benchmark alone on BUILD_DIR's binaries
#                                  # (SMOKE_BACKEND=cpu: without a GPU;
#                                  # SMOKE_SKIP_SERVING=1: smoke test only)
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
# Environment: BUILD_DIR (prepare/build-run; default build-gpu), BASELINE
# (prepare; a commit whose benchmarks run after the current ones),
# CMAKE_SOURCE (prepare; a CMake project building the targets in BINS;
# default the repository), OUT (run; default /tmp/gpu-check),
# HEADROOM_SHARED_DIR (prepare, build-run; default ../shared),
# MODEL_BENCH_FLAGS (run; extra flags of cuda_model_bench), SERVING_MODEL_FLAGS
# (run, smoke; shape flags of make_bench_model for the serving benchmark).
set -u -o pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}
OUT=${OUT:-/tmp/gpu-check}
BUILD_DIR=${BUILD_DIR:-build-gpu}
BINS="kernels_cuda_test cuda_model_test cuda_engine_test cuda_bench cuda_model_bench headroom-server headroom
  make_bench_model"
BENCHES="cuda_bench:45 cuda_model_bench:90"  # name:timeout in seconds
BENCH_NAMES="cuda_bench cuda_model_bench"
SHARED=${HEADROOM_SHARED_DIR:-$(pwd)/../shared}

build() {  # $1: log; $2: source (default CMAKE_SOURCE or .); $3: build dir; $4...: targets
  local log=$1 src=${2:-${CMAKE_SOURCE:-.}} dir=${3:-$BUILD_DIR}
  shift 3 2>/dev/null || shift $#
  cmake -S "$src" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CUDA_ARCHITECTURES=90 >"$log" 2>&1 || { tail -30 "$log"; return 1; }
  # shellcheck disable=SC2086
  ninja -C "$dir" -j"${JOBS:-16}" ${*:-$BINS} >>"$log" 2>&1 || { tail -30 "$log"; return 1; }
}

find_bin() {  # $1: target, $2: build dir; under tests/unit, tests/engine, bench, server or client
  local f dir=${2:-$BUILD_DIR}
  for f in "$dir/$1" "$dir/tests/unit/$1" "$dir/tests/engine/$1" "$dir/bench/$1" "$dir/server/$1" \
    "$dir/client/$1"; do
    [ -x "$f" ] && { echo "$f"; return; }
  done
}

pack() {  # $1: binary, $2: destination folder; strips it and copies its shared libraries
  strip --strip-debug -o "$2/$(basename "$1")" "$1"
  # Shared libraries outside glibc/libstdc++ and cuBLAS (on the machine).
  ldd "$1" | awk '/=> \//{print $3}' |
    grep -v -E '/(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s)\.so|libcublas' |
    xargs -r -I{} cp -nL {} .gpucheck/pkg/lib/
}

run_benches() {  # $1: folder holding the benchmarks, $2: prefix of the output files
  local b t0 rc bench_rc=0 flags
  for b in $BENCHES; do
    echo "== benchmark: $2${b%%:*}"
    t0=$SECONDS
    flags=""
    [ "${b%%:*}" = cuda_model_bench ] && flags=${MODEL_BENCH_FLAGS:-}
    # shellcheck disable=SC2086
    timeout "${b##*:}" "$1/${b%%:*}" $flags 2>>"$OUT/bench.stderr" | tee "$OUT/$2${b%%:*}.md"
    rc=$?
    [ "$rc" = 0 ] || bench_rc=$rc
    echo "$2${b%%:*}: exit $rc, $((SECONDS - t0)) s" | tee -a "$OUT/bench.stderr"
  done
  return $bench_rc
}

# server_start LOG FLAGS...: headroom-server from $SMOKE_BIN in the
# background (SMOKE_BACKEND: cuda, or cpu to try the script without a GPU),
# its stderr appended to LOG; sets SERVER_PID and SERVER_ADDR once it prints
# its serving line (60 s at most), else returns 1.
server_start() {
  local log=$1 i
  shift
  : >/tmp/smoke.out  # never the serving line of the server before
  "$SMOKE_BIN/headroom-server" --backend "${SMOKE_BACKEND:-cuda}" --grpc_address 127.0.0.1:0 \
    --metrics_address "" "$@" >>/tmp/smoke.out 2>>"$log" &
  SERVER_PID=$! SERVER_ADDR=""
  for i in $(seq 1 120); do
    SERVER_ADDR=$(sed -n 's/^headroom-server: serving grpc=\([^ ]*\).*/\1/p' /tmp/smoke.out)
    [ -n "$SERVER_ADDR" ] || ! kill -0 $SERVER_PID 2>/dev/null && break
    sleep 0.5
  done
  METRICS_ADDR=$(sed -n 's/^headroom-server: serving grpc=[^ ]* metrics=\([^ ]*\).*/\1/p' /tmp/smoke.out)
  [ -n "$SERVER_ADDR" ] && return 0
  echo "no serving line" | tee -a "$log"
  kill -9 $SERVER_PID 2>/dev/null
  wait $SERVER_PID 2>/dev/null
  return 1
}

# step_stats: the worker steps since the previous call, from the server's
# /metrics page (METRICS_ADDR): mean step time, the forward pass's share of
# it, and tokens per step. (The rest of a step is the server's host work.)
step_stats() {
  python3 - "$METRICS_ADDR" /tmp/step_stats.json <<'PY'
import json, os, sys, urllib.request
page = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=10).read().decode()
names = ("headroom_step_duration_seconds_sum", "headroom_step_duration_seconds_count",
         "headroom_forward_duration_seconds_sum", "headroom_step_tokens_sum")
now = {n: sum(float(l.split()[-1]) for l in page.splitlines() if l.split(" ")[0].split("{")[0] == n)
       for n in names}
prev = json.load(open(sys.argv[2])) if os.path.exists(sys.argv[2]) else {}
json.dump(now, open(sys.argv[2], "w"))
d = {n: now[n] - prev.get(n, 0.0) for n in names}
steps = d["headroom_step_duration_seconds_count"]
if steps > 0:
    print(f"worker steps: {steps:.0f}, mean {1e3 * d[names[0]] / steps:.2f} ms, of which the forward pass "
          f"{1e3 * d[names[2]] / steps:.2f} ms; {d[names[3]] / steps:.0f} tokens per step")
PY
}

# server_stop LOG: SIGTERM; returns 0 when the server exited 0 within 30 s.
server_stop() {
  local log=$1 i rc
  kill -TERM $SERVER_PID
  for i in $(seq 1 60); do kill -0 $SERVER_PID 2>/dev/null || break; sleep 0.5; done
  if kill -0 $SERVER_PID 2>/dev/null; then
    echo "still running 30 s after SIGTERM" | tee -a "$log"
    kill -9 $SERVER_PID
  fi
  wait $SERVER_PID
  rc=$?
  echo "server: exit $rc (want 0)" | tee -a "$log"
  [ "$rc" = 0 ]
}

# server_run LABEL EXPECT_EXIT_OF_GENERATE EXPECT_HEALTH SERVER_FLAGS...: the
# server on stories260K and the `headroom` CLI against it.
server_run() {
  local bin=$SMOKE_BIN label=$1 want_gen=$2 want_health=$3 log=$OUT/server_smoke.txt rc
  shift 3
  echo "== server smoke: $label ($*)" | tee -a "$log"
  server_start "$log" --model "$HEADROOM_SHARED_DIR/models/stories260K.gguf" "$@" || { SMOKE_RC=1; return; }
  "$bin/headroom" info --server "$SERVER_ADDR" >>"$log" 2>&1
  "$bin/headroom" generate --server "$SERVER_ADDR" --text "Once upon a time" --max_tokens 24 >>"$log" 2>&1
  rc=$?
  echo "generate: exit $rc (want $want_gen)" | tee -a "$log"
  [ "$rc" = "$want_gen" ] || SMOKE_RC=1
  if [ "$want_gen" = 0 ]; then  # serving overhead end to end: gRPC, batching, the tiny model
    timeout 60 "$bin/headroom" bench --server "$SERVER_ADDR" --num_prompts 64 --concurrency 16 \
      --input_tokens 1024 --output_tokens 128 >>"$log" 2>&1
    echo "bench: exit $?" | tee -a "$log"
  fi
  "$bin/headroom" health --server "$SERVER_ADDR" >>"$log" 2>&1
  rc=$?
  echo "health: exit $rc (want $want_health)" | tee -a "$log"
  [ "$rc" = "$want_health" ] || SMOKE_RC=1
  server_stop "$log" || SMOKE_RC=1
}

# The server as deployed (default flags: BF16, KV cache sized from the
# device), then the fault drill (a kernel traps at the second step: the
# stream ends UNAVAILABLE, health NOT_SERVING, SIGTERM still exits 0).
server_smoke() {  # $1: folder holding headroom-server and headroom
  SMOKE_BIN=$1 SMOKE_RC=0
  : >"$OUT/server_smoke.txt"
  server_run defaults 0 0
  server_run "fault drill" 1 1 --device_fault_drill_step 2
  echo "server smoke: exit $SMOKE_RC" | tee -a "$OUT/server_smoke.txt"
  return $SMOKE_RC
}

# Serving the ~134M benchmark model (make_bench_model) with the server's
# defaults: `headroom bench` at concurrency 1, 8 and 64 (1024 prompt tokens,
# 128 generated), then 32K-token documents one at a time (TTFT of a long
# read), each followed by its worker steps (step_stats); then concurrency 64
# with --step_tokens 2048. Markdown in serving_gpu.md (inside all.tar.gz).
# serving_start EXTRA_FLAGS...: the benchmark model's server with metrics,
# its step counters reset (step_stats).
serving_start() {
  server_start "$SERVING_MD" --model /tmp/bench_model.gguf --max_running 64 --prefix_cache=false \
    --metrics_address 127.0.0.1:0 "$@" || return 1
  rm -f /tmp/step_stats.json
  step_stats >/dev/null
}

# serving_load LABEL N C INPUT OUTPUT: `headroom bench` of N requests at
# concurrency C, then the worker steps it took.
serving_load() {
  echo "### $1: $2 requests, concurrency $3, $4 prompt tokens, $5 generated" >>"$SERVING_MD"
  timeout 90 "$SMOKE_BIN/headroom" bench --server "$SERVER_ADDR" --num_prompts "$2" --concurrency "$3" \
    --input_tokens "$4" --output_tokens "$5" --seed 1 >>"$SERVING_MD" 2>&1
  echo "bench $1: exit $?"
  step_stats | tee -a "$SERVING_MD"
}

serving_bench() {  # $1: folder holding make_bench_model, headroom-server, headroom
  local bin=$1 c
  SMOKE_BIN=$bin SERVING_MD=$OUT/serving_gpu.md
  : >"$SERVING_MD"
  echo "== serving benchmark (make_bench_model, server defaults)"
  # shellcheck disable=SC2086
  "$bin/make_bench_model" --out /tmp/bench_model.gguf ${SERVING_MODEL_FLAGS:-} >>"$SERVING_MD" 2>&1 || return 1
  serving_start || return 1
  "$bin/headroom" info --server "$SERVER_ADDR" >>"$SERVING_MD" 2>&1
  serving_load "concurrency 1" 16 1 1024 128
  for c in 8 64; do serving_load "concurrency $c" 64 $c 1024 128; done
  serving_load "32768-token documents" 4 1 32768 16
  server_stop "$SERVING_MD"
  # Concurrency 64 again with larger steps: the default 512-token steps
  # spread 64 prompts over ~260 steps that each also decode the others.
  serving_start --step_tokens 2048 || return 1
  serving_load "--step_tokens 2048, concurrency 64" 64 64 1024 128
  server_stop "$SERVING_MD"
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
  server_smoke "$bin" || test_rc=1
  : >"$OUT/bench.stderr"
  run_benches "$bin" "" || bench_rc=$?
  if [ -d "$bin/baseline" ]; then  # the same benchmarks built from the baseline commit(s), same card
    echo "== baseline: $(cat "$bin/baseline/REV")" | tee -a "$OUT/bench.stderr"
    cp "$bin/baseline/REV" "$OUT/baseline_rev.txt"
    run_benches "$bin/baseline" baseline_ || bench_rc=$?
    local more
    for more in "$bin"/baseline-*; do
      [ -d "$more" ] || continue
      echo "== baseline: $(cat "$more/REV")" | tee -a "$OUT/bench.stderr"
      cat "$more/REV" >>"$OUT/baseline_rev.txt"
      run_benches "$more" "baseline_${more##*/baseline-}_" || bench_rc=$?
    done
  fi
  cat "$OUT/bench.stderr"
  [ "$test_rc" = 0 ] && [ "$bench_rc" = 0 ]
}

profile_prefill() {  # $1: folder holding cuda_model_bench
  local ncu bench=$1/cuda_model_bench t
  local args="--decode_contexts 4096 --reps 1 --decode_tokens 2"
  ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null)
  [ -n "$ncu" ] || { echo "no ncu: prefill profile skipped"; return 0; }
  # Kernel durations, one row per launch (ncu_prefill.csv: 4096 tokens).
  for t in 4096 512; do
    echo "== ncu: kernel times of $t-token prefills (cuda_model_bench)"
    # shellcheck disable=SC2086
    (cd /tmp && timeout 120 "$ncu" --metrics gpu__time_duration.sum --csv --launch-count 1200 \
      "$bench" --prefill_tokens $t $args >"$OUT/ncu_prefill_$t.csv" 2>>"$OUT/ncu.log")
    echo "ncu: exit $?"
  done
  mv "$OUT/ncu_prefill_4096.csv" "$OUT/ncu_prefill.csv"
  # Decode: 3 steps of `full`, then 3 of `longheads` (Forward calls 0-2, 3-5);
  # their GPU time against the host-timed us/token says how much of a step is
  # launch overhead.
  echo "== ncu: kernel times of decode steps at a 4096-token context"
  (cd /tmp && timeout 90 "$ncu" --metrics gpu__time_duration.sum --csv --launch-count 2000 \
    "$bench" --prefill_tokens 0 --decode_contexts 4096 --decode_tokens 2 >"$OUT/ncu_decode.csv" 2>>"$OUT/ncu.log")
  echo "ncu: exit $?"
  # Inside the tensor-core prefill kernel (layer 0 of the 4096-token full
  # prefill): throughput, occupancy, warp states, and per SASS instruction
  # the executed count and stall samples (ncu_prefill_sass.csv).
  echo "== ncu: sections and SASS hot spots of PrefillMmaKernel"
  # shellcheck disable=SC2086
  (cd /tmp && rm -f pf.ncu-rep && timeout 150 "$ncu" --kernel-name regex:PrefillMma --launch-count 1 \
    --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
    --section SchedulerStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
    --section InstructionStats --section SourceCounters -o pf "$bench" --prefill_tokens 4096 $args \
    >>"$OUT/ncu.log" 2>&1 &&
    "$ncu" --import pf.ncu-rep >"$OUT/ncu_prefill_sections.txt" 2>&1 &&
    "$ncu" --import pf.ncu-rep --page source --csv --print-source sass >"$OUT/ncu_prefill_sass.csv" 2>>"$OUT/ncu.log")
  echo "ncu sections: exit $?"
}

# At most 8 files come back from a lent machine: everything goes into
# all.tar.gz, and the small files beside the main ones are left only there.
bundle_out() {
  local keep="gpu_tests.txt server_smoke.txt cuda_bench.md cuda_model_bench.md baseline_cuda_model_bench.md ncu_prefill.csv ncu_prefill_sass.csv"
  tar -C "$OUT" -czf /tmp/gpu-check-all.tar.gz . && mv /tmp/gpu-check-all.tar.gz "$OUT/all.tar.gz" || return 1
  for f in "$OUT"/*; do
    case " $keep all.tar.gz " in *" $(basename "$f") "*) ;; *) rm -rf "$f" ;; esac
  done
}

case "$mode" in
  prepare)
    JOBS=${JOBS:-2} build /tmp/gpu-check-build.log "" "$BUILD_DIR" || exit 1
    rm -rf .gpucheck && mkdir -p .gpucheck/pkg/lib
    for b in $BINS; do
      f=$(find_bin $b)
      [ -n "$f" ] || { echo "missing $b"; exit 1; }
      pack "$f" .gpucheck/pkg
    done
    n=0
    for base in ${BASELINE:-}; do  # the first into pkg/baseline, others into pkg/baseline-<rev>
      rev=$(git rev-parse --short "$base") || exit 1
      dest=.gpucheck/pkg/baseline
      [ "$n" = 0 ] || dest=.gpucheck/pkg/baseline-$rev
      n=$((n + 1))
      wt=/tmp/gpu-check-baseline
      git worktree remove --force "$wt" 2>/dev/null
      git worktree add --detach "$wt" "$rev" >/dev/null || exit 1
      # shellcheck disable=SC2086
      JOBS=${JOBS:-2} build /tmp/gpu-check-baseline.log "$wt" "$BUILD_DIR-baseline" $BENCH_NAMES || exit 1
      mkdir -p "$dest"
      for b in $BENCH_NAMES; do
        f=$(find_bin "$b" "$BUILD_DIR-baseline")
        [ -n "$f" ] || { echo "missing baseline $b"; exit 1; }
        pack "$f" "$dest"
      done
      echo "$rev $(git log -1 --format=%s "$rev" | cut -c1-100)" >"$dest/REV"
      git worktree remove --force "$wt"
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
    rm -rf "$OUT/baseline_"*  # a bundle without a baseline leaves none behind
    run_checks /tmp/gpucheck/pkg
    rc=$?
    # Within a 600 s call: the serving benchmark and the profile only with
    # time left for them (both optional; the bundle of results must come back).
    if [ "$SECONDS" -lt 330 ]; then serving_bench /tmp/gpucheck/pkg; else echo "serving benchmark skipped: ${SECONDS} s used"; fi
    if [ "$SECONDS" -lt 360 ]; then profile_prefill /tmp/gpucheck/pkg; else echo "profile skipped: ${SECONDS} s used"; fi
    bundle_out
    exit $rc
    ;;
  build-run)
    build "$OUT/build.log" || exit 1
    mkdir -p "$BUILD_DIR/gpucheck-bin"
    for b in $BINS; do ln -sf "$(realpath "$(find_bin $b)")" "$BUILD_DIR/gpucheck-bin/$b"; done
    export HEADROOM_SHARED_DIR=$SHARED
    run_checks "$BUILD_DIR/gpucheck-bin"
    ;;
  smoke)  # the server smoke test and serving benchmark alone, on BUILD_DIR's
           # binaries (SMOKE_BACKEND=cpu without a GPU)
    mkdir -p "$OUT" "$BUILD_DIR/gpucheck-bin"
    for b in headroom-server headroom make_bench_model; do
      ln -sf "$(realpath "$(find_bin $b)")" "$BUILD_DIR/gpucheck-bin/$b"
    done
    export HEADROOM_SHARED_DIR=${HEADROOM_SHARED_DIR:-$SHARED}
    server_smoke "$BUILD_DIR/gpucheck-bin" && { [ -n "${SMOKE_SKIP_SERVING:-}" ] || serving_bench "$BUILD_DIR/gpucheck-bin"; }
    ;;
  *)
    echo "usage: $0 prepare|run|build-run|smoke" >&2
    exit 2
    ;;
esac
