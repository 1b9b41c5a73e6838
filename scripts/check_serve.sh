#!/usr/bin/env bash
# The README's serve command as a newcomer runs it: ./entrypoint.sh in a fresh environment
# that holds exactly the runtime dependencies (no dev group: `--no-dev --exact`), until
# /health answers healthy, then test-api.sh transcribes a clip through it, then it stops.
#   scripts/check_serve.sh [simple|ray] [AUDIO_FILE]
# CI (.ci/run) runs it in both modes before the test suite. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-simple}
clip=${2:-tests/fixtures/jfk_style.flac}
work=$(mktemp -d)
extra=(); [ "$mode" = ray ] && extra=(--extra ray)

# Its own environment, so nothing the dev group installed elsewhere can hide a missing
# runtime dependency (what happened with httpx).
export UV_PROJECT_ENVIRONMENT="$work/venv"
source scripts/bootstrap.sh --no-dev --exact "${extra[@]}"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export HOST=127.0.0.1 PORT=$port SERVE_MODE=$mode DATA_DIR="$work/data" RAY_ADDRESS= \
  RAY_REPLICAS=1 PYANNOTE_METRICS_ENABLED=false
echo "check_serve($mode): ./entrypoint.sh on port $port, environment $UV_PROJECT_ENVIRONMENT"
setsid ./entrypoint.sh >"$work/server.log" 2>&1 &
server=$!
stop() {
  kill -TERM -- "-$server" 2>/dev/null || true
  for _ in $(seq 60); do kill -0 "$server" 2>/dev/null || break; sleep 1; done
  kill -KILL -- "-$server" 2>/dev/null || true
  [ "$mode" != ray ] || "$UV_PROJECT_ENVIRONMENT/bin/ray" stop --force >/dev/null 2>&1 || true
}
trap stop EXIT

deadline=$((SECONDS + 420))
until curl -fsS "http://127.0.0.1:$port/health" 2>/dev/null | grep -q '"status":"healthy"'; do
  if ! kill -0 "$server" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
    echo "check_serve($mode): FAIL, the server did not become healthy; its log:" >&2
    tail -n 60 "$work/server.log" >&2
    exit 1
  fi
  sleep 1
done
echo "check_serve($mode): healthy after ${SECONDS}s"
if ! ./test-api.sh 127.0.0.1 "$port" "$clip" >"$work/test-api.log" 2>&1; then
  echo "check_serve($mode): FAIL, test-api.sh:" >&2
  cat "$work/test-api.log" >&2
  tail -n 40 "$work/server.log" >&2
  exit 1
fi
grep -q "fellow Americans" "$work/test-api.log" || {
  echo "check_serve($mode): FAIL, the clip's words are not in the transcript:" >&2
  cat "$work/test-api.log" >&2
  exit 1
}
echo "check_serve($mode): test-api.sh transcribed $clip: OK"
stop
trap - EXIT
rm -rf "$work"
