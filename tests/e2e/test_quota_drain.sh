#!/bin/bash
# Quotas (settings file, SIGHUP reload, aoqctl quota): a tenant limited to one sequence runs its
# requests one at a time while the others queue; a request larger than the tenant's KV quota is
# refused; drain refuses new generations while running ones finish; shutdown exits cleanly.
. "$(dirname "$0")/lib.sh"
echo "quota limited max_seqs=1 priority=0" >"$T/aoqd.conf"
start_daemon --conf "$T/aoqd.conf"
status_json | jq -e '.tenants[] | select(.name=="limited") | .quota.max_seqs == 1' >/dev/null || fail "conf quota not applied"
pids=()
for i in 1 2 3; do "$E2E_CLIENT" gen limited $i 300 >"$T/lim$i" & pids+=($!); done
seen=0
for _ in $(seq 1 200); do
  S=$(status_json)
  if echo "$S" | jq -e '.tenants[] | select(.name=="limited") | .live_seqs == 1 and .queued >= 1' >/dev/null; then seen=1; break; fi
  echo "$S" | jq -e '.tenants[] | select(.name=="limited") | .live_seqs > 1' >/dev/null && fail "quota exceeded: $(echo "$S" | jq -c .tenants)"
  sleep 0.02
done
[ "$seen" = 1 ] || fail "never saw the limited tenant queueing"
for p in "${pids[@]}"; do wait "$p" || fail "a limited client failed"; done
for i in 1 2 3; do grep -q "gen length 300" "$T/lim$i" || fail "limited client $i: $(cat "$T/lim$i")"; done
# KV quota: 300 + prompt tokens need 20 pages of 16; allow 4
"$AOQCTL" quota small --kv-pages 4 >/dev/null || fail "aoqctl quota"
if "$E2E_CLIENT" gen small 1 300 2>"$T/small.err"; then fail "request over the KV quota was served"; fi
grep -q "quota exceeded" "$T/small.err" || fail "no quota error: $(cat "$T/small.err")"
"$E2E_CLIENT" gen small 1 20 | grep -q "gen length 20" || fail "request within the KV quota"
# SIGHUP re-reads the settings file
echo "quota limited max_seqs=3 priority=2" >"$T/aoqd.conf"
kill -HUP "$DAEMON_PID"
for _ in $(seq 1 50); do
  status_json | jq -e '.tenants[] | select(.name=="limited") | .quota.max_seqs == 3 and .quota.priority == 2' >/dev/null && break
  sleep 0.1
done
status_json | jq -e '.tenants[] | select(.name=="limited") | .quota.max_seqs == 3' >/dev/null || fail "SIGHUP did not reload"
echo "quota broken max_seqs=x" >"$T/aoqd.conf"
kill -HUP "$DAEMON_PID"
sleep 0.3
grep -q "SIGHUP: settings not applied" "$T/aoqd.log" || fail "bad settings file not reported"
# drain: a running generation finishes, a new one is refused
"$E2E_CLIENT" gen draining 1 400 >"$T/drain.out" &
RUN=$!
for _ in $(seq 1 100); do status_json | jq -e '.scheduler.live_seqs >= 1' >/dev/null && break; sleep 0.02; done
"$AOQCTL" drain >/dev/null || fail "aoqctl drain"
if "$E2E_CLIENT" gen late 1 5 2>"$T/late.err"; then fail "generation accepted while draining"; fi
grep -q "draining" "$T/late.err" || fail "no draining error: $(cat "$T/late.err")"
wait "$RUN" || fail "the running generation did not survive drain"
grep -q "gen length 400" "$T/drain.out" || fail "drained generation incomplete"
"$AOQCTL" shutdown >/dev/null || fail "aoqctl shutdown"
rc=0
wait "$DAEMON_PID" || rc=$?
DAEMON_PID=""
[ "$rc" -eq 0 ] || fail "aoqd exited $rc after shutdown"
echo PASS
