#!/bin/bash
# Zero copy: bytes on the socket per matmul stay constant as the tensor grows 4 KiB -> 64 MiB
# (the daemon's own per-type counters, read through aoqctl status --json).
. "$(dirname "$0")/lib.sh"
start_daemon
"$E2E_CLIENT" zerocopy || fail "zero-copy client"
stop_daemon
echo PASS
