#!/bin/bash
# `cmake --install` into a temporary prefix puts the binaries, libaoq (shared and static), aoq.h
# and a relocatable aoq.pc in place; a client program builds against the installed library with
# `pkg-config --cflags --libs aoq` alone and talks to the installed aoqd.
. "$(dirname "$0")/lib.sh"
B="$(cd "$(dirname "$AOQD")/.." && pwd)"
P="$T/prefix"
cmake --install "$B" --prefix "$P" >"$T/install.log" 2>&1 || fail "cmake --install: $(tail -n 5 "$T/install.log")"
LIBDIR=$(find "$P" -name libaoq.so -printf '%h\n' | head -n 1)
[ -n "$LIBDIR" ] || fail "no libaoq.so installed"
for f in bin/aoqd bin/aoqctl bin/aoq-run bin/aoq-bench include/aoq/aoq.h share/man/man1/aoqd.1 share/man/man1/aoqctl.1 share/aoq/aoqd.service; do
  [ -e "$P/$f" ] || fail "not installed: $f"
done
[ -x "$P/bin/aoqd" ] || fail "aoqd not executable"
[ -f "$LIBDIR/libaoq.a" ] || fail "no libaoq.a beside libaoq.so"
[ -f "$LIBDIR/pkgconfig/aoq.pc" ] || fail "no aoq.pc in $LIBDIR/pkgconfig"
"$P/bin/aoqd" --version | grep -q "^aoqd " || fail "installed aoqd --version"
export PKG_CONFIG_PATH="$LIBDIR/pkgconfig"
FLAGS=$(pkg-config --cflags --libs aoq) || fail "pkg-config aoq"
pkg-config --modversion aoq | grep -qx "$("$P/bin/aoqd" --version | awk '{print $2}')" || fail "aoq.pc version differs from aoqd's"
[ "$(pkg-config --variable=includedir aoq)" -ef "$P/include" ] || fail "aoq.pc includedir is not the prefix's: $FLAGS"
[ "$(pkg-config --variable=libdir aoq)" -ef "$LIBDIR" ] || fail "aoq.pc libdir is not the prefix's: $FLAGS"
# a sanitizer build's libaoq needs the sanitizer runtime first in the program
SAN=""
if ldd "$LIBDIR/libaoq.so" >"$T/ldd" && grep -q libasan "$T/ldd"; then SAN="-fsanitize=address,undefined"; fi
cc -std=c11 -Wall -Wextra -Werror $SAN -o "$T/aoq_hello" "$(dirname "$0")/install/aoq_hello.c" $FLAGS 2>"$T/cc.log" ||
  fail "cannot build against the installed libaoq: $(cat "$T/cc.log")"
ldd "$T/aoq_hello" >"$T/ldd2" && grep -q "libaoq.so" "$T/ldd2" || fail "aoq_hello does not link the shared libaoq"
AOQD="$P/bin/aoqd"
start_daemon
LD_LIBRARY_PATH="$LIBDIR" "$T/aoq_hello" "$AOQ_ENDPOINT" tiny >"$T/hello.out" 2>&1 || fail "aoq_hello: $(cat "$T/hello.out")"
grep -q "5 tokens" "$T/hello.out" || fail "aoq_hello output: $(cat "$T/hello.out")"
LD_LIBRARY_PATH="$LIBDIR" ldd "$T/aoq_hello" >"$T/ldd3" && grep "libaoq.so" "$T/ldd3" | grep -qF "$LIBDIR" || fail "not the installed libaoq"
stop_daemon
echo "PASS"
