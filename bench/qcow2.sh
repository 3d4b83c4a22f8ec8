#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# bench/qcow2.sh: the qcow2 driver and tap-img against qemu, in one run.
#   - 4k random read and write at QD32 through fio's nbd engine, tapdisk vs
#     qemu-nbd (cache=none, aio=native) on the same qcow2 file, fully
#     allocated (random data); and on a sparse image, created afresh for
#     each server in every round so that the writes of one run never fill
#     the image another run reads
#   - the same 4k reads through a second client, qemu's own NBD client
#     (qemu-img bench -d 32, which that client caps at 16 requests in
#     flight; 4 KiB every 1 MiB + 4 KiB, which visits every 4 KiB block of
#     a 4 GiB disk before it repeats one), because fio's libnbd client
#     saturates its core on the sparse image whatever the server; each
#     client's own CPU use is reported under the table
#   - tap-img convert vs qemu-img convert, raw->qcow2 and qcow2->raw, of
#     the same random raw image into a fresh file, each timed with the sync
#     after it (qemu-img's default output is the page cache, unflushed;
#     tap-img's is O_DIRECT); qemu-img -t none (O_DIRECT output too) is
#     reported beside it for reference
# Servers and tools alternate every round; the figures are medians and the
# ratios are tapdisk / qemu (>= 1: tapdisk is faster). Targets (issue 3):
# read >= 1.3x, write >= 1.0x, convert >= 1.5x.
#
# Environment (defaults):
#   BUILD=build            where tapdisk and tap-img are
#   BENCH_DIR=/var/tmp/blktap-bench   scratch directory on a real disk
#   BENCH_SIZE=4G          image size
#   BENCH_ROUNDS=3         rounds; the median is reported
#   BENCH_RUNTIME=10       seconds per fio run
#   BENCH_OUT=bench/out    where qcow2.md goes
#
# Exit status: 0 when every tool ran (whatever the ratios), 1 otherwise.

set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init "$@"
BENCH_SIZE=${BENCH_SIZE:-4G}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_RUNTIME=${BENCH_RUNTIME:-10}
BENCH_OUT=${BENCH_OUT:-$top/bench/out}

die() { echo "bench/qcow2.sh: $*" >&2; exit 1; }
for t in fio qemu-nbd qemu-img; do
	command -v "$t" >/dev/null || die "$t is not installed (scripts/install-deps --bench)"
done
[ -x "$BUILD/tapdisk" ] && [ -x "$BUILD/tap-img" ] || die "build first (make)"

mkdir -p "$BENCH_DIR" "$BENCH_OUT"
dir=$(mktemp -d "$BENCH_DIR/qcow2.XXXXXX")
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

echo "bench/qcow2.sh: preparing $BENCH_SIZE images in $dir" >&2
raw=$dir/src.raw
fio --name=fill --filename="$raw" --rw=write --bs=1M --size="$BENCH_SIZE" \
	--refill_buffers --ioengine=libaio --direct=1 --iodepth=8 \
	--output=/dev/null
qemu-img convert -f raw -O qcow2 "$raw" "$dir/full.qcow2"
# warm the virtual disk under the files
dd if="$dir/full.qcow2" of=/dev/null bs=1M iflag=direct status=none

wait_socket() {
	local i
	for ((i = 0; i < 200; i++)); do
		[ -S "$1" ] && return 0
		sleep 0.05
	done
	die "no socket at $1"
}

# serve SERVER IMAGE SOCK: start it, record its pid
serve() {
	case "$1" in
	tapdisk) "$BUILD/tapdisk" -n "unix:$3" "qcow2:$2" 2>>"$dir/td.log" & ;;
	qemu-nbd) qemu-nbd -t --cache=none --aio=native -f qcow2 -k "$3" "$2" & ;;
	esac
	pids+=($!)
	wait_socket "$3"
}

# unserve: stop the server serve started last
unserve() {
	local p=${pids[-1]}

	unset 'pids[-1]'
	kill "$p"
	wait "$p" 2>/dev/null || true
}

# iops SOCK RW: one fio run: its IOPS and the client's CPU use (% of a core)
iops() {
	fio --name=q --ioengine=nbd --uri="nbd+unix:///?socket=$1" --rw="$2" \
		--bs=4k --iodepth=32 --runtime="$BENCH_RUNTIME" --time_based \
		--ramp_time=1 --output-format=json --output="$dir/fio.json" ||
		die "fio $2 on $1 failed"
	/usr/bin/python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
print(int(j["read"]["iops"] + j["write"]["iops"]),
      int(j["usr_cpu"] + j["sys_cpu"]))' "$dir/fio.json"
}

# qbench SOCK COUNT: COUNT 4k reads at QD32 through qemu's own NBD client
# (qemu-img bench), scattered over the disk: its IOPS and CPU use
qbench() {
	local t
	t=$( { TIMEFORMAT='%R %U %S'; time qemu-img bench -q -f raw -c "$2" \
		-d 32 -s 4096 -S $((1024 * 1024 + 4096)) \
		"nbd+unix:///?socket=$1" >/dev/null; } 2>&1) ||
		die "qemu-img bench on $1 failed: $t"
	awk -v n="$2" '{printf "%d %d\n", n / $1, ($2 + $3) * 100 / $1}' <<<"$t"
}

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A res cpu
label() {
	case $1 in
	qbread) echo "4k read, qemu-img bench -d 32 (qemu's NBD client: 16 in flight)" ;;
	*) echo "4k $1 QD32 (fio, libnbd)" ;;
	esac
}
declare -A server=([td]=tapdisk [qn]=qemu-nbd)
# measure ROUND SERVER IMG RW: one client run on SERVER's IMG socket; qbread
# is the read through qemu-img bench, sized to last about as long as fio
measure() {
	local out v c n=50000

	if [ "$4" = qbread ]; then
		[ "$3" = sparse ] && n=150000
		out=$(qbench "$dir/$2-$3.sock" $((n * BENCH_RUNTIME)))
	else
		out=$(iops "$dir/$2-$3.sock" "$4")
	fi
	read -r v c <<<"$out"
	res[$2,$3,$4]+="$v "
	cpu[$2,$3,$4]+="$c "
	echo "  round $1 $3 $4 $2: $v IOPS, client CPU $c%" >&2
}

serve tapdisk "$dir/full.qcow2" "$dir/td-full.sock"
serve qemu-nbd "$dir/full.qcow2" "$dir/qn-full.sock"
for ((r = 1; r <= BENCH_ROUNDS; r++)); do
	order="td qn"
	[ $((r % 2)) -eq 0 ] && order="qn td"
	for rw in randread qbread randwrite; do
		for s in $order; do
			measure $r $s full $rw
		done
	done
	# the sparse reads go first, on a fresh image, and the write after them
	for s in $order; do
		img=$dir/$s-sparse.qcow2
		rm -f "$img" "$dir/$s-sparse.sock"
		qemu-img create -q -f qcow2 "$img" "$BENCH_SIZE"
		serve "${server[$s]}" "$img" "$dir/$s-sparse.sock"
		for rw in randread qbread randwrite; do
			measure $r $s sparse $rw
		done
		unserve
		rm -f "$img"
	done
done

# convert: raw->qcow2, qcow2->raw; the servers let go of the images first
# (qemu-img refuses an image qemu-nbd holds)
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()
secs() {
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null || die "$* failed"
	sync
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc
}
# conv TOOL DIRECTION: one timed conversion into a fresh output file, so
# that every run starts from the same state of the filesystem
conv() {
	local out=$dir/o.qcow2 args
	case "$2" in
	r2q) args=(-f raw -O qcow2 "$raw") ;;
	q2r) args=(-f qcow2 -O raw "$dir/full.qcow2"); out=$dir/o.raw ;;
	esac
	rm -f "$dir/o.qcow2" "$dir/o.raw"
	sync
	case "$1" in
	ti) secs "$BUILD/tap-img" convert "${args[@]}" "$out" ;;
	qi) secs qemu-img convert "${args[@]}" "$out" ;;
	qd) secs qemu-img convert -t none "${args[@]}" "$out" ;;
	esac
}
for ((r = 1; r <= BENCH_ROUNDS; r++)); do
	order="ti qi qd"
	[ $((r % 2)) -eq 0 ] && order="qd qi ti"
	for c in r2q q2r; do
		for tool in $order; do
			res[$tool,$c]+="$(conv "$tool" "$c") "
		done
	done
	echo "  round $r convert: done" >&2
done

{
	echo "## qcow2 ($BENCH_SIZE, $BENCH_ROUNDS rounds, medians) — $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo
	echo "| workload | tapdisk | qemu | ratio | target |"
	echo "|---|---:|---:|---:|---|"
	for img in full sparse; do
		for rw in randread qbread randwrite; do
			t=$(median <<<"${res[td,$img,$rw]}")
			q=$(median <<<"${res[qn,$img,$rw]}")
			want=1.0
			[ "$rw" != randwrite ] && want=1.3
			ratio=$(echo "scale=2; $t / $q" | bc)
			met=$(echo "$ratio >= $want" | bc)
			verdict=">= ${want}x: $([ "$met" = 1 ] && echo met || echo NOT met)"
			[ $rw = qbread ] && verdict="(second client)"
			echo "| $(label $rw), $img qcow2 (IOPS) | $t | $q | ${ratio}x | $verdict |"
		done
	done
	for c in r2q q2r; do
		t=$(median <<<"${res[ti,$c]}")
		q=$(median <<<"${res[qi,$c]}")
		ratio=$(echo "scale=2; $q / $t" | bc)
		met=$(echo "$ratio >= 1.5" | bc)
		name="raw->qcow2"
		[ "$c" = q2r ] && name="qcow2->raw"
		echo "| convert $name (s, lower is better) | $t | $q | ${ratio}x | >= 1.5x: $([ "$met" = 1 ] && echo met || echo NOT met) |"
	done
	for c in r2q q2r; do
		t=$(median <<<"${res[ti,$c]}")
		q=$(median <<<"${res[qd,$c]}")
		name="raw->qcow2"
		[ "$c" = q2r ] && name="qcow2->raw"
		echo "| convert $name vs qemu-img -t none (s; both O_DIRECT out) | $t | $q | $(echo "scale=2; $q / $t" | bc)x | (reference) |"
	done
	echo
	echo "The client's own CPU use (median, % of one core), tapdisk run / qemu-nbd run:"
	for img in full sparse; do
		for rw in randread qbread randwrite; do
			echo "- $(label $rw), $img: $(median <<<"${cpu[td,$img,$rw]}")% / $(median <<<"${cpu[qn,$img,$rw]}")%"
		done
	done
	echo
	echo "A client near 100% is the bottleneck: the ratio then measures what the"
	echo "server costs that client. fio's libnbd reads each reply with the same"
	echo "syscalls from any server; qemu's client reads batched replies cheaper."
} | tee "$BENCH_OUT/qcow2.md"
