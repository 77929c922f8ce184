#!/usr/bin/env bash
# Serving benchmark (issue 5): `headroom bench` at concurrency 1, 8 and 64
# against headroom-server, on each model given, plus the gRPC overhead
# versus in-process generation at concurrency 1. Prints Markdown for
# bench/results/serving_cpu.md; raw JSON goes to $OUT_DIR.
#
#   bench/serving_bench.sh MODEL.gguf [MODEL.gguf ...]
# Environment: BUILD (default build), OUT_DIR (default /tmp/serving_bench),
# NUM_PROMPTS (default 64), INPUT_TOKENS (default 256), OUTPUT_TOKENS (default 32).
set -euo pipefail
BUILD=${BUILD:-build}
OUT_DIR=${OUT_DIR:-/tmp/serving_bench}
NUM_PROMPTS=${NUM_PROMPTS:-64}
INPUT_TOKENS=${INPUT_TOKENS:-256}
OUTPUT_TOKENS=${OUTPUT_TOKENS:-32}
mkdir -p "$OUT_DIR"
export OMP_WAIT_POLICY=PASSIVE

for model in "$@"; do
  name=$(basename "$model" .gguf)
  "$BUILD/server/headroom-server" --model "$model" --grpc_address 127.0.0.1:0 \
      --metrics_address "" --max_running 64 --prefix_cache=false > "$OUT_DIR/$name.server.out" &
  pid=$!
  trap 'kill $pid 2>/dev/null || true' EXIT
  for _ in $(seq 600); do
    grep -q 'serving grpc=' "$OUT_DIR/$name.server.out" 2>/dev/null && break
    sleep 0.1
  done
  addr=$(sed -n 's/.*serving grpc=\([^ ]*\).*/\1/p' "$OUT_DIR/$name.server.out")
  echo "### $name ($INPUT_TOKENS prompt tokens, $OUTPUT_TOKENS output tokens, $NUM_PROMPTS requests)"
  echo
  for c in 1 8 64; do
    n=$NUM_PROMPTS
    [ "$c" = 1 ] && n=$(( NUM_PROMPTS / 4 ))
    "$BUILD/client/headroom" bench --server "$addr" --num_prompts "$n" --concurrency "$c" \
        --input_tokens "$INPUT_TOKENS" --output_tokens "$OUTPUT_TOKENS" --seed 1 \
        --json_out "$OUT_DIR/$name.c$c.json" > "$OUT_DIR/$name.c$c.txt"
    echo "concurrency $c:"
    echo '```'
    cat "$OUT_DIR/$name.c$c.txt"
    echo '```'
  done
  kill -TERM $pid
  wait $pid || true
  trap - EXIT
  echo "gRPC overhead at concurrency 1:"
  echo '```'
  "$BUILD/bench/serving_overhead_bench" --model "$model" --requests 12 \
      --input_tokens "$INPUT_TOKENS" --output_tokens "$OUTPUT_TOKENS"
  echo '```'
  echo
done
