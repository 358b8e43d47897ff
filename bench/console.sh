#!/usr/bin/env bash
# Console page load time with many partitions (BENCHMARKS.md "Console page load"): three
# local nodes, one topic of PARTITIONS partitions (RF=3), then headless Chromium
# (tests/console_cdp.py) loads node 1's console RUNS times for each page and reports the
# time from navigation start until the page shows its data: the topic page's partition
# table with every row, and the overview's broker table. Also the JSON answers' time and
# size with curl. Release build of the binary (KAVKA_BIN=path skips the build).
# Usage: bench/console.sh [PARTITIONS] [RUNS]   (defaults 1000 and 5)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
RUNS=${2:-5}
bash deploy/chromium.sh >/dev/null
if [ -z "${KAVKA_BIN:-}" ]; then
  cargo build -q --release --locked -p kavka --bin kavka
  KAVKA_BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/kavka
fi
K=$KAVKA_BIN
DIR=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
BASE=${KAVKA_BENCH_PORT:-19901}
V=""; ALL=""
for i in 1 2 3; do
  V="$V${V:+,}$i@127.0.0.1:$((BASE + 50 + i))"
  ALL="$ALL${ALL:+,}127.0.0.1:$((BASE + i))"
done
for i in 1 2 3; do
  $K server --node-id $i --listen 127.0.0.1:$((BASE + i)) \
    --kafka-listeners PLAINTEXT://127.0.0.1:$((BASE + 100 + i)) \
    --http-listen 127.0.0.1:$((BASE + 200 + i)) \
    --controller-voters "$V" --data-dir "$DIR/n$i" >> "$DIR/n$i.log" 2>&1 &
  PIDS+=($!)
done
for i in 1 2 3; do until $K -b 127.0.0.1:$((BASE + i)) health >/dev/null 2>&1; do sleep 0.1; done; done
$K -b "$ALL" topic create big --partitions "$N" --replication-factor 3 >/dev/null
HTTP=127.0.0.1:$((BASE + 201))
# Until node 1 shows every partition led and in full ISR.
until curl -sf "http://$HTTP/api/topics/big" | python3 -c "
import json, sys
ps = json.load(sys.stdin)['partitions']
sys.exit(0 if len(ps) == $N and all(p['leader'] is not None and len(p['isr']) == 3 for p in ps) else 1)"; do sleep 0.5; done

echo "== JSON answers (curl, $RUNS runs each; seconds and bytes)"
for path in /api/cluster /api/topics /api/topics/big; do
  for _ in $(seq "$RUNS"); do curl -s -o /dev/null -w '%{time_total} %{size_download}\n' "http://$HTTP$path"; done |
    sort -n | awk -v p="$path" '{t[NR]=$1; s=$2} END {printf "%-18s median %.1f ms  max %.1f ms  %d bytes\n", p, t[int((NR+1)/2)]*1000, t[NR]*1000, s}'
done

echo "== page load in headless Chromium ($RUNS runs each; ms from navigation start)"
{
  for _ in $(seq "$RUNS"); do
    echo '{"cmd":"goto","url":"about:blank"}'
    echo "{\"cmd\":\"goto\",\"url\":\"http://$HTTP/#/topics/big\"}"
    echo "{\"cmd\":\"wait\",\"expr\":\"document.querySelectorAll('#partitions tbody tr').length === $N && performance.now()\",\"timeout\":120}"
  done
  for _ in $(seq "$RUNS"); do
    echo '{"cmd":"goto","url":"about:blank"}'
    echo "{\"cmd\":\"goto\",\"url\":\"http://$HTTP/#/\"}"
    echo "{\"cmd\":\"wait\",\"expr\":\"document.querySelectorAll('#brokers tbody tr').length === 3 && performance.now()\",\"timeout\":120}"
  done
  echo '{"cmd":"quit"}'
} | python3 tests/console_cdp.py /usr/bin/chromium | python3 -c "
import json, sys
vals = [json.loads(l) for l in sys.stdin]
bad = [v for v in vals if not v.get('ok')]
if bad: sys.exit(f'driver: {bad[0]}')
times = [v['value'] for v in vals if isinstance(v.get('value'), (int, float))]
half = len(times) // 2
for name, ts in (('topic page, $N partitions', times[:half]), ('overview', times[half:])):
    ts = sorted(ts)
    print(f'{name:<28} median {ts[len(ts) // 2]:.0f} ms  min {ts[0]:.0f} ms  max {ts[-1]:.0f} ms')
"
