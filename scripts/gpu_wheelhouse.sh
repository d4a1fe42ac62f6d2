#!/usr/bin/env bash
# The wheels scripts/gpu_check.sh carries to a GPU machine that has torch, transformers, peft,
# accelerate, pyarrow and pandas but not TRL, datasets, DeepSpeed or pydantic, and reaches no network.
# Pure-Python wheels, plus the few compiled ones for both CPython 3.12 (the GPU image) and 3.11 (this
# machine, for `gpu_check.sh --cpu-smoke`); DeepSpeed as a wheel with no compiled ops (they JIT-build
# where needed). Also a tokenizer the repo builds offline (SmolLM2's, ChatML), since nothing can be
# downloaded there. Writes .gpu-wheels/ (git-ignored) and checks it stays small enough to travel.
#
#   bash scripts/gpu_wheelhouse.sh            # then: bash scripts/gpu_check.sh [--cpu-smoke]
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
OUT=.gpu-wheels
MAX_MIB=40
# Exactly the versions tested here (pyproject pins), one version each: the install is --no-deps.
PURE="trl==1.16.0 datasets==5.2.0 dill==0.4.1 fsspec==2026.9.0 pydantic==2.14.4 annotated-types==0.8.0
      typing-inspection==0.4.5 typing-extensions==4.16.0 hjson==3.1.0"
BINARY="pydantic-core==2.50.5 multiprocess==0.70.19"
DEEPSPEED=deepspeed==0.19.8

rm -rf "$OUT.tmp" && mkdir -p "$OUT.tmp"
# shellcheck disable=SC2086
"$PY" -m pip download -q --no-deps --only-binary=:all: -d "$OUT.tmp" $PURE
for v in 3.12 3.11; do
  # shellcheck disable=SC2086
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$v" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$OUT.tmp" $BINARY
done
# No build isolation: DeepSpeed's setup imports torch (any build will do; no ops are compiled).
DS_BUILD_OPS=0 "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$OUT.tmp" "$DEEPSPEED"
ls "$OUT.tmp"/deepspeed-*-py3-none-any.whl >/dev/null  # a pure wheel, or it would not install there

# The tokenizer (files only, no weights): gpu_check builds a random-initialised Qwen2.5-1.5B around it.
"$PY" - "$OUT.tmp/tokenizer" <<'EOF'
import sys

from transformers import AutoTokenizer

from distill.assets import hf_folder

AutoTokenizer.from_pretrained(hf_folder("embedded:smollm2-135m-instruct")).save_pretrained(sys.argv[1])
EOF

# What gpu_check.sh installs: every name once (pip picks the wheel matching the interpreter).
for spec in $PURE $BINARY $DEEPSPEED; do echo "$spec"; done > "$OUT.tmp/requirements.txt"
rm -rf "$OUT" && mv "$OUT.tmp" "$OUT"
size=$(du -sm "$OUT" | cut -f1)
echo "wheelhouse: $OUT, ${size} MiB ($(ls "$OUT"/*.whl | wc -l) wheels)"
if [ "$size" -ge "$MAX_MIB" ]; then
  echo "error: $OUT is ${size} MiB, over ${MAX_MIB} MiB: it must travel with the working tree (64 MiB in all)" >&2
  exit 1
fi
