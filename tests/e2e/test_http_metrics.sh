#!/bin/bash
# GET /metrics is strict Prometheus text (tests/e2e/http/promparse.mjs, which first proves it
# rejects malformed expositions) and its counters move with HTTP and ZeroMQ traffic.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/http_lib.sh"
P="$(cd "$(dirname "$0")/http" && pwd)/promparse.mjs"
# the parser itself: each of these must be refused
bad=('x 1\n'
     '# TYPE x counter\nx -1\n'
     '# TYPE x gauge\nx{a="\\q"} 1\n'
     '# TYPE x gauge\nx{a="1",a="2"} 1\n'
     '# TYPE x gauge\nx 1\n# TYPE y gauge\ny 1\nx{b="1"} 2\n'
     '# TYPE h histogram\nh_bucket{le="1"} 3\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 2\n'
     '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n'
     '# TYPE x gauge\nx 1\nx 2\n'
     '# TYPE x gauge\nx one\n'
     '# TYPE x gauge\nx 1')
for b in "${bad[@]}"; do
  if printf "$b" | node "$P" >/dev/null 2>&1; then fail "promparse accepted: $b"; fi
done
printf '# HELP h A histogram.\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 3.5\nh_count 2\n' | node "$P" | jq -e '."h_count{}" == 2' >/dev/null || fail "promparse refused a valid histogram"

start_http_daemon
scrape() {
  curl -s -D "$T/mh" "$BASE/metrics" >"$T/m.txt" || fail "GET /metrics"
  grep -qi '^content-type: text/plain; version=0.0.4' "$T/mh" || fail "content type: $(cat "$T/mh")"
  node "$P" <"$T/m.txt" >"$1" || fail "/metrics is not valid Prometheus text"
}
scrape "$T/m0"
for fam in aoq_http_requests_total aoq_http_tokens_total aoq_step_seconds aoq_time_to_first_token_seconds \
    aoq_queue_depth aoq_live_sequences aoq_kv_pages aoq_device_memory_bytes aoq_reconfigurations_total; do
  grep -q "^# HELP $fam " "$T/m.txt" && grep -q "^# TYPE $fam " "$T/m.txt" || fail "no HELP/TYPE for $fam"
done
jq -e '."aoq_device_memory_bytes{model=\"tiny\",pool=\"weights\"}" > 0 and ."aoq_kv_pages{model=\"tiny\",state=\"used\"}" == 0' "$T/m0" >/dev/null ||
  fail "model gauges at rest: $(cat "$T/m0")"
# traffic: two HTTP completions of 5 and 7 tokens, one ZeroMQ generation of 9, one 404
for n in 5 7; do
  curl -s "$BASE/v1/completions" -d "{\"model\":\"tiny\",\"prompt\":\"hello\",\"max_tokens\":$n,\"ignore_eos\":true}" | jq -e ".usage.completion_tokens == $n" >/dev/null || fail "completion of $n"
done
"$E2E_CLIENT" gen zmq 1 9 | grep -q "gen length 9" || fail "ZeroMQ generation"
curl -s -o /dev/null "$BASE/v1/completions" -d '{"model":"none","prompt":"x"}'
"$AOQCTL" reconfigure tiny --config int8wo >/dev/null || fail "reconfigure"
scrape "$T/m1"
jq -e -n --slurpfile a "$T/m0" --slurpfile b "$T/m1" '
  def d(k): ($b[0][k] // 0) - ($a[0][k] // 0);
  d("aoq_http_requests_total{tenant=\"http\",model=\"tiny\"}") == 2 and
  d("aoq_http_tokens_total{tenant=\"http\",model=\"tiny\",kind=\"completion\"}") == 12 and
  d("aoq_http_tokens_total{tenant=\"http\",model=\"tiny\",kind=\"prompt\"}") > 0 and
  d("aoq_tenant_tokens_total{tenant=\"http\"}") == 12 and
  d("aoq_tenant_tokens_total{tenant=\"zmq\"}") == 9 and
  d("aoq_tokens_generated_total{}") == 21 and
  d("aoq_time_to_first_token_seconds_count{}") == 2 and
  d("aoq_step_seconds_count{}") >= 9 and d("aoq_steps_total{}") >= 9 and
  d("aoq_step_seconds_sum{}") > 0 and
  d("aoq_http_responses_total{code=\"2xx\"}") >= 2 and d("aoq_http_responses_total{code=\"4xx\"}") == 1 and
  d("aoq_wire_requests_total{type=\"generate\"}") == 3 and
  d("aoq_reconfigurations_total{model=\"tiny\"}") == 1 and
  $b[0]["aoq_live_sequences{}"] == 0 and $b[0]["aoq_queue_depth{}"] == 0 and
  ($b[0]["aoq_kv_pages{model=\"tiny\",state=\"used\"}"] + $b[0]["aoq_kv_pages{model=\"tiny\",state=\"free\"}"] ==
   $a[0]["aoq_kv_pages{model=\"tiny\",state=\"used\"}"] + $a[0]["aoq_kv_pages{model=\"tiny\",state=\"free\"}"])' >/dev/null ||
  fail "counters did not move as expected: $(jq -c -n --slurpfile a "$T/m0" --slurpfile b "$T/m1" '$b[0] | to_entries | map(select(.value != ($a[0][.key] // 0))) | from_entries')"
# gauges while a sequence is live
curl -sN "$BASE/v1/completions" -d '{"model":"tiny","prompt":"a","max_tokens":300,"stream":true,"ignore_eos":true}' >/dev/null &
C=$!
live=0
for _ in $(seq 1 200); do
  curl -s "$BASE/metrics" | node "$P" | jq -e '."aoq_live_sequences{}" >= 1 and ."aoq_kv_pages{model=\"tiny\",state=\"used\"}" >= 1 and ."aoq_tenant_live_sequences{tenant=\"http\"}" >= 1' >/dev/null && { live=1; break; }
done
wait "$C"
[ "$live" = 1 ] || fail "never saw a live sequence in /metrics"
stop_daemon
echo "PASS"
