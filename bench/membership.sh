#!/usr/bin/env bash
# Membership benchmark: 4 nodes in network namespaces (root needed), default timings
# (beacon 1000 ms, peer timeout 3500 ms) unless BEACON_MS / TIMEOUT_MS are set.
#   join:   from the start of the last node to full membership on every node
#   detect: from SIGKILL of one node to the last survivor expiring it
# Times come from the agents' own log timestamps (ms). Prints each run and the median.
#   bench/membership.sh [BUILD_DIR] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
RUNS=${2:-5}
BEACON_MS=${BEACON_MS:-1000}
TIMEOUT_MS=${TIMEOUT_MS:-3500}
N=4
CLUSTERD=$(realpath "$BUILD/clusterd")
[ "$(id -u)" -eq 0 ] || { echo "bench/membership.sh needs root (network namespaces)"; exit 1; }
source scripts/netns-cluster.sh
NETNS_PREFIX=cldbench
WORK=$(mktemp -d /tmp/clusterd-bench.XXXXXX)
trap 'netns_down cldbench; rm -rf "$WORK"' EXIT
netns_up $N cldbench
"$CLUSTERD" keygen > "$WORK/key"

ms() { date +%s%3N; }
log_ms() {  # log_ms LINE -> epoch ms of the log line's timestamp
  date -u -d "$(cut -c1-23 <<< "$1" | tr T ' ')" +%s%3N
}

joins=() detects=()
for run in $(seq 1 "$RUNS"); do
  rm -rf "$WORK"/n* && pids=()
  for i in $(seq 1 $N); do
    [ "$i" = $N ] && t_start=$(ms)
    ip netns exec "cldbench-n$i" "$CLUSTERD" start --name "n$i" --data-dir "$WORK/n$i" --cluster-key-file "$WORK/key" \
      --beacon-interval-ms "$BEACON_MS" --peer-timeout-ms "$TIMEOUT_MS" > "$WORK/n$i.log" 2>&1 &
    pids+=($!)
    disown $!
  done
  # Wait until every node logged N-1 joins, then take the latest join.
  for _ in $(seq 1 200); do
    done_nodes=0
    for i in $(seq 1 $N); do [ "$(grep -c ' joined from ' "$WORK/n$i.log")" -ge $((N - 1)) ] && done_nodes=$((done_nodes + 1)); done
    [ "$done_nodes" = $N ] && break
    sleep 0.05
  done
  [ "$done_nodes" = $N ] || { echo "run $run: no full membership"; exit 1; }
  last_join=0
  for i in $(seq 1 $N); do
    t=$(log_ms "$(grep ' joined from ' "$WORK/n$i.log" | tail -1)")
    [ "$t" -gt "$last_join" ] && last_join=$t
  done
  join=$((last_join - t_start))

  sleep 1
  t_kill=$(ms)
  kill -9 "${pids[$((N - 1))]}"
  for _ in $(seq 1 200); do
    n=$(cat "$WORK"/n[1-3].log | grep -c ' expired: ' || true)
    [ "$n" -ge $((N - 1)) ] && break
    sleep 0.05
  done
  last_expire=0
  for i in $(seq 1 $((N - 1))); do
    t=$(log_ms "$(grep ' expired: ' "$WORK/n$i.log" | tail -1)")
    [ "$t" -gt "$last_expire" ] && last_expire=$t
  done
  detect=$((last_expire - t_kill))
  printf 'run %d: join %5d ms   detect %5d ms\n' "$run" "$join" "$detect"
  joins+=("$join") detects+=("$detect")
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done; done
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
echo "median of $RUNS: join $(median "${joins[@]}") ms (goal < 1500), detect $(median "${detects[@]}") ms (goal < $((TIMEOUT_MS + 500)); beacon ${BEACON_MS} ms, timeout ${TIMEOUT_MS} ms)"
