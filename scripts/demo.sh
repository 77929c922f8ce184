#!/usr/bin/env bash
# The main job (README command 1 runs it after the build): the demo model,
# trained at a short context, reads a long generated document with a pass
# key buried in its middle and answers the question at its end, through the
# real server: first with LongHeads, then with full attention for contrast.
#
#   scripts/demo.sh [TOKENS] [MODEL]      (defaults: 32768, models/demo.gguf)
# FULL_TOKENS (default 4096) sets the contrast run's length: full attention
# is quadratic in the document, so 32K tokens would take minutes here.
set -euo pipefail
cd "$(dirname "$0")/.."
TOKENS="${1:-32768}"
MODEL="${2:-models/demo.gguf}"
FULL_TOKENS="${FULL_TOKENS:-4096}"
WORK="$(mktemp -d)"
trap 'kill "${SERVER_PID:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT

make_document() {  # tokens seed -> prints the key, writes $WORK/doc_<tokens>.txt
  python3 - "$1" "$2" "$WORK/doc_$1.txt" <<'PY'
import sys
sys.path.insert(0, "tools/demo_model")
from data import DocumentGenerator
n, seed, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
doc = DocumentGenerator().document(n_tokens=n, depth=0.5, seed=seed)
open(path, "w").write(doc.prompt)
print(doc.key)
PY
}

./build/server/headroom-server --model "$MODEL" --grpc_address 127.0.0.1:0 \
    --metrics_address "" > "$WORK/server.out" &
SERVER_PID=$!
for _ in $(seq 300); do
  grep -q 'serving grpc=' "$WORK/server.out" 2>/dev/null && break
  sleep 0.1
done
ADDR=$(sed -n 's/.*serving grpc=\([^ ]*\).*/\1/p' "$WORK/server.out")
[ -n "$ADDR" ] || { echo "the server did not start" >&2; exit 1; }

ask() {  # policy tokens
  local key
  key=$(make_document "$2" 7)
  echo
  echo "== $1 attention, a $2-token document; the pass key in its middle is $key =="
  ./build/client/headroom generate --server "$ADDR" --file "$WORK/doc_$2.txt" \
      --policy "$1" --max_tokens 8 --progress
  echo
}
ask longheads "$TOKENS"
ask full "$FULL_TOKENS"
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || true
