"""librdkafka (confluent-kafka) producer benchmark, in the same output format as
`kavka bench produce`: N records of SIZE bytes, many in flight, latency from produce()
to the delivery report. Usage: kafka_produce.py BOOTSTRAP TOPIC N SIZE ACKS [RATE]
(RATE: records/s to pace at; default as fast as possible). KAFKA_CONFIG="k=v,k=v" adds
librdkafka settings (security.protocol, ssl.ca.location, sasl.*).
"""

import os
import sys
import time

from confluent_kafka import Producer

bootstrap, topic, n, size, acks = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
rate = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
extra = dict(kv.split("=", 1) for kv in os.environ.get("KAFKA_CONFIG", "").split(",") if kv)
p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 5,
              "batch.size": 65536, "queue.buffering.max.messages": 200000,
              "queue.buffering.max.kbytes": 262144, "enable.idempotence": False, **extra})
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
        # Paced: record i goes at start + i / rate (delivery reports served meanwhile).
        while (wait := start + i / rate - time.perf_counter()) > 0:
            p.poll(wait)
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
lat.sort()
q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] * 1000 if lat else float("nan")
print(f"{len(lat)} records sent, {len(lat) / elapsed:.0f} records/s "
      f"({len(lat) * size / elapsed / 1e6:.2f} MB/s), latency ms: avg {sum(lat) / max(1, len(lat)) * 1000:.2f}, "
      f"p50 {q(0.5):.2f}, p99 {q(0.99):.2f}, p99.9 {q(0.999):.2f}, max {q(1.0):.2f}; {errors} failed")
