#!/usr/bin/env bash
# Time from `kavka quorum add-voter` to a committed membership (BENCHMARKS.md).
#
# Starts three controller+broker nodes and a fourth controller outside the static voters
# on 127.0.0.1 (ports 18101-18314), then ROUNDS times: `kavka quorum add-voter 4` (it
# answers once the new voter set has committed), then `kavka quorum remove-voter 4`.
# Prints each add's wall time in ms (CLI start to answer) and min/median/max. Round 1
# catches up from an empty log; later rounds find node 4's log kept from the round before
# (a removed voter keeps its log), so they measure the membership change itself.
# Usage: bench/quorum_add_voter.sh [ROUNDS] (KAVKA_BIN: the binary, default target/debug/kavka)
set -euo pipefail
ROUNDS=${1:-10}
BIN=${KAVKA_BIN:-target/debug/kavka}
DIR=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
V=1@127.0.0.1:18111,2@127.0.0.1:18112,3@127.0.0.1:18113
for n in 1 2 3; do
  "$BIN" server --node-id $n --roles controller,broker --listen 127.0.0.1:1810$n \
    --controller-voters $V --data-dir "$DIR/d$n" \
    --kafka-listeners PLAINTEXT://127.0.0.1:1820$n --http-listen 127.0.0.1:1830$n \
    2>"$DIR/n$n.log" &
  PIDS+=($!)
done
"$BIN" server --node-id 4 --roles controller --listen 127.0.0.1:18104 \
  --controller-voters $V --controller-listen 127.0.0.1:18114 --data-dir "$DIR/d4" \
  --http-listen 127.0.0.1:18304 2>"$DIR/n4.log" &
PIDS+=($!)
B=127.0.0.1:18101,127.0.0.1:18102,127.0.0.1:18103
for _ in $(seq 1 100); do
  "$BIN" --bootstrap $B quorum status >/dev/null 2>&1 && break
  sleep 0.2
done
# The CLI's own cost (process start, connect, one call), for scale.
t0=$(date +%s%N)
"$BIN" --bootstrap $B quorum status >/dev/null
echo "kavka quorum status (CLI overhead, for scale): $(( ($(date +%s%N) - t0) / 1000000 )) ms"
times=()
for i in $(seq 1 "$ROUNDS"); do
  t0=$(date +%s%N)
  "$BIN" --bootstrap $B quorum add-voter 4 --address 127.0.0.1:18114 >/dev/null
  t1=$(date +%s%N)
  ms=$(( (t1 - t0) / 1000000 ))
  times+=("$ms")
  echo "round $i: add-voter to committed membership ${ms} ms"
  "$BIN" --bootstrap $B quorum remove-voter 4 >/dev/null
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
echo "min $(echo "$sorted" | head -1) ms, median $(echo "$sorted" | sed -n "$(( (ROUNDS + 1) / 2 ))p") ms, max $(echo "$sorted" | tail -1) ms over $ROUNDS rounds"
grep -h "the new voter caught up" "$DIR"/n*.log | sed 's/.*caught_up_ms=\([0-9]*\).*/caught up in \1 ms/' | sort -n -k4 | uniq -c | head -5 || true
