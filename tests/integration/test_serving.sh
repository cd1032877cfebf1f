# Serving a model split over two nodes (network namespaces, API on every address with
# bearer tokens): continuous batching, forwarding from the node that does not
# coordinate, every status code, cancellation, rate limits, request logs and metrics.
# - 32 simultaneous streaming requests (half sent to the other node, which forwards
#   them) each get exactly the text the same request gets alone;
# - SSE framing: only "data: " lines and blank lines, "data: [DONE]" last;
# - 400 (bad JSON, wrong type, huge value, naming the field), 401, 403, 404, 413, 429
#   with Retry-After, 503 with Retry-After when the queue is full;
# - a client that disconnects mid-stream (through the forwarding node) stops its
#   generation: the coordinator counts it cancelled and runs nothing;
# - one log line per request without the prompt; /metrics passes promtool and shows
#   time-to-first-token and batch-size histograms with steps of several sequences.
# The model is a small random-weight synth model (no ../shared needed).
source "$(dirname "$0")/lib.sh"
require_netns 2
command -v promtool > /dev/null || fail "promtool is missing (scripts/install-deps.sh installs it)"

"$CLUSTERD" model synth --arch llama --n-embd 256 --n-layer 4 --n-head 8 --n-head-kv 4 --n-ff 768 --vocab 512 \
  --type q8_0 -o "$WORK/m.gguf" 2> /dev/null || fail "model synth failed"
cat > "$WORK/tokens.toml" << 'TOML'
[[tokens]]
name = "ops"
token = "serving-test-admin-token-0001"
scopes = ["admin"]

[[tokens]]
name = "team"
token = "serving-test-team-token-00002"
scopes = ["inference"]

[[tokens]]
name = "reader"
token = "serving-test-read-token-00003"
scopes = ["read"]

[[tokens]]
name = "limited"
token = "serving-test-limited-token-04"
scopes = ["inference"]
requests_per_minute = 2
TOML
ADMIN="serving-test-admin-token-0001"
TEAM="serving-test-team-token-00002"
READER="serving-test-read-token-00003"
LIMITED="serving-test-limited-token-04"
for i in 1 2; do
  start_node "$i" --api-addr 0.0.0.0:8000 --token-file "$WORK/tokens.toml" --max-sequences 16 --queue-depth 64
done

# req I TOKEN PATH [curl args]: an authorized request to node I; prints the body.
req() {
  local i=$1 token=$2 path=$3
  shift 3
  netns_exec "$i" curl -s --max-time 60 -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@" \
    "http://127.0.0.1:8000$path"
}
# code I TOKEN PATH [curl args]: the HTTP status only.
code() {
  local i=$1 token=$2 path=$3
  shift 3
  netns_exec "$i" curl -s -o /dev/null -w '%{http_code}' --max-time 60 -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' "$@" "http://127.0.0.1:8000$path"
}
linked() {
  for i in 1 2; do
    [ "$(req "$i" "$READER" /v1/cluster | jq '[.links[] | select(.state=="up")] | length')" -ge 1 ] || return 1
  done
}
wait_until 10 linked || fail "the nodes did not link up"
sleep 1  # inventories (with data ports) follow the links

doc=$(req 1 "$ADMIN" /v1/models/load -d "{\"model\":\"$WORK/m.gguf\",\"name\":\"m\",\"strategy\":\"tensor\",\"ctx\":512}")
[ "$(jq -r .state <<< "$doc")" = ready ] || fail "load over 2 nodes: $doc"
[ "$(jq '.ranks | length' <<< "$doc")" = 2 ] || fail "the model is not split over 2 nodes: $doc"
listed() { req 2 "$READER" /v1/models | jq -e '.data[] | select(.id=="m")' > /dev/null; }
wait_until 5 listed || fail "node 2 does not list model m: $(req 2 "$READER" /v1/models)"
ok "model m is split over both nodes and listed by each"

# A burst of clients must not overflow the API's accept queue (httplib listens with 5).
backlog=$(netns_exec 1 ss -ltnH 'sport = :8000' | awk '{print $3}' | head -1)
[ "${backlog:-0}" -ge 128 ] || fail "the API listens with a backlog of ${backlog:-?}"
ok "the API's accept queue holds $backlog connections"

# Every prompt alone, one after another, through the coordinator.
N=32
body() {  # body I STREAM
  printf '{"model":"m","prompt":"request %d: the quick brown fox jumps","max_tokens":%d,"temperature":0,"stream":%s}' \
    "$1" $((12 + $1 % 8)) "$2"
}
for i in $(seq 1 $N); do
  req 1 "$TEAM" /v1/completions -d "$(body "$i" false)" | jq -r '.choices[0].text' > "$WORK/alone.$i" ||
    fail "request $i alone failed"
done
ok "$N requests answered one at a time"

# All at once, streaming; the even ones through node 2, which forwards them.
for i in $(seq 1 $N); do
  node=$((1 + i % 2))
  req "$node" "$TEAM" /v1/completions -N -d "$(body "$i" true)" > "$WORK/stream.$i" &
done
wait
for i in $(seq 1 $N); do
  f="$WORK/stream.$i"
  [ "$(grep -v '^$' "$f" | tail -1)" = "data: [DONE]" ] || fail "stream $i does not end with data: [DONE]: $(tail -3 "$f")"
  bad=$(grep -c -v -E '^(data: .*)?$' "$f")
  [ "$bad" = 0 ] || fail "stream $i has $bad lines that are not SSE data lines: $(head -5 "$f")"
  got=$(grep '^data: {' "$f" | sed 's/^data: //' | jq -j '.choices[0].text // ""')
  [ "$got" = "$(cat "$WORK/alone.$i")" ] || fail "stream $i: '$got' differs from alone: '$(cat "$WORK/alone.$i")'"
done
ok "$N simultaneous streams (half forwarded by node 2) each equal the reply the request gets alone"

whole=$(req 2 "$TEAM" /v1/completions -d "$(body 7 false)" | jq -r '.choices[0].text')
[ "$whole" = "$(cat "$WORK/alone.7")" ] || fail "forwarded whole reply: '$whole'"
chat=$(req 2 "$TEAM" /v1/chat/completions \
  -d '{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"temperature":0}')
[ "$(jq -r .object <<< "$chat")" = chat.completion ] || fail "forwarded chat: $chat"
events=$(req 2 "$TEAM" /v1/inference -N -d '{"model":"m","prompt":"inference","max_tokens":8,"temperature":0,"stream":true}')
final=$(grep '^data: {' <<< "$events" | tail -1 | sed 's/^data: //')
pieces=$(grep '^data: {' <<< "$events" | sed '$d' | sed 's/^data: //' | jq -j .text)
[ "$(jq '.tokens | length' <<< "$final")" = 8 ] && [ "$(jq -r .text <<< "$final")" = "$pieces" ] ||
  fail "streamed /v1/inference: $events"
ok "node 2 forwards whole completions and chat completions, and streams /v1/inference"

metrics=$(req 1 "$READER" /metrics)
batched=$(awk '/^clusterd_batch_size_bucket\{model="m",le="1"\}/ {one=$2} /^clusterd_batch_size_count\{model="m"\}/ {all=$2} END {print all - one}' <<< "$metrics")
[ "${batched:-0}" -gt 0 ] || fail "no step ran more than one sequence: $(grep clusterd_batch_size <<< "$metrics")"
ttft=$(awk '/^clusterd_time_to_first_token_seconds_count\{model="m"\}/ {print $2}' <<< "$metrics")
[ "${ttft:-0}" -ge $((2 * N)) ] || fail "time to first token observed ${ttft:-0} times"
promtool check metrics <<< "$metrics" > "$WORK/promtool.out" 2>&1 || fail "promtool: $(cat "$WORK/promtool.out")"
grep -q '^clusterd_http_requests_total{route="/v1/completions",code="200"} [1-9]' <<< "$metrics" ||
  fail "successful completions are not counted under code 200: $(grep http_requests_total <<< "$metrics")"
! grep -q 'code="-1"' <<< "$metrics" || fail "requests counted under code -1"
ok "$batched steps batched several sequences; TTFT histogram has $ttft requests; promtool accepts /metrics"

# Status codes, each with an OpenAI-style error body.
err=$(req 1 "$TEAM" /v1/completions -d '{not json')
[ "$(jq -r .error.type <<< "$err")" = invalid_request_error ] || fail "bad JSON: $err"
err=$(req 1 "$TEAM" /v1/completions -d '{"model":"m","prompt":"x","max_tokens":"many"}')
[ "$(jq -r .error.param <<< "$err")" = max_tokens ] || fail "wrong type: $err"
err=$(req 2 "$TEAM" /v1/chat/completions -d '{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":1e300}')
[ "$(jq -r .error.param <<< "$err")" = temperature ] || fail "huge value: $err"
[ "$(code 1 "$TEAM" /v1/completions -d '{"model":"m","prompt":"x","max_tokens":-1}')" = 400 ] || fail "negative max_tokens"
[ "$(code 1 nobody /v1/completions -d "$(body 1 false)")" = 401 ] || fail "a bad token is not 401"
[ "$(code 2 "$READER" /v1/completions -d "$(body 1 false)")" = 403 ] || fail "a read token is not refused with 403"
err=$(req 2 "$TEAM" /v1/completions -d '{"model":"nope","prompt":"x"}')
[ "$(jq -r .error.param <<< "$err")" = model ] && grep -q "not loaded" <<< "$err" || fail "unknown model: $err"
head -c $((5 << 20)) /dev/zero | tr '\0' 'a' > "$WORK/big.txt"
[ "$(code 1 "$TEAM" /v1/completions --data-binary @"$WORK/big.txt")" = 413 ] || fail "a 5 MiB body is not 413"
[ "$(code 1 "$LIMITED" /v1/completions -d "$(body 1 false)")" = 200 ] || fail "limited token, first request"
[ "$(code 1 "$LIMITED" /v1/completions -d "$(body 1 false)")" = 200 ] || fail "limited token, second request"
headers=$(netns_exec 1 curl -s -D - -o "$WORK/429.json" -H "Authorization: Bearer $LIMITED" \
  -H 'Content-Type: application/json' -d "$(body 1 false)" http://127.0.0.1:8000/v1/completions)
grep -q "^HTTP/1.1 429" <<< "$headers" || fail "the third request in a minute is not 429: $headers"
grep -qi "^Retry-After: [0-9]" <<< "$headers" || fail "429 without Retry-After: $headers"
[ "$(jq -r .error.type "$WORK/429.json")" = rate_limit_error ] || fail "429 body: $(cat "$WORK/429.json")"
forged=$(code 1 "$LIMITED" /v1/completions -H "X-Clusterd-Forwarded: $(date +%s%3N):$(printf '0%.0s' $(seq 64))" \
  -d "$(body 1 false)")
[ "$forged" = 429 ] || fail "a forged forwarding header escaped the rate limit ($forged)"
ok "400 (naming the field), 401, 403, 404, 413 and 429 with Retry-After"

# A client that goes away mid-stream, through the forwarding node: the coordinator
# stops that generation at once.
before=$(req 1 "$READER" /metrics | awk '/^clusterd_generation_requests_total\{model="m",outcome="cancelled"\}/ {print $2}')
netns_exec 2 curl -s -N --max-time 60 -H "Authorization: Bearer $TEAM" -H 'Content-Type: application/json' \
  -d '{"model":"m","prompt":"a long one","max_tokens":480,"temperature":0,"stream":true}' \
  http://127.0.0.1:8000/v1/completions | head -n 4 > /dev/null
cancelled() {
  local m
  m=$(req 1 "$READER" /metrics)
  [ "$(awk '/^clusterd_generation_requests_total\{model="m",outcome="cancelled"\}/ {print $2}' <<< "$m")" -gt "$before" ] &&
    [ "$(awk '/^clusterd_requests_running\{model="m"\}/ {print $2}' <<< "$m")" = 0 ]
}
wait_until 5 cancelled || fail "the abandoned stream was not cancelled: $(req 1 "$READER" /metrics | grep -E 'running|outcome')"
ok "a client leaving mid-stream (via node 2) cancels its generation on the coordinator"

# Request log: one line per request, token and model named, never the prompt.
grep -q 'request route=/v1/completions token=team model=m status=200 stream=true' "$WORK/n1.log" ||
  fail "no request log line on node 1"
grep -q 'request route=/v1/completions token=team model=m status=200 stream=true .*proxied_to=n1' "$WORK/n2.log" ||
  fail "no forwarded request log line on node 2"
! grep -q "quick brown fox" "$WORK/n1.log" "$WORK/n2.log" || fail "a prompt was written to the log"
ok "one structured log line per request, without the prompt"

# A full queue: node 2 coordinates a model with one running sequence and no queue.
stop_node 2
start_node 2 --api-addr 0.0.0.0:8000 --token-file "$WORK/tokens.toml" --max-sequences 1 --queue-depth 0
wait_until 10 linked || fail "node 2 did not come back"
doc=$(req 2 "$ADMIN" /v1/models/load -d "{\"model\":\"$WORK/m.gguf\",\"name\":\"q\",\"nodes\":[\"n2\"],\"ctx\":512}")
[ "$(jq -r .state <<< "$doc")" = ready ] || fail "load on node 2: $doc"
for i in 1 2 3 4; do
  netns_exec 2 curl -s -D "$WORK/q.$i.h" -o /dev/null --max-time 60 -H "Authorization: Bearer $TEAM" \
    -H 'Content-Type: application/json' -d '{"model":"q","prompt":"x","max_tokens":400,"temperature":0}' \
    http://127.0.0.1:8000/v1/completions &
done
wait
busy=$(grep -l "^HTTP/1.1 503" "$WORK"/q.*.h | head -1)
[ -n "$busy" ] || fail "four requests at once with no queue got no 503: $(head -1 -q "$WORK"/q.*.h)"
grep -qi "^Retry-After: [0-9]" "$busy" || fail "503 without Retry-After: $(cat "$busy")"
grep -q "^HTTP/1.1 200" "$WORK"/q.*.h || fail "no request was served"
ok "a full queue answers 503 with Retry-After while the running request completes"

# Streams refused because the queue is full get the 503 too, not 200 and an error event.
for i in 1 2 3 4; do
  netns_exec 2 curl -s -N -D "$WORK/qs.$i.h" -o "$WORK/qs.$i.body" --max-time 60 -H "Authorization: Bearer $TEAM" \
    -H 'Content-Type: application/json' -d '{"model":"q","prompt":"x","max_tokens":400,"stream":true}' \
    http://127.0.0.1:8000/v1/completions &
done
wait
busy=$(grep -l "^HTTP/1.1 503" "$WORK"/qs.*.h | head -1)
[ -n "$busy" ] || fail "four streams at once with no queue got no 503: $(head -1 -q "$WORK"/qs.*.h)"
body="${busy%.h}.body"
[ "$(jq -r .error.type "$body")" = unavailable ] || fail "the refused stream's body: $(head -c 300 "$body")"
grep -q "^HTTP/1.1 200" "$WORK"/qs.*.h || fail "no stream was served"
ok "streams refused for a full queue get 503 with a JSON error before any event"
finish
