# SPDX-License-Identifier: GPL-2.0-only
#
# Helpers for the suites that run inside the test host's guests, on top of
# the system tests' helpers (scratch folder, tapdisk bookkeeping). The
# guests have no Python: the control socket is spoken with socat.
#
#   ub_start IMAGE [ARGS...]   tapdisk --ublk (device $UB_ID, default 0) with
#                              a control socket, in the background; waits
#                              until the block device serves. Sets TD_PID
#                              TD_SOCK TD_LOG UB_DEV
#   ub_recover IMAGE [ARGS...] the same with --ublk-recover $UB_ID
#   td_ctl SOCK COMMAND        one control request; prints the JSON reply
#   ub_stat OP FIELD           a number from the stats of the last tapdisk

load ../../system/helpers

UB_ID=${UB_ID:-0}
UB_DEV=/dev/ublkb$UB_ID

teardown() {
	local m
	for m in $(awk '$1 ~ /^\/dev\/ublkb/ { print $2 }' /proc/mounts); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	td_teardown
}

_ub_launch() {
	local image=$1 mode=$2
	shift 2
	TD_N=$((TD_N + 1))
	TD_SOCK=$TD_DIR/td$TD_N.sock
	TD_LOG=$TD_DIR/td$TD_N.log
	"$TAPDISK" "$mode" "$UB_ID" -c "$TD_SOCK" "$@" "$image" \
		</dev/null >"$TD_LOG" 2>&1 3>&- &
	TD_PID=$!
	TD_PIDS+=("$TD_PID")
	# recovery waits for the kernel to notice the old tapdisk's death
	local i n=$(((TD_WAIT_SECS + 30) * 20))
	for ((i = 0; i < n; i++)); do
		grep -q "$UB_DEV: serving" "$TD_LOG" && [ -b "$UB_DEV" ] && return 0
		td_alive "$TD_PID" || break
		sleep 0.05
	done
	fail "$(printf 'tapdisk %s %s did not serve %s; its log:\n%s' \
		"$mode" "$image" "$UB_DEV" "$(cat "$TD_LOG")")"
}

ub_start() {
	local image=$1
	shift
	_ub_launch "$image" --ublk-id "$@"
}

ub_recover() {
	local image=$1
	shift
	_ub_launch "$image" --ublk-recover "$@"
}

td_ctl() {
	local msg len
	msg=$(printf '{"version":1,"command":"%s"}' "$2")
	len=${#msg}
	{
		printf "\\x$(printf %02x $((len >> 24 & 255)))\\x$(printf %02x $((len >> 16 & 255)))"
		printf "\\x$(printf %02x $((len >> 8 & 255)))\\x$(printf %02x $((len & 255)))"
		printf '%s' "$msg"
	} | socat -t 30 - "UNIX-CONNECT:$1" | tail -c +5
	echo
}

# ub_stat OP FIELD: e.g. ub_stat discard requests
ub_stat() {
	td_ctl "$TD_SOCK" stats | grep -o "\"$1\":{\"requests\":[0-9]*,\"bytes\":[0-9]*" |
		grep -o "\"$2\":[0-9]*" | cut -d: -f2
}

# ub_gone: the device and its char device have gone away.
ub_gone() {
	local i
	for ((i = 0; i < 200; i++)); do
		[ ! -e "$UB_DEV" ] && [ ! -e "/dev/ublkc$UB_ID" ] && return 0
		sleep 0.05
	done
	return 1
}
