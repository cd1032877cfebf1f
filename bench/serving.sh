#!/usr/bin/env bash
# Serving benchmark: `clusterctl bench` (streaming clients over HTTP) at several
# concurrency levels against (1) one node and (2) a 2-node tensor-parallel instance,
# both on this machine (agents on loopback with their own ports and static peers).
# With the machine's cores C: one node runs C engine threads; the two nodes C/2 each,
# so both configurations use the same cores.
#   bench/serving.sh [BUILD_DIR] [MODEL.gguf]
# Without a model it makes the 1B-shape Q8_0 synth model (Llama-3.2-1B shape, vocab
# from ../shared/models/llama-2-tiny-random.gguf when present). Env: CONCURRENCY
# (default 1,4,16,32), ROUNDS (requests per client, default 3), MAX_TOKENS (64), CTX (1024).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
MODEL=${2:-}
CONCURRENCY=${CONCURRENCY:-1,4,16,32}
ROUNDS=${ROUNDS:-3}
MAX_TOKENS=${MAX_TOKENS:-64}
CTX=${CTX:-1024}
CLUSTERD=$(realpath "$BUILD/clusterd")
CLUSTERCTL=$(realpath "$BUILD/clusterctl")
WORK=$(mktemp -d /tmp/clusterd-serving-bench.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2> /dev/null || true; done
  wait 2> /dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
CORES=$(nproc)
HALF=$((CORES / 2 > 0 ? CORES / 2 : 1))

if [ -z "$MODEL" ]; then
  MODEL="$WORK/bench-1b-q8_0.gguf"
  like=()
  [ -f ../shared/models/llama-2-tiny-random.gguf ] && like=(--like ../shared/models/llama-2-tiny-random.gguf)
  "$CLUSTERD" model synth --arch llama --n-embd 2048 --n-layer 16 --n-head 32 --n-head-kv 8 --n-ff 8192 --tied \
    --vocab 32000 "${like[@]}" --type q8_0 -o "$MODEL" 2> /dev/null
fi
MODEL=$(realpath "$MODEL")
"$CLUSTERD" keygen > "$WORK/key"

start() {  # start I THREADS PEER...
  local i=$1 threads=$2
  shift 2
  local peers=()
  for p in "$@"; do peers+=(--peer "127.0.0.1:$((19880 + p))"); done
  "$CLUSTERD" start --name "bench$i" --data-dir "$WORK/n$i" --cluster-key-file "$WORK/key" \
    --api-addr "127.0.0.1:$((19000 + i))" --control-port $((19100 + i)) --discovery-port $((19880 + i)) \
    --data-port $((19200 + i)) --interface lo --no-multicast "${peers[@]}" --threads "$threads" \
    --max-sequences 32 --max-batch-tokens 512 > "$WORK/n$i.log" 2>&1 &
  PIDS+=($!)
}
ctl() { "$CLUSTERCTL" --server "http://127.0.0.1:$((19000 + $1))" "${@:2}"; }
wait_alive() {  # wait_alive I N: node I sees N alive nodes
  for _ in $(seq 1 200); do
    [ "$(ctl "$1" devices list --json 2> /dev/null | grep -c '"status": "alive"')" = "$2" ] && return 0
    sleep 0.05
  done
  echo "the nodes did not find each other"
  exit 1
}
stop_all() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2> /dev/null || true; done
  wait 2> /dev/null || true
  PIDS=()
}

echo "== one node, $CORES threads"
start 1 "$CORES"
wait_alive 1 1
ctl 1 model load "$MODEL" --name bench --ctx "$CTX" > /dev/null
ctl 1 bench bench --concurrency "$CONCURRENCY" --rounds "$ROUNDS" --max-tokens "$MAX_TOKENS"
stop_all

echo
echo "== two nodes, tensor parallel, $HALF threads each"
start 2 "$HALF" 3
start 3 "$HALF" 2
wait_alive 2 2
sleep 1  # inventories (with data ports) follow the links
ctl 2 model load "$MODEL" --name bench --strategy tensor --ctx "$CTX" > /dev/null
ctl 2 bench bench --concurrency "$CONCURRENCY" --rounds "$ROUNDS" --max-tokens "$MAX_TOKENS"
