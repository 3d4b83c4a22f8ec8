#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# bench/fuse.sh: tapdisk's FUSE export against qemu-storage-daemon's, on
# one raw image, in one run.
#
# Both present the image as a file (tapdisk --fuse; qemu-storage-daemon
# --export type=fuse over a file node with cache.direct=on). Each file is
# measured two ways: fio psync with O_DIRECT on the file itself (one
# request at a time), and fio libaio with O_DIRECT on a loop device
# attached with --direct-io=on (requests in flight at once). The servers
# are measured in turn, the order rotating every round; the figure kept is
# the median over the rounds, and the ratio is tapdisk / qemu (>= 1.0:
# tapdisk is at least as fast). Needs root (loop devices, FUSE mounts).
#
# Environment (defaults):
#   BUILD=build            where tapdisk is ($BUILD/tapdisk)
#   BENCH_DIR=/var/tmp/blktap-bench   scratch directory on a real disk
#   BENCH_SIZE=1G          image size (K/M/G suffixes)
#   BENCH_ROUNDS=3         rounds; the median is reported
#   BENCH_RUNTIME=10       seconds per fio run
#   BENCH_RAMP=1           fio ramp time per run, seconds
#   BENCH_OUT=bench/out    where fuse.md goes
#
# Exit status: 0 when every tool ran (whatever the ratios), 1 when a tool
# or server broke, 2 on a usage error.

set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init "$@"

TAPDISK=${TAPDISK:-$BUILD/tapdisk}
case "$TAPDISK" in /*) ;; *) TAPDISK=$top/$TAPDISK ;; esac
BENCH_SIZE=${BENCH_SIZE:-1G}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_RUNTIME=${BENCH_RUNTIME:-10}
BENCH_RAMP=${BENCH_RAMP:-1}
BENCH_OUT=${BENCH_OUT:-$top/bench/out}

die() { echo "bench/fuse.sh: $*" >&2; exit 1; }
say() { printf '%s\n' "$*" >&2; }

[ "$(id -u)" -eq 0 ] || die "needs root (loop devices, FUSE mounts)"
for t in fio losetup qemu-storage-daemon python3 findmnt; do
	command -v "$t" >/dev/null ||
		die "$t is not installed (qemu-storage-daemon: qemu-system-common)"
done
[ -x "$TAPDISK" ] || die "no tapdisk at $TAPDISK (run make)"

size=$(numfmt --from=iec "$BENCH_SIZE")
[ "$size" -ge $((64 << 20)) ] || die "BENCH_SIZE must be at least 64M"

mkdir -p "$BENCH_DIR" "$BENCH_OUT"
run_dir=$(mktemp -d "$BENCH_DIR/fuse.XXXXXX")
img=$run_dir/bench.raw
pids=()
loops=()

cleanup() {
	local p l
	for l in "${loops[@]}"; do
		losetup -d "$l" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$run_dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "== writing $BENCH_SIZE of random data to $img"
head -c "$size" /dev/urandom >"$img"
sync "$img"

# start NAME FILE CMD...: run a server and wait until FILE is a FUSE mount.
start() {
	local name=$1 file=$2 i
	shift 2
	"$@" >"$run_dir/$name.log" 2>&1 &
	pids+=($!)
	for ((i = 0; i < 600; i++)); do
		findmnt -n --mountpoint "$file" >/dev/null && break
		kill -0 "${pids[-1]}" 2>/dev/null ||
			die "$name exited at start: $(cat "$run_dir/$name.log")"
		sleep 0.05
	done
	findmnt -n --mountpoint "$file" >/dev/null || die "$name did not mount $file"
	pid_of[$name]=${pids[-1]}
	file_of[$name]=$file
	loop_of[$name]=$(losetup -f --show --direct-io=on "$file")
	loops+=("${loop_of[$name]}")
}

declare -A pid_of file_of loop_of
say "== starting the exports"
touch "$run_dir/qsd.file"
start tapdisk "$run_dir/td.file" "$TAPDISK" --fuse "$run_dir/td.file" "aio:$img"
start qsd "$run_dir/qsd.file" qemu-storage-daemon \
	--blockdev "driver=file,node-name=f,filename=$img,cache.direct=on,aio=native" \
	--export "type=fuse,id=e,node-name=f,mountpoint=$run_dir/qsd.file,writable=on"

servers=(tapdisk qsd)
workloads=(file-seqread1m file-seqwrite1m file-randread4k file-randwrite4k
	loop-seqread1m loop-seqwrite1m loop-randread4k loop-randwrite4k)
declare -A wl_desc=(
	[file-seqread1m]="file psync 1M sequential read (MiB/s)"
	[file-seqwrite1m]="file psync 1M sequential write (MiB/s)"
	[file-randread4k]="file psync 4k random read (IOPS)"
	[file-randwrite4k]="file psync 4k random write (IOPS)"
	[loop-seqread1m]="loop dio libaio 1M seq read QD8 (MiB/s)"
	[loop-seqwrite1m]="loop dio libaio 1M seq write QD8 (MiB/s)"
	[loop-randread4k]="loop dio libaio 4k rand read QD32 (IOPS)"
	[loop-randwrite4k]="loop dio libaio 4k rand write QD32 (IOPS)"
)
declare -A wl_fio=(
	[file-seqread1m]="--ioengine=psync --rw=read --bs=1M"
	[file-seqwrite1m]="--ioengine=psync --rw=write --bs=1M"
	[file-randread4k]="--ioengine=psync --rw=randread --bs=4k"
	[file-randwrite4k]="--ioengine=psync --rw=randwrite --bs=4k"
	[loop-seqread1m]="--ioengine=libaio --rw=read --bs=1M --iodepth=8"
	[loop-seqwrite1m]="--ioengine=libaio --rw=write --bs=1M --iodepth=8"
	[loop-randread4k]="--ioengine=libaio --rw=randread --bs=4k --iodepth=32"
	[loop-randwrite4k]="--ioengine=libaio --rw=randwrite --bs=4k --iodepth=32"
)

# measure WORKLOAD SERVER: print one figure (IOPS or MiB/s).
measure() {
	local wl=$1 sv=$2 out=$run_dir/fio.json target
	case "$wl" in
	file-*) target=${file_of[$sv]} ;;
	loop-*) target=${loop_of[$sv]} ;;
	esac
	# shellcheck disable=SC2086
	if ! fio --name="$wl" --filename="$target" --direct=1 ${wl_fio[$wl]} \
		--size="$size" --time_based --runtime="$BENCH_RUNTIME" \
		--ramp_time="$BENCH_RAMP" --norandommap --randrepeat=0 \
		--output-format=json --output="$out" >"$run_dir/fio.err" 2>&1; then
		die "fio $wl against $sv failed: $(cat "$run_dir/fio.err" "$out" 2>/dev/null | tail -n 20)"
	fi
	kill -0 "${pid_of[$sv]}" 2>/dev/null ||
		die "$sv died: $(tail -n 20 "$run_dir/$sv.log")"
	python3 - "$out" "$wl" <<'EOF'
import json, sys
job = json.load(open(sys.argv[1]))["jobs"][0]
if job.get("error"):
    sys.exit("fio job error %d" % job["error"])
d = job["read"] if "read" in sys.argv[2] else job["write"]
print("%.1f" % (d["bw_bytes"] / 1048576 if "1m" in sys.argv[2] else d["iops"]))
EOF
}

declare -A results
for ((r = 0; r < BENCH_ROUNDS; r++)); do
	say "== round $((r + 1))/$BENCH_ROUNDS"
	for wl in "${workloads[@]}"; do
		order=("${servers[@]}")
		((r % 2)) && order=("${servers[1]}" "${servers[0]}")
		for sv in "${order[@]}"; do
			v=$(measure "$wl" "$sv")
			say "   $wl $sv: $v"
			results[$wl.$sv]+="$v "
		done
	done
done

median() {
	printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END {
		if (NR % 2) print a[(NR + 1) / 2];
		else printf "%.1f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

{
	echo "# tapdisk --fuse vs qemu-storage-daemon FUSE export"
	echo
	echo "$BENCH_SIZE raw image, $BENCH_ROUNDS rounds of ${BENCH_RUNTIME}s, medians; $(date -u +%F)"
	echo
	echo "| workload | tapdisk | qemu-storage-daemon | ratio |"
	echo "|---|---:|---:|---:|"
	for wl in "${workloads[@]}"; do
		t=$(median "${results[$wl.tapdisk]}")
		q=$(median "${results[$wl.qsd]}")
		ratio=$(python3 -c "print('%.2f' % ($t / $q) if $q > 0 else '-')")
		echo "| ${wl_desc[$wl]} | $t | $q | ${ratio}x |"
	done
} | tee "$BENCH_OUT/fuse.md"
