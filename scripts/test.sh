#!/usr/bin/env bash
# One command: set up, start the real services, then lint, type-check, validate deploy/ and
# run the whole test suite against Kafka, Postgres and Milvus. Services are stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

stylestream dev up
trap 'stylestream dev down || true' EXIT

echo "== ruff"; ruff check . && ruff format --check .
echo "== mypy"; mypy .
echo "== deploy manifests"; python -m deploy.validate
echo "== pytest"; pytest -p no:cacheprovider "$@"
