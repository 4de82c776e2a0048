#!/bin/bash
# aoqd --http life cycle: option errors at start-up, many concurrent HTTP requests, a client that
# hangs up mid-stream cancels its sequence, and SIGTERM lets a running stream finish ([DONE])
# while new HTTP requests are refused with 503 before aoqd exits 0.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/http_lib.sh"
# start-up errors
rc=0; "$AOQD" --foreground --api-keys /nonexistent 2>"$T/e1" || rc=$?
[ "$rc" = 2 ] && grep -q -- "--api-keys needs --http" "$T/e1" || fail "--api-keys without --http: rc $rc $(cat "$T/e1")"
rc=0; "$AOQD" --foreground --device cpu --endpoint "$AOQ_ENDPOINT" --admin-endpoint "$AOQ_ADMIN_ENDPOINT" --http nonsense 2>"$T/e2" || rc=$?
[ "$rc" = 1 ] && grep -q "expected HOST:PORT" "$T/e2" || fail "bad --http: rc $rc $(cat "$T/e2")"
printf 'k1 t1\nk1 t2\n' >"$T/dup"
rc=0; "$AOQD" --foreground --device cpu --endpoint "$AOQ_ENDPOINT" --admin-endpoint "$AOQ_ADMIN_ENDPOINT" --http 127.0.0.1:0 --api-keys "$T/dup" 2>"$T/e3" || rc=$?
[ "$rc" = 1 ] && grep -q "key repeated" "$T/e3" || fail "repeated key: rc $rc $(cat "$T/e3")"
printf 'only-a-key\n' >"$T/bad"
rc=0; "$AOQD" --foreground --device cpu --endpoint "$AOQ_ENDPOINT" --admin-endpoint "$AOQ_ADMIN_ENDPOINT" --http 127.0.0.1:0 --api-keys "$T/bad" 2>"$T/e4" || rc=$?
[ "$rc" = 1 ] && grep -q "expected '<key> <tenant> \[kv_pages=N\]" "$T/e4" || fail "malformed keys file: rc $rc $(cat "$T/e4")"

printf 'k1 t1 kv_pages=-3\n' >"$T/badq"
rc=0; "$AOQD" --foreground --device cpu --endpoint "$AOQ_ENDPOINT" --admin-endpoint "$AOQ_ADMIN_ENDPOINT" --http 127.0.0.1:0 --api-keys "$T/badq" 2>"$T/e5" || rc=$?
[ "$rc" = 1 ] && grep -q "'kv_pages=-3': expected" "$T/e5" || fail "bad quota in the keys file: rc $rc $(cat "$T/e5")"

start_http_daemon
# 8 concurrent completions, all served
pids=()
for i in $(seq 1 8); do
  curl -s "$BASE/v1/completions" -d "{\"model\":\"tiny\",\"prompt\":\"p$i\",\"max_tokens\":20,\"seed\":$i,\"ignore_eos\":true}" >"$T/c$i" & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a concurrent request failed"; done
for i in $(seq 1 8); do jq -e '.usage.completion_tokens == 20' "$T/c$i" >/dev/null || fail "concurrent $i: $(cat "$T/c$i")"; done
# hang up mid-stream: the sequence is cancelled, not decoded to the end
curl -sN --max-time 1 "$BASE/v1/completions" -d '{"model":"tiny","prompt":"x","max_tokens":4000,"stream":true,"ignore_eos":true}' >"$T/cut" || true
grep -q '^data: {' "$T/cut" || fail "the long stream sent nothing in 1 s"
gone=0
for _ in $(seq 1 100); do
  status_json | jq -e '.tenants[] | select(.name=="http") | .live_seqs == 0' >/dev/null && { gone=1; break; }
  sleep 0.1
done
[ "$gone" = 1 ] || fail "the sequence of a closed HTTP stream is still live: $(status_json | jq -c .tenants)"
# SIGTERM during a stream: it finishes, new requests get 503, exit 0
curl -sN "$BASE/v1/completions" -d '{"model":"tiny","prompt":"y","max_tokens":150,"stream":true,"stream_options":{"include_usage":true}}' >"$T/drain" &
C=$!
for _ in $(seq 1 100); do grep -q '^data: {' "$T/drain" 2>/dev/null && break; sleep 0.05; done
kill -TERM "$DAEMON_PID"
code=$(curl -s -o "$T/late" -w '%{http_code}' "$BASE/v1/completions" -d '{"model":"tiny","prompt":"z","max_tokens":5}' || true)
case "$code" in 503 | 000) ;; *) fail "a request during drain got $code: $(cat "$T/late")" ;; esac
[ "$code" = 000 ] || jq -e '.error.type == "server_error"' "$T/late" >/dev/null || fail "drain error body: $(cat "$T/late")"
wait "$C" || fail "the stream in flight failed during drain: $(tail -c 400 "$T/drain")"
grep -q '^data: \[DONE\]$' "$T/drain" || fail "the stream in flight did not finish"
# finished by its length or the model's end token (random weights), never cut: usage counts match
sed -n 's/^data: //p' "$T/drain" | grep -av '^\[DONE\]$' | jq -s -e '
  (map(select(.choices | length > 0) | .choices[0].finish_reason) | map(select(. != null)) | . == ["length"] or . == ["stop"]) and
  (.[-1].usage.completion_tokens | . > 0 and . <= 150)' >/dev/null || fail "the stream in flight was cut short: $(grep -v "^$" "$T/drain" | tail -n 3)"
rc=0; wait "$DAEMON_PID" || rc=$?
DAEMON_PID=""
[ "$rc" = 0 ] || fail "aoqd exited with $rc after SIGTERM"
echo "PASS"
