#!/usr/bin/env bash
# GPU benchmark for the README (issue 6). Run from the repository root on a CUDA machine:
#   OUT=/some/dir bash scripts/gpu_bench.sh
# Installs nothing beyond this package (torch, typer, rich, safetensors are expected there; no network needed).
# Two `sdnet bench` runs, train mode, batch 128, 32x32, resnet18,sdnet18,sdnet18_all:
#   1. --amp --channels-last            -> $OUT/bench_amp_cl.json
#   2. --amp --channels-last --compile  -> $OUT/bench_amp_cl_compile.json
# Each run has its own time limit; the whole script stays under 6 minutes.
set -uo pipefail
OUT="${OUT:-./gpu_bench_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"

{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true;
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"; } \
  > "$OUT/env.txt" 2>&1

if ! "$PY" -m pip install --quiet --no-deps --no-build-isolation -e . > "$OUT/pip.txt" 2>&1; then
  echo "pip install -e . failed; running from the source tree" >> "$OUT/pip.txt"
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

COMMON=(--models resnet18,sdnet18,sdnet18_all --batch-size 128 --image-size 32 --mode train
        --device cuda --steps 20 --inner 10 --warmup 3 --amp --channels-last)

run() {  # run NAME LIMIT_S extra args...
  local name="$1" limit="$2"; shift 2
  echo "== $name (limit ${limit}s): sdnet bench ${COMMON[*]} $*" | tee -a "$OUT/log.txt"
  local t0=$SECONDS
  timeout "$limit" "$PY" -m sdnet_cli bench "${COMMON[@]}" "$@" -o "$OUT/$name.json" >> "$OUT/log.txt" 2>&1
  echo "   exit $? after $((SECONDS - t0)) s" | tee -a "$OUT/log.txt"
  [ -f "$OUT/$name.json" ] && "$PY" - "$OUT/$name.json" <<'PYEOF' | tee -a "$OUT/log.txt"
import json, sys
r = json.load(open(sys.argv[1]))
print(r["machine"], "| torch", r["torch"])
for x in r["results"]:
    print(f"{x['model']:12s} {x['img_per_s']:9.0f} img/s {x['ms_per_step']:8.2f} ms/step  ratio {x['ratio']:.3f}  "
          f"mem {x.get('memory_mb', float('nan')):8.0f} MB  mem ratio {x.get('memory_ratio', float('nan')):.3f}")
PYEOF
}

run bench_amp_cl 90
run bench_amp_cl_compile 250 --compile
ls -l "$OUT"
