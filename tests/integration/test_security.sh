# A node with another key is never listed; garbage, forged, truncated and replayed
# beacons and malformed control frames are dropped and counted while the node keeps
# serving; a replayed beacon does not keep a dead node alive; a copied data dir is
# refused at start.
source "$(dirname "$0")/lib.sh"
require_netns 3
HOSTILE=${HOSTILE_PEER:?HOSTILE_PEER must name the hostile_peer program}

for i in 1 2; do start_node "$i"; done
"$CLUSTERD" keygen > "$WORK/other.key"
ip netns exec "${NETNS_PREFIX}-n3" "$CLUSTERD" start --name n3 --data-dir "$WORK/n3" \
  --cluster-key-file "$WORK/other.key" --beacon-interval-ms "$BEACON_MS" --peer-timeout-ms "$TIMEOUT_MS" \
  >> "$WORK/n3.log" 2>&1 &
PIDS[3]=$!
disown "${PIDS[3]}"

pair_alive() { [ "$(count_status 1 alive)" = 2 ] && [ "$(count_status 2 alive)" = 2 ]; }
wait_until 10 pair_alive || fail "nodes 1 and 2 did not find each other"
sleep $((3 * BEACON_MS / 1000 + 1))
for i in 1 2; do
  n=$(api "$i" /v1/devices | jq '.nodes | length')
  [ "$n" = 2 ] || fail "node $i lists $n nodes; the node with another key must not be listed"
done
[ "$(api 3 /v1/devices | jq '.nodes | length')" = 1 ] || fail "the node with another key lists foreign nodes"
metric() {  # metric I NAME_WITH_LABELS
  api "$1" /metrics | awk -v m="$2" '$1 == m {print $2}'
}
other=$(metric 1 'clusterd_beacons_rejected_total{reason="other_cluster"}')
[ "${other:-0}" -gt 0 ] || fail "node 1 did not count the other cluster's beacons"
ok "a node with another key is never listed ($other of its beacons dropped by node 1)"
stop_node 3 KILL

# 10,000 bad datagrams and 600 bad control connections at node 1, from node 3's namespace.
netns_exec 3 "$HOSTILE" udp "$(netns_addr 1)" 8888 10000 "$WORK/key" || fail "hostile_peer udp failed"
netns_exec 3 "$HOSTILE" tcp "$(netns_addr 1)" 8001 600 || fail "hostile_peer tcp failed"
[ "$(api 1 /healthz | jq -r .status)" = ok ] || fail "node 1 stopped serving after bad input"
kill -0 "${PIDS[1]}" || fail "node 1 died"
wait_until 5 pair_alive || fail "nodes 1 and 2 lost each other after bad input"
for reason in malformed bad_magic bad_mac other_cluster replay; do
  n=$(metric 1 "clusterd_beacons_rejected_total{reason=\"$reason\"}")
  [ "${n:-0}" -gt 0 ] || fail "no datagram counted as $reason"
done
hs=$(metric 1 clusterd_control_handshake_failures_total)
[ "${hs:-0}" -ge 100 ] || fail "only ${hs:-0} bad control connections counted"
ok "10,000 bad datagrams and 600 bad control connections dropped and counted; node 1 serving"

# One genuine beacon from a made-up node, replayed for 3 timeouts: listed once, then gone.
HOSTILE_ID=0badc0de-0000-4000-8000-000000000001
netns_exec 3 "$HOSTILE" replay "$(netns_addr 1)" 8888 $((3 * TIMEOUT_MS)) "$WORK/key" > /dev/null &
replayer=$!
hostile_status() { api 1 /v1/devices | jq -r ".nodes[] | select(.id==\"$HOSTILE_ID\") | .status"; }
sleep $((2 * TIMEOUT_MS / 1000 + 1))
status=$(hostile_status)
kill -0 "$replayer" 2>/dev/null || fail "the replayer stopped before the check"
[ "$status" = gone ] || fail "a replayed beacon kept a silent node '$status'"
wait "$replayer"
ok "replayed beacons did not keep a silent node alive"

# A copy of node 2's data dir (node 2 still running) must refuse to start.
cp -r "$WORK/n2" "$WORK/copy"
rm -f "$WORK/copy/lock"
timeout 10 ip netns exec "${NETNS_PREFIX}-n3" "$CLUSTERD" start --name copy --data-dir "$WORK/copy" \
  --cluster-key-file "$WORK/key" --beacon-interval-ms "$BEACON_MS" --peer-timeout-ms "$TIMEOUT_MS" \
  > "$WORK/copy.log" 2>&1
rc=$?
[ "$rc" = 2 ] || fail "the node with a copied data dir exited with $rc, expected 2"
grep -q "already used by the live node 'n2'" "$WORK/copy.log" || fail "no clear duplicate-id message: $(cat "$WORK/copy.log")"
grep -q "node_id" "$WORK/copy.log" || fail "the message does not say which file to delete"
sleep $((TIMEOUT_MS / 1000 + 1))
n2_ok=$(api 1 /v1/devices | jq -r '.nodes[] | select(.name=="n2") | "\(.status) \(.address)"')
[ "$n2_ok" = "alive $(netns_addr 2)" ] || fail "node 1 sees n2 as '$n2_ok' after the duplicate tried to start"
ok "a copied data dir is refused with exit code 2; the original keeps its place"

finish
