# A node without the model file takes its slices from the coordinator, checked against
# the model's manifest, and the split model answers like one node. Load progress per
# rank shows in GET /v1/instances while a slowed link streams a larger model. A rank
# that cannot load fails the load at once, naming the node, and both nodes keep serving.
source "$(dirname "$0")/lib.sh"
MODEL=$(shared_model stories260K.gguf) || exit 77
command -v unshare > /dev/null || { echo "SKIP: unshare(1) is needed to hide the model from a node"; exit 77; }
require_netns 2

# The model lives in $WORK/models, which node 2 cannot see: it runs in a mount
# namespace with an empty tmpfs over that folder.
mkdir -p "$WORK/models"
cp "$MODEL" "$WORK/models/stories.gguf"
COPY="$WORK/models/stories.gguf"
start_node 1
ip netns exec "${NETNS_PREFIX}-n2" unshare -m --propagation private sh -c \
  "mount -t tmpfs none '$WORK/models' && exec '$CLUSTERD' start --name n2 --data-dir '$WORK/n2' \
   --cluster-key-file '$WORK/key' --beacon-interval-ms $BEACON_MS --peer-timeout-ms $TIMEOUT_MS" >> "$WORK/n2.log" 2>&1 &
PIDS[2]=$!
disown "${PIDS[2]}" 2> /dev/null || true
linked() {
  for i in 1 2; do
    [ "$(api "$i" /v1/cluster | jq '[.links[] | select(.state=="up" and .from != null)] | length')" -ge 1 ] || return 1
  done
}
wait_until 10 linked || fail "the nodes did not link up"
sleep 1  # inventories (with data ports) follow the links

post() {  # post I PATH JSON
  netns_exec "$1" curl -s --max-time 120 -X POST -H 'Content-Type: application/json' -d "$3" "http://127.0.0.1:8000$2"
}
alone=$("$CLUSTERD" run -m "$COPY" -p "Once upon a time" -n 24 --temp 0 --json)
expected=$(jq -c .tokens <<< "$alone")
doc=$(post 1 /v1/models/load "{\"model\":\"$COPY\",\"name\":\"streamed\",\"strategy\":\"tensor\",\"nodes\":[\"n1\",\"n2\"],\"ctx\":256}")
[ "$(jq -r .state <<< "$doc")" = ready ] || fail "load with node 2 lacking the file: $doc"
[ "$(jq -c '[.ranks[].progress]' <<< "$doc")" = "[1,1]" ] || fail "progress of a ready instance: $(jq -c .ranks <<< "$doc")"
grep -q "rank 1 has its slices: .*streamed from node n1" "$WORK/n2.log" || fail "node 2 did not stream its slices"
reply=$(post 1 /v1/inference '{"model":"streamed","prompt":"Once upon a time","max_tokens":24,"temperature":0}')
[ "$(jq -c .tokens <<< "$reply")" = "$expected" ] || fail "streamed slices: $(jq -c .tokens <<< "$reply"), alone: $expected"
ok "node 2 streams its slices of a file it lacks, and the split model gives the greedy tokens of one node"
[ "$(post 1 /v1/models/unload '{"name":"streamed"}' | jq -r .state)" = unloaded ] || fail "unload streamed"

# Progress: a 100 MB model, with node 1's outgoing link held to 200 Mbit/s.
"$CLUSTERD" model synth --n-embd 1024 --n-layer 6 --n-ff 4096 --vocab 8192 --type q8_0 -o "$WORK/models/big.gguf" \
  > /dev/null 2>&1 || fail "model synth"
netns_exec 1 tc qdisc add dev eth0 root tbf rate 200mbit burst 256kb latency 400ms || fail "tc"
post 1 /v1/models/load "{\"model\":\"$WORK/models/big.gguf\",\"name\":\"big\",\"strategy\":\"tensor\",\"nodes\":[\"n1\",\"n2\"],\"ctx\":64}" \
  > "$WORK/big.json" &
loader=$!
midway() {
  local p
  p=$(api 1 /v1/instances | jq '.instances[] | select(.name=="big" and .state=="loading") | .ranks[1].progress')
  [ -n "$p" ] && jq -e ". > 0 and . < 1" <<< "$p" > /dev/null && echo "$p" > "$WORK/midway"
}
wait_until 60 midway || fail "no progress between 0 and 1 was seen for rank 1: $(api 1 /v1/instances)"
wait "$loader"
netns_exec 1 tc qdisc del dev eth0 root
[ "$(jq -r .state "$WORK/big.json")" = ready ] || fail "the big load: $(cat "$WORK/big.json")"
ok "rank 1's progress shows while it streams (seen at $(cat "$WORK/midway")), then the instance is ready"
post 1 /v1/models/unload '{"name":"big"}' > /dev/null

# A rank that cannot load: node 2 already runs an instance named "clash".
[ "$(post 2 /v1/models/load "{\"model\":\"$MODEL\",\"name\":\"clash\",\"nodes\":[\"n2\"],\"ctx\":64}" | jq -r .state)" = ready ] ||
  fail "load on node 2 alone"
t0=$(now_ms)
err=$(post 1 /v1/models/load "{\"model\":\"$COPY\",\"name\":\"clash\",\"strategy\":\"tensor\",\"nodes\":[\"n1\",\"n2\"],\"ctx\":64}")
elapsed=$(($(now_ms) - t0))
grep -q "n2: an instance named 'clash' exists" <<< "$(jq -r .error.message <<< "$err")" || fail "the error: $err"
[ "$elapsed" -lt 3000 ] || fail "the failed load took ${elapsed} ms"
state=$(api 1 /v1/instances | jq -r '.instances[] | select(.name=="clash") | "\(.state) \(.error)"')
grep -q "^failed n2: " <<< "$state" || fail "the failed instance on node 1: $state"
ok "a rank that cannot load fails the load in ${elapsed} ms naming node n2; the instance shows failed"
[ "$(post 1 /v1/models/unload '{"name":"clash"}' | jq -r .state)" = unloaded ] || fail "unload of the failed instance"
doc=$(post 1 /v1/models/load "{\"model\":\"$COPY\",\"name\":\"again\",\"strategy\":\"tensor\",\"nodes\":[\"n1\",\"n2\"],\"ctx\":256}")
[ "$(jq -r .state <<< "$doc")" = ready ] || fail "a new load after the failure: $doc"
[ "$(jq -c .tokens <<< "$(post 1 /v1/inference '{"model":"again","prompt":"Once upon a time","max_tokens":24,"temperature":0}')")" = "$expected" ] ||
  fail "the new load answers differently"
[ "$(api 2 /v1/instances | jq -r '.instances[] | select(.name=="clash") | .state')" = ready ] || fail "node 2's own instance"
ok "both nodes keep serving: a new load over them works and node 2's instance is untouched"

finish
