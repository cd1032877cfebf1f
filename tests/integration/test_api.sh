# The HTTP API and clusterctl against live nodes: bearer tokens and scopes, the
# refusal to listen beyond loopback without tokens, clusterctl's table, --json and
# error exits, /metrics through promtool, JSON errors, config errors naming the key.
source "$(dirname "$0")/lib.sh"
require_netns 2
command -v promtool > /dev/null || fail "promtool is missing (Debian package prometheus; scripts/install-deps.sh)"

ADDR1=$(netns_addr 1)
cat > "$WORK/tokens.toml" <<TOML
[[tokens]]
name = "ops"
token = "admin-token-0123456789"
scopes = ["admin"]

[[tokens]]
name = "grafana"
token = "read-token-0123456789"
scopes = ["read"]
TOML

# Beyond loopback without a token file: refused, with the fix in the message.
out=$(ip netns exec "${NETNS_PREFIX}-n1" "$CLUSTERD" start --name n1 --data-dir "$WORK/n1" \
  --cluster-key-file "$WORK/key" --api-addr "$ADDR1:8000" 2>&1)
rc=$?
[ "$rc" = 1 ] || fail "a non-loopback API without tokens started (exit $rc)"
grep -q -- "--token-file" <<< "$out" || fail "the refusal does not mention --token-file: $out"
ok "an API beyond loopback without a token file is refused"

start_node 1 --api-addr "$ADDR1:8000" --token-file "$WORK/tokens.toml"
start_node 2
url="http://$ADDR1:8000"
code() { netns_exec 2 curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@"; }
both_alive() { [ "$(netns_exec 2 curl -s -H 'Authorization: Bearer read-token-0123456789' "$url/v1/devices" | jq '[.nodes[] | select(.status=="alive")] | length')" = 2 ]; }
wait_until 10 both_alive || fail "the two nodes did not find each other"

[ "$(code "$url/healthz")" = 200 ] || fail "/healthz must stay open"
[ "$(code "$url/v1/devices")" = 401 ] || fail "no token must give 401"
[ "$(code -H 'Authorization: Bearer wrong-token-000000000' "$url/v1/devices")" = 401 ] || fail "a wrong token must give 401"
[ "$(code -H 'Authorization: Bearer read-token-0123456789' "$url/v1/cluster")" = 200 ] || fail "a read token must read"
body=$(netns_exec 2 curl -s "$url/v1/node")
[ "$(jq -r .error.type <<< "$body")" = authentication_error ] || fail "401 body is not a JSON error: $body"
[ "$(code "$url/no/such/route")" = 401 ] || [ "$(code "$url/no/such/route")" = 404 ] || fail "unknown route"
ok "tokens: /healthz open, 401 without or with a wrong token, read token reads"

# clusterctl: table, --json, and clear failures.
CTL() { netns_exec 2 "$CLUSTERCTL" --server "$url" "$@"; }
table=$(CTL --token read-token-0123456789 devices list) || fail "clusterctl devices list failed"
grep -q "^NAME" <<< "$table" && grep -q "n1\*" <<< "$table" && grep -q "n2 " <<< "$table" ||
  fail "unexpected table: $table"
json=$(CLUSTERCTL_TOKEN=read-token-0123456789 CTL devices list --json) || fail "clusterctl --json failed"
[ "$(jq '.nodes | length' <<< "$json")" = 2 ] || fail "--json is not the /v1/devices document: $json"
status=$(CTL --token read-token-0123456789 cluster status) || fail "clusterctl cluster status failed"
grep -q "healthy" <<< "$status" || fail "cluster status lacks the health summary: $status"
err=$(CTL devices list 2>&1 >/dev/null); rc=$?
[ "$rc" = 3 ] && grep -qi "token" <<< "$err" || fail "clusterctl without a token: exit $rc, '$err'"
err=$(netns_exec 2 "$CLUSTERCTL" --server "http://$ADDR1:9" devices list 2>&1 >/dev/null); rc=$?
[ "$rc" = 2 ] && grep -q "cannot reach" <<< "$err" || fail "clusterctl to a dead server: exit $rc, '$err'"
ok "clusterctl: table, --json, cluster status, exit 3 without a token, exit 2 when unreachable"

# /metrics passes promtool and carries the families users graph.
metrics=$(netns_exec 2 curl -s -H 'Authorization: Bearer read-token-0123456789' "$url/metrics")
promtool check metrics <<< "$metrics" || fail "promtool rejects /metrics"
for family in clusterd_build_info clusterd_peers clusterd_beacons_sent_total clusterd_beacons_received_total \
  clusterd_beacons_rejected_total clusterd_control_links clusterd_control_link_rtt_seconds \
  clusterd_http_requests_total clusterd_process_resident_memory_bytes; do
  grep -q "^$family" <<< "$metrics" || fail "metric $family missing"
done
grep -q 'clusterd_peers{status="alive"} 1' <<< "$metrics" || fail "clusterd_peers does not count the alive peer"
grep -q 'clusterd_http_requests_total{route="/v1/devices",code="401"}' <<< "$metrics" || fail "401s not counted by route"
ok "/metrics passes promtool check metrics"

# An oversized body is refused with 413 and the node keeps serving.
head -c $((5 * 1024 * 1024)) /dev/zero > "$WORK/big"
c=$(code -X POST -H 'Authorization: Bearer admin-token-0123456789' --data-binary "@$WORK/big" "$url/v1/devices")
[ "$c" = 413 ] || [ "$c" = 404 ] || fail "a 5 MiB body got $c"
[ "$(code "$url/healthz")" = 200 ] || fail "node stopped serving after a big body"
ok "a 5 MiB body is refused ($c) and the node keeps serving"

# Config errors name the key and the file.
printf 'name = "x"\ncontrol_port = "eight"\n' > "$WORK/bad.toml"
err=$("$CLUSTERD" start --config "$WORK/bad.toml" --data-dir "$WORK/x" 2>&1); rc=$?
[ "$rc" = 1 ] && grep -q "control_port" <<< "$err" && grep -q "bad.toml" <<< "$err" || fail "bad config: exit $rc, '$err'"
printf 'colour = "blue"\n' > "$WORK/unknown.toml"
err=$("$CLUSTERD" start --config "$WORK/unknown.toml" --data-dir "$WORK/x" 2>&1); rc=$?
[ "$rc" = 1 ] && grep -q "unknown key 'colour'" <<< "$err" || fail "unknown key: exit $rc, '$err'"
echo "short" > "$WORK/short.key"
err=$("$CLUSTERD" start --cluster-key-file "$WORK/short.key" --data-dir "$WORK/x" 2>&1); rc=$?
[ "$rc" = 1 ] && grep -q "at least 16" <<< "$err" || fail "short key: exit $rc, '$err'"
checked=$("$CLUSTERD" start --config "$ROOT/configs/clusterd.toml" --control-port 9001 --check-config) ||
  fail "configs/clusterd.toml does not pass --check-config"
[ "$(jq -r '"\(.discovery_port) \(.control_port) \(.multicast)"' <<< "$checked")" = "8888 9001 true" ] ||
  fail "--check-config shows the wrong effective values: $checked"
ok "config errors name the key and the file; a short cluster key is refused"

finish
