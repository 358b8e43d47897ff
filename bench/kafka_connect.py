"""Connections per second with a librdkafka client (confluent-kafka): each connection
is a new client that connects, authenticates (per KAFKA_CONFIG="k=v,k=v") and fetches
Metadata, then closes. Usage: kafka_connect.py BOOTSTRAP SECONDS
"""

import os
import sys
import time

from confluent_kafka.admin import AdminClient

bootstrap, seconds = sys.argv[1], float(sys.argv[2])
extra = dict(kv.split("=", 1) for kv in os.environ.get("KAFKA_CONFIG", "").split(",") if kv)
done = 0
start = time.perf_counter()
while time.perf_counter() - start < seconds:
    a = AdminClient({"bootstrap.servers": bootstrap, **extra})
    a.list_topics(timeout=10)
    del a
    done += 1
elapsed = time.perf_counter() - start
print(f"{done} connections in {elapsed:.1f} s: {done / elapsed:.1f} connections/s")
