#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-only
#
# tapdisk as the Xen blkif backend of PV domUs in the test host's dom0,
# started by blktapctrl: it watches xenstore and serves every device xl
# gives to the block-tap hotplug script (disk spec with script=block-tap,
# target = the tapdisk image name), and destroys the disk when the device
# goes. The guests come from plain xl configs; nothing here starts a
# tapdisk. The domU's /init reports its xvda (sectors and first 16
# bytes), writes a marker at byte 16 (or reports that it cannot), syncs
# and powers off.

load xen-helpers

setup_file() { xen_setup_file; }
teardown_file() { xen_teardown_file; }

@test "xen-blkif: blktapctrl serves a raw image to a PV domU from a plain xl config" {
	mkimg "$TD_DIR/disk.raw" 32M
	printf 'TAPDISK-XEN-RAW!' | dd of="$TD_DIR/disk.raw" conv=notrunc 2>/dev/null
	guest_run "$(tap_disk xvda "aio:$TD_DIR/disk.raw")"
	grep -q "sectors=65536 first16=TAPDISK-XEN-RAW!" "$CONSOLE" ||
		fail "domU console: $(cat "$CONSOLE")"
	grep -q "DOMU-MARK wrote xvda" "$CONSOLE"
	[ "$(dd if="$TD_DIR/disk.raw" bs=16 skip=1 count=1 2>/dev/null)" = WRITTEN-BY-DOMU! ]
	grep -q "new block-tap device: disk [0-9]* (aio:$TD_DIR/disk.raw)" "$CTL_LOG"
	grep -q "the device was removed: destroying disk" "$CTL_LOG"
	# the toolstack's removal starts the shutdown, blktapctrl's SIGTERM
	# follows: still one clean, flushed exit, not "exiting without waiting"
	local i
	for i in $(seq 50); do
		grep -q "(aio:$TD_DIR/disk.raw): tapdisk [0-9]* exited" "$CTL_LOG" &&
			break
		sleep 0.2
	done
	grep -q "(aio:$TD_DIR/disk.raw): tapdisk [0-9]* exited with status 0" "$CTL_LOG" ||
		fail "tapdisk exit: $(grep "disk.raw" "$CTL_LOG")"
}

@test "xen-blkif: blktapctrl serves a qcow2 image to a PV domU; the image checks clean" {
	mkimg "$TD_DIR/src.raw" 32M
	printf 'TAPDISK-XEN-QC2!' | dd of="$TD_DIR/src.raw" conv=notrunc 2>/dev/null
	"$TAP_IMG" convert -f raw -O qcow2 "$TD_DIR/src.raw" "$TD_DIR/disk.qcow2"
	guest_run "$(tap_disk xvda "qcow2:$TD_DIR/disk.qcow2")"
	grep -q "first16=TAPDISK-XEN-QC2!" "$CONSOLE" ||
		fail "domU console: $(cat "$CONSOLE")"
	run "$TAP_IMG" check "$TD_DIR/disk.qcow2"
	assert_success
	"$TAP_IMG" convert -O raw "$TD_DIR/disk.qcow2" "$TD_DIR/out.raw"
	[ "$(dd if="$TD_DIR/out.raw" bs=16 count=1 2>/dev/null)" = TAPDISK-XEN-QC2! ]
	[ "$(dd if="$TD_DIR/out.raw" bs=16 skip=1 count=1 2>/dev/null)" = WRITTEN-BY-DOMU! ]
}

@test "xen-blkif: the legacy spelling tap:aio:PATH,xvda,w with script=block-tap" {
	# xl drops "tap:aio:"; the script makes the device blktapctrl's
	mkimg "$TD_DIR/disk.raw" 32M
	printf 'TAPDISK-XEN-AIO!' | dd of="$TD_DIR/disk.raw" conv=notrunc 2>/dev/null
	guest_run "tap:aio:$TD_DIR/disk.raw,xvda,w,script=block-tap"
	grep -q "first16=TAPDISK-XEN-AIO!" "$CONSOLE" ||
		fail "domU console: $(cat "$CONSOLE")"
	[ "$(dd if="$TD_DIR/disk.raw" bs=16 skip=1 count=1 2>/dev/null)" = WRITTEN-BY-DOMU! ]
	grep -q "new block-tap device: disk [0-9]* ($TD_DIR/disk.raw)" "$CTL_LOG"
}

@test "xen-blkif: a read-only disk (access=ro): the domU reads it, its write is refused" {
	mkimg "$TD_DIR/disk.raw" 32M
	printf 'TAPDISK-XEN-RO!!' | dd of="$TD_DIR/disk.raw" conv=notrunc 2>/dev/null
	guest_run "$(tap_disk xvda "aio:$TD_DIR/disk.raw" ro)"
	grep -q "first16=TAPDISK-XEN-RO!!" "$CONSOLE" ||
		fail "domU console: $(cat "$CONSOLE")"
	grep -q "DOMU-MARK cannot write xvda" "$CONSOLE" ||
		fail "domU console: $(cat "$CONSOLE")"
	[ "$(dd if="$TD_DIR/disk.raw" bs=16 skip=1 count=1 2>/dev/null | tr -d '\0')" = "" ]
	grep -q "(aio:$TD_DIR/disk.raw), read-only" "$CTL_LOG"
}

@test "xen-blkif: block-attach and block-detach; the disk survives a blktapctrl restart" {
	local dom pid
	mkimg "$TD_DIR/att.raw" 16M
	guest_cfg
	run timeout 120 xl create -p "$TD_DIR/domu.cfg"
	assert_success
	dom=$(xl domid domu)
	run timeout 60 xl block-attach domu "$(tap_disk xvdb "aio:$TD_DIR/att.raw")"
	[ "$status" -eq 0 ] || fail "block-attach failed: $output"
	run "$BUILD/tap-ctl" list
	assert_output --partial "aio:$TD_DIR/att.raw"
	assert_output --partial "xen:vbd/$dom/51728"
	assert_output --partial "running"
	pid=$("$BUILD/tap-ctl" list | awk '/xen:vbd/ { print $2 }')
	ctl_stop
	td_alive "$pid" || fail "tapdisk $pid went with blktapctrl"
	ctl_start
	run "$BUILD/tap-ctl" list
	assert_output --partial "xen:vbd/$dom/51728"
	[ "$("$BUILD/tap-ctl" list | awk '/xen:vbd/ { print $2 }')" = "$pid" ]
	grep -q "re-adopted tapdisk $pid" "$CTL_LOG"
	run timeout 60 xl block-detach domu xvdb
	[ "$status" -eq 0 ] || fail "block-detach failed: $output"
	ctl_wait_empty
	td_alive "$pid" && fail "tapdisk $pid still runs"
	run xenstore-read "/local/domain/0/backend/vbd/$dom/51728/state"
	assert_failure
}
