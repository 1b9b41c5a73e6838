#!/usr/bin/env bash
# Run every check: lint, type check and the whole test suite (unit and end-to-end on the
# bundled models and committed audio, the web page in a real browser). Installs what is
# missing on first run (Python packages; chromium and its driver through apt on Debian).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh --all-extras
# The web page's browser test drives Debian's chromium through Debian's chromium-driver.
if ! command -v chromedriver >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo -n"
  ($sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq chromium chromium-driver) \
    >/dev/null 2>&1 || echo "test.sh: could not install chromium + chromium-driver" >&2
fi
uv run --frozen ruff check .
uv run --frozen ruff format --check .
uv run --frozen mypy
uv run --frozen pytest "$@"
