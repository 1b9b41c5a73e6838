#!/usr/bin/env bash
# Run every check: lint, type check and the whole test suite (unit and end-to-end on the
# bundled models and committed audio, the web page in a real browser). Installs what is
# missing on first run (Python packages; chromium, its driver and PostgreSQL through apt on
# Debian), and the OpenAI Node SDK (npm, tests/node) for its test.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh --all-extras
# The web page's browser test drives Debian's chromium through Debian's chromium-driver; the
# job store and Ray tests start a real PostgreSQL server from Debian's postgresql binaries.
missing=""
command -v chromedriver >/dev/null 2>&1 || missing="chromium chromium-driver"
command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
  || missing="$missing postgresql"
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
if [ -n "$missing" ] && command -v apt-get >/dev/null 2>&1; then
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo -n"
  # shellcheck disable=SC2086
  ($sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq $missing) \
    >/dev/null 2>&1 || echo "test.sh: could not install$missing" >&2
fi
# The OpenAI Node SDK's test: the locked npm packages of tests/node, from the npm registry.
if [ ! -d tests/node/node_modules/openai ] && command -v npm >/dev/null 2>&1; then
  (cd tests/node && npm ci --no-audit --no-fund --silent) || echo "test.sh: npm ci failed" >&2
fi
uv run --frozen ruff check .
uv run --frozen ruff format --check .
uv run --frozen mypy
uv run --frozen pytest "$@"
