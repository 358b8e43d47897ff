#!/usr/bin/env bash
# What security costs on the Kafka protocol (BENCHMARKS.md "Security"): three local
# nodes, each with a PLAINTEXT, an SSL and a SASL_SSL (SCRAM-SHA-512) listener; a
# librdkafka producer (bench/kafka_produce.py) writes 1 KiB records with acks=all to a
# 6-partition RF=3 topic through each, in two rounds in opposite orders, all in one run.
# Prints each protocol's throughput and p99 (at full speed) and throughput as a share of
# PLAINTEXT's, and the servers' CPU-seconds per GB from /proc (fair on shared cores); then connections per second (connect, TLS, authenticate, ApiVersions) and
# the servers' CPU per connection for PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL with
# SCRAM-SHA-512 (bench/scram_connect.py).
# Release build of the binary; clients from deploy/kafka-clients.sh.
# Usage: bench/security.sh [RECORDS] [CONNECT_SECONDS]  (default 100000, 10;
# KAVKA_BIN=path skips the build; KAVKA_BENCH_LEGS="PLAINTEXT SSL ..." sets the legs'
# order, whose summary reads the first two legs of each protocol)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
SECS=${2:-10}
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
bash deploy/certs.sh "$DIR/certs" >/dev/null
BASE=${KAVKA_BENCH_PORT:-19901}
V=""; ALL=""; PLAIN=""; SSL=""; SASL_SSL=""; SASL_PLAIN=""
for i in 1 2 3; do
  V="$V${V:+,}$i@127.0.0.1:$((BASE + 50 + i))"
  ALL="$ALL${ALL:+,}127.0.0.1:$((BASE + i))"
  PLAIN="$PLAIN${PLAIN:+,}127.0.0.1:$((BASE + 100 + i))"
  SSL="$SSL${SSL:+,}127.0.0.1:$((BASE + 110 + i))"
  SASL_SSL="$SASL_SSL${SASL_SSL:+,}127.0.0.1:$((BASE + 120 + i))"
  SASL_PLAIN="$SASL_PLAIN${SASL_PLAIN:+,}127.0.0.1:$((BASE + 130 + i))"
done
for i in 1 2 3; do
  $K server --node-id $i --listen 127.0.0.1:$((BASE + i)) --http-listen '' \
    --kafka-listeners "PLAINTEXT://127.0.0.1:$((BASE + 100 + i)),SSL://127.0.0.1:$((BASE + 110 + i)),SASL_SSL://127.0.0.1:$((BASE + 120 + i)),SASL_PLAINTEXT://127.0.0.1:$((BASE + 130 + i))" \
    --ssl-keystore-location "$DIR/certs/server.pem" \
    --controller-voters "$V" --data-dir "$DIR/n$i" >> "$DIR/n$i.log" 2>&1 &
  PIDS+=($!)
done
for i in 1 2 3; do until $K -b 127.0.0.1:$((BASE + i)) health >/dev/null 2>&1; do sleep 0.1; done; done
echo "bench-password" | $K -b "$ALL" user create bench --mechanism SCRAM-SHA-512 --password-stdin >/dev/null
CA="ssl.ca.location=$DIR/certs/ca.pem"
SCRAM="sasl.mechanisms=SCRAM-SHA-512,sasl.username=bench,sasl.password=bench-password"
config() { # protocol -> librdkafka settings
  case $1 in
    PLAINTEXT) echo "" ;;
    SSL) echo "security.protocol=SSL,$CA" ;;
    SASL_SSL) echo "security.protocol=SASL_SSL,$CA,$SCRAM" ;;
    SASL_PLAINTEXT) echo "security.protocol=SASL_PLAINTEXT,$SCRAM" ;;
  esac
}
addrs() { case $1 in PLAINTEXT) echo "$PLAIN" ;; SSL) echo "$SSL" ;; SASL_SSL) echo "$SASL_SSL" ;; SASL_PLAINTEXT) echo "$SASL_PLAIN" ;; esac; }
declare -A RATE P99 CPU
# CPU-seconds (user + system, /proc/<pid>/stat) of the three servers so far.
cpu() {
  local t=0 p
  for p in "${PIDS[@]}"; do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  awk -v t="$t" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz}'
}
LEG=0
produce() { # protocol
  local out before after topic
  # A new topic per leg, the last one deleted: the page cache's dirty data stays about
  # one leg's, so the kernel's writeback does not slow later legs (it did: the same
  # protocol ran a third slower after four legs had written 3.6 GB on this machine).
  LEG=$((LEG + 1)); topic=sec-$LEG
  [ "$LEG" -gt 1 ] && $K -b "$ALL" topic delete "sec-$((LEG - 1))" >/dev/null
  $K -b "$ALL" topic create "$topic" --partitions 6 --replication-factor 3 --config min.insync.replicas=2 >/dev/null
  sync
  before=$(cpu)
  out=$(KAFKA_CONFIG=$(config "$1") "$PY" -W ignore bench/kafka_produce.py "$(addrs "$1")" "$topic" "$N" 1024 all 2>/dev/null | tail -1)
  after=$(cpu)
  echo "$1: $out" >&2
  RATE[$1]="${RATE[$1]:-} $(sed -E 's/.* sent, ([0-9]+) records\/s.*/\1/' <<<"$out")"
  P99[$1]="${P99[$1]:-} $(sed -E 's/.*p99 ([0-9.]+),.*/\1/' <<<"$out")"
  # Server CPU-seconds per GB: fair where the wall clock is not (the cores are shared).
  CPU[$1]="${CPU[$1]:-} $(awk -v a="$before" -v b="$after" -v n="$N" 'BEGIN {printf "%.2f", (b - a) / (n * 1024 / 1e9)}')"
}
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $N records of 1 KiB, 6 partitions, RF=3, min.insync.replicas=2, acks=all"
for p in ${KAVKA_BENCH_LEGS:-PLAINTEXT SSL SASL_SSL SASL_SSL SSL PLAINTEXT}; do produce "$p"; done
base=$(awk '{print ($1 + $2) / 2}' <<<"${RATE[PLAINTEXT]}")
cbase=$(awk '{print ($1 + $2) / 2}' <<<"${CPU[PLAINTEXT]}")
for p in PLAINTEXT SSL SASL_SSL; do
  awk -v name="$p" -v base="$base" -v cbase="$cbase" -v r="${RATE[$p]}" -v l="${P99[$p]}" -v c="${CPU[$p]}" 'BEGIN {
    split(r, a, " "); split(l, b, " "); split(c, k, " "); rate = (a[1] + a[2]) / 2; cpu = (k[1] + k[2]) / 2
    printf "%-10s %7.0f records/s (%s,%s)  p99 ms %s,%s  %.0f%% of PLAINTEXT;  servers %.2f CPU-s/GB (%s,%s), %.0f%% of PLAINTEXT\n", name, rate, a[1], a[2], b[1], b[2], 100 * rate / base, cpu, k[1], k[2], 100 * cpu / cbase
  }'
done
# Connections: bench/scram_connect.py, a minimal client (no library start-up in the
# figure), one connection at a time to node 1: connect, TLS, SCRAM, ApiVersions, close.
# The servers' CPU per connection is the fair figure; the rate is bound by one client.
connect_args() { # protocol -> scram_connect.py arguments
  case $1 in
    PLAINTEXT) echo "" ;;
    SSL) echo "--tls $DIR/certs/ca.pem" ;;
    SASL_PLAINTEXT) echo "--scram SHA-512 bench bench-password" ;;
    SASL_SSL) echo "--tls $DIR/certs/ca.pem --scram SHA-512 bench bench-password" ;;
  esac
}
for p in PLAINTEXT SSL SASL_PLAINTEXT SASL_SSL; do
  before=$(cpu)
  # shellcheck disable=SC2046
  out=$("$PY" bench/scram_connect.py "$(addrs "$p" | cut -d, -f1)" "$SECS" $(connect_args "$p") | tail -1)
  after=$(cpu)
  n=$(awk '{print $1}' <<<"$out")
  printf '%-14s %s; servers %.2f CPU-ms per connection\n' "$p" "$out" "$(awk -v a="$before" -v b="$after" -v n="$n" 'BEGIN {print 1000 * (b - a) / n}')"
done
