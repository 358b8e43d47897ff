#!/usr/bin/env bash
# The cost of metrics (BENCHMARKS.md "Metrics"), two legs:
#   render [PARTITIONS]  one node hosting PARTITIONS partitions (default 10000, RF=1, 1,000
#                        records per topic): time and size of GET /metrics, 20 scrapes (median,
#                        max), with the default per-partition series cap (10000).
#   produce [RECORDS]    RF=3 acks=all over the Kafka protocol (librdkafka, 1 KiB records,
#                        6 partitions, min.insync.replicas=2), three local nodes with metrics
#                        on (HTTP listener on, every node scraped once a second) and off
#                        (--http-listen '', so no recorder: the macros are no-ops), in one
#                        run, alternating on/off/on/off; prints each leg and the difference,
#                        in records/s and in the servers' CPU-seconds per GB (/proc), which
#                        stays fair when the cores are shared.
# Release build of the binary unless KAVKA_BIN is set; clients from deploy/kafka-clients.sh.
# Usage: bench/metrics.sh render [PARTITIONS] | produce [RECORDS]
# (KAVKA_BENCH_ORDER=off-first runs off/on/off/on instead.)
set -euo pipefail
cd "$(dirname "$0")/.."
LEG=${1:-render}
if [ -z "${KAVKA_BIN:-}" ]; then
  cargo build -q --release --locked -p kavka --bin kavka
  KAVKA_BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/kavka
fi
K=$KAVKA_BIN
DIR=$(mktemp -d)
PIDS=()
stop() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=(); }
cleanup() { stop; rm -rf "$DIR"; }
trap cleanup EXIT
BASE=${KAVKA_BENCH_PORT:-19901}
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); binary: $K"

if [ "$LEG" = render ]; then
  P=${2:-10000}
  $K server --node-id 1 --listen 127.0.0.1:$BASE --controller-listen 127.0.0.1:$((BASE + 1)) \
    --kafka-listeners '' --http-listen 127.0.0.1:$((BASE + 2)) --data-dir "$DIR/n1" >> "$DIR/n1.log" 2>&1 &
  PIDS+=($!)
  until $K -b 127.0.0.1:$BASE health >/dev/null 2>&1; do sleep 0.1; done
  # 10 topics of P/10 partitions (one CreateTopics of 10,000 partitions is also fine).
  per=$(( P / 10 ))
  for t in $(seq 1 10); do
    $K -b 127.0.0.1:$BASE topic create "m$t" --partitions "$per" --replication-factor 1 >/dev/null
  done
  until [ "$(curl -s 127.0.0.1:$((BASE + 2))/metrics | awk '$1 == "kavka_broker_leader_partitions" {print $2}')" = "$P" ]; do sleep 0.5; done
  # 1,000 records per topic, so some logs hold data (series exist for empty ones too).
  for t in $(seq 1 10); do
    seq 1 "$per" | $K -b 127.0.0.1:$BASE produce "m$t" >/dev/null
  done
  times=()
  for _ in $(seq 1 20); do
    times+=("$(curl -s -o "$DIR/out" -w '%{time_total}' 127.0.0.1:$((BASE + 2))/metrics)")
  done
  size=$(wc -c < "$DIR/out")
  samples=$(grep -vc '^#' "$DIR/out" || true)
  printf '%s\n' "${times[@]}" | sort -n | awk -v p="$P" -v size="$size" -v n="$samples" '
    { t[NR] = $1 } END {
      printf "%d partitions: GET /metrics median %.1f ms, max %.1f ms; %.1f MB, %d samples\n",
        p, 1000 * t[int((NR + 1) / 2)], 1000 * t[NR], size / 1e6, n
    }'
  exit 0
fi

# produce
N=${2:-200000}
bash deploy/kafka-clients.sh >/dev/null
PY=$PWD/target/kafka-clients/bin/python
V=""; ALL=""; KALL=""
for i in 1 2 3; do
  V="$V${V:+,}$i@127.0.0.1:$((BASE + 50 + i))"
  ALL="$ALL${ALL:+,}127.0.0.1:$((BASE + i))"
  KALL="$KALL${KALL:+,}127.0.0.1:$((BASE + 100 + i))"
done
# CPU-seconds (user + system, /proc/<pid>/stat) of the running servers so far.
cpu() {
  local t=0 p
  for p in "${PIDS[@]}"; do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  awk -v t="$t" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz}'
}
leg() { # on|off round
  rm -rf "$DIR"/n*
  for i in 1 2 3; do
    if [ "$1" = on ]; then http=127.0.0.1:$((BASE + 200 + i)); else http=""; fi
    $K server --node-id $i --listen 127.0.0.1:$((BASE + i)) \
      --kafka-listeners PLAINTEXT://127.0.0.1:$((BASE + 100 + i)) --http-listen "$http" \
      --controller-voters "$V" --data-dir "$DIR/n$i" >> "$DIR/n$i.log" 2>&1 &
    PIDS+=($!)
  done
  for i in 1 2 3; do until $K -b 127.0.0.1:$((BASE + i)) health >/dev/null 2>&1; do sleep 0.1; done; done
  $K -b "$ALL" topic create acks-all --partitions 6 --replication-factor 3 --config min.insync.replicas=2 >/dev/null
  scraper=""
  if [ "$1" = on ]; then
    ( while true; do for i in 1 2 3; do curl -s -o /dev/null 127.0.0.1:$((BASE + 200 + i))/metrics; done; sleep 1; done ) &
    scraper=$!
  fi
  before=$(cpu)
  out=$("$PY" -W ignore bench/kafka_produce.py "$KALL" acks-all "$N" 1024 all 2>/dev/null | tail -1)
  after=$(cpu)
  [ -n "$scraper" ] && kill "$scraper" 2>/dev/null
  stop
  rate=$(sed -E 's/.* sent, ([0-9]+) records\/s.*/\1/' <<<"$out")
  # Server CPU-seconds per GB: fair where the wall clock is not (the cores are shared).
  per_gb=$(awk -v a="$before" -v b="$after" -v n="$N" 'BEGIN {printf "%.2f", (b - a) / (n * 1024 / 1e9)}')
  echo "metrics $1 (round $2): $out; servers $per_gb CPU-s per GB" >&2
  echo "$rate $per_gb"
}
echo "$N records of 1 KiB, 6 partitions, RF=3, min.insync.replicas=2, acks=all, full speed"
if [ "${KAVKA_BENCH_ORDER:-on-first}" = off-first ]; then
  off1=$(leg off 1); on1=$(leg on 1); off2=$(leg off 2); on2=$(leg on 2)
else
  on1=$(leg on 1); off1=$(leg off 1); on2=$(leg on 2); off2=$(leg off 2)
fi
read -r a ca <<<"$on1"; read -r b cb <<<"$on2"; read -r c cc <<<"$off1"; read -r d cd <<<"$off2"
awk -v a="$a" -v b="$b" -v c="$c" -v d="$d" -v ca="$ca" -v cb="$cb" -v cc="$cc" -v cd="$cd" 'BEGIN {
  on = (a + b) / 2; off = (c + d) / 2
  printf "metrics on: %.0f records/s (%d, %d); off: %.0f records/s (%d, %d); on is %+.1f%% of off\n",
    on, a, b, off, c, d, 100 * (on - off) / off
  con = (ca + cb) / 2; coff = (cc + cd) / 2
  printf "server CPU per GB: on %.2f (%.2f, %.2f); off %.2f (%.2f, %.2f); on costs %+.1f%%\n",
    con, ca, cb, coff, cc, cd, 100 * (con - coff) / coff
}'
