#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-only
# qcow2 internal snapshots, with qemu-img as the referee: after qemu-img
# snapshot -c, writes and discards through tapdisk copy shared clusters
# (qemu-img check clean, the snapshot unchanged, the active layer as a raw
# reference says); an image opened at a snapshot (?snapshot=, tap-img
# convert -l) reads what qemu-img reads there; bad requests and broken
# snapshot tables are refused with a message.

load helpers

TAPIMG=$(dirname "$TAPDISK")/tap-img

# snap_ops N: N random writes, zeroes and cluster-aligned discards inside a
# 16 MiB disk as qemu-io -c arguments in SNAP_OPS (aligned discards read
# back as zeroes on qcow2 and on a raw file alike)
snap_ops() {
	local i off len
	SNAP_OPS=()
	for ((i = 1; i <= $1; i++)); do
		off=$((RANDOM % 4092 * 4096))
		len=$(((RANDOM % 32 + 1) * 512))
		case $((RANDOM % 5)) in
		0)
			off=$((RANDOM % 252 * 65536))
			SNAP_OPS+=(-c "discard $off $(((RANDOM % 4 + 1) * 65536))")
			;;
		1) SNAP_OPS+=(-c "write -z $off $len") ;;
		*) SNAP_OPS+=(-c "write -P $((i % 250 + 1)) $off $len") ;;
		esac
	done
}

# snap_session IMG REF N: N random operations through tapdisk on IMG and
# the same on the raw REF; then equal
snap_session() {
	snap_ops "$3"
	td_start "qcow2:$1"
	run qemu-io -f raw "${SNAP_OPS[@]}" "$TD_URI"
	assert_success
	qemu-io -f raw "${SNAP_OPS[@]}" "$2" >/dev/null
	run qemu-img compare -f raw "$TD_URI" "$2"
	assert_success
	td_stop
}

# snap_same IMG SNAP REF: the snapshot read by qemu-img, by tapdisk's
# ?snapshot= export and by tap-img convert -l all equal REF
snap_same() {
	local img=$1 snap=$2 ref=$3
	rm -f "$TD_DIR/q.raw" "$TD_DIR/t.raw"
	qemu-img convert -l "snapshot.name=$snap" -O raw "$img" "$TD_DIR/q.raw"
	run cmp "$TD_DIR/q.raw" "$ref"
	assert_success
	td_start "qcow2:$img?snapshot=$snap" -r
	run qemu-img compare -f raw -F raw "$TD_URI" "$TD_DIR/q.raw"
	assert_success
	td_stop
	run "$TAPIMG" convert -l "snapshot.name=$snap" -O raw "$img" "$TD_DIR/t.raw"
	assert_success
	run cmp "$TD_DIR/t.raw" "$ref"
	assert_success
}

@test "qcow2 snapshots: writes and discards after qemu-img snapshot -c copy shared clusters; both layers as expected" {
	need qemu-img qemu-io
	local o img=$TD_DIR/s.qcow2
	for o in cluster_size=64k cluster_size=4k extended_l2=on \
		extended_l2=on,cluster_size=16k compat=0.10 lazy_refcounts=on \
		cluster_size=512 refcount_bits=64; do
		rm -f "$img"
		mkimg_random "$TD_DIR/s0.raw" 16
		qemu-img convert -q -f raw -O qcow2 -o "$o" "$TD_DIR/s0.raw" "$img"
		qemu-img snapshot -c s1 "$img"
		cp "$TD_DIR/s0.raw" "$TD_DIR/cur.raw"
		snap_session "$img" "$TD_DIR/cur.raw" 120
		run qemu-img check "$img"
		assert_success
		run qemu-img compare -F raw "$img" "$TD_DIR/cur.raw"
		assert_success
		# a second snapshot over the first: tables shared three ways
		cp "$TD_DIR/cur.raw" "$TD_DIR/s1.raw"
		qemu-img snapshot -c s2 "$img"
		snap_session "$img" "$TD_DIR/cur.raw" 120
		run qemu-img check "$img"
		assert_success
		run qemu-img compare -F raw "$img" "$TD_DIR/cur.raw"
		assert_success
		snap_same "$img" s1 "$TD_DIR/s0.raw"
		snap_same "$img" s2 "$TD_DIR/s1.raw"
	done
}

@test "qcow2 snapshots: a whole-cluster discard on extended L2 entries shared with a snapshot reads zeroes" {
	need qemu-img qemu-io
	local img=$TD_DIR/x.qcow2
	qemu-img create -q -f qcow2 -o extended_l2=on "$img" 4M
	qemu-io -c "write -P 0x44 0 4M" "$img" >/dev/null
	qemu-img snapshot -c s1 "$img"
	td_start "qcow2:$img"
	run qemu-io -f raw -c "discard 64k 64k" -c "discard 256k 4k" \
		-c "read -P 0 64k 64k" -c "read -P 0 256k 4k" \
		-c "read -P 0x44 0 64k" -c "read -P 0x44 260k 60k" "$TD_URI"
	assert_success
	refute_output --partial "Pattern verification failed"
	td_stop
	run qemu-img check "$img"
	assert_success
	run qemu-io -c "read -P 0 64k 64k" -c "read -P 0 256k 4k" "$img"
	refute_output --partial "Pattern verification failed"
	qemu-img convert -l snapshot.name=s1 -O raw "$img" "$TD_DIR/s1.raw"
	run qemu-io -f raw -c "read -P 0x44 0 4M" "$TD_DIR/s1.raw"
	refute_output --partial "Pattern verification failed"
}

@test "qcow2 snapshots: ?snapshot= by ID and by name, with another option, on a chain" {
	need qemu-img qemu-io
	local img=$TD_DIR/r.qcow2
	mkimg_random "$TD_DIR/base.raw" 8
	qemu-img create -q -f qcow2 -b base.raw -F raw "$img"
	qemu-io -c "write -P 0x11 1M 1M" "$img" >/dev/null
	qemu-img snapshot -c first "$img"
	qemu-io -c "write -P 0x22 1M 1M" -c "write -P 0x33 5M 1M" "$img" >/dev/null
	qemu-img convert -l snapshot.name=first -O raw "$img" "$TD_DIR/first.raw"
	td_start "qcow2:$img?snapshot=1" -r
	run qemu-img compare -f raw -F raw "$TD_URI" "$TD_DIR/first.raw"
	assert_success
	td_stop
	td_start "qcow2:$img?l2-cache=1M&snapshot=first" -r
	run qemu-img compare -f raw -F raw "$TD_URI" "$TD_DIR/first.raw"
	assert_success
	td_stop
	run "$TAPIMG" convert -s 1 -O qcow2 "$img" "$TD_DIR/first.qcow2"
	assert_success
	run qemu-img compare "$TD_DIR/first.qcow2" "$TD_DIR/first.raw"
	assert_success
}

@test "qcow2 snapshots: a write open at a snapshot and an unknown snapshot are refused with the file and snapshot named" {
	need qemu-img
	local img=$TD_DIR/e.qcow2
	qemu-img create -q -f qcow2 "$img" 8M
	qemu-img snapshot -c s1 "$img"
	run timeout 30 "$TAPDISK" -n "unix:$TD_DIR/e.sock" "qcow2:$img?snapshot=s1"
	assert_failure
	assert_output --partial "$img: snapshot s1 can only be opened read-only"
	run timeout 30 "$TAPDISK" -r -n "unix:$TD_DIR/e.sock" "qcow2:$img?snapshot=nope"
	assert_failure
	assert_output --partial "$img: no snapshot with the ID or name 'nope'"
	run "$TAPIMG" convert -l snapshot.name=nope -O raw "$img" "$TD_DIR/o.raw"
	assert_failure
	assert_output --partial "no snapshot with the ID or name 'nope'"
	qemu-img create -q -f raw "$TD_DIR/p.raw" 1M
	run "$TAPIMG" convert -s s1 -O raw "$TD_DIR/p.raw" "$TD_DIR/o.raw"
	assert_failure
	assert_output --partial "internal snapshots exist only in qcow2 images"
	# the active layer is untouched by all this
	run qemu-img check "$img"
	assert_success
}

# snap_patch FILE OFFSET HEXBYTES: overwrite bytes in place
snap_patch() {
	printf "$(echo "$3" | sed 's/../\\x&/g')" |
		dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

@test "qcow2 snapshots: a broken snapshot table is an error for snapshot -l, info, convert -l and ?snapshot=, never a crash" {
	need qemu-img
	local img=$TD_DIR/b.qcow2 t extra
	qemu-img create -q -f qcow2 "$img" 8M
	qemu-img snapshot -c s1 "$img"
	# the snapshot table's offset, and its entry's extra data size
	t=$(od -An -tu8 --endian=big -j 64 -N 8 "$img" | tr -d ' ')
	extra=$(od -An -tx1 -j $((t + 36)) -N 4 "$img" | tr -d ' ')
	# extra data size 0x7d0 (2000 bytes): over the 1 KiB limit
	snap_patch "$img" $((t + 36)) 000007d0
	run "$TAPIMG" snapshot -l "$img"
	assert_failure
	assert_output --partial "2000 bytes of extra data"
	run "$TAPIMG" convert -l snapshot.name=s1 -O raw "$img" "$TD_DIR/o.raw"
	assert_failure
	assert_output --partial "2000 bytes of extra data"
	run timeout 30 "$TAPDISK" -r -n "unix:$TD_DIR/b.sock" "qcow2:$img?snapshot=s1"
	assert_failure
	assert_output --partial "2000 bytes of extra data"
	run "$TAPIMG" info "$img"
	[ "$status" -lt 128 ] || fail "tap-img info crashed: $output"
	# back to the extra data qemu wrote; the L1 table offset misaligned
	snap_patch "$img" $((t + 36)) "$extra"
	run "$TAPIMG" snapshot -l "$img"
	assert_success
	snap_patch "$img" $((t + 7)) 08
	run "$TAPIMG" snapshot -l "$img"
	assert_failure
	assert_output --partial "L1 table offset is not cluster aligned"
	run "$TAPIMG" check "$img"
	[ "$status" -lt 128 ] || fail "tap-img check crashed: $output"
}
