#!/usr/bin/env bash
# The main job: build clusterd, start a local 2-node cluster, print what it sees, then
# split a model over both nodes (tensor parallel) and answer a prompt with it through
# `clusterctl infer`, which prints tokens/s.
#   scripts/demo.sh [MODEL.gguf]
# The model is the given GGUF file; else a small model made by `clusterd model synth`,
# which has RANDOM weights and writes gibberish (try ../shared/models/stories260K.gguf
# for a tiny model trained on children's stories).
#  - as root: one network namespace per node on a private bridge (real multicast
#    discovery, as on a LAN; the host's own network is not touched);
#  - otherwise: two agents on loopback with their own ports and static --peer lists.
# The nodes stop when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# DEMO_LOOPBACK=1 picks the loopback layout even as root.
use_netns=0
[ "$(id -u)" -eq 0 ] && [ -z "${DEMO_LOOPBACK:-}" ] && use_netns=1

if [ "$(id -u)" -eq 0 ]; then bash scripts/install-deps.sh; fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build build -j "$(nproc)" --target clusterd clusterctl

WORK=$(mktemp -d /tmp/clusterd-demo.XXXXXX)
PIDS=()
NETNS_PREFIX=cldemo
source scripts/netns-cluster.sh
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "$use_netns" = 1 ] && netns_down cldemo
  rm -rf "$WORK"
}
trap cleanup EXIT
build/clusterd keygen > "$WORK/cluster.key"

if [ "$use_netns" = 1 ]; then
  echo "== starting 2 nodes in network namespaces cldemo-n1..2 (10.213.0.1-2)"
  netns_up 2 cldemo
  for i in 1 2; do
    ip netns exec "cldemo-n$i" "$ROOT/build/clusterd" start --name "node$i" --data-dir "$WORK/node$i" \
      --cluster-key-file "$WORK/cluster.key" > "$WORK/node$i.log" 2>&1 &
    PIDS+=($!)
  done
  ctl() { ip netns exec cldemo-n1 "$ROOT/build/clusterctl" "$@"; }
else
  echo "== starting 2 nodes on loopback (not root: no network namespaces)"
  for i in 1 2; do
    peers=()
    for j in 1 2; do [ "$j" = "$i" ] || peers+=(--peer "127.0.0.1:$((18880 + j))"); done
    build/clusterd start --name "node$i" --data-dir "$WORK/node$i" --cluster-key-file "$WORK/cluster.key" \
      --api-addr "127.0.0.1:$((18000 + i))" --control-port "$((18100 + i))" --discovery-port "$((18880 + i))" \
      --data-port "$((18200 + i))" \
      --interface lo --no-multicast "${peers[@]}" > "$WORK/node$i.log" 2>&1 &
    PIDS+=($!)
  done
  ctl() { build/clusterctl --server http://127.0.0.1:18001 "$@"; }
fi

for _ in $(seq 1 100); do
  n=$(ctl devices list --json 2>/dev/null | grep -c '"status": "alive"' || true)
  [ "$n" = 2 ] && break
  sleep 0.1
done
sleep 1  # one beacon interval, so each node has reported its own links
echo
echo "\$ clusterctl devices list"
ctl devices list
echo
echo "\$ clusterctl cluster status"
ctl cluster status

MODEL=${1:-}
if [ -z "$MODEL" ]; then
  MODEL="$WORK/random-model.gguf"
  build/clusterd model synth --arch llama --n-embd 512 --n-layer 8 --n-head 8 --n-head-kv 4 --n-ff 1536 \
    --vocab 2048 --type q8_0 -o "$MODEL"
  echo
  echo "NOTE: no model given: using a synthetic model with RANDOM weights; its text is gibberish."
  echo "      Pass a GGUF file (Llama, Mistral, Qwen2/2.5/3, SmolLM...) to see real text."
fi
MODEL=$(realpath "$MODEL")
PROMPT=${PROMPT:-"Hello! Tell me a short story."}
echo
echo "\$ clusterctl model load $MODEL --name demo --strategy tensor --ctx 512"
ctl model load "$MODEL" --name demo --strategy tensor --ctx 512
echo
echo "\$ clusterctl infer demo --prompt \"$PROMPT\" -n 64 --temperature 0 --stream"
ctl infer demo --prompt "$PROMPT" -n 64 --temperature 0 --stream
