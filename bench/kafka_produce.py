"""librdkafka (confluent-kafka) producer benchmark, in the same output format as
`kavka bench produce`: N records of SIZE bytes, many in flight, latency from produce()
to the delivery report, and the worst one-second p99 of the produce requests' round trip
(librdkafka's per-broker `rtt` statistics: request sent to answer read). Usage: kafka_produce.py BOOTSTRAP TOPIC N SIZE ACKS [RATE]
(RATE: records/s to pace at; default as fast as possible). KAFKA_CONFIG="k=v,k=v" adds
librdkafka settings (security.protocol, ssl.ca.location, sasl.*).
"""

import json
import os
import sys
import time

from confluent_kafka import Producer

bootstrap, topic, n, size, acks = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
rate = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
extra = dict(kv.split("=", 1) for kv in os.environ.get("KAFKA_CONFIG", "").split(",") if kv)
# The brokers' produce round trips as librdkafka measures them (request sent to answer
# read, no linger or client queue): each broker's p99 per one-second stats window.
rtt_p99_us = []
# Every broker-window's count and quantiles (microseconds), to merge over the whole run.
rtt_windows = []


def page_cache():
    """The machine's dirty and under-writeback page cache, in MiB (Linux)."""
    try:
        with open("/proc/meminfo") as f:
            kb = {l.split(":")[0]: int(l.split()[1]) for l in f if l.startswith(("Dirty:", "Writeback:"))}
        return f"dirty_mib {kb['Dirty'] // 1024} writeback_mib {kb['Writeback'] // 1024}"
    except (OSError, KeyError, ValueError):
        return "dirty_mib ? writeback_mib ?"


def stats(js):
    for b in json.loads(js).get("brokers", {}).values():
        rtt = b.get("rtt", {})
        if rtt.get("cnt", 0) > 0:
            rtt_p99_us.append((time.perf_counter(), rtt["p99"]))
            rtt_windows.append((rtt["cnt"], [(0.0, rtt["min"]), (0.5, rtt["p50"]), (0.75, rtt["p75"]),
                                             (0.9, rtt["p90"]), (0.95, rtt["p95"]), (0.99, rtt["p99"]),
                                             (0.9999, rtt["p99_99"]), (1.0, rtt["max"])]))
            if os.environ.get("RTT_LOG"):  # one line per broker-second, for a closer look
                with open(os.environ["RTT_LOG"], "a") as f:
                    print(f"{time.time():.1f} {b.get('nodeid')} cnt {rtt['cnt']} p50 {rtt['p50']} p99 {rtt['p99']} max {rtt['max']} {page_cache()}", file=f)


p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 5,
              "batch.size": 65536, "queue.buffering.max.messages": 200000,
              "queue.buffering.max.kbytes": 262144, "enable.idempotence": False,
              "statistics.interval.ms": 1000, "stats_cb": stats, **extra})
value = b"x" * size
lat = []
errors = 0


def done(err, _msg, sent):
    global errors
    if err:
        errors += 1
    else:
        lat.append(time.perf_counter() - sent)


start = time.perf_counter()
for i in range(n):
    if rate > 0:
        # Paced: record i goes at start + i / rate, delivery reports served meanwhile.
        # Ahead of time the producer waits in poll() at least a millisecond: confluent-kafka
        # rounds its timeout down to whole milliseconds, so polling for the microseconds
        # between two records returned at once and spun a core, which on a two-core machine
        # was taken from the servers being measured. Records fall due in bursts of a
        # millisecond's worth instead, well within linger.ms.
        while (wait := start + i / rate - time.perf_counter()) > 0:
            p.poll(max(wait, 0.001))
    while True:
        try:
            sent = time.perf_counter()
            p.produce(topic, value=value, key=str(i % 1000).encode(),
                      on_delivery=lambda e, m, s=sent: done(e, m, s))
            break
        except BufferError:
            p.poll(0.01)
    if i % 1000 == 0:
        p.poll(0)
p.flush(120)
elapsed = time.perf_counter() - start


def merged_quantile(windows, q):
    """The q-quantile of every request of every window (microseconds), estimated from each
    window's count and quantiles (its distribution taken as linear between them): the
    value below which q of all requests fall, the windows weighted by their counts."""
    total = sum(n for n, _ in windows)

    def below(x):  # how many requests were at most x
        k = 0.0
        for n, pts in windows:
            if x >= pts[-1][1]:
                k += n
                continue
            for (f0, v0), (f1, v1) in zip(pts, pts[1:]):
                if x < v1:
                    k += n * (f0 if x < v0 else f0 + (f1 - f0) * (x - v0) / max(v1 - v0, 1e-9))
                    break
        return k

    lo, hi = min(p[0][1] for _, p in windows), max(p[-1][1] for _, p in windows)
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if below(mid) < q * total else (lo, mid)
    return hi


def rtt_summary():
    """Median and worst of the broker-seconds' p99, the worst after the leg's first two
    seconds (the producer's start-up: metadata, connections, a first burst), and the p99
    of every request of the run (the windows merged)."""
    if not rtt_p99_us:
        return "none"
    ms = sorted(v / 1000 for _, v in rtt_p99_us)
    settled = [v / 1000 for t, v in rtt_p99_us if t >= start + 2]
    return (f"median {ms[len(ms) // 2]:.2f}, worst {ms[-1]:.2f}, "
            f"worst after 2 s {max(settled) if settled else float('nan'):.2f}, "
            f"all requests {merged_quantile(rtt_windows, 0.99) / 1000:.2f}")


lat.sort()
q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] * 1000 if lat else float("nan")
print(f"{len(lat)} records sent, {len(lat) / elapsed:.0f} records/s "
      f"({len(lat) * size / elapsed / 1e6:.2f} MB/s), latency ms: avg {sum(lat) / max(1, len(lat)) * 1000:.2f}, "
      f"p50 {q(0.5):.2f}, p99 {q(0.99):.2f}, p99.9 {q(0.999):.2f}, max {q(1.0):.2f}; {errors} failed; "
      f"request round trip p99 ms per broker-second: {rtt_summary()}")
