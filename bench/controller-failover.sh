#!/usr/bin/env bash
# Controller failover: on a local 3-node cluster (release build), SIGKILL the active
# controller KILLS times and measure the time from the kill to the next committed metadata
# write (a `kavka topic create` through the surviving nodes, retried until it succeeds).
# Prints each sample and the median and max in ms.
# Usage: bench/controller-failover.sh [KILLS]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
KILLS=${1:-10}
cargo build -q --release -p kavka
K=$PWD/target/release/kavka
DIR=$(mktemp -d)
trap 'pkill -f "$DIR" 2>/dev/null || true; rm -rf "$DIR"' EXIT
BASE=${KAVKA_BENCH_PORT:-19501}
ADDR=(); for i in 1 2 3; do ADDR[$i]=127.0.0.1:$((BASE + i - 1)); done
V="1@127.0.0.1:$((BASE + 51)),2@127.0.0.1:$((BASE + 52)),3@127.0.0.1:$((BASE + 53))"  # controller listeners
start() { $K server --node-id "$1" --listen "${ADDR[$1]}" --kafka-listeners "" --controller-voters "$V" --data-dir "$DIR/n$1" >> "$DIR/n$1.log" 2>&1 & }
for i in 1 2 3; do start $i; done
ALL="${ADDR[1]},${ADDR[2]},${ADDR[3]}"
until $K -b "$ALL" topic create warmup >/dev/null 2>&1; do sleep 0.1; done
samples=()
for k in $(seq "$KILLS"); do
  leader=$($K -b "$ALL" quorum status -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader_id"])')
  others=$(for i in 1 2 3; do if [ "$i" != "$leader" ]; then printf '%s,' "${ADDR[$i]}"; fi; done)
  t0=$(date +%s%N)
  pkill -9 -f -- "--node-id $leader --listen"
  until $K -b "${others%,}" topic create "t$k" >/dev/null 2>&1; do :; done
  t1=$(date +%s%N)
  ms=$(( (t1 - t0) / 1000000 ))
  samples+=("$ms")
  echo "kill $k: node $leader, next committed write after $ms ms"
  start "$leader"
  until $K -b "${ADDR[$leader]}" topic list >/dev/null 2>&1; do sleep 0.1; done
  sleep 1
done
printf '%s\n' "${samples[@]}" | sort -n | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "samples %d, median %d ms, max %d ms\n", NR, m, a[NR]}'
