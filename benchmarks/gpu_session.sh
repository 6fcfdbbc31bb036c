#!/usr/bin/env bash
# The one script a lent GPU machine runs (device tool), in the repository root, about 9 minutes:
#   run(command="bash benchmarks/gpu_session.sh", carry=[".whl"], timeout_s=590)
# .whl holds the wheels the GPU image lacks, downloaded here (docs/training.md, "On a GPU machine"):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 ... -d .whl annotated-types braceexpand
#     geopandas pydantic pydantic_core pyproj shapely typing-inspection webdataset   (the versions of the venv)
# Each step has its own time limit, most important first (issue 14's input pipeline and MFU, then issue 12's
# longer pretraining on the scene task). Writes to $OUT: session.log, gpu.jsonl (benchmark rows), scene.json.
set -u
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/session.log") 2>&1
export PYTHONUNBUFFERED=1 GEODIV_PROGRESS=0
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH="$PWD/src:$PWD:/tmp/site"
CORES=$(nproc)
step() { echo; echo "=== $(date +%T) $1"; }
row() { grep '^{' | tee -a "$OUT/gpu.jsonl"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
python3 -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name(0))"

step "issue 14 item 4: tiny at 64 px, pretrain from shards (SimEarth 16384 samples built on $CORES processes)"
P="python3 -m benchmarks.bench_gpu --pipeline /tmp/pipe --epochs 6"
timeout 60 python3 -c "from benchmarks.bench_gpu import build_pipeline_dataset as b; b('/tmp/pipe')"
timeout 75 $P --workers 6 --batch 256 --before | row
timeout 45 $P --workers 6 --batch 256 | row
timeout 45 $P --workers 12 --batch 256 | row
timeout 45 $P --workers 12 --batch 512 --epochs 8 | row
timeout 45 $P --workers 12 --batch 256 --profile 2>&1 | grep -v '^\[geodiv' | tail -45

step "issue 14 item 5: base MAE step, static shapes, batch 512: attention heads padded to 64 or not (eager, then compiled)"
timeout 60 python3 -m benchmarks.bench_gpu --batch 512 --skip "geodiv (training path),reference form" | row
timeout 45 python3 -m benchmarks.bench_gpu --batch 512 --skip "geodiv (training path),reference form" --pad-heads 64 | row
timeout 45 python3 -m benchmarks.bench_gpu --batch 512 --skip "geodiv (training path),reference form" --pad-heads 64 --sdpa flash | row
timeout 100 python3 -m benchmarks.bench_gpu --batch 512 --skip "geodiv (training path),reference form" --pad-heads 64 --compile --profile | row

step "issue 12: scene, tiny pretrained 60 passes over 8192 global patches (491k sample-steps, 213x quick)"
timeout 170 python3 scripts/scene_probe_experiment.py --out /tmp/scene --n-samples 8192 --size 64 --patch-size 8 \
  --epochs 60 --warmup 3 --batch 256 --blr 1.25e-3 --n-train 480 --n-val 96 --n-test 960 --threads "$CORES" \
  --num-workers 12 --build-workers "$CORES" --gpu --per-class --protocols knn,linear 2>&1 | grep -v '^\[geodiv.*pretrain' | tail -30
cp /tmp/scene/result-*.json "$OUT/scene.json" 2>/dev/null
cp /tmp/scene/model-*/log.csv "$OUT/scene_pretrain_log.csv" 2>/dev/null

step "tests: CUDA paths"
timeout 60 python3 -m pytest -q -p no:cacheprovider -x tests/train/test_cuda.py tests/models/test_blocks.py 2>&1 | tail -5

step "issue 14 item 1: SimEarth build, $CORES processes vs 1"
timeout 60 python3 -c "
import json; from benchmarks import bench_scale
for r in bench_scale._build_rows(False, n=4800, workers=$CORES): print(json.dumps(r))" | row

step "pretrain tiny with torch.compile (host overhead)"
timeout 90 $P --workers 12 --batch 256 --compile | row

step "done"
