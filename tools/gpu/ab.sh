#!/bin/bash
# tools/gpu/ab.sh — A/B of two aoq-bench builds in one device call: the gpu tests of the new
# build, `aoq-bench gemv --hash` of both (equal hashes = bit-identical kernels) and their times,
# and `aoq-bench decode` of both. New build in $AOQ_SHIP (tools/gpu/ship.sh), the old aoq-bench
# at $AOQ_SHIP/old/aoq-bench. AOQ_AB_CFGS, AOQ_AB_M, AOQ_AB_DECODE ("cfg:batch ...") choose.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
new=$ship/bin/aoq-bench old=$ship/old/aoq-bench
[ -x "$old" ] || { xz -dc "$old.xz" > "$old" && chmod +x "$old"; }
export AOQD=$ship/bin/aoqd
if [ "${AOQ_SKIP_TESTS:-0}" != 1 ]; then
  (cd "$ship/ctest" && ctest -L gpu --output-on-failure --timeout 300) > "$out/ctest.log" 2>&1
  grep -E "tests passed|Failed|\*\*\*" "$out/ctest.log"
fi
cfgs=${AOQ_AB_CFGS:-bf16,int8wo,fp8wo,int4wo-128,int4wo-32,fp8dq-row,mxfp8,mxfp4,nvfp4}
for b in old new; do
  bin=$old; [ $b = new ] && bin=$new
  "$bin" gemv --device cuda:0 --config "$cfgs" --m "${AOQ_AB_M:-1,2,8,16,64}" --hash \
    > "$out/gemv_$b.log" 2>&1
done
python3 - "$out/gemv_old.log" "$out/gemv_new.log" <<'PY' | tee "$out/gemv_ab.txt"
import sys, re
def rows(p):
    r = {}
    for l in open(p):
        f = l.split()
        if len(f) > 4 and not l.startswith('#') and re.match(r'^[a-z]', f[0]):
            r[tuple(f[:3])] = f
    return r
a, b = rows(sys.argv[1]), rows(sys.argv[2])
diff = 0
for k in b:
    if k in a:
        ha, hb = a[k][-1], b[k][-1]
        if ha != hb: diff += 1
        print(' '.join(k), 'old', ' '.join(a[k][3:-1]), '| new', ' '.join(b[k][3:-1]), '' if ha == hb else 'HASH-DIFF')
print('hash differences:', diff)
PY
for cb in ${AOQ_AB_DECODE:-int4wo-128:1 bf16:1 int8wo:1 nvfp4:1}; do
  cfg=${cb%%:*} bt=${cb##*:}
  for b in old new; do
    bin=$old; [ $b = new ] && bin=$new
    echo "== $b" >> "$out/decode.log"
    "$bin" decode --device cuda:0 --model llama3.1-8b --synthetic --config "$cfg" --batch "$bt" \
      --tokens 32 2>&1 | tee -a "$out/decode.log" | grep "^row" | sed "s/^/$b /"
  done
done
if [ -n "${AOQ_AB_SASS:-}" ]; then
  cuobjdump -sass "$new" 2>/dev/null | awk -v pat="$AOQ_AB_SASS" '
    /Function :/ { keep = ($0 ~ pat) } keep' > "$out/sass.txt"
fi
