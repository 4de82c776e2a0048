#!/bin/bash
# aoq-bench decode --batch 1,2,4 --plot FILE.svg: one run per batch size, a "batch tok/s" table
# and an SVG line chart drawn by gnuplot; a malformed list is a usage error (exit 2).
. "$(dirname "$0")/lib.sh"
BENCH="$(cd "$(dirname "$AOQD")/.." && pwd)/aoq-bench"
[ -x "$BENCH" ] || fail "aoq-bench not built at $BENCH"
"$BENCH" decode --model tiny --synthetic --device cpu --tokens 4 --prompt 4 --batch 1,2,4 --plot "$T/d.svg" >"$T/out" 2>"$T/err" ||
  fail "aoq-bench decode --plot: $(cat "$T/err")"
grep -c '^batch: ' "$T/out" | grep -qx 3 || fail "expected 3 runs: $(cat "$T/out")"
sed -n '/^batch decode_tokens_per_s$/,$p' "$T/out" | awk 'NR > 1 && NF == 2 && $1 ~ /^[0-9]+$/ { n++; if ($2 <= 0) bad = 1; x[n] = $1 }
  END { exit !(n == 3 && !bad && x[1] == 1 && x[2] == 2 && x[3] == 4) }' || fail "table: $(cat "$T/out")"
grep -q '<svg' "$T/d.svg" && grep -q '</svg>' "$T/d.svg" || fail "not an SVG"
grep -q 'aoq-bench decode' "$T/d.svg" || fail "SVG has no title"
grep -q 'decode_tokens_per_s' "$T/d.svg" || fail "SVG has no axis label"
rc=0; "$BENCH" decode --model tiny --synthetic --batch 1,x --plot "$T/e.svg" >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "a malformed --batch list gave exit $rc, expected 2"
[ ! -e "$T/e.svg" ] || fail "a failed sweep wrote a plot"
echo "PASS"
