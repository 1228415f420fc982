#!/usr/bin/env bash
# Processing rate of one `processor` (all groups) pinned to core 0, over a backlog of
# N deposits written straight to a fresh embedded log, for A/B runs of two checkouts:
#   bash bench/ab/processing.sh <checkout> [N]
# It counts from the processor's start until both groups that read deposits have
# applied all N (their progress in log.db), start-up included.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
repo=$(cd "${1:-$here}" && pwd)
n=${2:-100000}
bun="$here/node_modules/.bin/bun"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
BENCH_REPO="$repo" "$bun" "$here/bench/ab/backlog.ts" "$dir" "$n"
start=$(date +%s.%N)
DATA_DIR="$dir" taskset -c 0 "$bun" "$repo/src/cli/processor.ts" > /dev/null 2>&1 &
pid=$!
until [ "$("$bun" -e "const d=new (require('bun:sqlite').Database)('$dir/log.db',{readonly:true});console.log(d.query(\"select coalesce(sum(next_offset),0) n from progress where topic='deposits' and owner in ('balance','threshold')\").get().n)" 2>/dev/null)" = "$((2 * n))" ]; do sleep 0.1; done
end=$(date +%s.%N)
kill "$pid"; wait "$pid" 2>/dev/null || true
echo "$repo: $(echo "$n / ($end - $start)" | bc -l | cut -c1-8) deposits/s"
