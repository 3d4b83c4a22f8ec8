#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-only
#
# A tap disk attached to dom0 itself: "xl block-attach 0 ..." with
# script=block-tap. blktapctrl sees a vbd whose frontend is its own domain
# and serves it with "tapdisk --ublk" instead of a blkif ring: dom0 gets
# /dev/ublkbN, recorded in the backend's physical-device-path. xl
# block-detach closes the device: blktapctrl stops the tapdisk, which
# deletes the ublk device, and xl removes the backend.

load xen-helpers

setup_file() { xen_setup_file; }

teardown_file() {
	# a failed test leaves its disk attached: let xl take it away
	umount "$BATS_FILE_TMPDIR/mnt" 2>/dev/null || true
	timeout 30 xl block-detach 0 xvdz 2>/dev/null || true
	xen_teardown_file
}

# d0_backend VDEV: the backend directory of dom0's disk VDEV
d0_backend() {
	local be=/local/domain/0/backend/vbd/0 d
	for d in $(xenstore-list "$be" 2>/dev/null); do
		if [ "$(xenstore-read "$be/$d/dev" 2>/dev/null)" = "$1" ]; then
			echo "$be/$d"
			return 0
		fi
	done
	return 1
}

# d0_attach IMAGE: xl block-attach 0 as xvdz; sets BE (its backend) and
# DEV (the /dev/ublkbN blktapctrl recorded there)
d0_attach() {
	run timeout 60 xl block-attach 0 "$(tap_disk xvdz "$1")"
	[ "$status" -eq 0 ] || fail "block-attach failed: $output"
	BE=$(d0_backend xvdz) ||
		fail "no backend for xvdz: $(xenstore-ls -f /local/domain/0/backend)"
	DEV=$(xenstore-read "$BE/physical-device-path")
	[[ $DEV == /dev/ublkb* ]] || fail "physical-device-path is '$DEV'"
	[ -b "$DEV" ] || fail "no block device $DEV"
	[ "$(xenstore-read "$BE/hotplug-status")" = connected ]
}

# d0_detach: xl block-detach 0 xvdz; the device, the tapdisk PID and the
# backend are gone
d0_detach() {
	run timeout 60 xl block-detach 0 xvdz
	[ "$status" -eq 0 ] || fail "block-detach failed: $output"
	ctl_wait_empty
	td_alive "$1" && fail "tapdisk $1 still runs"
	[ ! -e "$DEV" ] || fail "$DEV is still there"
	[ ! -e "/sys/block/${DEV#/dev/}" ] || fail "/sys/block/${DEV#/dev/} is still there"
	run xenstore-read "$BE/state"
	assert_failure
}

@test "xen-dom0-ublk: xl block-attach 0 serves a qcow2 image as /dev/ublkbN; block-detach removes it" {
	local img=$TD_DIR/d0.qcow2 mnt=$BATS_FILE_TMPDIR/mnt pid i
	qemu-img create -q -f qcow2 "$img" 64M
	d0_attach "qcow2:$img"
	[ "$(blockdev --getsize64 "$DEV")" -eq $((64 << 20)) ]
	run "$BUILD/tap-ctl" list
	assert_output --partial "qcow2:$img"
	assert_output --partial "$DEV,xen:vbd/0/"
	pid=$("$BUILD/tap-ctl" list | awk '/xen:vbd\/0\// { print $2 }')
	td_alive "$pid" || fail "no tapdisk: $("$BUILD/tap-ctl" list)"
	grep -q "new block-tap device: disk [0-9]* (qcow2:$img), for this domain: served as a ublk device" "$CTL_LOG"
	grep -q "disk [0-9]* (qcow2:$img) is $DEV in this domain" "$CTL_LOG"

	mkfs.ext4 -F "$DEV" >/dev/null
	mkdir -p "$mnt"
	mount -t ext4 "$DEV" "$mnt"
	mkdir -p "$mnt/tree/a" "$mnt/tree/b"
	for i in $(seq 12); do
		dd if=/dev/urandom of="$mnt/tree/a/f$i" bs=64k count="$i" 2>/dev/null
		head -c $((i * 1000)) /dev/urandom >"$mnt/tree/b/g$i"
	done
	(cd "$mnt" && find tree -type f | sort | xargs sha256sum) >"$TD_DIR/sums"
	sync
	umount "$mnt"
	d0_detach "$pid"
	grep -q "the toolstack closes the device: destroying disk [0-9]* (qcow2:$img)" "$CTL_LOG"
	grep -q "(qcow2:$img): tapdisk $pid exited with status 0" "$CTL_LOG" ||
		fail "tapdisk exit: $(grep "d0.qcow2" "$CTL_LOG")"

	# the image, read by qemu-img: clean, and it holds what was written
	run qemu-img check "$img"
	[ "$status" -eq 0 ] || fail "qemu-img check: $output"
	qemu-img convert -f qcow2 -O raw "$img" "$TD_DIR/d0.raw"
	run e2fsck -fn "$TD_DIR/d0.raw"
	[ "$status" -eq 0 ] || fail "e2fsck: $output"
	mount -t ext4 -o loop,ro "$TD_DIR/d0.raw" "$mnt"
	run sh -c "cd '$mnt' && sha256sum -c '$TD_DIR/sums'"
	umount "$mnt"
	[ "$status" -eq 0 ] || fail "content differs: $output"

	# the same vdev again: a new device at the old path, the data there
	d0_attach "qcow2:$img"
	pid=$("$BUILD/tap-ctl" list | awk '/xen:vbd\/0\// { print $2 }')
	mount -t ext4 -o ro "$DEV" "$mnt"
	run sh -c "cd '$mnt' && sha256sum -c '$TD_DIR/sums'"
	umount "$mnt"
	[ "$status" -eq 0 ] || fail "content differs after re-attach: $output"
	d0_detach "$pid"
}

@test "xen-dom0-ublk: a dom0 attach whose image cannot be opened fails; block-detach clears it" {
	local img=$TD_DIR/missing.qcow2
	# xl waits 10 s for the backend, then gives up
	run timeout 60 xl block-attach 0 "$(tap_disk xvdz "qcow2:$img")"
	assert_failure
	grep -q "disk [0-9]* (qcow2:$img): cannot serve the device" "$CTL_LOG"
	run "$BUILD/tap-ctl" list
	assert_output --partial failed
	# xl leaves a failed dom0 device in xenstore: detach removes it
	BE=$(d0_backend xvdz) || fail "xl removed the backend itself"
	run timeout 60 xl block-detach 0 xvdz
	[ "$status" -eq 0 ] || fail "block-detach failed: $output"
	ctl_wait_empty
	run xenstore-read "$BE/state"
	assert_failure
}
