#!/usr/bin/env bash
# Start the service: installs what is missing on first run, then serves on HOST:PORT
# (default 0.0.0.0:9001). Reads configuration from the environment and from .env.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh --no-dev --inexact
exec uv run --frozen --no-dev uvicorn app.main:app \
  --host "${HOST:-0.0.0.0}" --port "${PORT:-9001}" --timeout-graceful-shutdown 30
