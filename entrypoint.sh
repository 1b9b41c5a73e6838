#!/usr/bin/env bash
# Start the service: installs what is missing on first run, then serves on HOST:PORT
# (default 0.0.0.0:9001). Reads configuration from the environment and from .env.
# SERVE_MODE=ray (environment or .env) runs it on Ray Serve instead of one uvicorn process:
# the `ray` extra is installed, and a local Ray cluster is started unless RAY_ADDRESS names
# one to join (README, "More than one machine").
set -euo pipefail
cd "$(dirname "$0")"
mode="${SERVE_MODE:-}"
if [ -z "$mode" ] && [ -f .env ]; then
  mode=$(sed -n 's/^SERVE_MODE=["'"'"']\{0,1\}\([a-z]*\).*/\1/p' .env | tail -1)
fi
if [ "${mode:-simple}" = "ray" ]; then
  source scripts/bootstrap.sh --no-dev --inexact --extra ray
  exec uv run --frozen --no-dev --extra ray python -m app.serve.launch
fi
source scripts/bootstrap.sh --no-dev --inexact
exec uv run --frozen --no-dev uvicorn app.main:app \
  --host "${HOST:-0.0.0.0}" --port "${PORT:-9001}" --timeout-graceful-shutdown 30
