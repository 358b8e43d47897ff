"""A librdkafka (confluent-kafka) acks=all producer that keeps writing unique values
while the test kills a partition leader, recording every acknowledgement.

Usage: produce_through_kill.py BOOTSTRAP TOPIC SECONDS ACKS_FILE [STOP_FILE]
Stops after SECONDS, or earlier once STOP_FILE exists. Writes one JSON line per
acknowledged record {"p", "o", "v", "t": unix time of the ack} to ACKS_FILE (flushed as
it goes, so the test can watch progress) and a final {"done", "acked", "failed"} line.
Retries are librdkafka's own (message.timeout.ms bounds them) and the producer is
idempotent (enable.idempotence, InitProducerId and sequence numbers), so a batch retried
across the failover must be stored once.
"""

import json
import os
import sys
import time

from confluent_kafka import Producer

bootstrap, topic, seconds, path = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
stop_file = sys.argv[5] if len(sys.argv) > 5 else None
out = open(path, "w", buffering=1)
p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2,
              "enable.idempotence": True,
              "message.timeout.ms": 60000, "retry.backoff.ms": 100,
              "topic.metadata.refresh.interval.ms": 1000})
acked = failed = 0


def cb(err, msg):
    global acked, failed
    if err:
        failed += 1
    else:
        acked += 1
        out.write(json.dumps({"p": msg.partition(), "o": msg.offset(),
                              "v": msg.value().decode(), "t": time.time()}) + "\n")


end, i = time.time() + seconds, 0
while time.time() < end and not (stop_file and i % 100 == 0 and os.path.exists(stop_file)):
    try:
        p.produce(topic, value=f"v-{i}".encode(), on_delivery=cb)
        i += 1
    except BufferError:
        pass
    p.poll(0.001 if i % 50 else 0.01)
p.flush(90)
out.write(json.dumps({"done": True, "sent": i, "acked": acked, "failed": failed}) + "\n")
out.close()
