#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# bench/blktapctrl.sh: the control plane's costs.
#   - time to create N disks through tap-ctl (each a tapdisk serving a
#     small sparse raw file over a Unix NBD socket), and to destroy them
#   - the resident memory of an idle tapdisk (target: <= 4 MiB each)
# Prints one "name: value" line per figure.
#
# Environment (defaults):
#   BUILD=build           where blktapctrl, tap-ctl and tapdisk are
#   BENCH_DIR=/var/tmp/blktap-bench   scratch directory
#   BENCH_DISKS=100       how many disks
#
# Exit status: 0 when every disk came up and went away, 1 otherwise.

set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init "$@"
N=${BENCH_DISKS:-100}

mkdir -p "$BENCH_DIR"
dir=$(mktemp -d "$BENCH_DIR/ctl.XXXXXX")
export BLKTAPCTRL_SOCKET=$dir/run/ctl.sock
tapctl=$BUILD/tap-ctl
daemon=

cleanup() {
	if [ -n "$daemon" ]; then
		kill -TERM "$daemon" 2>/dev/null || true
		wait "$daemon" 2>/dev/null || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT

"$BUILD/blktapctrl" -F --stop-disks --run-dir "$dir/run" \
	--tapdisk "$BUILD/tapdisk" 2>"$dir/blktapctrl.log" &
daemon=$!
for ((i = 0; i < 200; i++)); do
	"$tapctl" list >/dev/null 2>&1 && break
	sleep 0.05
done

for ((i = 0; i < N; i++)); do
	truncate -s 64M "$dir/d$i.raw"
done

now() { date +%s.%N; }

t0=$(now)
for ((i = 0; i < N; i++)); do
	"$tapctl" create --nbd "unix:$dir/d$i.sock" "aio:$dir/d$i.raw" >/dev/null
done
t1=$(now)

# idle RSS, from the pids list reports
pids=$("$tapctl" list --json | /usr/bin/python3 -c '
import json, sys
print(" ".join(str(d["pid"]) for d in json.load(sys.stdin)["disks"]
               if d["state"] == "running"))')
count=0 total=0 max=0
for p in $pids; do
	kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status")
	count=$((count + 1))
	total=$((total + kb))
	[ "$kb" -gt "$max" ] && max=$kb
done
if [ "$count" -ne "$N" ]; then
	echo "blktapctrl.sh: only $count of $N disks running" >&2
	exit 1
fi

t2=$(now)
for ((i = 0; i < N; i++)); do
	"$tapctl" destroy -m "$i" >/dev/null
done
t3=$(now)

awk -v n="$N" -v c="$t0" -v c1="$t1" -v d="$t2" -v d1="$t3" \
	-v total="$total" -v max="$max" 'BEGIN {
	printf "create %d disks: %.2f s (%.1f ms each)\n", n, c1 - c, (c1 - c) * 1000 / n
	printf "destroy %d disks: %.2f s (%.1f ms each)\n", n, d1 - d, (d1 - d) * 1000 / n
	printf "idle tapdisk RSS: %.2f MiB average, %.2f MiB max (target <= 4 MiB)\n",
		total / n / 1024, max / 1024
}'
