# Shared helpers for the integration tests: real clusterd processes in network
# namespaces on a bridge (scripts/netns-cluster.sh), driven over real HTTP.
# Each test script is run by ctest as: bash test_X.sh CLUSTERD CLUSTERCTL

set -uo pipefail
CLUSTERD=${1:?usage: $0 CLUSTERD CLUSTERCTL}
CLUSTERCTL=${2:?usage: $0 CLUSTERD CLUSTERCTL}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TEST_NAME=$(basename "$0" .sh)
# shellcheck source=../../scripts/netns-cluster.sh
source "$ROOT/scripts/netns-cluster.sh"
NETNS_PREFIX="cdt$$"
WORK=$(mktemp -d "/tmp/clusterd-${TEST_NAME}.XXXXXX")
BEACON_MS=${BEACON_MS:-250}
TIMEOUT_MS=${TIMEOUT_MS:-1000}
declare -A PIDS=()
CHECKS=0

log() { printf '[%s] %s\n' "$TEST_NAME" "$*"; }

dump_logs() {
  local f
  for f in "$WORK"/*.log; do
    [ -f "$f" ] || continue
    echo "----- $(basename "$f") (last 40 lines)"
    tail -n 40 "$f"
  done
}

fail() {
  echo "FAIL: $*"
  dump_logs
  exit 1
}

ok() {
  CHECKS=$((CHECKS + 1))
  log "ok: $*"
}

cleanup() {
  set +e
  local pid
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null; done
  netns_down "$NETNS_PREFIX"
  rm -rf "$WORK"
}
trap cleanup EXIT

# shared_model FILE: prints the absolute path of ../shared/models/FILE; when it is
# missing, says so and fails (callers skip: MODEL=$(shared_model F) || exit 77).
shared_model() {
  local model="$ROOT/../shared/models/$1"
  if [ ! -f "$model" ]; then
    echo "SKIP: ../shared/models/$1 was not found (the shared test models are not here)" >&2
    return 1
  fi
  realpath "$model"
}

# Network namespaces need root; without it the test is skipped (ctest exit code 77).
require_netns() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: $TEST_NAME needs root for network namespaces (CI runs as root)"
    exit 77
  fi
  netns_up "$1" "$NETNS_PREFIX" || fail "could not create $1 network namespaces"
  "$CLUSTERD" keygen > "$WORK/key"
}

# start_node I [extra clusterd flags]: starts node I in its namespace, data in $WORK/nI.
start_node() {
  local i=$1
  shift
  ip netns exec "${NETNS_PREFIX}-n$i" "$CLUSTERD" start --name "n$i" --data-dir "$WORK/n$i" --cluster-key-file "$WORK/key" \
    --beacon-interval-ms "$BEACON_MS" --peer-timeout-ms "$TIMEOUT_MS" "$@" >> "$WORK/n$i.log" 2>&1 &
  PIDS[$i]=$!
  disown "${PIDS[$i]}" 2>/dev/null || true
}

stop_node() {  # stop_node I [SIGNAL]
  local i=$1 sig=${2:-TERM}
  local pid=${PIDS[$i]}
  kill -"$sig" "$pid" 2>/dev/null
  [ "$sig" = STOP ] && return 0
  wait_until 10 eval "! kill -0 $pid 2>/dev/null" || fail "node $i (pid $pid) did not exit after SIG$sig"
  return 0
}

# api I PATH [curl args]: GET on node I's API (loopback inside its namespace).
api() {
  local i=$1 path=$2
  shift 2
  netns_exec "$i" curl -s --max-time 5 "$@" "http://127.0.0.1:8000$path"
}

# count_status I STATUS: how many nodes node I lists with that status.
count_status() {
  api "$1" /v1/devices | jq "[.nodes[] | select(.status==\"$2\")] | length" 2>/dev/null || echo -1
}

# wait_until SECONDS CMD...: polls CMD every 50 ms; true once it succeeds.
wait_until() {
  local deadline=$(($(date +%s%N) + $1 * 1000000000))
  shift
  while [ "$(date +%s%N)" -lt "$deadline" ]; do
    "$@" && return 0
    sleep 0.05
  done
  return 1
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

finish() {
  echo "$TEST_NAME: $CHECKS passed, 0 failed"
  exit 0
}
