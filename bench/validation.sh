#!/usr/bin/env bash
# Produce throughput with full record validation (Kafka's LogValidator on append) against
# the CRC-only path of an older build, in one run, alternating the two builds so the
# machine's drift hits both alike (compare as ratios). Also counts the node's CPU-seconds
# per GB produced, from /proc, which stays fair when client and node share the cores.
# Usage: bench/validation.sh OLD_KAVKA NEW_KAVKA [ROUNDS]   (release binaries)
set -euo pipefail
OLD=$1 NEW=$2 ROUNDS=${3:-2}
DIR=$(mktemp -d)
PORT=${KAVKA_BENCH_PORT:-19493}
trap 'kill $NODE 2>/dev/null || true; rm -rf "$DIR"' EXIT
NODE=
cpu_s() { awk '{print ($14 + $15) / 100}' "/proc/$1/stat"; }
nproc; grep -m1 'model name' /proc/cpuinfo || true
for round in $(seq "$ROUNDS"); do
  for build in old new; do
    K=$OLD; [ "$build" = new ] && K=$NEW
    rm -rf "$DIR/node"
    $K server --listen 127.0.0.1:$PORT --kafka-listeners "" --data-dir "$DIR/node" > "$DIR/node.log" 2>&1 &
    NODE=$!
    for _ in $(seq 100); do $K -b 127.0.0.1:$PORT topic create warmup >/dev/null 2>&1 && break; sleep 0.1; done
    for codec in none zstd; do
      before=$(cpu_s $NODE)
      line=$($K -b 127.0.0.1:$PORT bench produce --topic v-$codec --record-size 1024 \
        --num-records 300000 --acks 1 --batch-size 65536 --in-flight 4 --compression $codec 2>&1 | grep -m1 'records/s')
      after=$(cpu_s $NODE)
      echo "round=$round build=$build codec=$codec node_cpu_s=$(echo "$after - $before" | bc) | $line"
    done
    kill $NODE; wait $NODE 2>/dev/null || true
  done
done
