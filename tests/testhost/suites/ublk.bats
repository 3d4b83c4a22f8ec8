#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-only
#
# tapdisk --ublk in the plain guest (Linux 6.12, ublk_drv): the disk as
# /dev/ublkb0, used the way dom0 uses it: mkfs, mount, fsck, fio, discard,
# and a tapdisk killed under load taken over by a new one.

load helpers

qcow2_image() {
	"$TAP_IMG" create -f qcow2 "$1" "$2" >/dev/null
}

@test "ublk: the disk appears with its size and block sizes, and goes on SIGTERM" {
	mkimg "$TD_DIR/disk.raw" 64M
	ub_start "aio:$TD_DIR/disk.raw"
	[ "$(blockdev --getsize64 "$UB_DEV")" -eq $((64 << 20)) ]
	[ "$(cat /sys/block/ublkb0/queue/logical_block_size)" -eq 512 ]
	[ "$(cat /sys/block/ublkb0/queue/physical_block_size)" -eq 4096 ]
	[ "$(blockdev --getro "$UB_DEV")" -eq 0 ]
	printf 'blktap-ublk-marker' | dd of="$UB_DEV" bs=512 seek=7 conv=fsync 2>/dev/null
	td_stop
	ub_gone
	[ "$(dd if="$TD_DIR/disk.raw" bs=512 skip=7 count=1 2>/dev/null | head -c 18)" = blktap-ublk-marker ]
}

@test "ublk: mkfs.ext4, mount, a tree written, umount, fsck clean on a qcow2 image" {
	qcow2_image "$TD_DIR/disk.qcow2" 256M
	ub_start "qcow2:$TD_DIR/disk.qcow2"
	mkfs.ext4 -q -F "$UB_DEV"
	mkdir "$TD_DIR/mnt"
	mount -t ext4 "$UB_DEV" "$TD_DIR/mnt"
	cp -a /usr/lib/bats-core /usr/lib/bats "$TD_DIR/mnt/"
	mkdir -p "$TD_DIR/mnt/deep/a/b/c"
	head -c $((24 << 20)) /dev/urandom >"$TD_DIR/mnt/deep/a/b/c/random"
	want=$(sha "$TD_DIR/mnt/deep/a/b/c/random")
	umount "$TD_DIR/mnt"
	run e2fsck -fn "$UB_DEV"
	assert_success
	mount -t ext4 "$UB_DEV" "$TD_DIR/mnt"
	[ "$(sha "$TD_DIR/mnt/deep/a/b/c/random")" = "$want" ]
	cmp "$TD_DIR/mnt/bats-core/common.bash" /usr/lib/bats-core/common.bash
	umount "$TD_DIR/mnt"
	td_stop
	run "$TAP_IMG" check "$TD_DIR/disk.qcow2"
	assert_success
}

@test "ublk: fio random writes of mixed sizes read back verified" {
	mkimg "$TD_DIR/disk.raw" 128M
	ub_start "aio:$TD_DIR/disk.raw"
	run fio --name=verify --filename="$UB_DEV" --direct=1 --ioengine=libaio \
		--iodepth=16 --rw=randwrite --bsrange=4k-256k --size=48M \
		--verify=crc32c --verify_fatal=1 --do_verify=1 --output-format=terse
	assert_success
	td_stop
}

@test "ublk: a discard reaches tapdisk" {
	mkimg "$TD_DIR/disk.raw" 64M
	ub_start "aio:$TD_DIR/disk.raw"
	dd if=/dev/urandom of="$UB_DEV" bs=1M count=8 oflag=direct 2>/dev/null
	used=$(allocated_kib "$TD_DIR/disk.raw")
	[ "$(cat /sys/block/ublkb0/queue/discard_max_bytes)" -gt 0 ]
	before=$(ub_stat discard requests)
	blkdiscard -o 0 -l $((4 << 20)) "$UB_DEV"
	after=$(ub_stat discard requests)
	[ "$after" -gt "$before" ]
	# and the raw driver punched the hole
	[ "$(allocated_kib "$TD_DIR/disk.raw")" -le $((used - 4096)) ]
	td_stop
}

@test "ublk: a read-only disk refuses writes" {
	mkimg "$TD_DIR/disk.raw" 16M
	ub_start "aio:$TD_DIR/disk.raw" --readonly
	[ "$(blockdev --getro "$UB_DEV")" -eq 1 ]
	run dd if=/dev/zero of="$UB_DEV" bs=4k count=1 oflag=direct
	assert_failure
	td_stop
}

@test "ublk: kill -9 under writes; --ublk-recover takes the device over; fsck clean" {
	qcow2_image "$TD_DIR/disk.qcow2" 256M
	ub_start "qcow2:$TD_DIR/disk.qcow2"
	mkfs.ext4 -q -F "$UB_DEV"
	mkdir "$TD_DIR/mnt"
	mount -t ext4 "$UB_DEV" "$TD_DIR/mnt"
	head -c $((32 << 20)) /dev/urandom >"$TD_DIR/src"
	cp "$TD_DIR/src" "$TD_DIR/mnt/before"
	sync
	dd if="$TD_DIR/src" of="$TD_DIR/mnt/during" bs=64k conv=fsync 2>/dev/null &
	writer=$!
	BG_PIDS+=("$writer")
	sleep 1
	old=$TD_PID
	td_kill9 "$old"
	td_wait_gone "$old" 10
	[ -b "$UB_DEV" ]
	ub_recover "qcow2:$TD_DIR/disk.qcow2"
	grep -q "taking over the device" "$TD_LOG"
	wait "$writer"
	cmp "$TD_DIR/src" "$TD_DIR/mnt/during"
	cmp "$TD_DIR/src" "$TD_DIR/mnt/before"
	umount "$TD_DIR/mnt"
	run e2fsck -fn "$UB_DEV"
	assert_success
	td_stop
	ub_gone
}
