# SPDX-License-Identifier: GPL-2.0-only
#
# Helpers for the xen-*.bats suites: blktapctrl in dom0 serving the PV
# domUs' block-tap and block-vd disks, and the domU itself (its /init is
# tests/testhost/guest/init-domu: GUEST_STEPS chooses what it does).
#
#   xen_setup_file / xen_teardown_file   blktapctrl watching xenstore, the
#                             hotplug scripts where xl looks; and back
#   ctl_start / ctl_stop      blktapctrl in the background / SIGTERM (its
#                             tapdisks keep serving)
#   ctl_wait_empty            every disk destroyed
#   tap_disk VDEV TARGET [ACCESS] [SCRIPT]   an xl disk spec
#   guest_cfg SPEC...         the domU's config in $TD_DIR/domu.cfg
#   guest_run SPEC            boot the domU, wait until it is gone
#   guest_hold SPEC           boot it, wait until its steps are done and it
#                             holds (GUEST_STEPS ends with "hold")
#   guest_shutdown            xl shutdown the held domU, wait until gone
#   xen_stat MINOR KEY        a counter of the disk's "xen" stats
#   guest_files               the domU's DOMU-FILE lines: "SHA256  PATH"

load helpers

XEN_TOP=$(cd "$BATS_TEST_DIRNAME/../../.." && pwd)
CONSOLE=/var/log/xen/console/guest-domu.log
# what the domU's /init does: "" is its marker run; else th=STEP,...
GUEST_STEPS=${GUEST_STEPS:-}

xen_setup_file() {
	# the kernel's blkback would claim every vbd backend too
	rmmod xen-blkback 2>/dev/null || true
	# where xl looks for script=block-tap and script=block-vd
	mkdir -p /etc/xen/scripts
	ln -sf "$XEN_TOP/xend-hooks/block-tap" /etc/xen/scripts/block-tap
	ln -sf "$XEN_TOP/xend-hooks/block-vd" /etc/xen/scripts/block-vd
	export CTL_DIR=/run/blktap-test CTL_LOG=/run/blktap-test.log
	export BLKTAPCTRL_SOCKET=/run/blktap-test/ctl.sock
	rm -rf "$CTL_DIR" "$CTL_LOG"
	ctl_start
}

xen_teardown_file() {
	ctl_stop
	modprobe xen-blkback 2>/dev/null || true
}

teardown() {
	xl destroy domu 2>/dev/null || true
	if [ "${BATS_TEST_COMPLETED:-}" != 1 ]; then
		echo "# --- blktapctrl"
		tail -n 40 "$CTL_LOG" | sed 's/^/# /'
		echo "# --- domU console"
		tail -n 20 "$CONSOLE" 2>/dev/null | sed 's/^/# /'
	fi
	td_teardown
}

# blktapctrl in the background, watching xenstore; returns once it serves
ctl_start() {
	local i n
	n=$(grep -c 'listening on' "$CTL_LOG" 2>/dev/null || true)
	"$BUILD/blktapctrl" -F --xenstore -r "$CTL_DIR" -t "$TAPDISK" \
		</dev/null >>"$CTL_LOG" 2>&1 3>&- &
	echo $! >"$CTL_DIR.pid"
	for ((i = 0; i < 100; i++)); do
		[ "$(grep -c 'listening on' "$CTL_LOG")" -gt "${n:-0}" ] && return 0
		sleep 0.1
	done
	fail "blktapctrl did not start: $(cat "$CTL_LOG")"
}

# SIGTERM: it exits and leaves its tapdisks serving
ctl_stop() {
	local pid i
	pid=$(cat "$CTL_DIR.pid" 2>/dev/null) || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		td_alive "$pid" || break
		sleep 0.1
	done
	rm -f "$CTL_DIR.pid"
}

ctl_disks() {
	"$BUILD/tap-ctl" list | grep -c '^[0-9]'
}

# blktapctrl has destroyed every disk (their devices are gone)
ctl_wait_empty() {
	local i
	for ((i = 0; i < 300; i++)); do
		[ "$(ctl_disks)" -eq 0 ] && return 0
		sleep 0.1
	done
	fail "disks left: $("$BUILD/tap-ctl" list)"
}

# tap_disk VDEV TARGET [ACCESS] [SCRIPT]: an xl disk spec that blktapctrl
# serves (SCRIPT block-tap, or block-vd for a pool disk)
tap_disk() {
	echo "format=raw,vdev=$1,access=${3:-rw},script=${4:-block-tap},target=$2"
}

# guest_cfg SPEC...: the domU's config with these disks and GUEST_STEPS,
# in $TD_DIR/domu.cfg; the console log of the last domU goes
guest_cfg() {
	local d='' s
	rm -f "$CONSOLE"
	for s in "$@"; do
		d="$d${d:+, }'$s'"
	done
	sed -e "s|^disk = .*|disk = [ $d ]|" \
		-e "s|^extra = \"\\(.*\\)\"|extra = \"\\1${GUEST_STEPS:+ th=$GUEST_STEPS}\"|" \
		-e "s|^memory = .*|memory = 256|" \
		/root/domu.cfg >"$TD_DIR/domu.cfg"
}

guest_create() {
	guest_cfg "$1"
	run timeout 120 xl create "$TD_DIR/domu.cfg"
	[ "$status" -eq 0 ] || fail "xl create failed: $output"
}

# wait until the domU is gone and blktapctrl destroyed its disk
guest_wait_gone() {
	local i
	for ((i = 0; i < ${1:-1800}; i++)); do
		xl list domu >/dev/null 2>&1 || break
		sleep 0.1
	done
	xl list domu >/dev/null 2>&1 &&
		fail "the domU did not power off: $(tail -n 20 "$CONSOLE")"
	ctl_wait_empty
}

# guest_run SPEC: boot the domU on that disk, wait until it powered off
# and blktapctrl destroyed its disk
guest_run() {
	guest_create "$1"
	guest_wait_gone
}

# guest_hold SPEC: boot the domU, wait until it holds after its steps
guest_hold() {
	guest_create "$1"
	guest_wait_hold
}

guest_wait_hold() {
	local i
	for ((i = 0; i < 1800; i++)); do
		grep -q "DOMU-MARK holding" "$CONSOLE" 2>/dev/null && return 0
		xl list domu >/dev/null 2>&1 || break
		sleep 0.1
	done
	fail "the domU does not hold: $(tail -n 20 "$CONSOLE")"
}

guest_shutdown() {
	run timeout 60 xl shutdown domu
	[ "$status" -eq 0 ] || fail "xl shutdown failed: $output"
	guest_wait_gone 600
	grep -q "DOMU-MARK shutdown asked" "$CONSOLE"
}

# guest_step STEP: the domU says STEP went well
guest_step() {
	grep -q "DOMU-MARK $1 ok" "$CONSOLE" ||
		fail "domU step $1: $(grep -a 'DOMU-MARK' "$CONSOLE")"
}

guest_files() {
	tr -d '\r' <"$CONSOLE" | sed -n 's/^DOMU-FILE //p'
}

# xen_stat MINOR KEY: one counter of the "xen" object in the disk's stats
xen_stat() {
	"$BUILD/tap-ctl" stats -m "$1" --json | tr -d ' \n\t' |
		sed -n 's/.*"xen":{\([^}]*\)}.*/\1/p' | tr , '\n' |
		sed -n "s/^\"$2\":\\([0-9]*\\)$/\\1/p"
}

# fs_verify_raw RAW: e2fsck finds it clean and every file the domU listed
# is there, with the content it had in the domU
fs_verify_raw() {
	local n
	guest_files >"$TD_DIR/sums"
	n=$(wc -l <"$TD_DIR/sums")
	[ "$n" -ge 20 ] || fail "the domU listed $n files: $(grep -a DOMU-MARK "$CONSOLE")"
	run e2fsck -fn "$1"
	[ "$status" -eq 0 ] || fail "e2fsck: $output"
	mkdir -p "$TD_DIR/mnt"
	mount -t ext4 -o loop,ro "$1" "$TD_DIR/mnt"
	run sh -c "cd '$TD_DIR/mnt' && sha256sum -c '$TD_DIR/sums'"
	umount "$TD_DIR/mnt"
	[ "$status" -eq 0 ] || fail "content differs: $output"
}
