#!/usr/bin/env python3
"""The produce round trip's p99 per second against the machine's dirty page cache.

Reads an RTT_LOG written by bench/acks.sh (one line per broker-second: time, broker,
librdkafka's rtt p50/p99/max in microseconds, the dirty and under-writeback page cache
in MiB) and prints each second's worst broker p99 beside the dirty MiB, then the median
and worst p99 of the seconds below and at or above a dirty threshold (default: 90% of
the most dirty data seen, which is about where the kernel's background writeback holds
it: vm.dirty_background_ratio).

Usage: bench/rtt_dirty.py RTT_LOG [THRESHOLD_MIB]
"""
import statistics
import sys

seconds = {}
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) < 14 or f[11] == "?":
        continue
    t = int(float(f[0]))
    p99, dirty = int(f[7]) / 1000, int(f[11])
    worst, d = seconds.get(t, (0.0, 0))
    seconds[t] = (max(worst, p99), max(d, dirty))
if not seconds:
    sys.exit("no broker-seconds with page-cache figures in " + sys.argv[1])
top = max(d for _, d in seconds.values())
threshold = int(sys.argv[2]) if len(sys.argv) > 2 else int(0.9 * top)
t0 = min(seconds)
print("second  worst broker p99 ms  dirty MiB")
for t in sorted(seconds):
    p99, dirty = seconds[t]
    print(f"{t - t0:6d}  {p99:19.1f}  {dirty:9d}")
for name, keep in (("below", lambda d: d < threshold), ("at or above", lambda d: d >= threshold)):
    xs = [p for p, d in seconds.values() if keep(d)]
    if xs:
        print(f"dirty {name} {threshold} MiB: {len(xs)} s, p99 median {statistics.median(xs):.1f} ms, worst {max(xs):.1f} ms")
