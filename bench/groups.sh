#!/usr/bin/env bash
# Consumer groups (BENCHMARKS.md "Consumer groups"): on three local nodes (release build
# of the static binary), with librdkafka (confluent-kafka, bench/groups.py):
#   - rebalance time when one of three members leaves, classic protocol against KIP-848,
#     with the clients' default heartbeat intervals and with 500 ms;
#   - synchronous offset commits per second to one coordinator;
#   - group consume throughput of 1 KiB records with 1 and 3 members.
# Usage: bench/groups.sh [ROUNDS] [RECORDS]   (defaults 5, 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
N=${2:-200000}
bash deploy/kafka-clients.sh >/dev/null
RUSTFLAGS='-C target-feature=+crt-static' \
  cargo build -q --release --locked --target x86_64-unknown-linux-gnu -p kavka --bin kavka
K=$PWD/target/x86_64-unknown-linux-gnu/release/kavka
PY=$PWD/target/kafka-clients/bin/python
DIR=$(mktemp -d)
stop() {
  pkill -f "$DIR" 2>/dev/null || true
  while pgrep -f "$DIR" >/dev/null; do sleep 0.2; done
}
trap 'stop; rm -rf "$DIR"' EXIT
BASE=${KAVKA_BENCH_PORT:-19801}
V=""; ALL=""; KALL=""
for i in 1 2 3; do
  V="$V${V:+,}$i@127.0.0.1:$((BASE + 50 + i))"  # controller listeners
  ALL="$ALL${ALL:+,}127.0.0.1:$((BASE + i))"
  KALL="$KALL${KALL:+,}127.0.0.1:$((BASE + 100 + i))"
done
start() {
  for i in 1 2 3; do
    $K server --node-id $i --listen 127.0.0.1:$((BASE + i)) \
      --kafka-listeners PLAINTEXT://127.0.0.1:$((BASE + 100 + i)) \
      --controller-voters "$V" --data-dir "$DIR/n$i" "$@" >> "$DIR/n$i.log" 2>&1 &
  done
  for i in 1 2 3; do until $K -b 127.0.0.1:$((BASE + i)) health >/dev/null 2>&1; do sleep 0.1; done; done
}
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
# Kafka's defaults: classic heartbeat.interval.ms 3000, group.consumer.heartbeat.interval.ms 5000.
start
$K -b "$ALL" topic create rb --partitions 6 --replication-factor 3 >/dev/null
"$PY" -W ignore bench/groups.py "$KALL" rb classic "$ROUNDS" 3000
"$PY" -W ignore bench/groups.py "$KALL" rb consumer "$ROUNDS" 5000
stop
start --group-consumer-heartbeat-interval-ms 500
"$PY" -W ignore bench/groups.py "$KALL" rb classic "$ROUNDS" 500
"$PY" -W ignore bench/groups.py "$KALL" rb consumer "$ROUNDS" 500
"$PY" -W ignore bench/groups.py "$KALL" rb commit 10
$K -b "$ALL" topic create tp --partitions 6 --replication-factor 3 >/dev/null
$K -b "$ALL" bench produce --topic tp --record-size 1024 --num-records "$N" --acks 1 \
  --batch-size 65536 --in-flight 4 >/dev/null 2>&1
"$PY" -W ignore bench/groups.py "$KALL" tp consume "$N" 1
"$PY" -W ignore bench/groups.py "$KALL" tp consume "$N" 3
