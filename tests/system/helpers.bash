# SPDX-License-Identifier: GPL-2.0-only
#
# Shared helpers for the bats system tests. Every test gets its own scratch
# directory under /var/tmp (a real disk, so O_DIRECT works) and every
# tapdisk it starts is stopped and checked, or killed, at the end.
#
#   load helpers                  at the top of every .bats file
#   need TOOL...                  skip (locally) / fail (CI=true) if missing
#   td_start IMAGE [ARGS...]      start tapdisk in the background on a fresh
#                                 Unix socket; sets TD_PID TD_SOCK TD_URI TD_LOG
#   td_stop [PID]                 SIGTERM, wait, assert exit status 0
#   nbdsh ARGS...                 Debian's nbdsh with Debian's python3
#   td_nbdsh URI <<'EOF'          run a Python script under nbdsh, with h
#                                 connected to URI (strict mode off, so that
#                                 the server, not libnbd, judges requests)
#   td_ctl SOCK COMMAND           one control-socket request; prints the reply
#   mkimg FILE SIZE               sparse raw image (truncate sizes: 64M, 1G)
#   mkimg_random FILE MIB         raw image of random bytes

for _lib in /usr/lib/bats /usr/local/lib/bats /usr/lib/node_modules \
	"${BATS_LIB_PATH:-/nonexistent}"; do
	if [ -f "$_lib/bats-support/load.bash" ]; then
		load "$_lib/bats-support/load"
		load "$_lib/bats-assert/load"
		break
	fi
done
unset _lib

TD_TOP=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
# tests/run exports TAPDISK; run alone, bats uses the default build
: "${TAPDISK:=$TD_TOP/${BUILD:-build}/tapdisk}"
case "$TAPDISK" in /*) ;; *) TAPDISK=$TD_TOP/$TAPDISK ;; esac
export TAPDISK
# Debian's python modules (python3-libnbd) belong to /usr/bin/python3;
# the python3 first on PATH may be another build without them.
TD_PY=/usr/bin/python3
# Sanitizer builds start and stop more slowly.
case "$TAPDISK" in
*asan*) TD_WAIT_SECS=${TD_WAIT_SECS:-60} ;;
*) TD_WAIT_SECS=${TD_WAIT_SECS:-20} ;;
esac

# need TOOL...: a peer tool the test needs. Missing: skip with the reason,
# or under CI=true fail, because CI must run everything.
need() {
	local t
	for t in "$@"; do
		if [ "$t" = nbdsh ] || [ "$t" = python3-libnbd ]; then
			"$TD_PY" -c 'import nbd' 2>/dev/null && continue
			t="python3-libnbd (nbdsh)"
		elif command -v "$t" >/dev/null 2>&1; then
			continue
		fi
		if [ "${CI:-}" = true ]; then
			fail "required tool missing: $t (scripts/install-deps --test)"
		fi
		skip "$t is not installed (scripts/install-deps --test)"
	done
}

td_setup() {
	[ -f "$TAPDISK" ] && [ -x "$TAPDISK" ] || fail "no tapdisk binary at $TAPDISK (run make)"
	TD_DIR=$(mktemp -d /var/tmp/blktap-test.XXXXXX)
	TD_N=0
	TD_PIDS=()
	BG_PIDS=()
	# unique per test run, for names that live outside TD_DIR (POSIX shm)
	TD_ID="bats$$t${BATS_TEST_NUMBER:-0}"
}

td_teardown() {
	local pid
	for pid in "${BG_PIDS[@]}" "${TD_PIDS[@]}"; do
		td_alive "$pid" && kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${BG_PIDS[@]}" "${TD_PIDS[@]}"; do
		td_wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	# named RAM disks this test made (the ram driver keeps them in
	# /dev/shm as blktap-ram-NAME; a killed tapdisk leaves its own)
	rm -f /dev/shm/blktap-ram-"${TD_ID:-none}"* 2>/dev/null
	if [ -n "${TD_DIR:-}" ] && [ -d "$TD_DIR" ]; then
		# keep the logs of a failed test in the bats output
		if [ "${BATS_TEST_COMPLETED:-}" != 1 ]; then
			local log
			for log in "$TD_DIR"/*.log; do
				[ -s "$log" ] || continue
				echo "# --- $(basename "$log")"
				sed 's/^/# /' "$log" | tail -n 30
			done
		fi
		rm -rf "$TD_DIR"
	fi
}

setup() { td_setup; }
teardown() { td_teardown; }

# td_alive PID: running and not a zombie.
td_alive() {
	local state
	[ -r "/proc/$1/stat" ] || return 1
	state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
	[ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# td_wait_gone PID SECS: wait (bounded) for a process to exit.
td_wait_gone() {
	local pid=$1 i n=$(($2 * 20))
	for ((i = 0; i < n; i++)); do
		td_alive "$pid" || return 0
		sleep 0.05
	done
	! td_alive "$pid"
}

# td_wait_file PATH PID: wait (bounded) for a socket to appear; fails if
# the process exits first.
td_wait_socket() {
	local path=$1 pid=$2 i n=$((TD_WAIT_SECS * 20))
	for ((i = 0; i < n; i++)); do
		[ -S "$path" ] && return 0
		td_alive "$pid" || return 1
		sleep 0.05
	done
	return 1
}

# td_start IMAGE [ARGS...]: start "tapdisk -n unix:SOCK ARGS IMAGE" in the
# background and wait until its socket accepts connections.
td_start() {
	local image=$1
	shift
	TD_N=$((TD_N + 1))
	TD_SOCK=$TD_DIR/td$TD_N.sock
	TD_LOG=$TD_DIR/td$TD_N.log
	TD_URI="nbd+unix:///?socket=$TD_SOCK"
	"$TAPDISK" -n "unix:$TD_SOCK" "$@" "$image" </dev/null >"$TD_LOG" 2>&1 3>&- &
	TD_PID=$!
	TD_PIDS+=("$TD_PID")
	if ! td_wait_socket "$TD_SOCK" "$TD_PID"; then
		local rc=running
		if ! td_alive "$TD_PID"; then
			wait "$TD_PID"
			rc="exit status $?"
		fi
		fail "$(printf 'tapdisk %s %s did not start (%s); its log:\n%s' \
			"$*" "$image" "$rc" "$(cat "$TD_LOG")")"
	fi
}

# td_stop [PID]: SIGTERM, bounded wait, exit status must be 0.
td_stop() {
	local pid=${1:-$TD_PID} rc
	kill -TERM "$pid" || fail "tapdisk $pid is not running"
	if ! td_wait_gone "$pid" "$TD_WAIT_SECS"; then
		kill -KILL "$pid"
		wait "$pid" 2>/dev/null
		fail "tapdisk $pid did not exit within ${TD_WAIT_SECS}s of SIGTERM"
	fi
	wait "$pid"
	rc=$?
	[ "$rc" -eq 0 ] || fail "$(printf 'tapdisk %s exited %s after SIGTERM; logs:\n%s' \
		"$pid" "$rc" "$(tail -n 20 "$TD_DIR"/*.log)")"
}

# td_kill9 [PID]: the crash case.
td_kill9() {
	local pid=${1:-$TD_PID}
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null || true
}

nbdsh() {
	PATH=/usr/bin:$PATH command nbdsh "$@"
}

# td_nbdsh URI: the Python script on stdin runs in nbdsh with h connected.
# Strict mode is off so that out-of-range or read-only requests reach the
# server rather than being refused by libnbd.
td_nbdsh() {
	local uri=$1 script
	script=$(cat)
	nbdsh --base-allocation -u "$uri" -c 'h.set_strict_mode(0)' -c "$script"
}

# td_ctl SOCK COMMAND: send {"version":1,"command":COMMAND} framed as a
# 4-byte big-endian length and JSON; print the JSON reply on one line.
td_ctl() {
	"$TD_PY" - "$1" "$2" <<'EOF'
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(30)
s.connect(sys.argv[1])
msg = json.dumps({"version": 1, "command": sys.argv[2]}).encode()
s.sendall(struct.pack(">I", len(msg)) + msg)
def recvn(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            sys.exit("control socket closed after %d of %d bytes" % (len(b), n))
        b += c
    return b
n = struct.unpack(">I", recvn(4))[0]
print(json.dumps(json.loads(recvn(n))))
EOF
}

# json_get EXPR: evaluate a Python expression on the JSON object on stdin
# (bound to j); prints the result (JSON for lists and objects).
json_get() {
	"$TD_PY" -c '
import json, sys
j = json.load(sys.stdin)
r = eval(sys.argv[1])
print(json.dumps(r) if isinstance(r, (dict, list)) else r)' "$1"
}

mkimg() {
	rm -f "$1"
	truncate -s "$2" "$1"
}

mkimg_random() {
	head -c "$(($2 * 1024 * 1024))" /dev/urandom >"$1"
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
	"$TD_PY" -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# data_ranges FILE: the file's data extents from SEEK_DATA/SEEK_HOLE, one
# "START END" pair per line (bytes; holes are the gaps between).
data_ranges() {
	"$TD_PY" - "$1" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
end = os.fstat(fd).st_size
off = 0
while off < end:
    try:
        d = os.lseek(fd, off, os.SEEK_DATA)
    except OSError:
        break
    h = os.lseek(fd, d, os.SEEK_HOLE)
    print(d, h)
    off = h
EOF
}

# allocated_kib FILE: the space the file really takes (st_blocks).
allocated_kib() {
	echo $(($(stat -c %b "$1") * $(stat -c %B "$1") / 1024))
}

# sha FILE: its sha256.
sha() {
	sha256sum "$1" | cut -d' ' -f1
}
