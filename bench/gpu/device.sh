#!/usr/bin/env bash
# Runs on the lent GPU machine, from the copy of the working tree each `run` call gets.
#   device.sh stage      keep this call's carried chunk in /tmp/gpu (the machine stays warm
#                        only ~30 s between calls; /tmp survives while it does)
#   device.sh probe      what is installed; install ctranslate2 and ask it for the GPU
#   device.sh setup      join the chunks, install the wheels, lay out code, clips and models
#   device.sh bench ARGS bench/run.py on CUDA with ARGS; output and JSON go to $OUT
#   device.sh keep DIR...  copy carried folders (bench/out/gpu/DIR) into /tmp/gpu/DIR
#   device.sh install    install /tmp/gpu/{wheels1,synth/whl,spy} and join the base model's
#                        pieces (/tmp/gpu/mb*/mb.0*, files in mb3) into /tmp/gpu/models/base
#   device.sh run CMD... CMD in this working-tree copy, with the staged wheels and cuBLAS
set -uo pipefail
g=/tmp/gpu
mkdir -p "$g/parts" "$g/stage" "$g/site" "$g/shim"

# ctranslate2's wheels load libcublas.so.12 (CUDA 12) by name; this machine has CUDA 13's
# cuBLAS. The functions ctranslate2 looks up keep their signatures in cuBLAS 13, so a link
# under the old name is tried (recorded as such with the numbers).
cublas_env() {
  local lib
  lib=$(find /opt /usr/local /usr/lib -name 'libcublas.so.13*' 2>/dev/null | head -1)
  [ -n "$lib" ] || { echo "no libcublas.so.13 found"; return 1; }
  ln -sf "$lib" "$g/shim/libcublas.so.12"
  export LD_LIBRARY_PATH="$g/shim:$(dirname "$lib"):${LD_LIBRARY_PATH:-}"
  export PYTHONPATH="$g/site" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
  echo "cuBLAS: $lib"
}

install_wheels() {
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$g/site" "$@"
}

case "${1:-}" in
  stage)
    cp -v bench/out/gpu/chunks/part* "$g/parts/" && du -sh "$g/parts"
    ;;
  probe)
    python3 -V; nvidia-smi -L; nvidia-smi --query-gpu=driver_version,memory.total --format=csv
    cat "$g"/parts/part* | tar -x -C "$g/stage" 2>/dev/null
    install_wheels "$g"/stage/whl/ctranslate2-*.whl && cublas_env &&
      python3 -c "import ctranslate2 as c; print('ctranslate2', c.__version__, 'GPUs:',
c.get_cuda_device_count(), 'types:', sorted(c.get_supported_compute_types('cuda')))"
    ;;
  setup)
    cat "$g"/parts/part* | tar -x -C "$g/stage" || exit 1
    install_wheels "$g"/stage/whl/*.whl || exit 1
    rm -rf "$g/repo" && mkdir -p "$g/repo/bench/out/clips"
    tar -x -f "$g/stage/repo.tar" -C "$g/repo" && cp "$g"/stage/clips/* "$g/repo/bench/out/clips/"
    du -sh "$g"/stage/models/*; echo "commit $(cat "$g/stage/COMMIT")"
    ;;
  bench)
    shift
    cublas_env || exit 1
    cd "$g/repo" || exit 1
    BENCH_COMMIT=$(cat "$g/stage/COMMIT") python3 bench/run.py --device cuda \
      --models-dir "$g/stage/models" --json "${OUT:-/tmp}/bench.json" "$@" 2>&1 |
      tee "${OUT:-/tmp}/bench.log"
    cp bench/out/service.log "${OUT:-/tmp}/" 2>/dev/null
    ;;
  keep)
    shift
    for d in "$@"; do cp -r "bench/out/gpu/$d" "$g/" && du -sh "$g/$d"; done
    ;;
  install)
    install_wheels "$g"/wheels1/*.whl "$g"/synth/whl/*.whl "$g"/spy/*.whl || exit 1
    mkdir -p "$g/models/base" && cat "$g"/mb*/mb.0* > "$g/models/base/model.bin" &&
      cp "$g"/mb3/*.json "$g"/mb3/vocabulary.txt "$g/models/base/" && du -sh "$g/models/base"
    ;;
  run)
    shift
    cublas_env || exit 1
    "$@"
    ;;
  *) echo "usage: $0 stage|probe|setup|bench ARGS|keep DIR...|install|run CMD"; exit 2 ;;
esac
