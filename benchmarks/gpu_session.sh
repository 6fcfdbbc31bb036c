#!/usr/bin/env bash
# The one script a lent GPU machine runs (device tool), in the repository root, about 9 minutes (limits sum to 560 s):
#   run(command="bash benchmarks/gpu_session.sh", carry=[".whl"], timeout_s=590)
# .whl holds the wheels the GPU image lacks, downloaded here (docs/training.md, "On a GPU machine"):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 ... -d .whl annotated-types braceexpand
#     geopandas pydantic pydantic_core pyproj shapely typing-inspection webdataset   (the versions of the venv)
# Each step has its own time limit, most important first (issue 12's longer pretraining on the scene task, two seeds,
# then issue 14's input pipeline at batch 1024). Writes to $OUT: session.log, gpu.jsonl (benchmark rows), scene-s*.
set -u
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/session.log") 2>&1
export PYTHONUNBUFFERED=1 GEODIV_PROGRESS=0
if [ -d .whl ] && [ "${SMOKE:-0}" != 1 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH="$PWD/src:$PWD:/tmp/site"
CORES=$(nproc)
step() { echo; echo "=== $(date +%T) $1"; }
row() { grep '^{' | tee -a "$OUT/gpu.jsonl"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
python3 -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name(0))"

# SMOKE=1: the same steps at toy sizes, to try the script on a CPU before a GPU session.
if [ "${SMOKE:-0}" = 1 ]; then N=512 EP=3 TR=48 VA=24 TE=48 PN=4096 PW=2 SW=1 T1=600 T3=600
else N=8192 EP=40 TR=480 VA=96 TE=960 PN=32768 PW=12 SW=8 T1=190 T3=70; fi

# Issue 12, 4(b) at 142x the quick pretraining: does the margin over the spectral baseline hold across seeds (at 53x
# seed 0 gave +0.053 and seed 1 -0.037, docs/study.md)? Seed changes the pretraining sample, the task and the init.
# PROTOCOLS=linear,finetune FT_EPOCHS=20 ONLY=scene: the second call of 2026-11-27 (fine-tuning on scene).
PROTOCOLS=${PROTOCOLS:-knn,linear}
FT=${FT_EPOCHS:+--finetune-epochs $FT_EPOCHS}
for SEED in 0 1; do
  step "issue 12: scene, seed $SEED, tiny pretrained $EP passes over $N global patches (142x quick)"
  timeout $T1 python3 scripts/scene_probe_experiment.py --out /tmp/scene --n-samples $N --size 64 --patch-size 8 \
    --epochs $EP --warmup 2 --batch 256 --blr 1.25e-3 --n-train $TR --n-val $VA --n-test $TE --threads "$CORES" \
    --num-workers $SW --build-workers "$CORES" --gpu --per-class --protocols $PROTOCOLS $FT --seed $SEED 2>&1 \
    | grep -v '^\[geodiv' | tee "$OUT/scene-s$SEED.log" | grep -E '^(knn|linear|finetune) '
  for f in /tmp/scene/result-*.json; do [ -e "$f" ] && mv "$f" "$OUT/scene-s$SEED-${PROTOCOLS/,/+}.json"; done
  # the model folder's name has no seed: move it away, or the next seed would resume from this one
  cp /tmp/scene/model-*/log.csv "$OUT/scene-s$SEED-pretrain-log.csv" 2>/dev/null; rm -rf /tmp/scene/model-*
done

[ "${ONLY:-}" = scene ] && { step "done"; exit 0; }

step "issue 14 item 4: tiny at 64 px from shards (SimEarth $PN samples built on $CORES processes): batch 256 vs 1024, compile"
# Recorded 2026-11-27 on an H100 (BENCHMARKS.md, gpu): batch 256 is host-bound (12.4k samples/s with the data already
# on the GPU, 4.1k end to end); batch 1024 reaches 38.5k on GPU-resident data. Batch 256 is rerun here as the
# same-run baseline (this card may differ from the H100 of the recorded rows).
P="python3 -m benchmarks.bench_gpu --pipeline /tmp/pipe --epochs 4 --workers $PW"
timeout 60 python3 -c "from benchmarks.bench_gpu import build_pipeline_dataset as b; b('/tmp/pipe', n=$PN)"
timeout $T3 $P --batch 256 | row
timeout $T3 $P --batch 1024 | row
timeout $((T3 + 40)) $P --batch 1024 --compile | row

step "done"
