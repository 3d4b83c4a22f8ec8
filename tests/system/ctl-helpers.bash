# SPDX-License-Identifier: GPL-2.0-only
#
# Helpers for the blktapctrl and tap-ctl system tests (load after helpers).
# Each test runs its own daemon on a run directory under its scratch
# directory; teardown stops the daemon and every tapdisk its state files
# name, so a failed test leaves nothing behind.
#
#   ctl_start [ARGS...]   start blktapctrl -F in the background; sets CTL_PID,
#                         CTL_RUN, CTL_LOG and exports BLKTAPCTRL_SOCKET
#   ctl_stop              SIGTERM the daemon, assert exit status 0
#   ctl_pid MINOR         the tapdisk pid of a disk, from tap-ctl list --json
#   ctl_field MINOR EXPR  a Python expression on the disk's list entry (d)
#   ctl_wait_state MINOR STATE   wait (bounded) for the disk's state
#   ctl_raw HEX           send raw bytes (hex) to the daemon, half-close,
#                         print the reply

BLKTAPCTRL=$(dirname "$TAPDISK")/blktapctrl
TAPCTL=$(dirname "$TAPDISK")/tap-ctl

ctl_setup() {
	td_setup
	[ -x "$BLKTAPCTRL" ] || fail "no blktapctrl at $BLKTAPCTRL (run make)"
	[ -x "$TAPCTL" ] || fail "no tap-ctl at $TAPCTL (run make)"
	CTL_RUN=$TD_DIR/run
	CTL_N=0
	export BLKTAPCTRL_SOCKET=$CTL_RUN/ctl.sock
}

ctl_teardown() {
	local f pid
	if [ -n "${CTL_PID:-}" ] && td_alive "$CTL_PID"; then
		kill -TERM "$CTL_PID"
		td_wait_gone "$CTL_PID" 10 || kill -KILL "$CTL_PID"
	fi
	# the tapdisks the daemon leaves running by design
	for f in "${CTL_RUN:-/nonexistent}"/disk-*.json; do
		[ -f "$f" ] || continue
		pid=$(json_get 'j["pid"]' <"$f")
		[ "$pid" -gt 0 ] 2>/dev/null || continue
		grep -qF "$TD_DIR" "/proc/$pid/cmdline" 2>/dev/null || continue
		kill -TERM "$pid"
		td_wait_gone "$pid" 10 || kill -KILL "$pid"
	done
	td_teardown
}

setup() { ctl_setup; }
teardown() { ctl_teardown; }

ctl_start() {
	CTL_N=$((CTL_N + 1))
	CTL_LOG=$TD_DIR/blktapctrl$CTL_N.log
	"$BLKTAPCTRL" -F --run-dir "$CTL_RUN" --tapdisk "$TAPDISK" "$@" \
		</dev/null >"$CTL_LOG" 2>&1 3>&- &
	CTL_PID=$!
	local i n=$((TD_WAIT_SECS * 20))
	for ((i = 0; i < n; i++)); do
		"$TAPCTL" list >/dev/null 2>&1 && return 0
		td_alive "$CTL_PID" || break
		sleep 0.05
	done
	fail "$(printf 'blktapctrl did not start; its log:\n%s' "$(cat "$CTL_LOG")")"
}

ctl_stop() {
	local rc
	kill -TERM "$CTL_PID"
	td_wait_gone "$CTL_PID" "$TD_WAIT_SECS" || fail "blktapctrl did not exit on SIGTERM"
	wait "$CTL_PID"
	rc=$?
	[ "$rc" -eq 0 ] || fail "blktapctrl exited $rc after SIGTERM"
}

ctl_field() {
	"$TAPCTL" list --json | json_get "[d for d in j['disks'] if d['minor'] == $1][0]$2"
}

ctl_pid() {
	ctl_field "$1" "['pid']"
}

ctl_wait_state() {
	local i n=$((TD_WAIT_SECS * 20)) s
	for ((i = 0; i < n; i++)); do
		# a create sent in the background may not be listed yet (under
		# ASan the daemon takes a while to get to it): ask again
		s=$(ctl_field "$1" "['state']" 2>/dev/null) || s=unreachable
		[ "$s" = "$2" ] && return 0
		sleep 0.05
	done
	fail "disk $1 is $s, not $2, after ${TD_WAIT_SECS}s: $("$TAPCTL" list)"
}

ctl_raw() {
	"$TD_PY" - "$BLKTAPCTRL_SOCKET" "$1" <<'PYEOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(30)
s.connect(sys.argv[1])
s.sendall(bytes.fromhex(sys.argv[2]))
s.shutdown(socket.SHUT_WR)
b = b""
while True:
    c = s.recv(65536)
    if not c:
        break
    b += c
print(b[4:].decode() if len(b) >= 4 else "no reply (%d bytes)" % len(b))
PYEOF
}

# hexmsg JSON: a framed message, as hex, for ctl_raw.
hexmsg() {
	"$TD_PY" -c 'import struct, sys
m = sys.argv[1].encode()
print((struct.pack(">I", len(m)) + m).hex())' "$1"
}
