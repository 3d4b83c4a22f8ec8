#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-only
#
# The Xen guest's dom0: what the userspace blkif backend will need is here
# and works (grant and event-channel devices, xl, a PV domU on blkback),
# and the tapdisk build runs in it.

load helpers

@test "dom0: the grant, event-channel and xenbus devices exist" {
	for d in gntdev gntalloc evtchn privcmd xenbus_backend; do
		[ -c "/dev/xen/$d" ] || fail "no /dev/xen/$d"
	done
}

@test "dom0: xl answers" {
	run xl info
	assert_success
	assert_output --partial xen_version
	run xl list
	assert_success
	assert_output --partial Domain-0
}

@test "dom0: a PV domU reads and writes its phy: disk through blkback" {
	dd if=/dev/zero of="$TD_DIR/disk.img" bs=1M count=32 2>/dev/null
	printf 'DOM0-DISK-MARKER' | dd of="$TD_DIR/disk.img" conv=notrunc 2>/dev/null
	losetup /dev/loop0 "$TD_DIR/disk.img"
	run xl create /root/domu.cfg
	assert_success
	for i in $(seq 120); do
		xl list domu >/dev/null 2>&1 || break
		sleep 1
	done
	losetup -d /dev/loop0
	grep -q first16=DOM0-DISK-MARKER /var/log/xen/console/guest-domu.log
	[ "$(dd if="$TD_DIR/disk.img" bs=16 skip=1 count=1 2>/dev/null)" = WRITTEN-BY-DOMU! ]
}

@test "dom0: the tapdisk build runs and serves a disk as /dev/ublkb0" {
	run "$TAPDISK" --version
	assert_success
	ub_id=$UB_ID
	mkimg "$TD_DIR/disk.raw" 16M
	UB_ID=$ub_id ub_start "aio:$TD_DIR/disk.raw"
	[ "$(blockdev --getsize64 "$UB_DEV")" -eq $((16 << 20)) ]
	td_stop
}
