#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# bench/vdisk.sh: the virtual-disk pool at scale. A pool of 1,000,000
# extents (a sparse file, 1 MiB extents) holding 10,000 disks, half of them
# deleted at different times, then the commands timed one run at a time:
# vd_create (zeroing reused space, and --no-scrub), vd_delete, vd_list,
# vd_info (the lookup), vd_freespace. Prints the median of each against
# its target (create/delete <= 50 ms, list <= 1 s).
#
# Environment (defaults):
#   BUILD=build                       where the vd_* commands are
#   BENCH_DIR=/var/tmp/blktap-bench   scratch directory on a real disk
#   VDISK_BENCH_EXTENTS=1000000       extents in the pool
#   VDISK_BENCH_DISKS=10000           disks in it
#   VDISK_BENCH_RUNS=15               timed runs per command
#
# Exit status: 0 when every command ran, 1 otherwise.

set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init "$@"
EXTENTS=${VDISK_BENCH_EXTENTS:-1000000}
DISKS=${VDISK_BENCH_DISKS:-10000}
RUNS=${VDISK_BENCH_RUNS:-15}
PER=$((EXTENTS / DISKS / 2))

for t in sqlite3 python3; do
	command -v "$t" >/dev/null || { echo "bench/vdisk.sh: $t is missing" >&2; exit 1; }
done
[ -x "$BUILD/vd_create" ] || { echo "bench/vdisk.sh: no $BUILD/vd_create (run make)" >&2; exit 1; }

dir=$BENCH_DIR/vdisk
rm -rf "$dir"
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT
export VDISK_DB=$dir/pool.sqlite
truncate -s $((EXTENTS))M "$dir/part"

now_ms() { date +%s%3N; }

t0=$(now_ms)
"$BUILD/vd_format" "$dir/part" --extent-size 1M
format_ms=$(($(now_ms) - t0))

# The disks are laid down in one SQL transaction: 10,000 vd_create runs
# would only measure process start-up, and the commands are timed below.
t0=$(now_ms)
sqlite3 "$VDISK_DB" <<EOF
BEGIN IMMEDIATE;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $DISKS)
INSERT INTO vdisks (size, created, expires, state)
SELECT $PER * 1048576, strftime('%s', 'now'),
       CASE WHEN i % 2 THEN 0 ELSE strftime('%s', 'now') - 100000 + i END, 'live'
FROM n;
UPDATE extents SET
  vdisk = (SELECT min(id) FROM vdisks WHERE state = 'live') + (id - 1) / $PER,
  part = (id - 1) % $PER
WHERE id <= $DISKS * $PER;
COMMIT;
EOF
populate_ms=$(($(now_ms) - t0))

# median of RUNS timings of a command line (ms); the command's output is
# kept in $dir/out for the caller
time_cmd() {
	local i t s ts=()
	for ((i = 0; i < RUNS; i++)); do
		s=$(date +%s%N)
		"$@" >"$dir/out"
		t=$((($(date +%s%N) - s) / 1000))
		ts+=("$t")
	done
	printf '%s\n' "${ts[@]}" | sort -n | awk '{ a[NR] = $1 } END { printf "%.1f", a[int((NR + 1) / 2)] / 1000 }'
}

created=()
create_and_keep() {
	local id
	id=$("$BUILD/vd_create" "$@")
	echo "$id" >>"$dir/ids"
	echo "$id"
}

c_scrub=$(time_cmd create_and_keep $PER)
c_raw=$(time_cmd create_and_keep --no-scrub $PER)
mapfile -t created <"$dir/ids"
# vd_delete on the disks just created, one per run
del_idx=0
delete_next() {
	"$BUILD/vd_delete" "${created[$del_idx]}"
	del_idx=$((del_idx + 1))
}
d_ms=$(time_cmd delete_next)
l_ms=$(time_cmd "$BUILD/vd_list")
listed=$(($(wc -l <"$dir/out") - 1))
lj_ms=$(time_cmd "$BUILD/vd_list" --json --all)
live_id=$(sqlite3 "$VDISK_DB" "SELECT max(id) FROM vdisks WHERE state = 'live' AND expires = 0")
i_ms=$(time_cmd "$BUILD/vd_info" "$live_id")
f_ms=$(time_cmd "$BUILD/vd_freespace")

verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v <= t) ? "ok" : "SLOW" }'; }

printf '\nvirtual-disk pool: %d extents (1 MiB), %d disks (%d extents each, half deleted)\n' \
	"$EXTENTS" "$DISKS" "$PER"
printf 'vd_format of the %d extents: %d ms; laying down the disks: %d ms\n\n' \
	"$EXTENTS" "$format_ms" "$populate_ms"
printf '%-34s %10s %10s  %s\n' "command (median of $RUNS)" "ms" "target" ""
printf '%-34s %10s %10s  %s\n' "vd_create $PER (zeroing)" "$c_scrub" 50 "$(verdict "$c_scrub" 50)"
printf '%-34s %10s %10s  %s\n' "vd_create --no-scrub $PER" "$c_raw" 50 "$(verdict "$c_raw" 50)"
printf '%-34s %10s %10s  %s\n' "vd_delete" "$d_ms" 50 "$(verdict "$d_ms" 50)"
printf '%-34s %10s %10s  %s\n' "vd_list ($listed disks)" "$l_ms" 1000 "$(verdict "$l_ms" 1000)"
printf '%-34s %10s %10s  %s\n' "vd_list --json --all" "$lj_ms" 1000 "$(verdict "$lj_ms" 1000)"
printf '%-34s %10s %10s  %s\n' "vd_info (lookup)" "$i_ms" 50 "$(verdict "$i_ms" 50)"
printf '%-34s %10s %10s  %s\n' "vd_freespace" "$f_ms" 1000 "$(verdict "$f_ms" 1000)"
