#!/bin/sh
# Builds tokenize_main.cc against the project's build (BUILD, default build/)
# and compares tokenizer.py with the server's GGUF tokenizer on MODEL.
set -e
cd "$(dirname "$0")/../.."
MODEL=${1:-models/demo.gguf}
B=${BUILD:-build}
OUT=${TMPDIR:-/tmp}/headroom-demo-tokenize
ABSL="statusor status strings str_format_internal cord cord_internal cordz_info cordz_functions
      cordz_handle raw_logging_internal int128 throw_delegate base synchronization hash city
      low_level_hash raw_hash_set bad_variant_access bad_optional_access strerror"
g++ -std=c++20 -O1 -I. tools/demo_model/tokenize_main.cc -o "$OUT" \
  "$B/server/model/libhr_model.a" "$B/server/model/libhr_model_files.a" \
  "$B/kernels/libhr_kernels_cpu.a" "$B/server/common/libhr_common.a" -lsentencepiece \
  $(for l in $ABSL; do printf -- '-labsl_%s ' "$l"; done) -lopenblas -fopenmp -lpthread
/usr/bin/python3 tools/demo_model/check_tokenizer.py "$OUT" "$MODEL"
