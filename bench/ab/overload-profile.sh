#!/usr/bin/env bash
# A CPU profile of `dev` under the overload suite's open loop, and where it went, for
# bench/analysis-overload.md:
#   bash bench/ab/overload-profile.sh <rate/s> [seconds=20] [WRITES_IN_FLIGHT_MAX=1024] [wallets=1000] [checkout]
# `dev` (embedded log, fresh DATA_DIR) runs under `bun --cpu-prof` on core 0; bench/load.ts
# (64 connections, 5 s) warms it up from core 1; then bench/overload-load.ts offers <rate>/s
# over 8,192 connections from core 1 (deposits cycling over <wallets>); dev is stopped
# (the profile is written at its exit) and bench/ab/profile-split.ts splits the samples taken during the load: all of
# it, its first 10 s and its last 10 s.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
rate=${1:?usage: overload-profile.sh <rate/s> [seconds] [WRITES_IN_FLIGHT_MAX] [wallets] [checkout]}
seconds=${2:-20}
max=${3:-1024}
wallets=${4:-1000}
repo=$(cd "${5:-$here}" && pwd)
bun="$here/node_modules/.bin/bun"
dir=$(mktemp -d)
mkdir "$dir/data"
DATA_DIR="$dir/data" PORT=0 WRITES_IN_FLIGHT_MAX="$max" taskset -c 0 "$bun" --cpu-prof --cpu-prof-dir="$dir" "$repo/src/cli/dev.ts" > "$dir/dev.out" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
ms() { echo $(( ($(date +%s%N) - started) / 1000000 )); }
started=$(date +%s%N)
until grep -q "listening on" "$dir/dev.out"; do sleep 0.1; done
port=$(grep -o "localhost:[0-9]*" "$dir/dev.out" | head -1 | cut -d: -f2)
taskset -c 1 "$bun" "$here/bench/load.ts" closed --url "http://127.0.0.1:$port" --kind post --connections 64 --seconds 5 --wallets 1000 --prefix "warm-$$"
from=$(ms)
taskset -c 1 "$bun" "$here/bench/overload-load.ts" --url "http://127.0.0.1:$port" --rate "$rate" --seconds "$seconds" --wallets "$wallets" --connections 8192 --prefix "profile-$$" | sed 's/,"perWallet".*/}/'
kill -TERM "$pid"
wait "$pid" || true
# The generator connects for about 2 s before its schedule starts: skip 3 s.
start=$(( from / 1000 + 3 ))
end=$(( start + seconds - 1 ))
for window in "$start $end" "$start $(( start + 10 ))" "$(( end - 10 )) $end"; do
  echo
  # shellcheck disable=SC2086 # two numbers
  "$bun" "$here/bench/ab/profile-split.ts" "$dir"/*.cpuprofile $window
done
