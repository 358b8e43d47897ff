"""Consumer group measurements for bench/groups.sh (BENCHMARKS.md "Consumer groups").

Usage: groups.py BOOTSTRAP TOPIC PROTOCOL ROUNDS HEARTBEAT_MS   rebalance 3 -> 2
       groups.py BOOTSTRAP TOPIC commit SECONDS                 sync offset commits
       groups.py BOOTSTRAP TOPIC consume RECORDS MEMBERS        group throughput

rebalance: three members (classic or consumer = KIP-848) share 6 partitions; one closes;
the time from its close() until the other two hold all 6 between them, per round.
Prints one JSON line per result.
"""

import json
import statistics
import sys
import threading
import time

from confluent_kafka import Consumer, TopicPartition


def member(bootstrap, group, protocol, heartbeat_ms, held, lock):
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
            "enable.auto.commit": False}
    if protocol == "consumer":
        conf["group.protocol"] = "consumer"
    else:
        conf["heartbeat.interval.ms"] = heartbeat_ms
        conf["session.timeout.ms"] = 10000
    c = Consumer(conf)
    mine = set()

    def on_assign(_, parts):
        with lock:
            mine.update(p.partition for p in parts)
            held[id(c)] = set(mine)

    def on_revoke(_, parts):
        with lock:
            mine.difference_update(p.partition for p in parts)
            held[id(c)] = set(mine)

    return c, on_assign, on_revoke


def rebalance(bootstrap, topic, protocol, rounds, heartbeat_ms):
    times = []
    for r in range(rounds):
        group = f"rb-{protocol}-{heartbeat_ms}-{r}-{time.time_ns()}"
        held, lock = {}, threading.Lock()
        consumers = []
        for _ in range(3):
            c, a, rv = member(bootstrap, group, protocol, heartbeat_ms, held, lock)
            c.subscribe([topic], on_assign=a, on_revoke=rv, on_lost=rv)
            consumers.append(c)
        stop = threading.Event()

        def pump(c):
            while not stop.is_set():
                c.poll(0.05)

        def shared(cs, n):
            with lock:
                sets = [held.get(id(c), set()) for c in cs]
            return sum(len(s) for s in sets) == 6 and len(set().union(*sets)) == 6 and all(sets) and len(sets) == n

        threads = [threading.Thread(target=pump, args=(c,)) for c in consumers[1:]]
        deadline = time.time() + 60
        while not shared(consumers, 3) and time.time() < deadline:
            consumers[0].poll(0.05)
            for c in consumers[1:]:
                c.poll(0.05)
        for t in threads:
            t.start()
        t0 = time.time()
        consumers[0].close()
        with lock:
            held.pop(id(consumers[0]), None)
        while not shared(consumers[1:], 2) and time.time() < t0 + 60:
            time.sleep(0.005)
        times.append(time.time() - t0)
        stop.set()
        for t in threads:
            t.join()
        for c in consumers[1:]:
            c.close()
    print(json.dumps({"bench": "rebalance", "protocol": protocol, "heartbeat_ms": heartbeat_ms,
                      "rounds": rounds, "median_ms": round(statistics.median(times) * 1000),
                      "max_ms": round(max(times) * 1000)}), flush=True)


def commit(bootstrap, topic, seconds):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"commit-{time.time_ns()}",
                  "enable.auto.commit": False})
    lat = []
    end = time.time() + seconds
    i = 0
    while time.time() < end:
        i += 1
        t = time.perf_counter()
        c.commit(offsets=[TopicPartition(topic, i % 6, i)], asynchronous=False)
        lat.append(time.perf_counter() - t)
    c.close()
    lat.sort()
    print(json.dumps({"bench": "commit", "commits": len(lat), "per_s": round(len(lat) / seconds),
                      "p50_ms": round(lat[len(lat) // 2] * 1000, 2),
                      "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 2)}), flush=True)


def consume(bootstrap, topic, records, members):
    group = f"tp-{time.time_ns()}"
    counts = [0] * members
    first, last = [None], [None]
    lock = threading.Lock()

    def assigned(_, parts):
        # The clock starts when the first member is given partitions: fetching (and
        # librdkafka's prefetch) starts there.
        with lock:
            first[0] = first[0] or time.time()

    def run(i):
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                      "auto.offset.reset": "earliest", "enable.auto.commit": True,
                      "fetch.max.bytes": 8 << 20})
        c.subscribe([topic], on_assign=assigned)
        end = time.time() + 120
        while time.time() < end:
            with lock:
                if sum(counts) >= records:
                    break
            msgs = c.consume(1000, 0.2)
            n = sum(1 for m in msgs if not m.error())
            if n:
                with lock:
                    last[0] = time.time()
                    counts[i] += n
        c.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(members)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = (last[0] - first[0]) if first[0] else float("nan")
    total = sum(counts)
    print(json.dumps({"bench": "consume", "members": members, "records": total,
                      "per_member": counts, "records_per_s": round(total / took) if took else None,
                      "mb_per_s": round(total * 1024 / took / 1e6, 1) if took else None}), flush=True)


def main():
    bootstrap, topic, what = sys.argv[1], sys.argv[2], sys.argv[3]
    if what in ("classic", "consumer"):
        rebalance(bootstrap, topic, what, int(sys.argv[4]), int(sys.argv[5]))
    elif what == "commit":
        commit(bootstrap, topic, float(sys.argv[4]))
    else:
        consume(bootstrap, topic, int(sys.argv[4]), int(sys.argv[5]))


if __name__ == "__main__":
    main()
