#!/usr/bin/env bash
# Build llama-cpp-python and llama.cpp's own tools (llama-server, llama-imatrix, llama-perplexity,
# llama-quantize) from ONE source tree and ONE CMake build tree, once, into a cache:
#
#   bash scripts/build_llama_cpp.sh VERSION FLAVOUR CACHE_DIR
#
# CACHE_DIR/llama_cpp_python-VERSION-*.whl   the Python wheel (what `pip install` takes)
# CACHE_DIR/bin/                              the tools and the shared libraries they link
#
# The wheel's build tree is kept until the tools are built from it, so ggml and llama are
# compiled once with the same flags for both (the tools only add their own sources).
# FLAVOUR: avx2 (any x86-64 of the last decade), avx512 (AVX-512 with VBMI, VNNI and BF16: Zen 4,
# Sapphire Rapids and later), cuda (a CUDA build, layers offloaded with -ngl) or native. The x86 flavours
# leave AMX off: on VMs that report AMX without enabling it, a build using it crashes in every quantized
# matmul.
set -euo pipefail
VERSION=$1 FLAVOUR=$2 CACHE=$3
PY=${PY:-python3}
TOOLS=(llama-server llama-imatrix llama-perplexity llama-quantize)

case "$FLAVOUR" in
  avx2|avx512)
    X86="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
    if [ "$FLAVOUR" = avx512 ]; then
      FLAGS="$X86 -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON"
    else
      FLAGS="$X86 -DGGML_AVX512=OFF"
    fi ;;
  cuda) FLAGS="-DGGML_CUDA=ON" ;;
  *) FLAGS="" ;;
esac

have_all() {
  ls "$CACHE"/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1 || return 1
  for t in "${TOOLS[@]}"; do [ -x "$CACHE/bin/$t" ] || return 1; done
}
have_all && exit 0

start=$(date +%s)
echo "building llama-cpp-python $VERSION and llama.cpp's tools ($FLAVOUR) into $CACHE; once, about 11-14 minutes on 2 cores"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/llama-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
"$PY" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$WORK"
tar -xzf "$WORK"/llama_cpp_python-"$VERSION".tar.gz -C "$WORK"
SRC="$WORK/llama_cpp_python-$VERSION"
BUILD="$WORK/build"
mkdir -p "$CACHE"

# 1. The wheel, from a build tree we keep (scikit-build-core's build-dir).
CMAKE_ARGS="$FLAGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
  "$PY" -m pip wheel -q --no-deps --no-cache-dir "$SRC" -w "$WORK/wheel" -C build-dir="$BUILD"
wheel_done=$(date +%s)

# 2. The tools, from the same tree: switch them on (no web UI download: offline machines) and
#    build only their targets; ggml/llama objects are already there. (llama.cpp's tools/ adds mtmd
#    itself, so the wrapper's own add_subdirectory of it is switched off.)
cmake -S "$SRC" -B "$BUILD" -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAVA_BUILD=OFF \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_TOOLS_INSTALL=OFF >/dev/null
cmake --build "$BUILD" --parallel "$(nproc)" --target "${TOOLS[@]}" >/dev/null

# 3. Into the cache: binaries beside every shared library of this build (run with LD_LIBRARY_PATH
#    set to bin/, as the wrappers setup.sh writes into .venv/bin do), then the wheel last: it marks a whole build.
rm -rf "$CACHE/bin.tmp" && mkdir -p "$CACHE/bin.tmp"
for t in "${TOOLS[@]}"; do cp "$(find "$BUILD" -type f -name "$t" -perm -u+x | head -n 1)" "$CACHE/bin.tmp/"; done
find "$BUILD" -name '*.so*' \( -type f -o -type l \) -exec cp -P {} "$CACHE/bin.tmp/" \;
rm -rf "$CACHE/bin" && mv "$CACHE/bin.tmp" "$CACHE/bin"
cp "$WORK"/wheel/llama_cpp_python-"$VERSION"-*.whl "$CACHE/"
echo "llama.cpp built in $(( $(date +%s) - start )) s (the wheel $(( wheel_done - start )) s, the tools $(( $(date +%s) - wheel_done )) s more)"
