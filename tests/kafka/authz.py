"""Kafka's authorization matrix with confluent-kafka: each case is one client, one
principal, one operation; prints one JSON object: case -> "OK" or Kafka's error name.

Usage: authz.py BOOTSTRAP PASSWORD
"""
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType,
                                   AdminClient, AlterConfigOpType, ConfigEntry,
                                   ConfigResource, NewTopic, ResourcePatternType,
                                   ResourceType)

ADDR, PASSWORD = sys.argv[1], sys.argv[2]


def conf(user):
    return {"bootstrap.servers": ADDR, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": user,
            "sasl.password": PASSWORD}


def err_name(e):
    if isinstance(e, KafkaException):
        e = e.args[0]
    if isinstance(e, KafkaError):
        return e.name()
    return type(e).__name__ + ": " + str(e)


def produce(user, topic, idempotent=False):
    c = conf(user)
    c["message.timeout.ms"] = 20000
    c["enable.idempotence"] = idempotent
    fatal = []
    c["error_cb"] = lambda e: fatal.append(e.name()) if e.fatal() else None
    delivered = []
    p = Producer(c)
    p.produce(topic, b"v", callback=lambda err, _m: delivered.append(err.name() if err else "OK"))
    p.flush(40)
    if fatal:
        return fatal[0]
    return delivered[0] if delivered else "NO_ANSWER"


def consume(user, topic, group):
    c = conf(user)
    c.update({"group.id": group, "auto.offset.reset": "earliest",
              "enable.auto.commit": False})
    errors = []
    c["error_cb"] = lambda e: errors.append(e.name())
    cons = Consumer(c)
    cons.subscribe([topic])
    result = None
    end = time.time() + 40
    while result is None and time.time() < end:
        m = cons.poll(0.5)
        if m is None:
            continue
        if m.error():
            result = m.error().name()
        else:
            result = "OK"
    if result == "OK":
        # Committing the offset takes READ on the group and the topic.
        try:
            cons.commit(asynchronous=False)
        except Exception as e:  # noqa: BLE001 - reported as the case's outcome
            result = "commit: " + err_name(e)
    cons.close()
    return result or ("NO_ANSWER " + ",".join(errors))


def one(futures):
    try:
        for f in futures.values():
            f.result(30)
        return "OK"
    except Exception as e:  # noqa: BLE001 - reported as the case's outcome
        return err_name(e)


def admin(user):
    return AdminClient(dict(conf(user), **{"socket.timeout.ms": 20000}))


# Each keeps its client referenced until the answer is in: a client collected early
# fails its futures with _DESTROY.
def create_topic(user, name):
    a = admin(user)
    return one(a.create_topics([NewTopic(name, 1, 1)], request_timeout=20))


def delete_topic(user, name):
    a = admin(user)
    return one(a.delete_topics([name], request_timeout=20))


def describe_configs(user, topic):
    a = admin(user)
    return one(a.describe_configs([ConfigResource(ResourceType.TOPIC, topic)]))


def alter_configs(user, topic):
    r = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "3600000",
                    incremental_operation=AlterConfigOpType.SET)])
    a = admin(user)
    return one(a.incremental_alter_configs([r]))


def create_acl(user):
    b = AclBinding(ResourceType.TOPIC, "x", ResourcePatternType.LITERAL, "User:bob", "*",
                   AclOperation.READ, AclPermissionType.ALLOW)
    a = admin(user)
    return one(a.create_acls([b], request_timeout=20))


def topics(user):
    md = admin(user).list_topics(timeout=20)
    return ",".join(sorted(t for t in md.topics if not t.startswith("__")))


cases = {
    "produce alice orders": lambda: produce("alice", "orders"),
    "produce bob orders": lambda: produce("bob", "orders"),
    "idempotent produce alice orders": lambda: produce("alice", "orders", True),
    "consume analytics events-clicks in analytics": lambda: consume("analytics", "events-clicks", "analytics"),
    "consume analytics events-clicks in other": lambda: consume("analytics", "events-clicks", "other"),
    "consume analytics events-secret in analytics": lambda: consume("analytics", "events-secret", "analytics"),
    "consume bob events-clicks in analytics": lambda: consume("bob", "events-clicks", "analytics"),
    "create topic ops ops-new": lambda: create_topic("ops", "ops-new"),
    "create topic bob bobs": lambda: create_topic("bob", "bobs"),
    "delete topic ops ops-new": lambda: delete_topic("ops", "ops-new"),
    "delete topic bob orders": lambda: delete_topic("bob", "orders"),
    "describe configs ops orders": lambda: describe_configs("ops", "orders"),
    "describe configs bob orders": lambda: describe_configs("bob", "orders"),
    "alter configs ops orders": lambda: alter_configs("ops", "orders"),
    "alter configs alice orders": lambda: alter_configs("alice", "orders"),
    "create acl bob": lambda: create_acl("bob"),
    "create acl admin": lambda: create_acl("admin"),
    "topics bob": lambda: topics("bob"),
    "topics alice": lambda: topics("alice"),
    "topics admin": lambda: topics("admin"),
}

only = sys.argv[3:]
out = {}
for name, case in cases.items():
    if only and name not in only:
        continue
    try:
        out[name] = case()
    except Exception as e:  # noqa: BLE001 - reported as the case's outcome
        out[name] = "EXCEPTION " + err_name(e)
    print(name, "->", out[name], file=sys.stderr, flush=True)
print(json.dumps(out))
