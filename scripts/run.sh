#!/usr/bin/env bash
# README command 1: install what is missing, build, and run the main job:
# generate text from a model (default: the stories260K reference model; pass
# any GGUF file or Hugging Face directory as the first argument).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
MODEL="${1:-../shared/models/stories260K.gguf}"
PROMPT="${2:-Once upon a time, a little dragon}"
exec ./build/server/headroom-generate --model "$MODEL" --prompt "$PROMPT" --max_tokens 200
