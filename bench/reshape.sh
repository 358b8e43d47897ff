#!/usr/bin/env bash
# A cluster changing shape (BENCHMARKS.md "Changing the cluster's shape"), all in one run
# on this machine, release build:
#   1. one partition of SIZE_MB MiB (1 KiB records) moved from broker 1 to broker 2
#      without a throttle, then back under THROTTLE bytes/s, each while an acks=all
#      producer writes 2000 records/s to another topic: the move's time and bytes, and
#      that producer's p99;
#   2. draining a broker that holds DRAIN partitions (RF 2, 1 MiB each):
#      `kavka broker decommission` from start to "holds no replicas";
#   3. growing 3 -> 5 brokers: `kavka cluster balance --execute` of a 60-partition RF=3
#      topic holding 300 MiB, from start to "balanced".
# Every node shares this machine's 2 cores: times are this machine's, not a cluster's.
# Usage: bench/reshape.sh [SIZE_MB] [THROTTLE] [DRAIN]  (default 1024, 50000000, 300;
# KAVKA_BIN=path skips the build)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${1:-1024}
THROTTLE=${2:-50000000}
DRAIN=${3:-300}
if [ -z "${KAVKA_BIN:-}" ]; then
  cargo build -q --release --locked -p kavka --bin kavka
  KAVKA_BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/kavka
fi
K=$KAVKA_BIN
DIR=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
BASE=${KAVKA_BENCH_PORT:-19801}
V="1@127.0.0.1:$((BASE + 51)),2@127.0.0.1:$((BASE + 52)),3@127.0.0.1:$((BASE + 53))"
B=127.0.0.1:$((BASE + 1)),127.0.0.1:$((BASE + 2)),127.0.0.1:$((BASE + 3))
start() { # id roles
  $K server --node-id "$1" --roles "$2" --listen 127.0.0.1:$((BASE + $1)) --http-listen '' \
    --kafka-listeners "" --controller-voters "$V" --data-dir "$DIR/n$1" >> "$DIR/n$1.log" 2>&1 &
  PIDS+=($!)
}
for i in 1 2 3; do start $i controller,broker; done
start 4 broker
for i in 1 2 3 4; do until $K -b 127.0.0.1:$((BASE + i)) health >/dev/null 2>&1; do sleep 0.1; done; done
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

echo "== 1. moving one ${SIZE_MB} MiB partition (broker 1 -> 2, then back throttled to $THROTTLE B/s)"
$K -b "$B" topic create mv --replica-assignment 1 >/dev/null
$K -b "$B" bench produce --topic mv --num-records $((SIZE_MB * 1024)) --acks 1 >/dev/null
$K -b "$B" topic create load --partitions 3 --replication-factor 3 --config min.insync.replicas=2 >/dev/null
move() { # label target [throttle]: times the move while a producer writes in 5 s rounds
  local label=$1 target=$2; shift 2
  local out="$DIR/load-$label.txt" flag="$DIR/loading"
  touch "$flag"
  ( while [ -e "$flag" ]; do
      $K -b "$B" bench produce --topic load --acks all --throughput 2000 --num-records 10000 \
        --duration 5s 2>&1 | tail -1
    done > "$out" ) &
  local load=$!
  sleep 2
  local t0; t0=$(now)
  $K -b "$B" partition move mv-0 --replicas "$target" --wait 3600 "$@" >/dev/null
  local t1; t1=$(now)
  rm -f "$flag"; wait $load 2>/dev/null || true
  local p99; p99=$(sed -nE 's/.*p99 ([0-9.]+),.*/\1/p' "$out" | sort -g | tail -1)
  echo "$label: ${SIZE_MB} MiB moved in $(secs "$t0" "$t1") s; acks=all producer at 2000 records/s meanwhile: worst 5 s p99 ${p99:-?} ms"
}
move "unthrottled" 2
move "throttled" 1 --throttle "$THROTTLE"

echo "== 2. draining a broker holding $DRAIN partitions (RF 2, 1 MiB each)"
$K -b "$B" topic delete mv >/dev/null
ASSIGN=""
for p in $(seq 0 $((DRAIN - 1))); do ASSIGN="$ASSIGN${ASSIGN:+,}4:$((p % 3 + 1))"; done
$K -b "$B" topic create dr --replica-assignment "$ASSIGN" >/dev/null
$K -b "$B" bench produce --topic dr --num-records $((DRAIN * 1024)) --acks all >/dev/null
t0=$(now)
$K -b "$B" broker decommission 4 --timeout 3600 >/dev/null
t1=$(now)
echo "decommission of broker 4 ($DRAIN replicas, $DRAIN MiB): $(secs "$t0" "$t1") s"

echo "== 3. growing 3 -> 5 brokers: balancing a 60-partition RF=3 topic of 300 MiB"
$K -b "$B" topic delete dr >/dev/null
$K -b "$B" topic delete load >/dev/null
$K -b "$B" topic create bal --partitions 60 --replication-factor 3 >/dev/null
$K -b "$B" bench produce --topic bal --num-records $((300 * 1024)) --acks all >/dev/null
start 5 broker
start 6 broker
for i in 5 6; do until $K -b 127.0.0.1:$((BASE + i)) health >/dev/null 2>&1; do sleep 0.1; done; done
moves=$($K -b "$B" cluster balance --dry-run | sed -n 's/^\([0-9]*\) move(s) planned.*/\1/p')
t0=$(now)
$K -b "$B" cluster balance --execute --timeout 3600 >/dev/null
t1=$(now)
echo "balance onto 2 new brokers: $moves partition moves in $(secs "$t0" "$t1") s"
$K -b "$B" broker list
