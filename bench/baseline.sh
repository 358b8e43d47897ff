#!/usr/bin/env bash
# One benchmark run, all figures from the same machine and moment (compare as ratios):
#   1. raw sequential write bandwidth of the disk under $DIR (dd, 1 MiB blocks, fdatasync)
#   2. criterion: log append (replicated and fsync) and read, codec encode/decode
#   3. kavka bench produce/consume against a fresh release node
# Usage: bench/baseline.sh [DIR]   (DIR defaults to ./target/bench-data)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-./target/bench-data}
rm -rf "$DIR" && mkdir -p "$DIR" && DIR=$(cd "$DIR" && pwd)
PORT=${KAVKA_BENCH_PORT:-19393}

echo "== machine"
nproc; grep -m1 'model name' /proc/cpuinfo || true; free -g | head -2; df -h "$DIR" | tail -1

echo "== dd: raw sequential write, 2 GiB, fdatasync"
dd if=/dev/zero of="$DIR/dd.bin" bs=1M count=2048 conv=fdatasync 2>&1 | tail -1
rm -f "$DIR/dd.bin"

echo "== criterion"
KAVKA_BENCH_DIR="$DIR" cargo bench -q -p kavka-log --bench log -- --warm-up-time 1 --measurement-time 5 2>&1 | grep -E '^log/|time:|thrpt:'
cargo bench -q -p kavka-record --bench codec -- --warm-up-time 1 --measurement-time 3 2>&1 | grep -E '^batch/|thrpt:'

echo "== kavka bench (release node, replicated durability)"
cargo build -q --release -p kavka
K=./target/release/kavka
$K server --listen 127.0.0.1:$PORT --kafka-listeners "" --data-dir "$DIR/node" > "$DIR/node.log" 2>&1 &
NODE=$!
trap 'kill $NODE 2>/dev/null || true' EXIT
for _ in $(seq 100); do $K -b 127.0.0.1:$PORT topic list >/dev/null 2>&1 && break; sleep 0.1; done
for acks in 1 all; do
  echo "-- produce acks=$acks, 1 KiB records, 64 KiB requests, 4 in flight"
  $K -b 127.0.0.1:$PORT bench produce --topic bench-$acks --record-size 1024 --num-records 300000 --acks $acks --batch-size 65536 --in-flight 4
done
echo "-- consume"
$K -b 127.0.0.1:$PORT bench consume --topic bench-1
