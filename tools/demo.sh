#!/bin/bash
# demo.sh — start aoqd with the tiny model on the best device, run N real client processes that
# generate at once, print `aoqctl status`, stop the daemon.
#   tools/demo.sh [BUILD_DIR] [N]        (default: build, 4)
# Build first:  cmake -S . -B build -G Ninja && ninja -C build aoqd aoqctl aoq-generate
set -euo pipefail
B=${1:-build}
N=${2:-4}
for x in daemon/aoqd tools/aoqctl/aoqctl tools/aoqctl/aoq-generate; do
  [ -x "$B/$x" ] || { echo "demo.sh: $B/$x missing: ninja -C $B aoqd aoqctl aoq-generate" >&2; exit 2; }
done
D=$(mktemp -d /tmp/aoq-demo.XXXXXX)
export AOQ_ENDPOINT="ipc://$D/aoqd.sock" AOQ_ADMIN_ENDPOINT="ipc://$D/aoqd-admin.sock"
trap '[ -f "$D/aoqd.pid" ] && kill -TERM "$(cat "$D/aoqd.pid")" 2>/dev/null; sleep 0.5; rm -rf "$D"' EXIT
echo "+ aoqd --device auto --model tiny --synthetic --endpoint $AOQ_ENDPOINT"
"$B/daemon/aoqd" --foreground --device auto --model tiny --synthetic --pidfile "$D/aoqd.pid" \
  --endpoint "$AOQ_ENDPOINT" --admin-endpoint "$AOQ_ADMIN_ENDPOINT" 2>"$D/aoqd.log" &
for _ in $(seq 1 100); do "$B/tools/aoqctl/aoqctl" status >/dev/null 2>&1 && break; sleep 0.1; done
echo "+ $N clients: aoq-generate --tenant demoI --temperature 0.8 --seed I 'Once upon a time'"
for i in $(seq 1 "$N"); do
  "$B/tools/aoqctl/aoq-generate" --tenant "demo$i" --temperature 0.8 --seed "$i" --max-tokens 48 \
    "Once upon a time" >"$D/client$i.out" &
done
wait $(jobs -p | tail -n "$N")
for i in $(seq 1 "$N"); do echo "--- client $i"; cat "$D/client$i.out"; done
echo "+ aoqctl status"
"$B/tools/aoqctl/aoqctl" status
echo "+ aoqctl shutdown"
"$B/tools/aoqctl/aoqctl" shutdown >/dev/null
for _ in $(seq 1 50); do [ -f "$D/aoqd.pid" ] || break; sleep 0.1; done
echo "daemon log: $(wc -l <"$D/aoqd.log") lines; last: $(tail -n1 "$D/aoqd.log")"
