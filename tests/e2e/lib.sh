# lib.sh — helpers for the e2e tests: a private aoqd per test under a fresh temp directory.
# Needs AOQD, AOQCTL, E2E_CLIENT in the environment (set by ctest).
set -euo pipefail
: "${AOQD:?}" "${AOQCTL:?}" "${E2E_CLIENT:?}"
T=$(mktemp -d /tmp/aoq-e2e.XXXXXX)
chmod 755 "$T"
export AOQ_ENDPOINT="ipc://$T/aoqd.sock"
export AOQ_ADMIN_ENDPOINT="ipc://$T/aoqd-admin.sock"
export AOQ_TIMEOUT_MS=60000
DAEMON_PID=""
# LeakSanitizer cannot follow into setpriv'd or killed children reliably; leaks are checked by
# the unit tests and by the daemon's own clean exit below.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"

fail() { echo "FAIL: $*" >&2; [ -f "$T/aoqd.log" ] && tail -n 30 "$T/aoqd.log" >&2; exit 1; }

cleanup() {
  if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -TERM "$DAEMON_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$DAEMON_PID" 2>/dev/null || true
  fi
  rm -rf "$T"
}
trap cleanup EXIT

# start_daemon [extra aoqd options...]: starts aoqd with tiny (synthetic) on $AOQ_E2E_DEVICE
# (default cpu; tools/gpu/e2e.sh runs the daemon suite with cuda:0) and waits for it.
start_daemon() {
  # shellcheck disable=SC2086 # AOQ_E2E_DAEMON_ARGS: extra options, word-split on purpose
  "$AOQD" --foreground --device "${AOQ_E2E_DEVICE:-cpu}" ${AOQ_E2E_DAEMON_ARGS:-} --model tiny --synthetic --pidfile "$T/aoqd.pid" \
    --endpoint "$AOQ_ENDPOINT" --admin-endpoint "$AOQ_ADMIN_ENDPOINT" --heartbeat-ms 200 "$@" \
    2>"$T/aoqd.log" &
  DAEMON_PID=$!
  for _ in $(seq 1 300); do
    if "$AOQCTL" status >/dev/null 2>&1; then return 0; fi
    kill -0 "$DAEMON_PID" 2>/dev/null || fail "aoqd exited at start"
    sleep 0.1
  done
  fail "aoqd did not come up"
}

# stop_daemon: SIGTERM (drain, exit) and require exit code 0.
stop_daemon() {
  kill -TERM "$DAEMON_PID"
  local rc=0
  wait "$DAEMON_PID" || rc=$?
  DAEMON_PID=""
  [ "$rc" -eq 0 ] || fail "aoqd exited with $rc"
  grep -q "drained: exiting" "$T/aoqd.log" || fail "aoqd did not drain before exiting"
}

status_json() { "$AOQCTL" --json status; }
