#!/usr/bin/env bash
# Replication cost (BENCHMARKS.md "Replication"): 1 KiB records, 6 partitions, all in one
# run on this machine — a single node with RF=1, then three local nodes with RF=3 and
# acks=1 and acks=all (min.insync.replicas=2), each first at full speed, then at half of
# that rate for latency under load, and acks=all once more without idempotence. Release
# build of the static binary.
# Usage: [IN_FLIGHT=4] bench/replication.sh [RECORDS]   (default 300000; IN_FLIGHT:
# concurrent produce requests)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-300000}
RUSTFLAGS='-C target-feature=+crt-static' \
  cargo build -q --release --locked --target x86_64-unknown-linux-gnu -p kavka --bin kavka
K=$PWD/target/x86_64-unknown-linux-gnu/release/kavka
DIR=$(mktemp -d)
trap 'pkill -f "$DIR" 2>/dev/null || true; while pgrep -f "$DIR" >/dev/null; do sleep 0.2; done; rm -rf "$DIR"' EXIT
BASE=${KAVKA_BENCH_PORT:-19601}
ADDR=(); for i in 1 2 3; do ADDR[$i]=127.0.0.1:$((BASE + i)); done
BENCH=(--record-size 1024 --partitions 6 --batch-size 65536 --in-flight "${IN_FLIGHT:-4}")

rate() { sed -n 's/.* sent, \([0-9]*\) records\/s.*/\1/p'; }
run() { # name bootstrap extra-args...
  local name=$1 b=$2; shift 2
  local out; out=$($K -b "$b" bench produce "${BENCH[@]}" "$@" 2>&1 | tail -1)
  echo "$name: $out"
  LAST=$(echo "$out" | rate)
}

echo "== single node, RF=1"
$K server --node-id 1 --listen 127.0.0.1:$BASE --controller-listen 127.0.0.1:$((BASE + 50)) --kafka-listeners "" --data-dir "$DIR/single" >> "$DIR/single.log" 2>&1 &
until $K -b 127.0.0.1:$BASE health >/dev/null 2>&1; do sleep 0.1; done
run "rf1 acks=all  full" 127.0.0.1:$BASE --topic rf1 --replication-factor 1 --acks all --num-records "$N"
half=$((LAST / 2))
run "rf1 acks=all  half" 127.0.0.1:$BASE --topic rf1 --acks all --num-records $((N / 2)) --throughput "$half"
pkill -f -- "--data-dir $DIR/single" || true
while pgrep -f -- "--data-dir $DIR/single" >/dev/null; do sleep 0.2; done

echo "== three nodes, RF=3, min.insync.replicas=2"
V="1@127.0.0.1:$((BASE + 51)),2@127.0.0.1:$((BASE + 52)),3@127.0.0.1:$((BASE + 53))"  # controller listeners
for i in 1 2 3; do
  $K server --node-id $i --listen "${ADDR[$i]}" --kafka-listeners "" --controller-voters "$V" --data-dir "$DIR/n$i" >> "$DIR/n$i.log" 2>&1 &
done
ALL="${ADDR[1]},${ADDR[2]},${ADDR[3]}"
for i in 1 2 3; do until $K -b "${ADDR[$i]}" health >/dev/null 2>&1; do sleep 0.1; done; done
for acks in 1 all; do
  $K -b "$ALL" topic create "rf3-$acks" --partitions 6 --replication-factor 3 --config min.insync.replicas=2 >/dev/null
  run "rf3 acks=$acks full" "$ALL" --topic "rf3-$acks" --acks "$acks" --num-records "$N"
  half=$((LAST / 2))
  run "rf3 acks=$acks half" "$ALL" --topic "rf3-$acks" --acks "$acks" --num-records $((N / 2)) --throughput "$half"
done
# acks=all producers are idempotent by default (as Kafka's); the same without:
run "rf3 acks=all full, enable.idempotence=false" "$ALL" --topic rf3-all --acks all \
  --enable-idempotence false --num-records "$N"
