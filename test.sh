#!/usr/bin/env bash
# Run every check: lint, type check and the whole test suite (unit and end-to-end on the
# bundled models and committed audio). Installs what is missing on first run.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh --all-extras
uv run --frozen ruff check .
uv run --frozen ruff format --check .
uv run --frozen mypy
uv run --frozen pytest "$@"
