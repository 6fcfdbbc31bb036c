#!/usr/bin/env bash
# The one script a lent GPU machine runs (device tool), in the repository root, at most about 9 minutes
# (each step has its own limit; the 2026-11-28 version took 468 s on an H200, its ONLY=pipeline part 164 s):
#   run(command="bash benchmarks/gpu_session.sh", carry=[".whl"], timeout_s=590)
# .whl holds the wheels the GPU image lacks, downloaded here (docs/training.md, "On a GPU machine"):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 ... -d .whl annotated-types braceexpand
#     geopandas pydantic pydantic_core pyproj shapely typing-inspection webdataset   (the versions of the venv)
# Most important first: issue 14 item 4 (tiny at 64 px fed from shards: the loader-per-pass baseline, one loader,
# batch 2048, transforms in the workers, compiled; then the input pipeline alone and a profile), the CUDA tests,
# then issue 12 (the `gpu` profile's recipe on the scene task, seed 0, and seed 1 if the time allows), each step
# with its own time limit. ONLY=pipeline: the first five item-4 rows alone; ONLY=mfu: issue 14 item 5's
# attention-backend rows alone; ONLY=gpu-study: the `gpu` study profile with seed 0, resumable over calls (SMOKE=1
# on a CPU: the same study at toy sizes, 5 min; a second call resumes in seconds). Writes to $OUT: session.log,
# gpu.jsonl (benchmark rows), scene-s*.log (each ends with the result as JSON); with ONLY=gpu-study study.log,
# results.csv and report.md.
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
if [ "${SMOKE:-0}" = 1 ]; then N=64 EP=3 BA=16 TR=48 VA=24 TE=48 PN=2048 PB=256 PE=2 PW=2 SW=1 T1=900 T3=600 BUDGET=100000
else N=4000 EP=16 BA=256 TR=1008 VA=240 TE=1008 PN=32768 PB=1024 PE=6 PW=8 SW=2 T1=190 T3=75 BUDGET=575; fi

if [ "${ONLY:-}" = mfu ]; then
  # Issue 14 item 5 (base at 40 % MFU on an H100; 32.3 % recorded, compiled, batch 512, cuDNN attention): the
  # decoder's 32-wide heads under the other SDPA backends, unpadded (padding to 64 was slower), eager and compiled.
  # Not run yet: prepared for the next session with a GPU (about 3 min).
  for BACKEND in flash efficient; do
    step "issue 14 item 5: base, batch 512, SDPA backend $BACKEND"
    timeout 200 python3 -m benchmarks.bench_gpu --batch 512 --compile --skip 'geodiv (training path),reference form' \
      --sdpa $BACKEND | row
  done
  step "done in ${SECONDS} s"; exit 0
fi

if [ "${ONLY:-}" = gpu-study ]; then
  # Issue 12 item 5: the `gpu` profile as a whole has never run: about 33 min of one H100 for its 3 seeds, and a
  # session has 15 min of device time. This runs seed 0 alone (about 11 min by the profile's arithmetic) as a study
  # in runs/ (kept on the machine while it stays warm): call again at once and it resumes from its cached steps.
  # Writes results.csv, report.md and study.log to $OUT. Not run yet: prepared for a session with a GPU.
  mkdir -p runs
  SMOKE=${SMOKE:-0} python3 - <<'PY' || exit 1
import os
import yaml
from geodiv.study.config import load_study_config
raw = load_study_config(profile="gpu").model_dump(mode="json", exclude_none=True)
raw["seeds"] = [0]
if os.environ["SMOKE"] == "1":  # the same study at toy sizes, to try this path on a CPU
    raw["data"].update(n_samples=48, size=32, shard_size=24)
    raw["pretrain"]["optim"].update(epochs=1, warmup_epochs=0, batch_size=8, effective_batch=8)
    raw["pretrain"]["data"].update(num_workers=0, shuffle_buffer=48, img_size=32)
    raw["pretrain"]["checkpoint_every"] = 1
    for t in raw["tasks"]:
        t.update(n_train=24, n_val=12, n_test=24)
    raw["evaluation"]["options"]["finetune"] = {"epochs": 1, "warmup_epochs": 0, "batch_size": 8}
    raw["datasets"] = raw.get("datasets", [])[:2] or None
    if raw["datasets"] is None:
        del raw["datasets"]
with open("runs/gpu-study.yaml", "w") as fh:
    yaml.safe_dump(raw, fh, sort_keys=False)
PY
  step "issue 12 item 5: the gpu profile, seed 0 (resumes from runs/gpu-study)"
  timeout ${T_STUDY:-560} python3 -m geodiv.cli study runs/gpu-study.yaml --out runs/gpu-study --jobs 1 \
    > "$OUT/study.log" 2>&1
  echo "study exit status $? (124: stopped by the limit; call again to resume)"
  grep -E '\] done |study finished' "$OUT/study.log" | tail -5
  cp runs/gpu-study/results.csv runs/gpu-study/report/report.md "$OUT/" 2>/dev/null
  step "done in ${SECONDS} s"; exit 0
fi

step "issue 14 item 4: tiny at 64 px from shards (SimEarth $PN samples built on $CORES processes), batch $PB, $PW workers"
# Recorded 2026-11-28 on an H200 (BENCHMARKS.md, gpu (H200)): transforms on the GPU took the input pipeline alone
# from 12,314 to 26,974 samples/s and tiny end to end from 9,876 to 14,800 (median window 22,764), still a
# DataLoader per pass. Now one endless loader serves the run; --per-pass is that baseline, in the same run.
# $PW workers: $PN / $PW samples each, whole batches of $PB (none dropped). ONLY=pipeline: these rows alone.
B="python3 -m benchmarks.bench_gpu --pipeline /tmp/pipe --workers $PW --transform-on device --epochs $PE"
timeout 90 python3 -c "from benchmarks.bench_gpu import build_pipeline_dataset as b; b('/tmp/pipe', n=$PN)"
timeout $T3 $B --batch $PB --per-pass | row
timeout $T3 $B --batch $PB | row
timeout $T3 $B --batch $((PB * 2)) | row
timeout $T3 $B --batch $PB --transform-on workers | row
timeout $((T3 + 30)) $B --batch $PB --compile | row  # fewer kernel launches for a step whose host side leads
[ "${ONLY:-}" = pipeline ] && { step "done in ${SECONDS} s"; exit 0; }
timeout $T3 $B --batch $PB --epochs 4 --loader-only --transform-on workers | row
timeout $T3 $B --batch $PB --epochs 4 --loader-only | row
# where the time of a step goes (host and GPU operators, 20 steps)
timeout $T3 $B --batch $PB --epochs 2 --profile 2>&1 | grep -v '^{' | tail -60

step "the CUDA tests (tests/train/test_cuda.py: bf16/fp16/fp32 pretraining, the device transform, features)"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/train/test_cuda.py 2>&1 | tail -15

# Issue 12, 4(b) with the `gpu` profile's recipe on one set (ViT-Base: the `paper` recipe preset, 96 px, 4,000 samples x 16
# epochs, batch 256, blr 1.5e-4; its scene task 1,008 / 240 / 1,008), seed 0, and seed 1 while the time allows.
# Done before, on an H200 (docs/study.md, "142x on a GPU"): `tiny` at 64 px with 142x the quick pretraining tied the
# spectral baseline. PROTOCOLS=linear,finetune FT_EPOCHS=20: fine-tuning as well.
PROTOCOLS=${PROTOCOLS:-knn,linear}
FT=${FT_EPOCHS:+--finetune-epochs $FT_EPOCHS}
for SEED in 0 1; do
  if [ $((SECONDS + T1)) -gt $BUDGET ]; then echo "# skipped seed $SEED: ${SECONDS} s used of $BUDGET"; break; fi
  step "issue 12: scene, seed $SEED, gpu recipe: ViT-Base (paper recipe preset), $EP passes over $N global patches at 96 px"
  timeout $T1 python3 scripts/scene_probe_experiment.py --profile gpu --preset base --out /tmp/scene \
    --n-samples $N --size 96 --patch-size 8 --epochs $EP --warmup 2 --batch $BA --blr 1.5e-4 \
    --n-train $TR --n-val $VA --n-test $TE --threads "$CORES" --num-workers $SW --build-workers "$CORES" --gpu \
    --per-class --protocols $PROTOCOLS $FT --seed $SEED 2>&1 \
    | grep -v '^\[geodiv' | tee "$OUT/scene-s$SEED.log" | grep -E '^(knn|linear|finetune) '
  # the model folder's name has no seed: move it away, or the next seed would resume from this one
  cp /tmp/scene/model-*/log.csv "$OUT/scene-s$SEED-pretrain-log.csv" 2>/dev/null; rm -rf /tmp/scene/model-*
done

step "done in ${SECONDS} s"
cat "$OUT/gpu.jsonl"
