#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-only
#
# ublk disks under blktapctrl in the plain guest (Linux 6.12, ublk_drv):
# tap-ctl create --ublk, a tapdisk killed under a mounted filesystem's
# writes and restarted onto the same device (user recovery), re-adoption
# by a restarted daemon, destroy, and add_vbd_to_dom ... 0 on ublk.
# The guest has no Python: JSON is read with grep and sed.

load helpers

BLKTAPCTRL=$(dirname "$TAPDISK")/blktapctrl
TAPCTL=$(dirname "$TAPDISK")/tap-ctl
BIN=$(dirname "$TAPDISK")

setup() {
	td_setup
	CTL_RUN=$TD_DIR/run
	CTL_N=0
	export BLKTAPCTRL_SOCKET=$CTL_RUN/ctl.sock
	uc_start
}

teardown() {
	local m f pid
	for m in $(awk '$1 ~ /^\/dev\/ublkb/ { print $2 }' /proc/mounts); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	for m in $("$TAPCTL" list --json 2>/dev/null | grep -o '"minor":[0-9]*' | cut -d: -f2); do
		timeout 60 "$TAPCTL" destroy -m "$m" >/dev/null 2>&1
	done
	if [ -n "${CTL_PID:-}" ] && td_alive "$CTL_PID"; then
		kill -TERM "$CTL_PID"
		td_wait_gone "$CTL_PID" 10 || kill -KILL "$CTL_PID"
	fi
	for f in "$CTL_RUN"/disk-*.json; do
		[ -f "$f" ] || continue
		pid=$(grep -o '"pid":[0-9]*' "$f" | head -n1 | cut -d: -f2)
		[ "${pid:-0}" -gt 0 ] && td_alive "$pid" && kill -KILL "$pid"
	done
	td_teardown
}

# uc_start: blktapctrl in the background on this test's run directory.
uc_start() {
	CTL_N=$((CTL_N + 1))
	CTL_LOG=$TD_DIR/blktapctrl$CTL_N.log
	"$BLKTAPCTRL" -F -X --run-dir "$CTL_RUN" --tapdisk "$TAPDISK" \
		</dev/null >"$CTL_LOG" 2>&1 3>&- &
	CTL_PID=$!
	local i
	for ((i = 0; i < TD_WAIT_SECS * 20; i++)); do
		"$TAPCTL" list >/dev/null 2>&1 && return 0
		td_alive "$CTL_PID" || break
		sleep 0.05
	done
	fail "$(printf 'blktapctrl did not start; its log:\n%s' "$(cat "$CTL_LOG")")"
}

# uc_field MINOR KEY: one field of the disk's entry in tap-ctl list --json
# (the entries hold no nested objects, so each is one {...}).
uc_field() {
	"$TAPCTL" list --json | grep -o '{[^{}]*"minor":'"$1"',[^{}]*}' |
		grep -o "\"$2\":\(\"[^\"]*\"\|[0-9a-z]*\)" | head -n1 |
		cut -d: -f2- | tr -d '"'
}

# uc_wait_restarted MINOR OLDPID: wait (bounded: recovery waits for the
# kernel to notice the death) until a new tapdisk serves the disk.
uc_wait_restarted() {
	local i pid state
	for ((i = 0; i < 120 * 10; i++)); do
		state=$(uc_field "$1" state)
		pid=$(uc_field "$1" pid)
		[ "$state" = running ] && [ "${pid:-0}" -gt 0 ] &&
			[ "$pid" != "$2" ] && return 0
		sleep 0.1
	done
	fail "$(printf 'disk %s not restarted (state %s); daemon log:\n%s' "$1" \
		"$state" "$(tail -n 30 "$CTL_LOG")")"
}

# uc_gone DEV: the block device has gone away (bounded).
uc_gone() {
	local i
	for ((i = 0; i < 200; i++)); do
		[ ! -e "$1" ] && return 0
		sleep 0.05
	done
	fail "$1 is still there: $(ls -l /dev/ublk* 2>&1)"
}

@test "tap-ctl create --ublk: the device exists when create returns; list, info; destroy removes it" {
	"$TAP_IMG" create -f qcow2 "$TD_DIR/disk.qcow2" 64M >/dev/null
	run "$TAPCTL" create --ublk "qcow2:$TD_DIR/disk.qcow2"
	assert_success
	dev=$(awk '$1 == "ublk" { print $2 }' <<<"$output")
	[[ "$dev" == /dev/ublkb* ]]
	# readiness comes after the kernel started the device: no waiting
	[ -b "$dev" ]
	[ "$(blockdev --getsize64 "$dev")" -eq $((64 << 20)) ]
	run "$TAPCTL" list
	assert_output --partial "$dev"
	[ "$(uc_field 0 ublk)" = "$dev" ]
	run "$TAPCTL" info -m 0
	assert_output --partial "ublk       $dev"
	printf 'blktap-ublk-ctl' | dd of="$dev" bs=512 seek=3 conv=fsync 2>/dev/null
	run "$TAPCTL" destroy -m 0
	assert_success
	uc_gone "$dev"
	[ ! -e "/dev/ublkc${dev#/dev/ublkb}" ]
	run "$TAP_IMG" check "$TD_DIR/disk.qcow2"
	assert_success
	# and a second disk gets a device of its own next to the first
	"$TAPCTL" create --ublk "qcow2:$TD_DIR/disk.qcow2" >/dev/null
	"$TAPCTL" create --ublk-id 5 "ram:?size=16M" >/dev/null
	[ -b /dev/ublkb5 ]
	[ "$(uc_field 1 ublk)" = /dev/ublkb5 ]
}

@test "kill -9 under writes on a mounted ext4: blktapctrl restarts it onto the same device, the writer sees no error, fsck clean" {
	"$TAP_IMG" create -f qcow2 "$TD_DIR/disk.qcow2" 256M >/dev/null
	run "$TAPCTL" create --ublk --restart on-failure "qcow2:$TD_DIR/disk.qcow2"
	assert_success
	dev=$(awk '$1 == "ublk" { print $2 }' <<<"$output")
	[ -b "$dev" ]
	mkfs.ext4 -q -F "$dev"
	mkdir "$TD_DIR/mnt"
	mount -t ext4 "$dev" "$TD_DIR/mnt"
	cp -a /usr/lib/bats-core "$TD_DIR/mnt/tree"
	head -c $((32 << 20)) /dev/urandom >"$TD_DIR/src"
	sync
	# the writer: files written and synced one after the other
	(
		set -e
		for i in 1 2 3 4 5 6; do
			dd if="$TD_DIR/src" of="$TD_DIR/mnt/during$i" bs=64k conv=fsync 2>/dev/null
		done
	) &
	writer=$!
	BG_PIDS+=("$writer")
	sleep 2
	old=$(uc_field 0 pid)
	kill -KILL "$old"
	uc_wait_restarted 0 "$old"
	[ "$(uc_field 0 restarts)" -eq 1 ]
	[ "$(uc_field 0 ublk)" = "$dev" ]
	grep -q "taking over the device" "$CTL_LOG"
	wait "$writer"
	for i in 1 2 3 4 5 6; do
		cmp "$TD_DIR/src" "$TD_DIR/mnt/during$i"
	done
	diff -r /usr/lib/bats-core "$TD_DIR/mnt/tree"
	umount "$TD_DIR/mnt"
	run e2fsck -fn "$dev"
	assert_success
	"$TAPCTL" destroy -m 0 >/dev/null
	uc_gone "$dev"
	run "$TAP_IMG" check "$TD_DIR/disk.qcow2"
	assert_success
}

@test "a restarted blktapctrl re-adopts a ublk disk; a crash after that is still recovered" {
	mkimg "$TD_DIR/disk.raw" 32M
	dev=$("$TAPCTL" create --ublk --restart on-failure "aio:$TD_DIR/disk.raw" |
		awk '$1 == "ublk" { print $2 }')
	[ -b "$dev" ]
	printf 'before-the-restart' | dd of="$dev" bs=4k seek=5 oflag=direct conv=sync 2>/dev/null
	pid=$(uc_field 0 pid)
	kill -TERM "$CTL_PID"
	td_wait_gone "$CTL_PID" 10
	td_alive "$pid"
	uc_start
	[ "$(uc_field 0 pid)" = "$pid" ]
	[ "$(uc_field 0 state)" = running ]
	[ "$(uc_field 0 ublk)" = "$dev" ]
	grep -q "re-adopted tapdisk $pid" "$CTL_LOG"
	kill -KILL "$pid"
	uc_wait_restarted 0 "$pid"
	[ "$(dd if="$dev" bs=4k skip=5 count=1 iflag=direct 2>/dev/null | head -c 18)" = before-the-restart ]
	"$TAPCTL" destroy -m 0 >/dev/null
	uc_gone "$dev"
}

@test "destroy of a ublk disk whose tapdisk died unrestarted deletes the device" {
	mkimg "$TD_DIR/disk.raw" 16M
	dev=$("$TAPCTL" create --ublk "aio:$TD_DIR/disk.raw" | awk '$1 == "ublk" { print $2 }')
	[ -b "$dev" ]
	pid=$(uc_field 0 pid)
	kill -KILL "$pid"
	for ((i = 0; i < 200; i++)); do
		[ "$(uc_field 0 state)" = failed ] && break
		sleep 0.05
	done
	[ "$(uc_field 0 state)" = failed ]
	run timeout 60 "$TAPCTL" destroy -m 0
	assert_success
	uc_gone "$dev"
	run "$TAPCTL" list --json
	refute_output --partial '"minor":0'
}

@test "add_vbd_to_dom vd:ID DEVNODE 0 on ublk: mkfs, mount, write; busy refused; remove_vbd_from_dom undoes it" {
	export VDISK_DB=$TD_DIR/vd.sqlite
	mkimg "$TD_DIR/pool" 96M
	"$BIN/vd_format" "$TD_DIR/pool" --extent-size 8M
	id=$("$BIN/vd_create" 40)
	run "$BIN/add_vbd_to_dom" "vd:$id" "$TD_DIR/xvda" 0 rw
	assert_success
	[ -L "$TD_DIR/xvda" ]
	dev=$(readlink "$TD_DIR/xvda")
	[[ "$dev" == /dev/ublkb* ]]
	[ -b "$dev" ]
	[ "$(uc_field 0 ublk)" = "$dev" ]
	[ "$(uc_field 0 restart)" = on-failure ]
	mkfs.ext4 -q -F "$TD_DIR/xvda"
	mkdir "$TD_DIR/mnt"
	mount -t ext4 "$TD_DIR/xvda" "$TD_DIR/mnt"
	head -c $((12 << 20)) /dev/urandom >"$TD_DIR/mnt/data"
	sum=$(sha "$TD_DIR/mnt/data")
	run "$BIN/remove_vbd_from_dom" "$TD_DIR/xvda" 0
	assert_failure 1
	assert_output --partial "still mounted or open"
	umount "$TD_DIR/mnt"
	run e2fsck -fn "$TD_DIR/xvda"
	assert_success
	run "$BIN/remove_vbd_from_dom" "$TD_DIR/xvda" 0
	assert_success
	[ ! -e "$TD_DIR/xvda" ]
	uc_gone "$dev"
	run "$TAPCTL" list --json
	refute_output --partial '"minor":0'
	# attached again: the data is on the pool disk
	"$BIN/add_vbd_to_dom" "vd:$id" "$TD_DIR/xvda" 0 ro
	mount -t ext4 -o ro "$TD_DIR/xvda" "$TD_DIR/mnt"
	[ "$(sha "$TD_DIR/mnt/data")" = "$sum" ]
	umount "$TD_DIR/mnt"
	"$BIN/remove_vbd_from_dom" "$TD_DIR/xvda" 0
	[ ! -e "$TD_DIR/xvda" ]
}
