#!/usr/bin/env bash
# Kafka protocol vs gRPC (BENCHMARKS.md "Kafka protocol"): a librdkafka producer
# (confluent-kafka, bench/kafka_produce.py) and `kavka bench produce` (gRPC) against the
# same three local nodes in one run, 1 KiB records, 6 partitions, RF=3,
# min.insync.replicas=2, acks=1 and acks=all. Release build of the static binary;
# clients from deploy/kafka-clients.sh.
# Usage: bench/kafka.sh [RECORDS]   (default 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
bash deploy/kafka-clients.sh >/dev/null
RUSTFLAGS='-C target-feature=+crt-static' \
  cargo build -q --release --locked --target x86_64-unknown-linux-gnu -p kavka --bin kavka
K=$PWD/target/x86_64-unknown-linux-gnu/release/kavka
PY=$PWD/target/kafka-clients/bin/python
DIR=$(mktemp -d)
trap 'pkill -f "$DIR" 2>/dev/null || true; rm -rf "$DIR"' EXIT
BASE=${KAVKA_BENCH_PORT:-19701}
V=""; ALL=""; KALL=""
for i in 1 2 3; do
  V="$V${V:+,}$i@127.0.0.1:$((BASE + 50 + i))"  # controller listeners
  ALL="$ALL${ALL:+,}127.0.0.1:$((BASE + i))"
  KALL="$KALL${KALL:+,}127.0.0.1:$((BASE + 100 + i))"
done
for i in 1 2 3; do
  $K server --node-id $i --listen 127.0.0.1:$((BASE + i)) \
    --kafka-listeners PLAINTEXT://127.0.0.1:$((BASE + 100 + i)) \
    --controller-voters "$V" --data-dir "$DIR/n$i" >> "$DIR/n$i.log" 2>&1 &
done
for i in 1 2 3; do until $K -b 127.0.0.1:$((BASE + i)) health >/dev/null 2>&1; do sleep 0.1; done; done
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $N records of 1 KiB"
for acks in 1 all; do
  for via in kafka grpc; do
    t="$via-acks-$acks"
    $K -b "$ALL" topic create "$t" --partitions 6 --replication-factor 3 --config min.insync.replicas=2 >/dev/null
    if [ $via = kafka ]; then
      out=$("$PY" -W ignore bench/kafka_produce.py "$KALL" "$t" "$N" 1024 "$acks" 2>/dev/null | tail -1)
    else
      out=$($K -b "$ALL" bench produce --topic "$t" --record-size 1024 --num-records "$N" \
        --acks "$acks" --batch-size 65536 --in-flight 4 2>&1 | tail -1)
    fi
    printf '%-6s acks=%-3s %s\n' "$via" "$acks" "$out"
  done
done
