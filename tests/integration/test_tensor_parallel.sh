# A model split over nodes in network namespaces answers like one node: stories260K
# loaded over 2 and 3 nodes (tensor parallel, each node holding its slices, activations
# summed over TCP data links) gives the greedy story `clusterd run` gives alone. A node
# that dies fails the request with its name, the instance turns degraded, and a new load
# on the survivors works.
source "$(dirname "$0")/lib.sh"
MODEL=$(shared_model stories260K.gguf) || exit 77
require_netns 3
for i in 1 2 3; do start_node "$i"; done
all_linked() {
  for i in 1 2 3; do
    [ "$(api "$i" /v1/cluster | jq '[.links[] | select(.state=="up" and .from != null)] | length')" -ge 2 ] || return 1
  done
}
wait_until 10 all_linked || fail "the nodes did not link up"
sleep 1  # inventories (with data ports) follow the links

alone=$("$CLUSTERD" run -m "$MODEL" -p "Once upon a time" -n 24 --temp 0 --json)
expected=$(jq -c .tokens <<< "$alone")
post() {  # post I PATH JSON
  netns_exec "$1" curl -s --max-time 60 -X POST -H 'Content-Type: application/json' -d "$3" "http://127.0.0.1:8000$2"
}
infer() { post 1 /v1/inference "{\"model\":\"$1\",\"prompt\":\"Once upon a time\",\"max_tokens\":24,\"temperature\":0}"; }

plan=$(post 1 /v1/models/load "{\"model\":\"$MODEL\",\"name\":\"two\",\"nodes\":[\"n1\",\"n2\"],\"ctx\":256,\"dry_run\":true}")
[ "$(jq '.plan.ranks | length' <<< "$plan")" = 2 ] || fail "dry run: $plan"
[ "$(api 1 /v1/instances | jq '.instances | length')" = 0 ] || fail "a dry run loaded something"
ok "a dry run returns the plan and loads nothing"

for n in 2 3; do
  nodes='["n1","n2"]'
  [ "$n" = 3 ] && nodes='["n1","n2","n3"]'
  doc=$(post 1 /v1/models/load "{\"model\":\"$MODEL\",\"name\":\"tp$n\",\"strategy\":\"tensor\",\"nodes\":$nodes,\"ctx\":256}")
  [ "$(jq -r .state <<< "$doc")" = ready ] || fail "load over $n nodes: $doc"
  rank2=$(api 2 /v1/instances | jq -r ".instances[] | select(.name==\"tp$n\") | .rank")
  [ "$rank2" -ge 1 ] 2> /dev/null || fail "node 2 holds no rank of tp$n: $(api 2 /v1/instances)"
  reply=$(infer "tp$n")
  [ "$(jq -c .tokens <<< "$reply")" = "$expected" ] || fail "over $n nodes: $(jq -c .tokens <<< "$reply"), alone: $expected"
  [ "$(jq .usage.completion_tokens <<< "$reply")" = 24 ] || fail "usage: $reply"
  ok "stories260K over $n nodes generates the tokens one node generates ($(jq -r '.timings.tokens_per_second | floor' <<< "$reply") tokens/s)"
  if [ "$n" = 2 ]; then
    text=$(netns_exec 1 "$CLUSTERCTL" infer tp2 -p "Once upon a time" -n 24 --temperature 0 2> /dev/null)
    [ "$text" = "$(jq -r .text <<< "$alone")" ] || fail "clusterctl infer: '$text'"
    netns_exec 1 "$CLUSTERCTL" model list | grep -q "tp2 .*ready .*tensor .*n1 .* 2 " ||
      fail "clusterctl model list: $(netns_exec 1 "$CLUSTERCTL" model list)"
    netns_exec 1 "$CLUSTERCTL" model status --detail | grep -q "KV HEADS" || fail "model status --detail shows no plan"
    ok "clusterctl infer prints the same story; model list and status show the instance"
  fi
  [ "$(post 1 /v1/models/unload "{\"name\":\"tp$n\"}" | jq -r .state)" = unloaded ] || fail "unload tp$n"
done
wait_until 5 eval "[ \"\$(api 3 /v1/instances | jq '.instances | length')\" = 0 ]" || fail "node 3 kept its rank after unload"
ok "unload releases every rank"

for n in 2 3; do
  nodes='["n1","n2"]'
  [ "$n" = 3 ] && nodes='["n1","n2","n3"]'
  doc=$(post 1 /v1/models/load "{\"model\":\"$MODEL\",\"name\":\"pp$n\",\"strategy\":\"pipeline\",\"nodes\":$nodes,\"ctx\":256}")
  [ "$(jq -r .state <<< "$doc")" = ready ] && [ "$(jq -r .strategy <<< "$doc")" = pipeline ] || fail "pipeline load over $n nodes: $doc"
  reply=$(infer "pp$n")
  [ "$(jq -c .tokens <<< "$reply")" = "$expected" ] || fail "pipeline over $n nodes: $(jq -c .tokens <<< "$reply"), alone: $expected"
  ok "stories260K in $n pipeline stages ($(jq -c '[.plan.ranks[].layers]' <<< "$doc") layers) generates the tokens one node generates"
  [ "$(post 1 /v1/models/unload "{\"name\":\"pp$n\"}" | jq -r .state)" = unloaded ] || fail "unload pp$n"
done

err=$(post 1 /v1/inference '{"model":"nope","prompt":"x"}')
[ "$(jq -r .error.message <<< "$err")" != null ] && grep -q "not loaded" <<< "$err" || fail "unknown model: $err"
err=$(post 1 /v1/models/load '{"model":"/nonexistent.gguf"}')
grep -q "nonexistent.gguf" <<< "$err" || fail "missing file: $err"
err=$(post 1 /v1/models/load '{not json')
[ "$(jq -r .error.type <<< "$err")" = invalid_request_error ] || fail "bad JSON: $err"
ok "unknown model, missing file and bad JSON get clear errors"

doc=$(post 1 /v1/models/load "{\"model\":\"$MODEL\",\"name\":\"doomed\",\"strategy\":\"tensor\",\"ctx\":256}")
[ "$(jq -r .state <<< "$doc")" = ready ] || fail "load over 3 nodes: $doc"
stop_node 3 KILL
t0=$(now_ms)
reply=$(infer doomed)
elapsed=$(($(now_ms) - t0))
grep -q "n3" <<< "$(jq -r .error.message <<< "$reply")" || fail "the error does not name the dead node: $reply"
[ "$elapsed" -lt 6000 ] || fail "the failure took ${elapsed} ms"
[ "$(api 1 /v1/instances | jq -r '.instances[] | select(.name=="doomed") | .state')" = degraded ] ||
  fail "instance not degraded: $(api 1 /v1/instances)"
ok "a killed rank fails the request in ${elapsed} ms naming it; the instance is degraded"
post 1 /v1/models/unload '{"name":"doomed"}' > /dev/null
gone3() { [ "$(count_status 1 gone)" = 1 ]; }
wait_until 5 gone3 || fail "node 3 was not expired"
doc=$(post 1 /v1/models/load "{\"model\":\"$MODEL\",\"name\":\"again\",\"ctx\":256}")
[ "$(jq '.ranks | length' <<< "$doc")" = 2 ] || fail "reload on survivors: $doc"
[ "$(jq -c .tokens <<< "$(infer again)")" = "$expected" ] || fail "the reload on the survivors answers differently"
ok "a new load on the surviving nodes works"

stop_node 2 STOP
t0=$(now_ms)
reply=$(infer again)
elapsed=$(($(now_ms) - t0))
grep -q "n2" <<< "$(jq -r .error.message <<< "$reply")" || fail "the error does not name the stopped node: $reply"
[ "$elapsed" -lt 8000 ] || fail "the failure took ${elapsed} ms (deadline 5000 ms)"
[ "$(api 1 /v1/instances | jq -r '.instances[] | select(.name=="again") | .state')" = degraded ] ||
  fail "instance not degraded: $(api 1 /v1/instances)"
post 1 /v1/models/unload '{"name":"again"}' > /dev/null
doc=$(post 1 /v1/models/load "{\"model\":\"$MODEL\",\"name\":\"solo\",\"nodes\":[\"n1\"],\"ctx\":256}")
[ "$(jq -c .tokens <<< "$(infer solo)")" = "$expected" ] || fail "a load on node 1 alone after the stop: $doc"
kill -CONT "${PIDS[2]}"
ok "a SIGSTOPped rank fails the request in ${elapsed} ms naming it; node 1 keeps serving and loads again"

finish
