#!/usr/bin/env bash
# One command: set up, then run the main job on the embedded defaults. Extra args go to
# `stylestream demo` (e.g. --json, -n 5000). Services stay up afterwards for `stylestream search`;
# stop them with `.venv/bin/stylestream dev down`. Set-up progress and logs go to stderr, so
# with --json stdout carries one JSON object only (`scripts/demo.sh --json | jq`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
exec .venv/bin/stylestream demo "$@"
