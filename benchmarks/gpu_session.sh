#!/usr/bin/env bash
# The one script a lent GPU machine runs (device tool), in the repository root, about 8 minutes:
#   run(command="bash benchmarks/gpu_session.sh", carry=[".whl"], timeout_s=590)
# .whl holds the wheels the GPU image lacks (pydantic and its parts, webdataset), downloaded here with
#   pip download --no-deps --only-binary=:all: --python-version 3.12 ... -d .whl pydantic==... (see docs/training.md)
# Writes to $OUT: gpu.jsonl (benchmark rows, rendered into BENCHMARKS.md by run_all), session.log, pretrain logs.
set -u
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/session.log") 2>&1
export PYTHONUNBUFFERED=1 GEODIV_PROGRESS=0
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH="$PWD/src:$PWD:/tmp/site"
step() { echo; echo "=== $(date +%T) $1"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
python3 -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name(0))"

step "benchmark: base MAE train step, bf16 (eager)"
timeout 200 python3 -m benchmarks.bench_gpu | tee "$OUT/gpu.jsonl"

step "attention backends for the decoder's 32-wide heads (static shapes, eager)"
for b in flash cudnn efficient; do
  timeout 60 python3 -m benchmarks.bench_gpu --sdpa $b --skip "geodiv (training path),reference form" \
    | tee -a "$OUT/gpu_sdpa.jsonl"
done

step "synthetic 10-band shards, 4096 x 96 px"
timeout 60 python3 - <<'PY'
from benchmarks.bench_data import _samples
from geodiv.bands import SATMAE_BANDS
from geodiv.data.shard_writer import write_shards
write_shards(_samples(4096), "/tmp/ds", shard_size=512, bands=SATMAE_BANDS)
PY

PAPER="configs/pretrain/paper.yaml --set data.dirs=[/tmp/ds] --set optim.effective_batch=256 --set log.every_steps=4"
step "pretrain: paper preset, torchrun nccl, bf16, 8 workers, 2 epochs, then --resume to 3"
timeout 120 torchrun --standalone --nproc_per_node 1 -m geodiv pretrain $PAPER --set optim.epochs=2 \
  --set optim.warmup_epochs=1 --set checkpoint_every=1 --set out_dir=/tmp/run
timeout 90 torchrun --standalone --nproc_per_node 1 -m geodiv pretrain $PAPER --set optim.epochs=3 \
  --set optim.warmup_epochs=1 --set checkpoint_every=1 --set out_dir=/tmp/run --resume
cp /tmp/run/log.csv "$OUT/pretrain_bf16_log.csv"; ls -la /tmp/run

step "pretrain: fp16 + GradScaler, 6 steps"
timeout 90 python3 -m geodiv pretrain $PAPER --set precision=fp16 --set max_steps=6 --set out_dir=/tmp/run16 \
  && cp /tmp/run16/log.csv "$OUT/pretrain_fp16_log.csv"

step "features on cuda"
python3 -c "import numpy as np; np.save('/tmp/x.npy', np.random.default_rng(0).random((512, 10, 96, 96), dtype=np.float32))"
timeout 60 python3 -m geodiv features --checkpoint /tmp/run/checkpoint-2.pth --input /tmp/x.npy --out /tmp/f.npy \
  --batch-size 256 --device cuda && python3 -c "import numpy as np; f = np.load('/tmp/f.npy'); print(f.shape, f.dtype, float(f.std()))"

step "scale: kNN segmentation on the GPU (issue 14), quick sizes"
timeout 120 python3 -c "from benchmarks import bench_scale; from benchmarks.run_all import table; print(table(bench_scale._knn_rows(quick=True)))"

step "tests: CUDA paths, models and train"
timeout 150 python3 -m pytest -q -p no:cacheprovider -n 8 tests/train tests/models 2>&1 | tail -25

step "pretrain: torch.compile, 12 steps"
timeout 150 python3 -m geodiv pretrain $PAPER --set compile=true --set max_steps=12 --set out_dir=/tmp/runc \
  && cp /tmp/runc/log.csv "$OUT/pretrain_compile_log.csv"

step "done"
