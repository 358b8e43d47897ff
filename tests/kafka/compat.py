"""Kafka client compatibility checks against a running Kavka cluster.

Usage: compat.py CLIENT BOOTSTRAP PREFIX, CLIENT one of confluent, kafka-python.
Prints one JSON line per check: {"client", "check", "apis", "ok", "detail"}; the Rust
test (tests/kafka_compat.rs) starts the cluster, runs this and asserts every check.
Every topic it makes starts with PREFIX, so runs never share state.
"""

import json
import sys
import time
import traceback

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
RECORDS = 200
TIMEOUT = 30


def report(client, check, apis, ok, detail=""):
    print(json.dumps({"client": client, "check": check, "apis": apis, "ok": bool(ok),
                      "detail": str(detail)[:500]}), flush=True)


def expected(codec):
    """Records with keys, headers and binary values: (key, value, headers)."""
    out = []
    for i in range(RECORDS):
        key = f"key-{i % 7}".encode()
        value = bytes([i % 256]) * (i % 50) + f"|{codec}|{i}".encode()
        headers = [("h-index", str(i).encode()), ("h-bin", bytes([0, 255, i % 256]))]
        out.append((key, value, headers))
    return out


def run(client, name, apis, fn):
    try:
        ok, detail = fn()
    except Exception as e:  # a check that raises is a failed check, with its reason
        ok, detail = False, f"{type(e).__name__}: {e} {traceback.format_exc(limit=3)}"
    report(client, name, apis, ok, detail)


def confluent(bootstrap, prefix):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,
                                       ConfigResource, NewPartitions, NewTopic)

    c = "confluent-kafka"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = f"{prefix}-cf"

    def create():
        fs = admin.create_topics([NewTopic(topic, 3, 3, config={"retention.ms": "3600000"})],
                                 operation_timeout=TIMEOUT)
        fs[topic].result(TIMEOUT)
        # Creating it again is refused with TOPIC_ALREADY_EXISTS.
        again = admin.create_topics([NewTopic(topic, 3, 3)])[topic]
        try:
            again.result(TIMEOUT)
            return False, "second creation succeeded"
        except Exception as e:
            return "TOPIC_ALREADY_EXISTS" in str(e), e
    run(c, "create topic (and refuse a duplicate)", ["CreateTopics"], create)

    def manual():
        t = f"{prefix}-cf-manual"
        admin.create_topics([NewTopic(t, 2, replica_assignment=[[2, 3, 1], [3, 1, 2]])],
                            operation_timeout=TIMEOUT)[t].result(TIMEOUT)
        admin.create_partitions([NewPartitions(t, 3, replica_assignment=[[1, 2, 3]])],
                                operation_timeout=TIMEOUT)[t].result(TIMEOUT)
        want = [[2, 3, 1], [3, 1, 2], [1, 2, 3]]
        got, end = None, time.time() + TIMEOUT
        while got != want and time.time() < end:
            parts = admin.list_topics(t, timeout=TIMEOUT).topics[t].partitions
            got = [parts[p].replicas for p in sorted(parts)]
            if got != want:
                time.sleep(0.1)
        bad = f"{prefix}-cf-manual-bad"
        try:
            admin.create_topics([NewTopic(bad, 1, replica_assignment=[[1, 1, 2]])],
                                operation_timeout=TIMEOUT)[bad].result(TIMEOUT)
            return False, "a broker named twice was accepted"
        except Exception as e:
            refused = "INVALID_REPLICA_ASSIGNMENT" in str(e)
        return got == want and refused and bad not in admin.list_topics(timeout=TIMEOUT).topics, (got, refused)
    run(c, "create topic and partitions with a replica assignment (and refuse a bad one)",
        ["CreateTopics", "CreatePartitions", "Metadata"], manual)

    def metadata():
        md = admin.list_topics(topic, timeout=TIMEOUT)
        t = md.topics[topic]
        parts = t.partitions
        ok = (len(md.brokers) == 3 and len(parts) == 3 and t.error is None
              and all(len(p.replicas) == 3 and len(p.isrs) == 3 and p.leader in md.brokers
                      for p in parts.values()))
        return ok, {p: (v.leader, v.replicas, v.isrs) for p, v in parts.items()}
    run(c, "metadata: brokers, partitions, leaders, replicas, ISR", ["ApiVersions", "Metadata"],
        metadata)

    def describe_cluster():
        d = admin.describe_cluster(request_timeout=TIMEOUT).result(TIMEOUT)
        return len(d.nodes) == 3 and d.cluster_id and d.controller is not None, d.cluster_id
    run(c, "describe cluster", ["DescribeCluster"], describe_cluster)

    def configs():
        res = ConfigResource(ConfigResource.Type.TOPIC, topic)
        got = admin.describe_configs([res])[res].result(TIMEOUT)
        if got["retention.ms"].value != "3600000":
            return False, f"retention.ms = {got['retention.ms'].value}"
        inc = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
            ConfigEntry("segment.bytes", "1048576",
                        incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
        admin.incremental_alter_configs([inc])[inc].result(TIMEOUT)
        got = admin.describe_configs([res])[res].result(TIMEOUT)
        ok = got["segment.bytes"].value == "1048576" and got["retention.ms"].is_default
        return ok, {k: got[k].value for k in ("segment.bytes", "retention.ms")}
    run(c, "describe and incrementally alter topic configs",
        ["DescribeConfigs", "IncrementalAlterConfigs"], configs)

    def durability():
        t = f"{prefix}-durable"
        admin.create_topics([NewTopic(t, 1, 1, config={"flush.messages": "1"})])[t].result(TIMEOUT)
        res = ConfigResource(ConfigResource.Type.TOPIC, t)
        got = admin.describe_configs([res])[res].result(TIMEOUT)
        # Kafka's ConfigSource numbers: 1 DYNAMIC_TOPIC_CONFIG, 5 DEFAULT_CONFIG.
        source = lambda k: {1: "DYNAMIC_TOPIC_CONFIG", 5: "DEFAULT_CONFIG"}.get(
            int(getattr(got[k].source, "value", got[k].source)), str(got[k].source))
        described = {k: (got[k].value, source(k)) for k in
                     ("flush.messages", "flush.ms", "remote.storage.enable", "segment.jitter.ms")}
        want = {"flush.messages": ("1", "DYNAMIC_TOPIC_CONFIG"),
                "flush.ms": ("9223372036854775807", "DEFAULT_CONFIG"),
                "remote.storage.enable": ("false", "DEFAULT_CONFIG"),
                "segment.jitter.ms": ("0", "DEFAULT_CONFIG")}
        inc = ConfigResource(ConfigResource.Type.TOPIC, t, incremental_configs=[
            ConfigEntry("remote.storage.enable", "true",
                        incremental_operation=AlterConfigOpType.SET)])
        try:
            admin.incremental_alter_configs([inc])[inc].result(TIMEOUT)
            return False, "remote.storage.enable=true was accepted"
        except Exception as e:
            refused = "INVALID_CONFIG" in str(e) and "tiered storage" in str(e)
        return described == want and refused, (described, refused)
    run(c, "per-topic durability and the whole topic-config set",
        ["CreateTopics", "DescribeConfigs", "IncrementalAlterConfigs"], durability)

    def broker_configs():
        res = ConfigResource(ConfigResource.Type.BROKER, "1")
        before = admin.describe_configs([res])[res].result(TIMEOUT)
        key = "log.retention.check.interval.ms"
        source = lambda got: int(getattr(got[key].source, "value", got[key].source))
        inc = ConfigResource(ConfigResource.Type.BROKER, "1", incremental_configs=[
            ConfigEntry(key, "300000", incremental_operation=AlterConfigOpType.SET)])
        admin.incremental_alter_configs([inc])[inc].result(TIMEOUT)
        during = admin.describe_configs([res])[res].result(TIMEOUT)
        back = ConfigResource(ConfigResource.Type.BROKER, "1", incremental_configs=[
            ConfigEntry(key, None, incremental_operation=AlterConfigOpType.DELETE)])
        admin.incremental_alter_configs([back])[back].result(TIMEOUT)
        after = admin.describe_configs([res])[res].result(TIMEOUT)
        bad = ConfigResource(ConfigResource.Type.BROKER, "1", incremental_configs=[
            ConfigEntry("broker.rack", "r9", incremental_operation=AlterConfigOpType.SET)])
        try:
            admin.incremental_alter_configs([bad])[bad].result(TIMEOUT)
            return False, "a static config was changed"
        except Exception as e:
            refused = "INVALID_CONFIG" in str(e)
        # Kafka's ConfigSource numbers: 2 DYNAMIC_BROKER_CONFIG, 4 STATIC_BROKER_CONFIG.
        sources = (source(before), source(during), source(after))
        ok = "num.partitions" in before and sources == (4, 2, 4) and refused
        return ok, (sources, refused)
    run(c, "describe broker configs and change a dynamic one",
        ["DescribeConfigs", "IncrementalAlterConfigs"], broker_configs)

    def replace_configs():
        res = ConfigResource(ConfigResource.Type.TOPIC, topic,
                             set_config={"retention.ms": "7200000"})
        admin.alter_configs([res])[res].result(TIMEOUT)
        got = admin.describe_configs([res])[res].result(TIMEOUT)
        # AlterConfigs replaces the whole set: segment.bytes is back to its default.
        ok = got["retention.ms"].value == "7200000" and got["segment.bytes"].is_default
        return ok, {k: got[k].value for k in ("segment.bytes", "retention.ms")}
    run(c, "replace topic configs (legacy AlterConfigs)", ["AlterConfigs", "DescribeConfigs"],
        replace_configs)

    def list_configs():
        t = f"{prefix}-lists"
        admin.create_topics([NewTopic(t, 1, 1)])[t].result(TIMEOUT)
        res = ConfigResource(ConfigResource.Type.TOPIC, t)

        def change(op, value):
            inc = ConfigResource(ConfigResource.Type.TOPIC, t, incremental_configs=[
                ConfigEntry("cleanup.policy", value, incremental_operation=op)])
            admin.incremental_alter_configs([inc])[inc].result(TIMEOUT)
            return admin.describe_configs([res])[res].result(TIMEOUT)["cleanup.policy"].value
        # From the default (delete): APPEND compact, then SUBTRACT delete.
        appended = change(AlterConfigOpType.APPEND, "compact")
        subtracted = change(AlterConfigOpType.SUBTRACT, "delete")
        try:
            change(AlterConfigOpType.SUBTRACT, "delete")
            refused = "a value not present was subtracted"
        except Exception as e:
            refused = str(e)
        admin.delete_topics([t], operation_timeout=TIMEOUT)
        ok = (sorted(appended.split(",")) == ["compact", "delete"] and subtracted == "compact"
              and "INVALID_CONFIG" in refused)
        return ok, (appended, subtracted, refused)
    run(c, "APPEND and SUBTRACT a list-valued topic config (cleanup.policy)",
        ["IncrementalAlterConfigs", "DescribeConfigs"], list_configs)

    def assigned_commit():
        # KIP-848 consumer that assign()s: it commits with its own member id and epoch -1,
        # outside any membership; Kafka takes that while the group has no members.
        g = f"{prefix}-assigned"
        cons = Consumer({"bootstrap.servers": bootstrap, "group.id": g,
                         "group.protocol": "consumer", "enable.auto.commit": False})
        cons.assign([TopicPartition(topic, 0)])
        cons.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
        got = cons.committed([TopicPartition(topic, 0)], timeout=TIMEOUT)[0].offset
        cons.close()
        return got == 1, got
    run(c, "commit from an assign()ed KIP-848 consumer", ["OffsetCommit", "OffsetFetch"],
        assigned_commit)

    def bad_config():
        inc = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
            ConfigEntry("no.such.config", "1", incremental_operation=AlterConfigOpType.SET)])
        try:
            admin.incremental_alter_configs([inc])[inc].result(TIMEOUT)
            return False, "accepted an unknown config"
        except Exception as e:
            return "INVALID_CONFIG" in str(e) or "no.such.config" in str(e), e
    run(c, "an unknown config is refused", ["IncrementalAlterConfigs"], bad_config)

    for codec in CODECS:
        def produce_consume(codec=codec):
            p = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                          "compression.type": codec, "linger.ms": 5,
                          "enable.idempotence": True})
            acked, failed = [], []

            def cb(err, msg):
                (failed if err else acked).append((err, msg.partition(), msg.offset()))
            want = expected(codec)
            for k, v, h in want:
                p.produce(topic, value=v, key=k, headers=h, on_delivery=cb)
            p.flush(TIMEOUT)
            if failed or len(acked) != len(want):
                return False, f"acked {len(acked)}, failed {failed[:3]}"
            return consume_check(Consumer, TopicPartition, bootstrap, topic, codec, want)
        run(c, f"idempotent produce and consume, compression {codec}",
            ["InitProducerId", "Produce", "Fetch", "ListOffsets"],
            produce_consume)

    def offsets():
        cons = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{prefix}-offsets",
                         "enable.auto.commit": False})
        lo, hi = cons.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT)
        past = cons.offsets_for_times([TopicPartition(topic, 0, 0)], timeout=TIMEOUT)[0]
        future = cons.offsets_for_times([TopicPartition(topic, 0, int(time.time() * 1000)
                                                        + 3_600_000)], timeout=TIMEOUT)[0]
        cons.close()
        ok = lo == 0 and hi > 0 and past.offset == 0 and future.offset in (-1, hi)
        return ok, (lo, hi, past.offset, future.offset)
    run(c, "list offsets: earliest, latest, by timestamp", ["ListOffsets"], offsets)

    def max_timestamp():
        from confluent_kafka.admin import OffsetSpec
        t = f"{prefix}-maxts"
        admin.create_topics([NewTopic(t, 1, 1)])[t].result(TIMEOUT)
        p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
        now = int(time.time() * 1000)
        for i, ts in enumerate([now - 2000, now, now - 1000]):
            p.produce(t, value=f"v{i}", partition=0, timestamp=ts)
        p.flush(TIMEOUT)
        tp = TopicPartition(t, 0)
        got = admin.list_offsets({tp: OffsetSpec.max_timestamp()})[tp].result(TIMEOUT)
        admin.delete_topics([t], operation_timeout=TIMEOUT)
        return (got.offset, got.timestamp) == (1, now), (got.offset, got.timestamp, now)
    run(c, "list offsets: the record with the largest timestamp (KIP-734)", ["ListOffsets"],
        max_timestamp)

    def auto_created():
        t = f"{prefix}-auto-cf"
        p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
        delivered = []
        p.produce(t, value=b"made on first use", on_delivery=lambda e, m: delivered.append(e))
        p.flush(TIMEOUT)
        if delivered != [None]:
            return False, f"delivery: {delivered}"
        cons = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{prefix}-auto-cf",
                         "auto.offset.reset": "earliest"})
        cons.subscribe([t])
        got, deadline = None, time.time() + TIMEOUT
        while got is None and time.time() < deadline:
            m = cons.poll(1.0)
            if m is not None and not m.error():
                got = m.value()
        cons.close()
        return got == b"made on first use", got
    run(c, "a topic never created is made on first use (auto.create.topics.enable)",
        ["Metadata", "Produce", "Fetch"], auto_created)

    def group(protocol):
        from confluent_kafka import ConsumerGroupTopicPartitions
        g = f"{prefix}-cf-{protocol}"
        total = RECORDS * len(CODECS)
        conf = {"bootstrap.servers": bootstrap, "group.id": g, "auto.offset.reset": "earliest",
                "enable.auto.commit": False}
        if protocol == "consumer":
            conf["group.protocol"] = "consumer"
        cons = Consumer(conf)
        cons.subscribe([topic])
        got, end = 0, time.time() + TIMEOUT
        while got < total and time.time() < end:
            m = cons.poll(0.5)
            if m is not None and not m.error():
                got += 1
        cons.commit(asynchronous=False)
        parts = [TopicPartition(topic, p) for p in range(3)]
        committed = sum(tp.offset for tp in cons.committed(parts, timeout=TIMEOUT))
        cons.close()
        listed = [x.group_id for x in admin.list_consumer_groups().result(TIMEOUT).valid]
        state = admin.describe_consumer_groups([g])[g].result(TIMEOUT).state
        offs = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)])[g].result(TIMEOUT)
        stored = sum(tp.offset for tp in offs.topic_partitions)
        admin.delete_consumer_groups([g])[g].result(TIMEOUT)
        gone = g not in [x.group_id for x in admin.list_consumer_groups().result(TIMEOUT).valid]
        ok = got == total and committed == total and stored == total and g in listed and gone
        return ok, (got, committed, stored, str(state), g in listed, gone)
    run(c, "group consume, commit, list, describe, fetch offsets, delete (classic)",
        ["FindCoordinator", "JoinGroup", "SyncGroup", "Heartbeat", "OffsetCommit", "OffsetFetch",
         "LeaveGroup", "ListGroups", "DescribeGroups", "DeleteGroups"], lambda: group("classic"))
    run(c, "group consume, commit, list, describe, fetch offsets, delete (KIP-848)",
        ["FindCoordinator", "ConsumerGroupHeartbeat", "ConsumerGroupDescribe", "OffsetCommit",
         "OffsetFetch", "ListGroups", "DeleteGroups"], lambda: group("consumer"))

    def partitions():
        admin.create_partitions([NewPartitions(topic, 5)])[topic].result(TIMEOUT)
        # The broker that answers Metadata may apply the change a moment after the one
        # that took it: wait (bounded) for it to show.
        n, end = 0, time.time() + TIMEOUT
        while n != 5 and time.time() < end:
            n = len(admin.list_topics(topic, timeout=TIMEOUT).topics[topic].partitions)
            if n != 5:
                time.sleep(0.1)
        try:
            admin.create_partitions([NewPartitions(topic, 2)])[topic].result(TIMEOUT)
            return False, "shrinking was accepted"
        except Exception as e:
            return n == 5 and "INVALID_PARTITIONS" in str(e), (n, e)
    run(c, "create partitions (and refuse shrinking)", ["CreatePartitions", "Metadata"], partitions)

    def acls():
        from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,
                                           AclPermissionType, ResourcePatternType,
                                           ResourceType)
        who = f"User:{prefix}-alice"
        write = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, who, "*",
                           AclOperation.WRITE, AclPermissionType.ALLOW)
        read = AclBinding(ResourceType.TOPIC, f"{prefix}-events-", ResourcePatternType.PREFIXED,
                          who, "*", AclOperation.READ, AclPermissionType.ALLOW)
        for f in admin.create_acls([write, read], request_timeout=TIMEOUT).values():
            f.result(TIMEOUT)
        mine = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, who, None,
                                AclOperation.ANY, AclPermissionType.ANY)
        clicks = AclBindingFilter(ResourceType.TOPIC, f"{prefix}-events-clicks",
                                  ResourcePatternType.MATCH, who, None, AclOperation.ANY,
                                  AclPermissionType.ANY)

        def described(f, n):
            # Another broker may apply the change a moment later (as for topics): bounded.
            end = time.time() + TIMEOUT
            while True:
                got = sorted(map(str, admin.describe_acls(f).result(TIMEOUT)))
                if len(got) == n or time.time() > end:
                    return got
                time.sleep(0.1)
        listed = described(mine, 2)
        matched = described(clicks, 1)
        deleted = sorted(map(str, admin.delete_acls([mine])[mine].result(TIMEOUT)))
        after = described(mine, 0)
        want = sorted(map(str, [write, read]))
        ok = listed == want and matched == [str(read)] and deleted == want and after == []
        return ok, (listed, matched, deleted, after)
    run(c, "create, describe (filter, MATCH) and delete ACLs",
        ["CreateAcls", "DescribeAcls", "DeleteAcls"], acls)

    def users():
        from confluent_kafka.admin import (ScramCredentialInfo, ScramMechanism,
                                           UserScramCredentialDeletion,
                                           UserScramCredentialUpsertion)
        user = f"{prefix}-alice"
        up = [UserScramCredentialUpsertion(user, ScramCredentialInfo(m, i), b"pa55word")
              for m, i in [(ScramMechanism.SCRAM_SHA_256, 4096),
                           (ScramMechanism.SCRAM_SHA_512, 8192)]]
        for f in admin.alter_user_scram_credentials(up).values():
            f.result(TIMEOUT)

        def described(n):
            # Another broker may apply the change a moment later: bounded.
            end = time.time() + TIMEOUT
            while True:
                try:
                    d = admin.describe_user_scram_credentials([user])[user].result(TIMEOUT)
                    got = sorted((str(i.mechanism), i.iterations)
                                 for i in d.scram_credential_infos)
                except Exception as e:  # RESOURCE_NOT_FOUND once none are left
                    got = [] if "RESOURCE_NOT_FOUND" in str(e) else [str(e)]
                if len(got) == n or time.time() > end:
                    return got
                time.sleep(0.1)
        both = described(2)
        gone = UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_256)
        admin.alter_user_scram_credentials([gone])[user].result(TIMEOUT)
        left = described(1)
        ok = (both == [("ScramMechanism.SCRAM_SHA_256", 4096),
                       ("ScramMechanism.SCRAM_SHA_512", 8192)]
              and left == [("ScramMechanism.SCRAM_SHA_512", 8192)])
        return ok, (both, left)
    run(c, "create, describe and delete SCRAM credentials",
        ["AlterUserScramCredentials", "DescribeUserScramCredentials"], users)

    def elect():
        from confluent_kafka import ElectionType
        tp = TopicPartition(topic, 0)
        codes = {}
        for kind in (ElectionType.PREFERRED, ElectionType.UNCLEAN):
            # (operation_timeout here trips a SystemError in confluent-kafka 2.x's binding)
            got = admin.elect_leaders(kind, [tp]).result(TIMEOUT)
            err = got[tp]
            codes[str(kind)] = err.code() if err is not None else None
        # Led by its preferred replica: neither election is needed (ELECTION_NOT_NEEDED).
        return list(codes.values()) == [84, 84], codes
    run(c, "elect leaders, preferred and unclean", ["ElectLeaders"], elect)

    def delete_records():
        from confluent_kafka import KafkaException
        tp = TopicPartition(topic, 1)
        cons = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{prefix}-cf-wm"})
        lo, hi = cons.get_watermark_offsets(tp, timeout=TIMEOUT)
        cut = (lo + hi) // 2
        done = admin.delete_records([TopicPartition(topic, 1, cut)],
                                    operation_timeout=TIMEOUT)
        low = list(done.values())[0].result(TIMEOUT).low_watermark
        after, _ = cons.get_watermark_offsets(tp, timeout=TIMEOUT)
        cons.close()
        past = list(admin.delete_records([TopicPartition(topic, 1, hi + 1000)]).values())[0]
        try:
            past.result(TIMEOUT)
            refused = None
        except KafkaException as e:
            refused = e.args[0].code()
        # Past the high watermark: OFFSET_OUT_OF_RANGE.
        ok = hi > 0 and low == cut and after == cut and refused == 1
        return ok, (lo, hi, cut, low, after, refused)
    run(c, "delete records: the log start moves; past the end is refused",
        ["DeleteRecords", "ListOffsets"], delete_records)

    def delete():
        admin.delete_topics([topic], operation_timeout=TIMEOUT)[topic].result(TIMEOUT)
        # Metadata from another broker may lag the deletion for a moment (as in Kafka).
        deadline = time.time() + TIMEOUT
        while True:
            md = admin.list_topics(timeout=TIMEOUT)
            if topic not in md.topics or time.time() > deadline:
                return topic not in md.topics, sorted(md.topics)
            time.sleep(0.1)
    run(c, "delete topic", ["DeleteTopics"], delete)


def consume_check(Consumer, TopicPartition, bootstrap, topic, codec, want):
    """Reads every partition from the start, keeps the records of `codec`, compares."""
    cons = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-check",
                     "enable.auto.commit": False, "enable.partition.eof": True})
    parts = cons.list_topics(topic, timeout=TIMEOUT).topics[topic].partitions
    cons.assign([TopicPartition(topic, p, 0) for p in parts])
    got, eof, deadline = [], set(), time.time() + TIMEOUT
    while len(eof) < len(parts) and time.time() < deadline:
        m = cons.poll(1.0)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:  # _PARTITION_EOF
                eof.add(m.partition())
                continue
            cons.close()
            return False, m.error()
        if f"|{codec}|".encode() in m.value():
            got.append((m.key(), m.value(), [(k, v) for k, v in (m.headers() or [])]))
    cons.close()
    key = lambda r: r[1]  # values are unique
    ok = sorted(got, key=key) == sorted(want, key=key)
    return ok, f"{len(got)} of {len(want)} records back byte-exact" if ok else \
        f"got {len(got)}, want {len(want)}; first got {got[:1]}"


def kafka_python(bootstrap, prefix):
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic

    c = "kafka-python"
    topic = f"{prefix}-kp"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT * 1000)

    def create():
        admin.create_topics([NewTopic(topic, 3, 3, topic_configs={"retention.ms": "3600000"})])
        # The broker that answers list_topics may apply the creation a moment after the
        # one that created it (as in Kafka): wait for it, bounded.
        deadline = time.time() + TIMEOUT
        while topic not in admin.list_topics() and time.time() < deadline:
            time.sleep(0.1)
        topics = admin.list_topics()
        return topic in topics, topics
    run(c, "create topic", ["CreateTopics", "Metadata"], create)

    def metadata():
        d = admin.describe_topics([topic])[0]
        parts = d["partitions"]
        ok = d["error_code"] == 0 and len(parts) == 3 and all(
            len(p["replica_nodes"]) == 3 and len(p["isr_nodes"]) == 3 and p["leader_id"] >= 0
            for p in parts)
        return ok, [(p["partition_index"], p["leader_id"], p["replica_nodes"], p["isr_nodes"])
                    for p in parts]
    run(c, "metadata: partitions, leaders, replicas, ISR", ["ApiVersions", "Metadata"], metadata)

    def cluster():
        d = admin.describe_cluster()
        return len(d["brokers"]) == 3 and d["cluster_id"], d
    run(c, "describe cluster", ["DescribeCluster", "Metadata"], cluster)

    def configs():
        def modified():
            got = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            return {k: v["value"] for k, v in got["topic"][topic].items()}
        res = [ConfigResource(ConfigResourceType.TOPIC, topic,
                              configs={"segment.bytes": "2097152"})]
        admin.alter_configs(res)
        got = modified()
        return got == {"segment.bytes": "2097152", "retention.ms": "3600000"}, got
    run(c, "alter configs and describe the overrides",
        ["IncrementalAlterConfigs", "DescribeConfigs"],
        configs)

    for codec in CODECS:
        def produce_consume(codec=codec):
            # Idempotent, kafka-python's default (as Kafka's): InitProducerId first.
            p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                              enable_idempotence=True,
                              compression_type=None if codec == "none" else codec)
            want = expected(codec)
            futures = [p.send(topic, value=v, key=k, headers=h) for k, v, h in want]
            metas = [f.get(timeout=TIMEOUT) for f in futures]
            p.close()
            if any(m.offset < 0 for m in metas):
                return False, "negative offsets acknowledged"
            cons = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                 consumer_timeout_ms=3000)
            parts = [TopicPartition(topic, i) for i in cons.partitions_for_topic(topic)]
            cons.assign(parts)
            cons.seek_to_beginning(*parts)
            ends = cons.end_offsets(parts)
            got, deadline = [], time.time() + TIMEOUT
            while any(cons.position(tp) < ends[tp] for tp in parts) and time.time() < deadline:
                for recs in cons.poll(timeout_ms=1000).values():
                    for r in recs:
                        if f"|{codec}|".encode() in r.value:
                            got.append((r.key, r.value, [(k, v) for k, v in r.headers]))
            cons.close()
            key = lambda r: r[1]
            ok = sorted(got, key=key) == sorted(want, key=key)
            return ok, f"{len(got)} of {len(want)} back byte-exact" if ok else \
                f"got {len(got)} want {len(want)}"
        run(c, f"idempotent produce and consume, compression {codec}",
            ["InitProducerId", "Produce", "Fetch", "ListOffsets"],
            produce_consume)

    def auto_created():
        t = f"{prefix}-auto-py"
        p = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        meta = p.send(t, value=b"made on first use").get(timeout=TIMEOUT)
        p.close()
        cons = KafkaConsumer(t, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=TIMEOUT * 1000)
        got = next(iter(cons), None)
        cons.close()
        ok = meta.offset == 0 and got is not None and got.value == b"made on first use"
        return ok, (meta.offset, got)
    run(c, "a topic never created is made on first use (auto.create.topics.enable)",
        ["Metadata", "Produce", "Fetch"], auto_created)

    def offsets():
        cons = KafkaConsumer(bootstrap_servers=bootstrap)
        tp = TopicPartition(topic, 0)
        b, e = cons.beginning_offsets([tp])[tp], cons.end_offsets([tp])[tp]
        t = cons.offsets_for_times({tp: 0})[tp]
        cons.close()
        return b == 0 and e > 0 and t is not None and t.offset == 0, (b, e, t)
    run(c, "list offsets: earliest, latest, by timestamp", ["ListOffsets"], offsets)

    def group():
        from kafka.structs import OffsetAndMetadata  # noqa: F401 (the commit's type)
        g = f"{prefix}-kp-group"
        total = RECORDS * len(CODECS)
        cons = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=g,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=5000)
        got = 0
        for _ in cons:
            got += 1
            if got == total:
                break
        cons.commit()
        committed = sum(cons.committed(TopicPartition(topic, p)) or 0 for p in range(3))
        cons.close()
        listed = [x["group_id"] for x in admin.list_groups()]
        state = admin.describe_groups([g])[g]["group_state"]
        stored = sum(o.offset for o in admin.list_group_offsets(g)[g].values())
        deleted = admin.delete_groups([g])[g]
        ok = (got == total and committed == total and stored == total and g in listed
              and state == "Empty" and deleted == "OK")
        return ok, (got, committed, stored, state, deleted)
    run(c, "group consume, commit, list, describe, fetch offsets, delete",
        ["FindCoordinator", "JoinGroup", "SyncGroup", "Heartbeat", "OffsetCommit", "OffsetFetch",
         "LeaveGroup", "ListGroups", "DescribeGroups", "DeleteGroups"], group)

    def partitions():
        admin.create_partitions({topic: NewPartitions(4)})
        d = admin.describe_topics([topic])[0]
        return len(d["partitions"]) == 4, len(d["partitions"])
    run(c, "create partitions", ["CreatePartitions", "Metadata"], partitions)

    def log_dirs():
        got = admin.describe_log_dirs(topic_partitions=[topic])
        sizes = {}
        for broker in got:
            for d in broker["log_dirs"]:
                for t in d["topics"]:
                    for p in t["partitions"]:
                        sizes[(broker["broker"], p["partition_index"])] = p["partition_size"]
        # Every one of the 3 brokers holds a replica of each of the 4 partitions; the
        # three written to above hold records (the fourth, added later, may be empty).
        ok = len(sizes) == 12 and all(s > 0 for (_, p), s in sizes.items() if p < 3)
        return ok, got
    run(c, "describe log dirs: every replica's size on every broker", ["DescribeLogDirs"],
        log_dirs)

    def producers():
        tp = TopicPartition(topic, 0)
        got = admin.describe_producers([tp])[tp]
        ids = [p.producer_id for p in got.active_producers]
        # The idempotent producers above wrote to partition 0.
        return len(ids) > 0 and all(i >= 0 for i in ids), got
    run(c, "describe producers of a partition", ["DescribeProducers"], producers)

    def delete_records():
        tp = TopicPartition(topic, 2)
        cons = KafkaConsumer(bootstrap_servers=bootstrap)
        lo, hi = cons.beginning_offsets([tp])[tp], cons.end_offsets([tp])[tp]
        cut = (lo + hi) // 2
        done = admin.delete_records({tp: cut})
        after = cons.beginning_offsets([tp])[tp]
        cons.close()
        return hi > 0 and after == cut, (lo, hi, cut, done, after)
    run(c, "delete records: the log start moves", ["DeleteRecords", "ListOffsets"],
        delete_records)

    def elect():
        got = admin.elect_leaders(0, {topic: [0]}, raise_errors=False)
        codes = [(r.topic, p.partition_id, p.error_code)
                 for r in got.replica_election_results for p in r.partition_result]
        # Led by its preferred replica: ELECTION_NOT_NEEDED.
        return got.error_code == 0 and codes == [(topic, 0, 84)], got
    run(c, "elect preferred leader: not needed", ["ElectLeaders"], elect)

    def alter_log_dirs():
        from kafka.errors import LogDirNotFoundError
        md = admin.describe_topics([topic])[0]
        leader = md["partitions"][0]["leader_id"]
        got = admin.alter_replica_log_dirs({(topic, 0, leader): "/no/such/dir"})
        errors = list(got.values())
        return errors == [LogDirNotFoundError], got
    run(c, "alter replica log dirs: one log dir per broker, moving is LOG_DIR_NOT_FOUND",
        ["AlterReplicaLogDirs"], alter_log_dirs)

    def delete():
        admin.delete_topics([topic])
        deadline = time.time() + TIMEOUT
        while topic in admin.list_topics() and time.time() < deadline:
            time.sleep(0.1)
        topics = admin.list_topics()
        return topic not in topics, topics
    run(c, "delete topic", ["DeleteTopics"], delete)
    admin.close()


if __name__ == "__main__":
    client, bootstrap, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
    {"confluent": confluent, "kafka-python": kafka_python}[client](bootstrap, prefix)
