#!/bin/bash
# aoqd --http with curl: models, completions (usage, seed reproducibility, stop strings), a streamed
# chat completion as server-sent events ending in [DONE], OpenAI error objects with the right
# status (400 bad JSON/params, 401 key, 404 model/route, 405, 429 quota), and HTTP and ZeroMQ
# tenants decoding in the same batch.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/http_lib.sh"
printf 'key-a acme\nkey-s small kv_pages=4 priority=3  # quota set by the keys file\n' >"$T/keys"
start_http_daemon --api-keys "$T/keys"
A=(-H "Authorization: Bearer key-a")
post() { curl -s -o "$T/body" -w '%{http_code}' "${A[@]}" -H 'Content-Type: application/json' "$BASE$1" -d "$2"; }
expect_error() { # status type path body
  local code
  code=$(post "$3" "$4")
  [ "$code" = "$1" ] || fail "$3 $4: status $code, expected $1: $(cat "$T/body")"
  jq -e --arg t "$2" '.error.type == $t and (.error.message | length > 0) and (.error | has("param") and has("code"))' "$T/body" >/dev/null ||
    fail "$3 $4: not an OpenAI error of type $2: $(cat "$T/body")"
}

curl -s "${A[@]}" "$BASE/v1/models" | jq -e '.object == "list" and (.data | map(.id) | index("tiny")) != null' >/dev/null || fail "GET /v1/models"
[ "$(post /v1/completions '{"model":"tiny","prompt":"Once upon a time","max_tokens":24,"temperature":0,"ignore_eos":true}')" = 200 ] || fail "completion: $(cat "$T/body")"
jq -e '.object == "text_completion" and .choices[0].finish_reason == "length" and .usage.completion_tokens == 24 and .usage.prompt_tokens > 0 and .usage.total_tokens == .usage.prompt_tokens + 24' "$T/body" >/dev/null || fail "completion body: $(cat "$T/body")"
FULL=$(jq -r '.choices[0].text' "$T/body")
# stop: a piece from the middle of the greedy text ends it before that piece, finish "stop"
STOP=$(jq -r '.choices[0].text | explode | .[(length / 2 | floor):(length / 2 | floor) + 1] | implode' "$T/body")
[ -n "$STOP" ] || fail "greedy text too short for a stop string: $FULL"
BODY=$(jq -nc --arg s "$STOP" '{model:"tiny",prompt:"Once upon a time",max_tokens:24,temperature:0,ignore_eos:true,stop:[$s,"\u0001never"]}')
[ "$(post /v1/completions "$BODY")" = 200 ] || fail "completion with stop: $(cat "$T/body")"
jq -e --arg full "$FULL" --arg s "$STOP" '.choices[0].finish_reason == "stop" and .choices[0].text == ($full | split($s) | .[0])' "$T/body" >/dev/null ||
  fail "stop string '$STOP' not applied: full '$FULL', got $(cat "$T/body")"
# the same with stream:true: deltas add up to the same truncated text
BODY=$(jq -nc --arg s "$STOP" '{model:"tiny",prompt:"Once upon a time",max_tokens:24,temperature:0,ignore_eos:true,stop:$s,stream:true}')
curl -sN "${A[@]}" "$BASE/v1/completions" -d "$BODY" >"$T/sse1" || fail "streamed completion"
sed -n 's/^data: //p' "$T/sse1" | grep -av '^\[DONE\]$' | jq -rj '.choices[0].text' >"$T/sse1.txt" || fail "stream events are not JSON"
jq -e -n --arg full "$FULL" --arg s "$STOP" --rawfile got "$T/sse1.txt" '$got == ($full | split($s) | .[0])' >/dev/null || fail "streamed stop text: $(cat "$T/sse1.txt")"

# streamed chat: every event is 'data: <json>' + blank line, the last is [DONE]
curl -sN -D "$T/hdr" "${A[@]}" "$BASE/v1/chat/completions" \
  -d '{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":6,"stream":true,"seed":7,"ignore_eos":true,"stream_options":{"include_usage":true}}' >"$T/sse" || fail "streamed chat"
grep -qi '^content-type: text/event-stream' "$T/hdr" || fail "stream content type: $(cat "$T/hdr")"
awk 'NR % 2 == 1 && !/^data: / { bad = 1 } NR % 2 == 0 && $0 != "" { bad = 1 } END { exit bad }' "$T/sse" || fail "not SSE framing: $(head -c 600 "$T/sse")"
[ "$(tail -n 2 "$T/sse" | head -n 1)" = "data: [DONE]" ] || fail "stream does not end with [DONE]"
sed -n 's/^data: //p' "$T/sse" | grep -av '^\[DONE\]$' | jq -s -e '
  (.[0].choices[0].delta.role == "assistant") and
  (map(select(.choices | length > 0) | .choices[0].finish_reason) | map(select(. != null)) == ["length"]) and
  (.[-1].usage.completion_tokens == 6) and all(.[]; .object == "chat.completion.chunk")' >/dev/null || fail "chat stream content: $(cat "$T/sse")"

# errors
expect_error 400 invalid_request_error /v1/completions '{"model":'
expect_error 400 invalid_request_error /v1/completions '{"model":"tiny"}'
expect_error 400 invalid_request_error /v1/completions '{"model":"tiny","prompt":"x","max_tokens":0}'
expect_error 400 invalid_request_error /v1/completions '{"model":"tiny","prompt":"x","top_p":2}'
expect_error 400 invalid_request_error /v1/completions '{"model":"tiny","prompt":"x","stop":[1]}'
expect_error 400 invalid_request_error /v1/completions '{"model":"tiny","prompt":"x","ignore_eos":1}'
expect_error 400 invalid_request_error /v1/chat/completions '{"model":"tiny","messages":[]}'
expect_error 404 not_found_error /v1/chat/completions '{"model":"missing","messages":[{"role":"user","content":"x"}]}'
jq -e '.error.param == "model" and .error.code == "model_not_found"' "$T/body" >/dev/null || fail "404 names the model param"
expect_error 404 not_found_error /v1/nothing '{}'
code=$(curl -s -o "$T/body" -w '%{http_code}' "$BASE/v1/models")
[ "$code" = 401 ] && jq -e '.error.type == "authentication_error"' "$T/body" >/dev/null || fail "no key: $code $(cat "$T/body")"
code=$(curl -s -o "$T/body" -w '%{http_code}' -H "Authorization: Bearer key-" "$BASE/v1/models")
[ "$code" = 401 ] || fail "a key prefix was accepted: $code"
code=$(curl -s -o "$T/body" -w '%{http_code}' "${A[@]}" "$BASE/v1/completions")
[ "$code" = 405 ] || fail "GET /v1/completions: $code"
# quota: tenant small (key-s) may hold 4 KV pages (keys file); 300 tokens need more -> 429, streamed too
status_json | jq -e '.tenants[] | select(.name=="small") | .quota.kv_pages == 4 and .quota.priority == 3 and .quota.max_seqs == 0' >/dev/null ||
  fail "keys-file quota not applied: $(status_json | jq -c .tenants)"
A=(-H "Authorization: Bearer key-s")
expect_error 429 rate_limit_error /v1/completions '{"model":"tiny","prompt":"x","max_tokens":300}'
expect_error 429 rate_limit_error /v1/completions '{"model":"tiny","prompt":"x","max_tokens":300,"stream":true}'
[ "$(post /v1/completions '{"model":"tiny","prompt":"x","max_tokens":8,"ignore_eos":true}')" = 200 ] || fail "within the quota: $(cat "$T/body")"

# one batch: an HTTP stream (tenant acme) and a ZeroMQ client (tenant zmq) decode together
A=(-H "Authorization: Bearer key-a")
curl -sN "${A[@]}" "$BASE/v1/completions" -d '{"model":"tiny","prompt":"a","max_tokens":1500,"stream":true,"ignore_eos":true}' >"$T/long" &
CURL=$!
"$E2E_CLIENT" gen zmq 1 1500 >"$T/zmq.out" &
ZMQ=$!
both=0
for _ in $(seq 1 300); do
  if status_json | jq -e '[.tenants[] | select((.name == "acme" or .name == "zmq") and .live_seqs >= 1)] | length == 2' >/dev/null; then both=1; break; fi
  sleep 0.02
done
wait "$CURL" || fail "long HTTP stream"
wait "$ZMQ" || fail "ZeroMQ client"
[ "$both" = 1 ] || fail "never saw the HTTP and the ZeroMQ tenant live at once"
grep -q '^data: \[DONE\]$' "$T/long" || fail "long stream did not finish"
stop_daemon
echo "PASS"
