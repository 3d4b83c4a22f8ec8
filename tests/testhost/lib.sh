# SPDX-License-Identifier: GPL-2.0-only
#
# Sourced by the test host's scripts: locations and shared helpers.
#
#   TESTHOST_DIR  work folder: packages, extracted trees, images, logs, the
#                 results the guests write (default /var/tmp/blktap-testhost)
#   BUILD         the build directory shared into the guests (default build)
#
# Paths must not contain spaces or commas: QEMU's option syntax splits on them.

TH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$TH/../.." && pwd)
W=$(realpath -m "${TESTHOST_DIR:-/var/tmp/blktap-testhost}")
OUT=$W/out
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD=$TOP/$BUILD ;; esac
# Xen comes from the machine's own Debian 12 (its libraries match the
# programs built here); the 6.12 kernel from trixie (it has ublk_drv).
XENV=4.17
export TESTHOST_DIR=$W BUILD

th_t0=$(date +%s)

# stage NAME: announce a stage; fail_stage uses the name it set.
stage() {
	TH_STAGE=$1
	printf '==== testhost: %s (%ds)\n' "$1" $(($(date +%s) - th_t0))
}

# fail_stage MESSAGE: the stage that failed, and why; exit 1.
fail_stage() {
	echo "testhost: stage '$TH_STAGE' failed: $*" >&2
	exit 1
}

kver() {
	cat "$OUT/kver" 2>/dev/null || true
}

# timestamp: prefix each console line with seconds since the boot began.
timestamp() {
	/usr/bin/python3 -u -c '
import sys, time
t0 = time.monotonic()
for raw in iter(sys.stdin.buffer.readline, b""):
    line = raw.decode("utf-8", "replace").rstrip("\r\n").replace("\r", "")
    sys.stdout.write("[%7.2f] %s\n" % (time.monotonic() - t0, line))
    sys.stdout.flush()'
}

# qemu_run LOG TIMEOUT ARGS...: QEMU (TCG, no display) under timeout, its
# console timestamped into LOG. Sets QEMU_RC; 124/137 mean it timed out.
qemu_run() {
	local log=$1 tmo=$2 t0
	shift 2
	t0=$(date +%s)
	set +e
	timeout -k 5 "$tmo" qemu-system-x86_64 -nographic -no-reboot \
		-accel tcg "$@" </dev/null 2>&1 | timestamp >"$log"
	QEMU_RC=${PIPESTATUS[0]}
	set -e
	echo "qemu exit status $QEMU_RC after $(($(date +%s) - t0))s; console log $log"
	case $QEMU_RC in
	124 | 137) echo "qemu timed out after ${tmo}s (TMO)" ;;
	esac
}

# guest_check LOG NAME: did the guest print "TH-CHECK NAME OK"?
guest_check() {
	grep -aq "TH-CHECK $2 OK" "$1"
}
