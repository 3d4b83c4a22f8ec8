#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-only
# The qcow2 driver against qemu-img and qemu-io as referees: images qemu
# writes read identically through tapdisk; images tapdisk writes pass
# qemu-img check and hold what a raw reference holds; a killed tapdisk
# leaves leaks at worst.

load helpers

q2_src() {
	mkimg_random "$TD_DIR/src.raw" 16
}

# q2_read_same IMAGE REF: tapdisk's export of IMAGE equals REF
q2_read_same() {
	td_start "$1"
	run qemu-img compare -f raw "$TD_URI" "$2"
	assert_success
	td_stop
}

@test "qcow2: images qemu-img writes read identically (cluster sizes, compat, refcounts, compression, extended L2, data file)" {
	need qemu-img
	q2_src
	local o i=0
	for o in cluster_size=512 cluster_size=4k cluster_size=64k \
		cluster_size=2M compat=0.10 compat=1.1,lazy_refcounts=on \
		extended_l2=on,cluster_size=64k refcount_bits=1 \
		refcount_bits=16 refcount_bits=64 data_file=$TD_DIR/df$i.raw; do
		i=$((i + 1))
		qemu-img convert -q -f raw -O qcow2 -o "$o" "$TD_DIR/src.raw" "$TD_DIR/i$i.qcow2"
		q2_read_same "qcow2:$TD_DIR/i$i.qcow2" "$TD_DIR/src.raw"
	done
	for o in zlib zstd; do
		qemu-img convert -q -c -f raw -O qcow2 -o compression_type=$o "$TD_DIR/src.raw" "$TD_DIR/c$o.qcow2"
		q2_read_same "$TD_DIR/c$o.qcow2" "$TD_DIR/src.raw"
	done
}

@test "qcow2: a 3-deep chain mixing raw and qcow2, and a short backing file" {
	need qemu-img qemu-io
	mkimg_random "$TD_DIR/base.raw" 16
	qemu-img create -q -f qcow2 -b base.raw -F raw "$TD_DIR/mid.qcow2"
	qemu-io -c "write -P 0x11 1M 3M" -c "write -z 8M 1M" "$TD_DIR/mid.qcow2" >/dev/null
	qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 -o extended_l2=on "$TD_DIR/top.qcow2"
	qemu-io -c "write -P 0x22 2M 5k" -c "write -z 12M 64k" -c "discard 9M 128k" "$TD_DIR/top.qcow2" >/dev/null
	qemu-img convert -q -O raw "$TD_DIR/top.qcow2" "$TD_DIR/top.ref"
	q2_read_same "$TD_DIR/top.qcow2" "$TD_DIR/top.ref"
	mkimg_random "$TD_DIR/small.raw" 3
	qemu-img create -q -f qcow2 -b small.raw -F raw "$TD_DIR/short.qcow2" 16M
	qemu-io -c "write -P 0x33 2M 2M" "$TD_DIR/short.qcow2" >/dev/null
	qemu-img convert -q -O raw "$TD_DIR/short.qcow2" "$TD_DIR/short.ref"
	q2_read_same "$TD_DIR/short.qcow2" "$TD_DIR/short.ref"
}

# q2_write OPTS [BACKING]: the same qemu-io writes on tapdisk's export and
# on a raw copy; then equal, and qemu-img check clean
q2_write() {
	local opts=$1 backing=${2:-} img=$TD_DIR/w.qcow2 ref=$TD_DIR/w.raw
	rm -f "$img" "$ref"
	if [ -n "$backing" ]; then
		qemu-img create -q -f qcow2 -o "$opts" -b "$backing" -F raw "$img" 16M
		cp "$backing" "$ref"
	else
		qemu-img create -q -f qcow2 -o "$opts" "$img" 16M
		truncate -s 16M "$ref"
	fi
	local cmds=(-c "write -P 1 0 4k" -c "write -P 2 100k 200k"
		-c "write -P 3 1M 3M" -c flush -c "write -z 2M 128k"
		-c "write -z 2100k 3k" -c "write -P 4 15M 1M"
		-c "write -P 5 1028k 1k" -c "write -P 6 1030k 512"
		-c "write -z 5M 2M" -c "write -P 7 5M 4k")
	td_start "qcow2:$img"
	run qemu-io -f raw "${cmds[@]}" "$TD_URI"
	assert_success
	qemu-io -f raw "${cmds[@]}" "$ref" >/dev/null
	run qemu-img compare -f raw "$TD_URI" "$ref"
	assert_success
	td_stop
	run qemu-img check "$img"
	assert_success
	run qemu-img compare -F raw "$img" "$ref"
	assert_success
}

@test "qcow2: writes, write_zeroes through tapdisk: qemu-img check clean and data equal to raw" {
	need qemu-img qemu-io
	local o
	for o in cluster_size=64k cluster_size=512 cluster_size=4k,refcount_bits=1 \
		cluster_size=4k,refcount_bits=64 compat=0.10 lazy_refcounts=on \
		extended_l2=on; do
		q2_write "$o"
	done
	mkimg_random "$TD_DIR/b.raw" 16
	for o in cluster_size=64k extended_l2=on compat=0.10; do
		q2_write "$o" "$TD_DIR/b.raw"
	done
}

@test "qcow2: whole-cluster discard frees clusters and reads zero; backing stays hidden" {
	need qemu-img qemu-io
	mkimg_random "$TD_DIR/b.raw" 4
	qemu-img create -q -f qcow2 -b b.raw -F raw "$TD_DIR/d.qcow2"
	td_start "qcow2:$TD_DIR/d.qcow2"
	run qemu-io -f raw -c "write -P 9 0 1M" -c "discard 0 512k" -c "read -P 0 0 512k" -c "read -P 9 512k 512k" "$TD_URI"
	assert_success
	td_stop
	run qemu-img check "$TD_DIR/d.qcow2"
	assert_success
}

@test "qcow2: kill -9 during random writes and flushes leaves leaks at worst" {
	need qemu-img qemu-io
	local img=$TD_DIR/k.qcow2 i
	for o in cluster_size=64k lazy_refcounts=on extended_l2=on cluster_size=4k,refcount_bits=1; do
		rm -f "$img"
		qemu-img create -q -f qcow2 -o "$o" "$img" 256M
		td_start "qcow2:$img"
		(
			for i in $(seq 1 400); do
				echo "aio_write -P $((i % 250 + 1)) $(( (RANDOM * 32768 + RANDOM) % 65536 * 4096 )) 12k"
				[ $((i % 20)) -eq 0 ] && echo "aio_flush"
			done
		) | timeout 60 qemu-io -f raw "$TD_URI" >/dev/null 2>&1 &
		BG_PIDS+=($!)
		sleep 0.$((RANDOM % 5 + 2))
		td_kill9
		wait "${BG_PIDS[-1]}" 2>/dev/null || true
		# lazy refcounts leave refcounts stale by design (the dirty
		# bit says so, as with qemu): only the repair on open counts
		if [ "$o" != lazy_refcounts=on ]; then
			run qemu-img check "$img"
			[ "$status" -eq 0 ] || [ "$status" -eq 3 ] ||
				fail "qemu-img check exit $status on $o: $output"
		fi
		# a dirty image is repaired by the next open
		td_start "qcow2:$img"
		td_stop
		run qemu-img check "$img"
		[ "$status" -eq 0 ] || [ "$status" -eq 3 ] ||
			fail "qemu-img check exit $status after reopen on $o: $output"
	done
}

@test "qcow2: large writes take whole runs of clusters: fio verify, check clean; kill -9 leaks at worst" {
	need qemu-img fio
	local img=$TD_DIR/r.qcow2 o
	for o in cluster_size=64k cluster_size=4k extended_l2=on; do
		rm -f "$img"
		qemu-img create -q -f qcow2 -o "$o" "$img" 64M
		td_start "qcow2:$img"
		# 4k..1M at 4k offsets: runs, partial clusters and rewrites mixed
		run fio --name=w --ioengine=nbd --uri="$TD_URI" --rw=randwrite \
			--bsrange=4k-1M --blockalign=4k --size=64M --iodepth=16 \
			--serialize_overlap=1 --verify=crc32c --verify_fatal=1 \
			--verify_state_save=0 --output="$TD_DIR/fio.out"
		[ "$status" -eq 0 ] || fail "fio on $o: $(cat "$TD_DIR/fio.out")"
		td_stop
		run qemu-img check "$img"
		[ "$status" -eq 0 ] || fail "qemu-img check on $o: $output"
		rm -f "$img"
		qemu-img create -q -f qcow2 -o "$o" "$img" 64M
		td_start "qcow2:$img"
		fio --name=k --ioengine=nbd --uri="$TD_URI" --rw=randwrite \
			--bs=1M --iodepth=16 --size=64M --time_based --runtime=30 \
			--output=/dev/null >/dev/null 2>&1 &
		BG_PIDS+=($!)
		sleep 1
		td_kill9
		wait "${BG_PIDS[-1]}" 2>/dev/null || true
		run qemu-img check "$img"
		[ "$status" -eq 0 ] || [ "$status" -eq 3 ] ||
			fail "qemu-img check exit $status after kill -9 on $o: $output"
	done
}

@test "qcow2: nbdinfo --map agrees with qemu-img map on data and zero" {
	need qemu-img qemu-io nbdinfo
	mkimg_random "$TD_DIR/b.raw" 8
	qemu-img create -q -f qcow2 -b b.raw -F raw "$TD_DIR/m.qcow2" 16M
	qemu-io -c "write -P 1 1M 1M" -c "write -z 3M 1M" "$TD_DIR/m.qcow2" >/dev/null
	td_start "$TD_DIR/m.qcow2"
	run nbdinfo --map --json "$TD_URI"
	assert_success
	local ours=$output
	td_stop
	local theirs
	theirs=$(qemu-img map --output=json "$TD_DIR/m.qcow2")
	# compare per MiB: (data, zero) from both
	run /usr/bin/python3 - "$ours" "$theirs" <<'PY'
import json, sys
ours = json.loads(sys.argv[1]); theirs = json.loads(sys.argv[2])
def at(ext, off, kind):
    for e in ext:
        if kind == "nbd":
            if e["offset"] <= off < e["offset"] + e["length"]:
                t = e["type"]
                return (not (t & 1), bool(t & 2))
        else:
            if e["start"] <= off < e["start"] + e["length"]:
                return (e["data"], e["zero"])
for mib in range(16):
    a = at(ours, mib << 20, "nbd"); b = at(theirs, mib << 20, "qemu")
    if a != b:
        print("MiB", mib, "tapdisk", a, "qemu-img", b); sys.exit(1)
PY
	assert_success
}
