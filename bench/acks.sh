#!/usr/bin/env bash
# acks=all against acks=1 over the Kafka protocol (BENCHMARKS.md "acks=all round trip"):
# three local nodes, a librdkafka producer (confluent-kafka, bench/kafka_produce.py),
# 1 KiB records, 6 partitions, RF=3, min.insync.replicas=2, all in one run. Prints:
#   1. acks=all throughput as a percentage of acks=1's (each at full speed);
#   2. p99 produce latency with acks=all at half of its maximum rate: per record
#      (produce() to delivery report, so with the producer's linger.ms=5) and per
#      request (librdkafka's round trip, request sent to answer read: the median and
#      worst p99 of the brokers' one-second windows, the worst after two seconds, and the
#      p99 of all the leg's requests, estimated by merging the windows' quantiles);
#   3. the three servers' CPU (user + system, /proc/<pid>/stat) per GB acknowledged,
#      over the full-speed acks=all runs (each counted once the previous leg's topic is
#      deleted and its files closed), beside what this machine charges for a plain
#      pwrite() into the page cache (bench/page_cache_write.py, measured in the same run:
#      each acknowledged GB is written three times).
# Release build of the binary; clients from deploy/kafka-clients.sh.
# Each node runs its share of the machine's cores as worker threads (--num-io-threads, as
# `kavka dev --nodes 3` starts them): three nodes sharing two cores.
# Usage: bench/acks.sh [RECORDS]   (default 200000; KAVKA_BIN=path skips the build;
# KAVKA_BENCH_IO_THREADS=N gives each node N worker threads instead, '' the default of one
# per core, as for a node alone on its machine;
# KAVKA_BENCH_HTTP='' runs the nodes without their HTTP listener, so without metrics;
# RTT_LOG=file appends the half-rate leg's broker-seconds there, each with the machine's
# dirty page cache, for bench/rtt_dirty.py)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
bash deploy/kafka-clients.sh >/dev/null
if [ -z "${KAVKA_BIN:-}" ]; then
  cargo build -q --release --locked -p kavka --bin kavka
  KAVKA_BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/kavka
fi
K=$KAVKA_BIN
PY=$PWD/target/kafka-clients/bin/python
DIR=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
BASE=${KAVKA_BENCH_PORT:-19801}
V=""; ALL=""; KALL=""
for i in 1 2 3; do
  V="$V${V:+,}$i@127.0.0.1:$((BASE + 50 + i))"
  ALL="$ALL${ALL:+,}127.0.0.1:$((BASE + i))"
  KALL="$KALL${KALL:+,}127.0.0.1:$((BASE + 100 + i))"
done
IO_THREADS=${KAVKA_BENCH_IO_THREADS-$(( $(nproc) / 3 > 0 ? $(nproc) / 3 : 1 ))}
for i in 1 2 3; do
  $K server --node-id $i ${IO_THREADS:+--num-io-threads "$IO_THREADS"} --listen 127.0.0.1:$((BASE + i)) \
    --kafka-listeners PLAINTEXT://127.0.0.1:$((BASE + 100 + i)) \
    --http-listen "${KAVKA_BENCH_HTTP-127.0.0.1:$((BASE + 200 + i))}" \
    --controller-voters "$V" --data-dir "$DIR/n$i" >> "$DIR/n$i.log" 2>&1 &
  PIDS+=($!)
done
for i in 1 2 3; do until $K -b 127.0.0.1:$((BASE + i)) health >/dev/null 2>&1; do sleep 0.1; done; done
# CPU-seconds (user + system) of the three servers so far.
cpu() {
  local t=0
  for p in "${PIDS[@]}"; do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  awk -v t="$t" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.3f", t / hz}'
}
# Replica fetches the three leaders answered so far (from /metrics; 0 without HTTP).
fetches() {
  local t=0 v
  for i in 1 2 3; do
    v=$(curl -s "127.0.0.1:$((BASE + 200 + i))/metrics" 2>/dev/null |
      awk '$1 == "kavka_replica_fetch_requests_total" {print $2}')
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
# Records/s and p99 ms from kafka_produce.py's summary line.
rate() { sed -E 's/.* sent, ([0-9]+) records\/s.*/\1/' <<<"$1"; }
p99() { sed -E 's/.*p99 ([0-9.]+),.*/\1/' <<<"$1"; }
rtt() { sed -E 's/.*per broker-second: ([^;]*).*$/\1/' <<<"$1"; }
sent() { awk '{print $1}' <<<"$1"; }
HALF_RTT_LOG=${RTT_LOG:-}
unset RTT_LOG
produce() { # topic acks records [records/s]
  RTT_LOG=$([ -n "${4:-}" ] && echo "$HALF_RTT_LOG") "$PY" -W ignore bench/kafka_produce.py "$KALL" "$1" "$3" 1024 "$2" ${4:-} 2>/dev/null | tail -1
}
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); worker threads per node: ${IO_THREADS:-one per core}; $N records of 1 KiB, 6 partitions, RF=3, min.insync.replicas=2"
# Deletes topic $1 and waits (at most 60 s) until no server keeps a directory or an open
# file of it, so the next leg's CPU does not include freeing this one's page cache (a
# deleted file's pages go when its last descriptor closes, gigabytes for a leg). Prints
# the servers' CPU-seconds the deletion took.
delete_topic() {
  local before i p
  before=$(cpu)
  $K -b "$ALL" topic delete "$1" >/dev/null
  for i in $(seq 600); do
    if ! ls -d "$DIR"/n*/"$1"-* >/dev/null 2>&1 &&
      ! for p in "${PIDS[@]}"; do ls -l "/proc/$p/fd"; done 2>/dev/null | grep -q "/$1-[0-9]*/"; then
      break
    fi
    sleep 0.1
  done
  awk -v a="$before" -v b="$(cpu)" 'BEGIN {printf "%.2f", b - a}'
}
# Each leg writes a new topic and the previous one is deleted first: the page cache's
# dirty data stays about one leg's, so the kernel's writeback of an earlier leg does not
# slow a later one (it did: the second of two legs ran up to a third slower). Legs run
# acks=1, acks=all, acks=all, acks=1, so a drift through the run cancels out.
leg() { # number acks records [records/s] -> "summary line|server CPU-seconds"
  local before after f0 f1 out n=$1 deleting=""
  shift
  [ "$n" -gt 1 ] && deleting="; deleting leg-$((n - 1)) took $(delete_topic "leg-$((n - 1))") CPU-s before"
  $K -b "$ALL" topic create "leg-$n" --partitions 6 --replication-factor 3 --config min.insync.replicas=2 >/dev/null
  sync
  before=$(cpu)
  f0=$(fetches)
  out=$(produce "leg-$n" "$@")
  after=$(cpu)
  f1=$(fetches)
  echo "$out; $((f1 - f0)) replica fetches$deleting|$(awk -v a="$before" -v b="$after" 'BEGIN {print b - a}')"
}
one1=$(leg 1 1 "$N"); echo "acks=1   full speed: ${one1%|*}"
all1=$(leg 2 all "$N"); echo "acks=all full speed: ${all1%|*}"
all2=$(leg 3 all "$N"); echo "acks=all full speed: ${all2%|*}"
one2=$(leg 4 1 "$N"); echo "acks=1   full speed: ${one2%|*}"
page_cache=$(python3 bench/page_cache_write.py "$DIR")
half=$(( ($(rate "${all1%|*}") + $(rate "${all2%|*}")) / 4 ))
half_n=$(( half * 10 )) # about ten seconds
halfout=$(leg 5 all "$half_n" "$half"); echo "acks=all at $half records/s: ${halfout%|*}"
awk -v one="$(( ($(rate "${one1%|*}") + $(rate "${one2%|*}")) / 2 ))" \
  -v all="$(( ($(rate "${all1%|*}") + $(rate "${all2%|*}")) / 2 ))" -v p99="$(p99 "${halfout%|*}")" -v rtt="$(rtt "${halfout%|*}")" \
  -v cpu="$(awk -v a="${all1#*|}" -v b="${all2#*|}" 'BEGIN {print a + b}')" \
  -v n="$(( $(sent "${all1%|*}") + $(sent "${all2%|*}") ))" -v pc="$page_cache" 'BEGIN {
  printf "acks=all throughput: %.0f%% of acks=1 (%d vs %d records/s, means of two legs each)\n", 100 * all / one, all, one
  printf "p99 at half the acks=all maximum: %s ms per record (with linger.ms=5); per produce request (of each broker-second: median, worst, worst after 2 s; of all requests): %s ms\n", p99, rtt
  printf "server CPU: %.2f CPU-s per GB acknowledged (%.1f CPU-s for %.2f GB, both acks=all legs)\n", cpu / (n * 1024 / 1e9), cpu, n * 1024 / 1e9
  printf "a plain pwrite() into the page cache here: %.2f CPU-s per GB (x3 replicas: %.2f per GB acknowledged)\n", pc, 3 * pc
}'
