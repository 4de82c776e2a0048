#!/usr/bin/env python3
"""tools/gpu/ncu_summary.py CSV [STEPS] — sums the kernel times of the last decode step of an
Nsight Compute CSV written by tools/gpu/profile_decode.sh (gpu__time_duration.sum per kernel).
The run has STEPS forward passes of equal kernel count (default 4: prefill, the untimed first
decode step and 2 timed ones); the last 1/STEPS of the kernels is one decode step."""
import csv
import re
import sys
from collections import defaultdict


def main():
    path = sys.argv[1]
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    with open(path, newline="") as f:
        lines = [l for l in f if l.startswith('"')]
    rows = [r for r in csv.DictReader(lines) if r["Metric Name"] == "gpu__time_duration.sum"]
    per = len(rows) // steps
    last = rows[-per:]
    agg = defaultdict(lambda: [0.0, 0])
    for r in last:
        name = re.sub(r"\(.*", "", r["Kernel Name"]).replace("void ", "")
        key = f"{name} grid{r['Grid Size']} blk{r['Block Size']}"
        agg[key][0] += float(r["Metric Value"].replace(",", "")) / 1e3
        agg[key][1] += 1
    total = sum(v[0] for v in agg.values())
    print(f"{path}: {len(rows)} kernels, {per} per step; last step device time {total:.1f} us")
    for k, (us, n) in sorted(agg.items(), key=lambda kv: -kv[1][0]):
        print(f"{us:10.1f} us {100 * us / total:5.1f}%  x{n:<4d} {us / n:8.1f} us/each  {k}")


if __name__ == "__main__":
    main()
