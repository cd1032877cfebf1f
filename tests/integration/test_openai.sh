# The OpenAI-compatible API driven by the official `openai` npm package (installed with
# npm into a scratch folder): models.list, completions and chat completions, whole and
# streamed, and error cases; the text must equal what /v1/inference gives for the same
# request. Plus curl-level checks of SSE framing and status codes. One node on loopback
# (no root needed); the model is stories260K from ../shared/models.
source "$(dirname "$0")/lib.sh"
MODEL=$(shared_model stories260K.gguf) || exit 77
command -v npm > /dev/null || fail "npm is missing (Node.js and npm are expected on this machine)"
if ! npm install --prefix "$WORK/npm" openai@4 --no-audit --no-fund --silent > "$WORK/npm.log" 2>&1; then
  echo "SKIP: npm could not install the openai package from the registry: $(tail -3 "$WORK/npm.log")"
  exit 77
fi

PORT=$((20000 + $$ % 20000))
cat > "$WORK/tokens.toml" <<TOML
[[tokens]]
name = "sdk"
token = "clusterd-test-token-0123456789"
scopes = ["admin"]

[[tokens]]
name = "viewer"
token = "clusterd-viewer-token-0123456789"
scopes = ["read"]
TOML
"$CLUSTERD" keygen > "$WORK/key"
"$CLUSTERD" start --name solo --data-dir "$WORK/solo" --cluster-key-file "$WORK/key" --api-addr "127.0.0.1:$PORT" \
  --control-port $((PORT + 1)) --discovery-port $((PORT + 2)) --data-port $((PORT + 3)) --interface lo \
  --no-multicast --token-file "$WORK/tokens.toml" > "$WORK/solo.log" 2>&1 &
PIDS[1]=$!
disown "${PIDS[1]}"
URL="http://127.0.0.1:$PORT"
AUTH="Authorization: Bearer clusterd-test-token-0123456789"
up() { curl -s "$URL/healthz" > /dev/null; }
wait_until 10 up || fail "the node did not come up"
post() { curl -s --max-time 60 -H "$AUTH" -H 'Content-Type: application/json' -d "$2" "$URL$1"; }
[ "$(post /v1/models/load "{\"model\":\"$MODEL\",\"name\":\"stories\",\"ctx\":512}" | jq -r .state)" = ready ] ||
  fail "the model did not load"

reference=$(post /v1/inference '{"model":"stories","prompt":"Once upon a time","max_tokens":24,"temperature":0}' | jq -r .text)
[ -n "$reference" ] && [ "$reference" != null ] || fail "/v1/inference gave no text"

# Node resolves packages next to the script, so the script runs from the npm folder.
cp "$ROOT/tests/integration/openai_client.mjs" "$WORK/npm/"
sdk=$(node "$WORK/npm/openai_client.mjs" "$URL/v1" stories 2> "$WORK/sdk.err") ||
  fail "the openai client failed: $(cat "$WORK/sdk.err")"
check() {  # check JQ_EXPR EXPECTED WHAT
  local got
  got=$(jq -r "$1" <<< "$sdk")
  [ "$got" = "$2" ] || fail "$3: got '$got', expected '$2'"
}
check '.models | index("stories") != null' true "models.list()"
check .completion "$reference" "completions.create text vs /v1/inference"
check .completion_stream "$reference" "streamed completion text"
check .completion_finish length "finish_reason"
check .completion_usage.completion_tokens 24 "usage.completion_tokens"
check .chat_role assistant "chat message role"
check '.chat_stream == .chat' true "streamed chat equals whole chat"
check .stream_role assistant "first stream chunk carries the role"
check .stream_usage.completion_tokens 24 "stream_options.include_usage"
check .error_status 404 "unknown model"
check .bad_field_status 400 "temperature out of range"
check .bad_field_param temperature "the bad field is named"
ok "the openai npm package: models, completions, chat, streaming, usage and errors work; text equals /v1/inference"

# clusterctl streams: infer --stream prints the same text; chat keeps history until /reset.
streamed=$("$CLUSTERCTL" --server "$URL" --token clusterd-test-token-0123456789 infer stories \
  -p "Once upon a time" -n 24 --temperature 0 --stream 2> "$WORK/infer.err")
[ "$streamed" = "$reference" ] || fail "clusterctl infer --stream: '$streamed'"
grep -q "tokens/s" "$WORK/infer.err" || fail "clusterctl infer --stream printed no timing line"
hi=$(post /v1/chat/completions '{"model":"stories","messages":[{"role":"user","content":"Hi"}],"max_tokens":8,"temperature":0}' |
  jq -r '.choices[0].message.content')
mapfile -t replies < <(printf 'Hi\n/reset\nHi\nHi again\n/exit\nnot sent\n' |
  "$CLUSTERCTL" --server "$URL" --token clusterd-test-token-0123456789 chat stories -n 8 --temperature 0)
[ "${#replies[@]}" = 3 ] || fail "clusterctl chat: ${#replies[@]} replies for 3 messages: ${replies[*]}"
[ "${replies[0]}" = "$hi" ] && [ "${replies[1]}" = "$hi" ] || fail "clusterctl chat: '${replies[0]}' / '${replies[1]}', expected '$hi'"
ok "clusterctl infer --stream and chat (piped, /reset, /exit) show the server's text"

# SSE framing with curl: every event is 'data: ...' and a blank line, [DONE] last.
curl -sN -H "$AUTH" -d '{"model":"stories","prompt":"Once upon a time","max_tokens":8,"temperature":0,"stream":true}' \
  "$URL/v1/completions" > "$WORK/sse"
awk 'NR % 2 == 1 && !/^data: / { bad = 1 } NR % 2 == 0 && $0 != "" { bad = 1 } END { exit bad }' "$WORK/sse" ||
  fail "malformed SSE framing: $(head -c 300 "$WORK/sse")"
[ "$(grep -c '^data: ' "$WORK/sse")" -ge 3 ] || fail "too few events"
[ "$(grep '^data: ' "$WORK/sse" | tail -1)" = "data: [DONE]" ] || fail "[DONE] is not last"
ok "SSE framing: data lines and blank lines, [DONE] last"

code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
[ "$(code -H "$AUTH" -d '{"model":"stories"' "$URL/v1/chat/completions")" = 400 ] || fail "malformed JSON is not 400"
[ "$(code -d '{"model":"stories","prompt":"x"}' "$URL/v1/completions")" = 401 ] || fail "no token is not 401"
[ "$(code -H 'Authorization: Bearer clusterd-viewer-token-0123456789' -d '{"model":"stories","prompt":"x"}' \
  "$URL/v1/completions")" = 403 ] || fail "a read token may not generate (403)"
[ "$(code -H "$AUTH" -d '{"model":"stories","prompt":"x","max_tokens":-3}' "$URL/v1/completions")" = 400 ] ||
  fail "negative max_tokens is not 400"
head -c $((5 * 1024 * 1024)) /dev/zero | tr '\0' 'a' > "$WORK/big"
[ "$(code -H "$AUTH" --data-binary "@$WORK/big" "$URL/v1/completions")" = 413 ] || fail "a 5 MiB body is not 413"
[ "$(code -H "$AUTH" "$URL/v1/models/stories")" = 200 ] || fail "GET /v1/models/stories"
[ "$(code -H "$AUTH" "$URL/v1/models/nope")" = 404 ] || fail "GET /v1/models/nope"
ok "400 for bad JSON and values, 401, 403, 404, 413"

# A client that disconnects mid-stream stops its generation: the next request runs at once.
# (head ends after two lines; curl then dies of SIGPIPE and the connection closes.)
curl -sN -H "$AUTH" -d '{"model":"stories","prompt":"Once","max_tokens":480,"temperature":1,"stream":true}' \
  "$URL/v1/completions" 2> /dev/null | head -n 2 > /dev/null
t0=$(now_ms)
post /v1/inference '{"model":"stories","prompt":"Once","max_tokens":4,"temperature":0}' | jq -e .text > /dev/null ||
  fail "the node stopped answering after a client went away"
wait_until 5 grep -q "client disconnected" "$WORK/solo.log" || fail "the disconnect was not noticed"
ok "a disconnected stream stops its generation; the next request answers in $(($(now_ms) - t0)) ms"

finish
