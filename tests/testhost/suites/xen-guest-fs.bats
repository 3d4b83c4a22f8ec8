#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-only
#
# A PV domU makes an ext4 filesystem on the disk tapdisk serves it,
# writes a tree of files, reads it back and shuts down; then dom0 checks
# the image with qemu-img (the independent referee) and finds in it the
# files the domU listed, byte for byte. On a qcow2 image, a pool disk
# (vd:ID, script=block-vd) and a 3-deep backing chain. And the large
# requests (indirect descriptors), flushes and discards the domU sends
# show in tap-ctl stats. blktapctrl starts every tapdisk, from plain xl
# configs.

load xen-helpers

setup_file() {
	# blktapctrl's tapdisks find the pool here: one file split in 16
	export VDISK_DB=/var/lib/blktap-test-vdisks.sqlite
	export POOL=/var/tmp/blktap-test-pool.img
	rm -f "$VDISK_DB"* "$POOL"
	truncate -s 256M "$POOL"
	"$BUILD/vd_format" "$POOL" --extent-size 16M
	xen_setup_file
}

teardown_file() {
	xen_teardown_file
	rm -f "$VDISK_DB"* "$POOL"
}

# pool_disk: a new 64 MiB disk of the pool; prints its id
pool_disk() {
	local id
	id=$("$BUILD/vd_create" 64) && [ -n "$id" ] || fail "vd_create failed"
	echo "$id"
}

# vd_raw ID RAW: the pool disk as a raw file. Only tapdisk reads the pool,
# so qemu-img reads it from a tapdisk's NBD export
vd_raw() {
	td_start "vd:$1"
	run qemu-img convert -f raw -O raw "$TD_URI" "$2"
	td_stop
	[ "$status" -eq 0 ] || fail "qemu-img convert: $output"
	[ "$(stat -c %s "$2")" -eq $((64 << 20)) ]
}

# qemu_check IMAGE FORMAT: qemu-img finds no errors and no leaks
qemu_check() {
	run qemu-img check -f "$2" "$1"
	[ "$status" -eq 0 ] || fail "qemu-img check: $output"
	assert_output --partial "No errors were found"
}

@test "xen-guest-fs: ext4 made, written and read back by the domU on a qcow2 image; qemu-img finds it clean and the files in it" {
	qemu-img create -q -f qcow2 "$TD_DIR/guest.qcow2" 64M
	GUEST_STEPS=fs guest_run "$(tap_disk xvda "qcow2:$TD_DIR/guest.qcow2")"
	guest_step fs
	qemu_check "$TD_DIR/guest.qcow2" qcow2
	qemu-img convert -f qcow2 -O raw "$TD_DIR/guest.qcow2" "$TD_DIR/fs.raw"
	fs_verify_raw "$TD_DIR/fs.raw"
}

@test "xen-guest-fs: the same on a pool disk, vd:ID through script=block-vd" {
	local id
	id=$(pool_disk)
	GUEST_STEPS=fs guest_run "$(tap_disk xvda "vd:$id" rw block-vd)"
	guest_step fs
	grep -q "new block-vd device: disk [0-9]* (vd:$id)" "$CTL_LOG"
	vd_raw "$id" "$TD_DIR/fs.raw"
	fs_verify_raw "$TD_DIR/fs.raw"
}

@test "xen-guest-fs: add_vbd_to_dom gives a pool disk to a domU (xl block-attach, block-vd), remove_vbd_from_dom takes it back" {
	local id dom
	id=$(pool_disk)
	GUEST_STEPS=fs,hold guest_cfg
	run timeout 120 xl create -p "$TD_DIR/domu.cfg"
	assert_success
	dom=$(xl domid domu)
	run timeout 120 "$BUILD/add_vbd_to_dom" "vd:$id" xvda "$dom" rw
	[ "$status" -eq 0 ] || fail "add_vbd_to_dom: $output"
	xl unpause domu
	guest_wait_hold
	guest_step fs
	run timeout 120 "$BUILD/remove_vbd_from_dom" xvda "$dom"
	[ "$status" -eq 0 ] || fail "remove_vbd_from_dom: $output"
	ctl_wait_empty
	guest_shutdown
	vd_raw "$id" "$TD_DIR/fs.raw"
	fs_verify_raw "$TD_DIR/fs.raw"
}

@test "xen-guest-fs: block-vd refuses what is not a pool disk" {
	mkimg "$TD_DIR/disk.raw" 16M
	guest_cfg "$(tap_disk xvda "$TD_DIR/disk.raw" rw block-vd)"
	# xl waits for a backend that never comes, then gives up
	run timeout 120 xl create "$TD_DIR/domu.cfg"
	assert_failure
	grep -q "$TD_DIR/disk.raw: not a pool disk (vd:ID or ID)" "$CTL_LOG"
	xl destroy domu 2>/dev/null || true
	ctl_wait_empty
}

@test "xen-guest-fs: the same on a 3-deep chain (qcow2 over qcow over raw); the lower layers stay as they were" {
	local base mid
	mkimg_random "$TD_DIR/base.raw" 64
	qemu-img create -q -f qcow -b base.raw -F raw "$TD_DIR/mid.qcow"
	qemu-img create -q -f qcow2 -b mid.qcow -F qcow "$TD_DIR/leaf.qcow2"
	run qemu-img info --backing-chain "$TD_DIR/leaf.qcow2"
	assert_output --partial "file format: raw"
	base=$(sha256sum <"$TD_DIR/base.raw")
	mid=$(sha256sum <"$TD_DIR/mid.qcow")
	GUEST_STEPS=fs guest_run "$(tap_disk xvda "qcow2:$TD_DIR/leaf.qcow2")"
	guest_step fs
	[ "$(sha256sum <"$TD_DIR/base.raw")" = "$base" ]
	[ "$(sha256sum <"$TD_DIR/mid.qcow")" = "$mid" ]
	qemu_check "$TD_DIR/leaf.qcow2" qcow2
	qemu-img convert -f qcow2 -O raw "$TD_DIR/leaf.qcow2" "$TD_DIR/fs.raw"
	fs_verify_raw "$TD_DIR/fs.raw"
}

@test "xen-guest-fs: large requests (indirect descriptors), flushes and discards reach tapdisk: tap-ctl stats" {
	local m k v
	mkimg "$TD_DIR/disk.raw" 64M
	GUEST_STEPS=io,hold guest_hold "$(tap_disk xvda "aio:$TD_DIR/disk.raw")"
	guest_step io
	m=$("$BUILD/tap-ctl" list | awk '/xen:vbd/ { print $1 }')
	[ -n "$m" ] || fail "no disk: $("$BUILD/tap-ctl" list)"
	run "$BUILD/tap-ctl" stats -m "$m" --json
	assert_success
	echo "# $output" >&3
	for k in requests indirect indirect_segments flushes discards \
		discard_bytes refused max_request_bytes max_segments; do
		v=$(xen_stat "$m" "$k")
		[ -n "$v" ] || fail "no xen.$k in: $output"
		eval "x_$k=$v"
	done
	# 1 MiB direct I/O: more segments than fit in a plain request (11)
	[ "$x_indirect" -gt 0 ]
	[ "$x_indirect_segments" -gt $((x_indirect * 11)) ]
	[ "$x_max_segments" -gt 11 ]
	[ "$x_max_request_bytes" -gt $((11 * 4096)) ]
	[ "$x_flushes" -gt 0 ]
	# blkdiscard of the whole disk
	[ "$x_discards" -gt 0 ]
	[ "$x_discard_bytes" -ge $((64 << 20)) ]
	[ "$x_refused" -eq 0 ]
	# and they went down to the image as such
	run "$BUILD/tap-ctl" stats -m "$m"
	assert_success
	echo "$output" | awk '$1 == "discard" && $2 > 0 { f = 1 } END { exit !f }' ||
		fail "no discard counted: $output"
	echo "$output" | awk '$1 == "flush" && $2 > 0 { f = 1 } END { exit !f }' ||
		fail "no flush counted: $output"
	guest_shutdown
}
