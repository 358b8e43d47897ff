"""Kafka group consumers and a producer, driven by tests/kafka_groups.rs.

Usage:
  groups.py produce BOOTSTRAP TOPIC FIRST COUNT
      Writes values v<FIRST>..v<FIRST+COUNT-1> with keys, acks=all; prints {"e": "produced"}.
  groups.py consume CLIENT BOOTSTRAP TOPIC GROUP STOPFILE [PROTOCOL] [INSTANCE] [SESSION_MS]
      CLIENT: confluent or kafka-python. PROTOCOL: classic (default), cooperative (classic
      with the cooperative-sticky assignor, confluent only) or consumer (KIP-848, confluent
      only). A TOPIC starting with '^' is a regex subscription (confluent only; with
      PROTOCOL consumer the coordinator resolves it). Subscribes and prints one JSON line
      per event, flushed:
        {"e": "assign", "parts": [...]}       after each rebalance, the partitions held
        {"e": "rec", "t", "p", "o", "v"}     a record, printed before its commit
        {"e": "commit", "p", "o"}            its offset committed (synchronously)
        {"e": "commit_failed", "p", "o", "err"}
        {"e": "error", "err", "code"}        an error the consumer reported
      Runs until STOPFILE exists, then closes (leaving the group) and prints {"e": "closed"}.
"""

import json
import os
import sys
import time

DEADLINE_S = 300


def emit(**event):
    print(json.dumps(event), flush=True)


def produce(bootstrap, topic, first, count):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    failed = []
    for i in range(first, first + count):
        p.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode(),
                  on_delivery=lambda err, msg: failed.append(str(err)) if err else None)
        p.poll(0)
    left = p.flush(60)
    if left or failed:
        emit(e="produce_failed", left=left, errors=failed[:5])
        sys.exit(1)
    emit(e="produced", first=first, count=count)


def consume_confluent(bootstrap, topic, group, stopfile, protocol, instance, session_ms):
    from confluent_kafka import Consumer, KafkaException, TopicPartition
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    if protocol == "consumer":
        conf["group.protocol"] = "consumer"
    else:
        conf["session.timeout.ms"] = session_ms
        conf["heartbeat.interval.ms"] = 500
        if protocol == "cooperative":
            conf["partition.assignment.strategy"] = "cooperative-sticky"
    if instance:
        conf["group.instance.id"] = instance
    c = Consumer(conf)
    held = set()

    # Eager rebalances revoke everything and assign the new set; cooperative ones and
    # KIP-848 move increments: either way `held` is what the consumer owns after each.
    def on_assign(consumer, parts):
        held.update(p.partition for p in parts)
        emit(e="assign", parts=sorted(held))

    def on_revoke(consumer, parts):
        held.difference_update(p.partition for p in parts)
        emit(e="revoke", parts=sorted(p.partition for p in parts))

    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
    end = time.time() + DEADLINE_S
    while not os.path.exists(stopfile) and time.time() < end:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            emit(e="error", err=str(m.error()), code=m.error().code())
            continue
        emit(e="rec", t=m.topic(), p=m.partition(), o=m.offset(), v=m.value().decode())
        try:
            c.commit(offsets=[TopicPartition(m.topic(), m.partition(), m.offset() + 1)],
                     asynchronous=False)
            emit(e="commit", p=m.partition(), o=m.offset())
        except KafkaException as e:
            emit(e="commit_failed", p=m.partition(), o=m.offset(), err=str(e))
    c.close()
    emit(e="closed")


def consume_kafka_python(bootstrap, topic, group, stopfile, instance, session_ms):
    from kafka import ConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata, TopicPartition
    kwargs = {}
    if instance:
        kwargs["group_instance_id"] = instance
    c = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=group,
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      session_timeout_ms=session_ms, heartbeat_interval_ms=500, **kwargs)

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            emit(e="revoke", parts=sorted(p.partition for p in revoked))

        def on_partitions_assigned(self, assigned):
            emit(e="assign", parts=sorted(p.partition for p in c.assignment()))

    c.subscribe([topic], listener=Listener())
    end = time.time() + DEADLINE_S
    while not os.path.exists(stopfile) and time.time() < end:
        batches = c.poll(timeout_ms=200, max_records=50)
        for tp, records in batches.items():
            for m in records:
                emit(e="rec", p=m.partition, o=m.offset, v=m.value.decode())
                try:
                    c.commit({TopicPartition(topic, m.partition): OffsetAndMetadata(m.offset + 1, "", -1)})
                    emit(e="commit", p=m.partition, o=m.offset)
                except Exception as e:  # a failed commit is reported, and the record may come again
                    emit(e="commit_failed", p=m.partition, o=m.offset, err=f"{type(e).__name__}: {e}")
    c.close()
    emit(e="closed")


def main():
    cmd = sys.argv[1]
    if cmd == "produce":
        produce(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    client, bootstrap, topic, group, stopfile = sys.argv[2:7]
    protocol = sys.argv[7] if len(sys.argv) > 7 else "classic"
    instance = sys.argv[8] if len(sys.argv) > 8 and sys.argv[8] != "-" else None
    session_ms = int(sys.argv[9]) if len(sys.argv) > 9 else 6000
    if client == "confluent":
        consume_confluent(bootstrap, topic, group, stopfile, protocol, instance, session_ms)
    else:
        consume_kafka_python(bootstrap, topic, group, stopfile, instance, session_ms)


if __name__ == "__main__":
    main()
