# tools/gpu/lib.sh — sourced by the scripts a device call runs (run_all.sh, final_table.sh,
# profile_decode.sh, e2e.sh): sets $root (the checkout), $out ($OUT, where logs go back) and
# $ship ($AOQ_SHIP, default .ship: what tools/gpu/ship.sh collected), unpacks the shipped
# binaries once and puts the shipped libraries on the loader path.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${OUT:-$root/gpu-out}
ship=$root/${AOQ_SHIP:-.ship}
mkdir -p "$out"
[ -d "$ship/bin" ] || tar -C "$ship" -xf "$ship"/bin.tar.*
export LD_LIBRARY_PATH=$ship/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
