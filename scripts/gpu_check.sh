#!/usr/bin/env bash
# One prepared check of the training path on a lent GPU machine (torch CUDA, transformers, peft,
# accelerate, pyarrow there; no TRL, datasets, DeepSpeed or pydantic; no network). Installs the carried
# wheelhouse, then scripts/gpu_check.py trains a random-initialised Qwen2.5-1.5B for 30 steps at 8k
# tokens through `distill train`: packing on/off and ZeRO-3 in one process, each under its own
# timeout; prints tokens/s, MFU and peak memory beside `distill plan`, and a table at the end.
#
#   bash scripts/gpu_wheelhouse.sh                     # here, once: .gpu-wheels/ (~10 MiB, git-ignored)
#   bash scripts/gpu_check.sh                          # there, carrying .gpu-wheels (about 5 minutes)
#   PY=.venv/bin/python bash scripts/gpu_check.sh --cpu-smoke   # here: the same path, tiny, on CPU
#
# The wheels go to a --target folder on PYTHONPATH rather than a venv: the GPU image's python3 is
# itself a venv, and `venv --system-site-packages` would reach the base interpreter, not its torch.
set -uo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-python3}
WHEELS=.gpu-wheels
SITE=${GPU_CHECK_SITE:-/tmp/distill-gpu-site}

if [ ! -f "$WHEELS/requirements.txt" ]; then
  echo "error: $WHEELS/ is missing: run \`bash scripts/gpu_wheelhouse.sh\` first and carry .gpu-wheels" >&2
  exit 2
fi
rm -rf "$SITE"
start=$(date +%s)
if ! "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --disable-pip-version-check \
    --target "$SITE" --find-links "$WHEELS" -r "$WHEELS/requirements.txt"; then
  echo "error: installing the carried wheels failed (python: $("$PY" --version 2>&1))" >&2
  exit 3
fi
echo "wheels installed into $SITE in $(( $(date +%s) - start ))s"

# Carried packages first (their versions win), then this checkout's distill; workers inherit both.
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
  TRANSFORMERS_OFFLINE=1 HF_DATASETS_CACHE=/tmp/distill-gpu-check/hf-datasets DS_BUILD_OPS=0
if ! "$PY" -c "import trl, datasets, pydantic, distill.cli" 2>/tmp/distill-gpu-import.err; then
  echo "error: the carried packages do not import:" >&2
  tail -n 15 /tmp/distill-gpu-import.err >&2
  exit 4
fi
# DeepSpeed only matters to the ZeRO-3 case: say why it will fail, and run the others anyway.
"$PY" -c "import deepspeed" >/dev/null 2>/tmp/distill-gpu-ds.err || {
  echo "warning: deepspeed does not import (the ZeRO-3 case will fail):" >&2; tail -n 5 /tmp/distill-gpu-ds.err >&2; }
exec "$PY" scripts/gpu_check.py "$@"
