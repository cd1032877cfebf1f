# Three nodes in network namespaces find each other by multicast/broadcast, drop a
# killed node within peer-timeout + one interval, take back a restarted node with the
# same id, and drop a node that says goodbye at once.
source "$(dirname "$0")/lib.sh"
require_netns 3

all_alive() { for i in "$@"; do [ "$(count_status "$i" alive)" = "$#" ] || return 1; done; }

for i in 1 2 3; do start_node "$i"; done
wait_until 10 all_alive 1 2 3 || fail "3 nodes did not reach full membership"
ok "3 nodes reached full membership"

ids=$(for i in 1 2 3; do api "$i" /v1/node | jq -r .id; done | sort -u | wc -l)
[ "$ids" = 3 ] || fail "expected 3 distinct node ids, got $ids"
n3_id=$(api 3 /v1/node | jq -r .id)

links_up() { [ "$(api 1 /v1/cluster | jq '[.links[] | select(.state=="up")] | length')" -ge 2 ]; }
wait_until 5 links_up || fail "node 1 has no control links up: $(api 1 /v1/cluster)"
healthy=$(api 1 /v1/cluster | jq -r .healthy)
[ "$healthy" = true ] || fail "cluster not healthy: $(api 1 /v1/cluster)"
rtt_measured() { [ "$(api 1 /v1/cluster | jq '[.links[] | select(.rtt_us >= 0)] | length')" -ge 4 ]; }
wait_until 5 rtt_measured || fail "RTT not measured on every link: $(api 1 /v1/cluster | jq -c .links)"
ok "control links up with RTT, cluster healthy"

# A killed node is gone on both survivors within peer-timeout + one interval (+ polling slack).
stop_node 3 KILL
t0=$(now_ms)
gone_on() { [ "$(api "$1" /v1/devices | jq -r ".nodes[] | select(.id==\"$n3_id\") | .status")" = gone ]; }
wait_until 5 gone_on 1 || fail "node 1 did not expire the killed node"
wait_until 5 gone_on 2 || fail "node 2 did not expire the killed node"
elapsed=$(($(now_ms) - t0))
limit=$((TIMEOUT_MS + BEACON_MS + 400))
[ "$elapsed" -le "$limit" ] || fail "killed node expired after ${elapsed} ms, limit ${limit} ms"
ok "killed node expired on both survivors after ${elapsed} ms (limit ${limit} ms)"
[ "$(api 1 /v1/cluster | jq -r .healthy)" = false ] || fail "a node lost to silence must make the cluster unhealthy"

# Restarted with the same data dir: same id, back to alive everywhere.
start_node 3
wait_until 10 all_alive 1 2 3 || fail "restarted node did not rejoin"
[ "$(api 3 /v1/node | jq -r .id)" = "$n3_id" ] || fail "restarted node changed its id"
ok "restarted node rejoined with the same id"

# A stopped (SIGSTOP) node turns suspect, then gone; after SIGCONT it is back.
stop_node 3 STOP
status_on_1() { api 1 /v1/devices | jq -r ".nodes[] | select(.id==\"$n3_id\") | .status"; }
is_status() { [ "$(status_on_1)" = "$1" ]; }
wait_until 5 is_status suspect || fail "a stopped node was never shown as suspect"
wait_until 5 is_status gone || fail "a stopped node was not expired"
kill -CONT "${PIDS[3]}"
wait_until 10 all_alive 1 2 3 || fail "a resumed node did not come back"
ok "a SIGSTOPped node went suspect, then gone, and came back after SIGCONT"

# A clean shutdown (SIGTERM) says goodbye: peers drop it well before the timeout.
n2_id=$(api 2 /v1/node | jq -r .id)
stop_node 2 TERM
t0=$(now_ms)
n2_gone() { [ "$(api 1 /v1/devices | jq -r ".nodes[] | select(.id==\"$n2_id\") | .status")" = gone ]; }
wait_until 3 n2_gone || fail "node 1 did not drop node 2 after its goodbye"
elapsed=$(($(now_ms) - t0))
[ "$elapsed" -lt "$TIMEOUT_MS" ] || fail "goodbye took ${elapsed} ms, not faster than the ${TIMEOUT_MS} ms timeout"
grep -q "saying goodbye" "$WORK/n2.log" || fail "node 2 did not log its goodbye"
[ "$(api 1 /v1/cluster | jq -r .healthy)" = true ] || fail "a node that left cleanly makes the cluster unhealthy"
ok "SIGTERM node dropped by peers after ${elapsed} ms"

finish
