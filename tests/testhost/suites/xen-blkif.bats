#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-only
#
# tapdisk as the Xen blkif backend of a PV domU (tapdisk --xen-backend),
# in the test host's dom0. xl writes the device's xenstore directories
# (disk spec with script=block-tap, target = the tapdisk image name) and
# waits for the backend to reach InitWait before it runs the hotplug
# script; here the test plays the part of the xenstore watcher that starts
# tapdisk for a new device. The domU's /init reports its xvda (sectors and
# first 16 bytes), writes a marker at byte 16, syncs and powers off.

load helpers

BLKIF_DEVID=51712 # xvda
BLKIF_SCRIPT=$(cd "$BATS_TEST_DIRNAME/../../.." && pwd)/xend-hooks/block-tap

setup_file() {
	# the kernel's blkback would claim every vbd backend too
	rmmod xen-blkback 2>/dev/null || true
}

teardown_file() {
	modprobe xen-blkback 2>/dev/null || true
}

teardown() {
	xl destroy domu 2>/dev/null || true
	td_teardown
}

# blkif_guest IMAGE: boot the domU on IMAGE served by tapdisk; return once
# the domain is gone and tapdisk has exited. Sets TD_LOG.
blkif_guest() {
	local image=$1 cfg=$TD_DIR/blkif.cfg be= i dom
	sed "s|^disk = .*|disk = [ 'format=raw,vdev=xvda,access=rw,script=$BLKIF_SCRIPT,target=$image' ]|" \
		/root/domu.cfg >"$cfg"
	rm -f /var/log/xen/console/guest-domu.log
	xl create "$cfg" >"$TD_DIR/xl.log" 2>&1 &
	local xl_pid=$!
	for ((i = 0; i < 200; i++)); do
		for dom in $(xenstore-list /local/domain/0/backend/vbd 2>/dev/null); do
			be=/local/domain/0/backend/vbd/$dom/$BLKIF_DEVID
		done
		[ -n "$be" ] && xenstore-read "$be/params" >/dev/null 2>&1 && break
		be=
		sleep 0.1
	done
	[ -n "$be" ] || fail "xl wrote no backend directory: $(cat "$TD_DIR/xl.log")"
	TD_LOG=$TD_DIR/td-xen.log
	"$TAPDISK" --xen-backend "$be" "$(xenstore-read "$be/params")" \
		</dev/null >"$TD_LOG" 2>&1 3>&- &
	TD_PID=$!
	TD_PIDS+=("$TD_PID")
	wait "$xl_pid" || fail "$(printf 'xl create failed:\n%s\ntapdisk:\n%s' \
		"$(cat "$TD_DIR/xl.log")" "$(cat "$TD_LOG")")"
	for ((i = 0; i < 1200; i++)); do
		xl list domu >/dev/null 2>&1 || break
		sleep 0.1
	done
	xl list domu >/dev/null 2>&1 && fail "the domU did not power off"
	# xl deletes the device once tapdisk said Closed: then it exits
	for ((i = 0; i < 300; i++)); do
		td_alive "$TD_PID" || break
		sleep 0.1
	done
	td_alive "$TD_PID" && fail "tapdisk still runs: $(cat "$TD_LOG")"
	wait "$TD_PID" || fail "tapdisk failed: $(cat "$TD_LOG")"
	grep -q 'connected: ' "$TD_LOG" || fail "never connected: $(cat "$TD_LOG")"
}

@test "xen-blkif: a PV domU reads and writes a raw image tapdisk serves" {
	mkimg "$TD_DIR/disk.raw" 32M
	printf 'TAPDISK-XEN-RAW!' | dd of="$TD_DIR/disk.raw" conv=notrunc 2>/dev/null
	blkif_guest "aio:$TD_DIR/disk.raw"
	grep -q "sectors=65536 first16=TAPDISK-XEN-RAW!" /var/log/xen/console/guest-domu.log ||
		fail "domU console: $(cat /var/log/xen/console/guest-domu.log)"
	grep -q "DOMU-MARK wrote xvda" /var/log/xen/console/guest-domu.log
	[ "$(dd if="$TD_DIR/disk.raw" bs=16 skip=1 count=1 2>/dev/null)" = WRITTEN-BY-DOMU! ]
}

@test "xen-blkif: a PV domU reads and writes a qcow2 image; the image checks clean" {
	mkimg "$TD_DIR/src.raw" 32M
	printf 'TAPDISK-XEN-QC2!' | dd of="$TD_DIR/src.raw" conv=notrunc 2>/dev/null
	"$TAP_IMG" convert -f raw -O qcow2 "$TD_DIR/src.raw" "$TD_DIR/disk.qcow2"
	blkif_guest "qcow2:$TD_DIR/disk.qcow2"
	grep -q "first16=TAPDISK-XEN-QC2!" /var/log/xen/console/guest-domu.log ||
		fail "domU console: $(cat /var/log/xen/console/guest-domu.log)"
	run "$TAP_IMG" check "$TD_DIR/disk.qcow2"
	assert_success
	"$TAP_IMG" convert -O raw "$TD_DIR/disk.qcow2" "$TD_DIR/out.raw"
	[ "$(dd if="$TD_DIR/out.raw" bs=16 count=1 2>/dev/null)" = TAPDISK-XEN-QC2! ]
	[ "$(dd if="$TD_DIR/out.raw" bs=16 skip=1 count=1 2>/dev/null)" = WRITTEN-BY-DOMU! ]
}
