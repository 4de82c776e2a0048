#!/bin/bash
# The hand-written man pages (docs/man) stay in sync with --help: every long option and every
# aoqctl command that --help lists is documented, and the pages render without warnings.
. "$(dirname "$0")/lib.sh"
MAN="$(cd "$(dirname "$0")/../../docs/man" && pwd)"
check() { # page, help text
  local page="$1" help="$2" o
  for o in $(echo "$help" | grep -o -- '--[a-z][a-z-]*' | sort -u); do
    grep -q -- "$(echo "$o" | sed 's/-/\\\\-/g')" "$page" || fail "$(basename "$page"): $o is in --help but not in the page"
  done
  if command -v groff >/dev/null; then
    groff -man -Tutf8 -ww "$page" >/dev/null 2>"$T/groff.err" || fail "groff $(basename "$page")"
    [ ! -s "$T/groff.err" ] || fail "groff warnings for $(basename "$page"): $(cat "$T/groff.err")"
  fi
}
check "$MAN/aoqd.1" "$("$AOQD" --help)"
H=$("$AOQCTL" --help 2>&1 || true)
check "$MAN/aoqctl.1" "$H"
for c in $(echo "$H" | sed -n '/^commands:/,/^options:/p' | awk '/^  [a-z]/ {print $1}'); do
  grep -q "^\.B.* $c\b\|^\.B $c$\|^\.BI \"$c " "$MAN/aoqctl.1" || fail "aoqctl.1: command $c not documented"
done
echo "PASS"
