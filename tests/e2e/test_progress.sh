#!/bin/bash
# Load/quantize progress: plain log lines up to 100 % when stderr is not a terminal (aoqd and
# aoq-run), a redrawn bar ending in a newline on a terminal (aoq-run under script(1)).
. "$(dirname "$0")/lib.sh"
RUN="$(cd "$(dirname "$AOQD")/.." && pwd)/tools/run/aoq-run"
[ -x "$RUN" ] || fail "aoq-run not built at $RUN"
"$RUN" --model tiny --synthetic --config int8wo --device cpu --max-tokens 2 --prompt hi >/dev/null 2>"$T/run.err" || fail "aoq-run: $(cat "$T/run.err")"
grep -q 'msg="progress" model=tiny stage=quantize done=1 total=' "$T/run.err" || fail "no first progress line: $(cat "$T/run.err")"
grep -q 'msg="progress" model=tiny stage=quantize .*percent=100' "$T/run.err" || fail "no 100 % line: $(cat "$T/run.err")"
script -qec "$RUN --model tiny --synthetic --config int4wo-128 --device cpu --max-tokens 2 --prompt hi" /dev/null >"$T/tty.out" 2>&1 || fail "aoq-run on a tty: $(cat "$T/tty.out")"
grep -aq $'\rtiny: quantize  \\[#*\\.*\\]  [ 0-9]*% ' "$T/tty.out" || fail "no bar redrawn with \\r: $(cat -A "$T/tty.out" | head -3)"
grep -aq '\[##############################\] 100% ' "$T/tty.out" || fail "bar does not reach 100 %"
grep -aq 'progress' "$T/tty.out" && fail "plain progress lines on a terminal"
start_daemon --config int8wo
grep -q 'msg="progress" model=tiny stage=quantize .*percent=100' "$T/aoqd.log" || fail "aoqd: no progress lines"
stop_daemon
echo "PASS"
