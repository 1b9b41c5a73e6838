#!/usr/bin/env bash
# Smoke-test a running server with curl: ./test-api.sh HOST PORT AUDIO_FILE
set -euo pipefail
host=${1:-localhost}; port=${2:-9001}; file=${3:?usage: test-api.sh HOST PORT AUDIO_FILE}
base="http://$host:$port"
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "== GET /health"
curl -fsS "$base/health" || fail "health"
echo; echo "== POST /asr (json)"
curl -fsS -X POST "$base/asr?output=json&word_timestamps=true" -F "audio_file=@$file" \
  | python3 -c '
import json, sys
doc = json.load(sys.stdin)
print("language:", doc["language"])
for s in doc["segments"]:
    print("[%7.2f -> %7.2f] %s" % (s["start"], s["end"], s["text"].strip()))
' \
  || fail "/asr json"
echo "== POST /asr (srt)"
curl -fsS -X POST "$base/asr?output=srt" -F "audio_file=@$file" | head -8 || fail "/asr srt"
echo "== POST /v1/audio/transcriptions (text)"
curl -fsS "$base/v1/audio/transcriptions" -F "file=@$file" -F model=whisper-1 \
  -F response_format=text || fail "/v1/audio/transcriptions"
echo "== GET /v1/models"
curl -fsS "$base/v1/models" || fail "/v1/models"
echo; echo "OK"
