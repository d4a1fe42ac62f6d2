#!/usr/bin/env bash
# Teacher servers on one GPU machine: one vLLM OpenAI-compatible server per group of TP GPUs
# (data parallel), then the sampler load-balances over all of them.
#
#   MODEL=deepseek-ai/DeepSeek-R1-Distill-Qwen-32B TP=2 bash scripts/vllm_servers.sh
#   export DISTILL_TEACHER_URL=$(cat data/teacher_urls.txt)     # comma-separated /v1 URLs
#   distill sample recipes/7b.yaml                              # base_urls: ["${DISTILL_TEACHER_URL}"]
#
# Needs: `pip install vllm` (or SGLang: ENGINE=sglang). Stop: kill the PIDs in data/teacher_pids.txt.
# Env: MODEL, TP (GPUs per server, default 1), GPUS (default: all visible), PORT0 (default 8000),
#      MAX_LEN (default 32768), ENGINE (vllm | sglang), EXTRA (more server flags), HOST (advertised host).
set -euo pipefail

MODEL=${MODEL:?set MODEL to the teacher, e.g. deepseek-ai/DeepSeek-R1-Distill-Qwen-32B}
TP=${TP:-1}
PORT0=${PORT0:-8000}
MAX_LEN=${MAX_LEN:-32768}
ENGINE=${ENGINE:-vllm}
HOST=${HOST:-$(hostname)}
GPUS=${GPUS:-$(nvidia-smi --query-gpu=index --format=csv,noheader | paste -sd, -)}
OUT=${OUT:-data}
mkdir -p "$OUT/teacher_logs"
IFS=, read -r -a gpu_list <<< "$GPUS"
n_servers=$(( ${#gpu_list[@]} / TP ))
(( n_servers >= 1 )) || { echo "need at least TP=$TP GPUs, have ${#gpu_list[@]}" >&2; exit 1; }

urls=() pids=()
for ((i = 0; i < n_servers; i++)); do
  devices=$(IFS=,; echo "${gpu_list[*]:$((i * TP)):$TP}")
  port=$((PORT0 + i))
  log="$OUT/teacher_logs/server-$i.log"
  if [[ $ENGINE == sglang ]]; then
    CUDA_VISIBLE_DEVICES=$devices nohup python -m sglang.launch_server --model-path "$MODEL" --tp "$TP" \
      --host 0.0.0.0 --port "$port" --context-length "$MAX_LEN" --reasoning-parser deepseek-r1 ${EXTRA:-} \
      >"$log" 2>&1 &
  else
    # --reasoning-parser returns R1's thinking as `reasoning_content`; the sampler puts it back in <think>.
    CUDA_VISIBLE_DEVICES=$devices nohup vllm serve "$MODEL" --tensor-parallel-size "$TP" \
      --host 0.0.0.0 --port "$port" --max-model-len "$MAX_LEN" --reasoning-parser deepseek_r1 \
      --enable-prefix-caching ${EXTRA:-} >"$log" 2>&1 &
  fi
  pids+=($!)
  urls+=("http://$HOST:$port/v1")
done
printf '%s\n' "${pids[@]}" >"$OUT/teacher_pids.txt"

echo "waiting for ${n_servers} ${ENGINE} server(s) to load $MODEL ..." >&2
for url in "${urls[@]}"; do
  until curl -sf "$url/models" >/dev/null; do
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || { echo "a server died; see $OUT/teacher_logs/" >&2; exit 1; }; done
    sleep 10
  done
done
(IFS=,; echo "${urls[*]}") | tee "$OUT/teacher_urls.txt"
