#!/usr/bin/env bash
# Packs what the lent GPU machine lacks (it has Python 3.12, torch and CUDA 13, but no
# ctranslate2, faster-whisper, PyAV or the service's web stack, no Whisper models and no TTS)
# into chunks that each fit one `run` call (64 MiB per call, working tree included).
# The chunks are consecutive pieces of one tar stream; bench/gpu/device.sh joins them there.
# Contents, in this order: cp312 wheels pinned to uv.lock's versions, the service's code at
# HEAD plus bench/ (so the numbers belong to a commit, not to whatever is being edited), the
# benchmark clips, and the bundled models tiny.en and base (float16, as shipped).
set -euo pipefail
cd "$(dirname "$0")/../.."
gpu=bench/out/gpu
rm -rf "$gpu/stage" "$gpu/chunks"
mkdir -p "$gpu/stage/whl" "$gpu/stage/models" "$gpu/stage/clips" "$gpu/chunks"

# 1. Wheels for CPython 3.12 on manylinux x86-64, at the versions uv.lock pins.
pins=$(uv run --frozen python - <<'PY'
import tomllib
wanted = {"ctranslate2", "faster-whisper", "av", "fastapi", "starlette", "pydantic",
          "pydantic-core", "pydantic-settings", "python-dotenv", "python-multipart", "uvicorn",
          "annotated-types", "typing-inspection", "annotated-doc", "opentelemetry-api"}
lock = tomllib.load(open("uv.lock", "rb"))
print(" ".join(f"{p['name']}=={p['version']}" for p in lock["package"] if p["name"] in wanted))
PY
)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$gpu/stage/whl" $pins

# 2. The code: HEAD's tree, plus the benchmark itself (untracked until committed).
git archive --format=tar -o "$gpu/stage/repo.tar" HEAD
tar -rf "$gpu/stage/repo.tar" --exclude=bench/out bench
git rev-parse --short HEAD > "$gpu/stage/COMMIT"

# 3. Clips (made here: the GPU machine has no flite or espeak-ng).
(cd bench && uv run --frozen python -c "import clips; [clips.clip(n) for n in ('30s', '5min', '30min', 'pyannote')]")
cp bench/out/clips/tts-*.flac bench/out/clips/tts-*.txt bench/out/clips/pyannote-30s.* "$gpu/stage/clips/"

# 4. Models, resolved exactly as the service resolves them (base is joined from its parts).
uv run --frozen python - "$gpu/stage/models" "$gpu/cache" <<'PY'
import shutil, sys
from pathlib import Path
from app.config import Settings
from app.models.hub import HubClient
from app.models.registry import ModelRegistry
dst, cache = Path(sys.argv[1]), Path(sys.argv[2])
settings = Settings(cache_dir=cache, hf_hub_offline=True)
registry = ModelRegistry(settings, HubClient(settings))
for name in ("tiny.en", "base"):
    shutil.copytree(registry.resolve(name).path, dst / name, dirs_exist_ok=True)
PY

# ctranslate2 first: the first call can then install it and check CUDA before the rest.
(cd "$gpu/stage" && tar -cf - whl/ctranslate2-*.whl $(ls whl/*.whl | grep -v ctranslate2) \
  COMMIT repo.tar clips models) | split -b 56m -d -a 2 - "$gpu/chunks/part"
ls -l "$gpu/chunks"
