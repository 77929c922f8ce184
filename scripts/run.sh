#!/usr/bin/env bash
# README command 1: install what is missing, build, and run the main job:
# the demo model (trained at 256 tokens) finds a pass key in the middle of a
# 32K-token document through the real server, with LongHeads and then with
# full attention for contrast (scripts/demo.sh; arguments go to it).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
exec ./scripts/demo.sh "$@"
