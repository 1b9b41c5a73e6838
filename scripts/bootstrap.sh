#!/usr/bin/env bash
# Sourced by entrypoint.sh and test.sh: make sure uv and a Python 3.13 are at hand, then
# install the locked dependencies (bundled offline models included).
set -euo pipefail

# A name on PATH is not enough: pyenv, for one, puts a `uv` shim there that fails when the
# active Python has no uv. Take the first uv that runs; else install one with pip.
uv_runs() { "$1" --version >/dev/null 2>&1; }
if ! uv_runs uv; then
  if uv_runs "$HOME/.local/bin/uv"; then
    export PATH="$HOME/.local/bin:$PATH"
  else
    echo "bootstrap: installing uv with pip" >&2
    python3 -m pip install --quiet --user uv
    export PATH="$HOME/.local/bin:$PATH"
    uv_runs uv || { echo "bootstrap: uv does not run after installing it" >&2; exit 1; }
  fi
fi

# uv normally downloads a Python 3.13 itself. Where it cannot (no access to its download
# host), use a local one: pyenv's, or any python3.13 on PATH.
if [ -z "${UV_PYTHON:-}" ] && ! uv python find 3.13 >/dev/null 2>&1; then
  candidate=""
  if command -v pyenv >/dev/null 2>&1; then
    version=$(pyenv versions --bare 2>/dev/null | grep -E '^3\.13(\.[0-9]+)?$' | tail -1 || true)
    [ -n "$version" ] && candidate="$(pyenv root)/versions/$version/bin/python3.13"
  fi
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then
    export UV_PYTHON="$candidate"
  fi
fi

uv sync --frozen "$@"
