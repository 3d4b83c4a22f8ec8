#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-only
# blktapctrl: spawning, supervising, restarting and re-adopting tapdisks,
# with real tapdisks and real NBD clients.

load helpers
load ctl-helpers

@test "create, list and destroy 50 disks" {
	ctl_start
	local i out
	for ((i = 0; i < 50; i++)); do
		mkimg "$TD_DIR/d$i.raw" 1M
		run "$TAPCTL" --json create --nbd "unix:$TD_DIR/d$i.sock" "aio:$TD_DIR/d$i.raw"
		assert_success
		assert_equal "$(json_get 'j["minor"]' <<<"$output")" "$i"
	done
	out=$("$TAPCTL" list --json)
	assert_equal "$(json_get 'len(j["disks"])' <<<"$out")" 50
	assert_equal "$(json_get 'sorted(set(d["state"] for d in j["disks"]))' <<<"$out")" '["running"]'
	# every one serves its own image
	for i in 0 17 49; do
		qemu-io -f raw -c "write -P $((i + 1)) 0 64k" "nbd+unix:///?socket=$TD_DIR/d$i.sock" >/dev/null
		cmp -n 65536 "$TD_DIR/d$i.raw" <(head -c 65536 /dev/zero | tr '\0' "\\$(printf %o $((i + 1)))")
	done
	pids=$(json_get '" ".join(str(d["pid"]) for d in j["disks"])' <<<"$out")
	for ((i = 0; i < 50; i++)); do
		"$TAPCTL" destroy -m "$i" >/dev/null
	done
	run "$TAPCTL" list --json
	assert_equal "$(json_get 'len(j["disks"])' <<<"$output")" 0
	for pid in $pids; do
		! td_alive "$pid" || fail "tapdisk $pid still running after destroy"
	done
	[ -z "$(ls "$CTL_RUN" | grep -v '^ctl.sock$')" ] || fail "left in the run dir: $(ls "$CTL_RUN")"
	ctl_stop
}

@test "a missing image: tapdisk's message relayed, no disk left" {
	ctl_start
	run "$TAPCTL" create "aio:$TD_DIR/missing.raw"
	assert_failure 1
	assert_output --partial "missing.raw"
	assert_output --partial "No such file or directory"
	run "$TAPCTL" list --json
	assert_equal "$(json_get 'len(j["disks"])' <<<"$output")" 0
	# the minor is free again
	mkimg "$TD_DIR/a.raw" 1M
	run "$TAPCTL" --json create "aio:$TD_DIR/a.raw"
	assert_equal "$(json_get 'j["minor"]' <<<"$output")" 0
}

@test "kill -9 a tapdisk: noticed at once, reported in list" {
	need qemu-io
	ctl_start
	mkimg "$TD_DIR/a.raw" 4M
	"$TAPCTL" create --nbd "unix:$TD_DIR/a.sock" "aio:$TD_DIR/a.raw" >/dev/null
	pid=$(ctl_pid 0)
	kill -KILL "$pid"
	ctl_wait_state 0 failed
	assert_equal "$(ctl_field 0 "['reason']")" "killed by signal 9 (Killed)"
	assert_equal "$(ctl_field 0 "['pid']")" 0
	run "$TAPCTL" list
	assert_output --partial "reason: killed by signal 9"
	grep -q "disk 0 (aio:$TD_DIR/a.raw): tapdisk $pid killed by signal 9" "$CTL_LOG"
	run "$TAPCTL" stats -m 0
	assert_failure 1
	assert_output --partial "disk 0 (aio:$TD_DIR/a.raw) is failed"
	"$TAPCTL" destroy -m 0
}

@test "restart=on-failure: back on the same data over the same NBD socket" {
	need qemu-io
	ctl_start
	mkimg "$TD_DIR/a.raw" 8M
	"$TAPCTL" create --restart on-failure --nbd "unix:$TD_DIR/a.sock" "aio:$TD_DIR/a.raw" >/dev/null
	uri="nbd+unix:///?socket=$TD_DIR/a.sock"
	qemu-io -f raw -c 'write -P 0x5a 1M 1M' "$uri" >/dev/null
	pid=$(ctl_pid 0)
	kill -KILL "$pid"
	for ((i = 0; i < 200; i++)); do
		p=$(ctl_pid 0)
		[ "$p" != 0 ] && [ "$p" != "$pid" ] && break
		sleep 0.05
	done
	ctl_wait_state 0 running
	assert_equal "$(ctl_field 0 "['restarts']")" 1
	assert_equal "$(ctl_field 0 "['exports']")" "[\"unix:$TD_DIR/a.sock\"]"
	run qemu-io -f raw -c 'read -P 0x5a 1M 1M' "$uri"
	assert_success
	assert_output --partial "read 1048576/1048576"
	qemu-io -f raw -c 'write -P 0x6b 3M 1M' "$uri" >/dev/null
	"$TAPCTL" destroy -m 0
	qemu-io -f raw -c 'read -P 0x6b 3M 1M' "$TD_DIR/a.raw" | grep -q 'read 1048576'
}

@test "a disk that keeps crashing is left down as failed" {
	ctl_start
	mkimg "$TD_DIR/a.raw" 1M
	"$TAPCTL" create --restart on-failure "aio:$TD_DIR/a.raw" >/dev/null
	for ((n = 0; n < 6; n++)); do
		ctl_wait_state 0 running
		kill -KILL "$(ctl_pid 0)"
		sleep 0.1
	done
	ctl_wait_state 0 failed
	assert_equal "$(ctl_field 0 "['restarts']")" 5
	run "$TAPCTL" list
	assert_output --partial "left down after 5 restarts within 60 s"
	assert_output --partial "failed"
}

@test "restart blktapctrl while fio runs over NBD: disks re-adopted, no client error" {
	need fio
	ctl_start
	mkimg "$TD_DIR/a.raw" 64M
	"$TAPCTL" create --restart on-failure --nbd "unix:$TD_DIR/a.sock" "aio:$TD_DIR/a.raw" >/dev/null
	mkimg "$TD_DIR/b.raw" 8M
	"$TAPCTL" create --nbd "unix:$TD_DIR/b.sock" "aio:$TD_DIR/b.raw" >/dev/null
	pid=$(ctl_pid 0)
	fio --name=io --ioengine=nbd --uri="nbd+unix:///?socket=$TD_DIR/a.sock" \
		--rw=randrw --bs=4k --iodepth=8 --size=64M --time_based --runtime=6 \
		--output="$TD_DIR/fio.out" >/dev/null 2>&1 &
	fio_pid=$!
	BG_PIDS+=("$fio_pid")
	sleep 1.5
	ctl_stop
	td_alive "$pid" || fail "tapdisk $pid went down with the daemon"
	ctl_start
	assert_equal "$(ctl_pid 0)" "$pid"
	assert_equal "$(ctl_field 0 "['state']")" running
	assert_equal "$(ctl_field 1 "['state']")" running
	grep -q "disk 0 (aio:$TD_DIR/a.raw): re-adopted tapdisk $pid" "$CTL_LOG"
	wait "$fio_pid" || fail "fio failed: $(cat "$TD_DIR/fio.out")"
	grep -q 'err= 0' "$TD_DIR/fio.out"
	# the adopted tapdisk is still supervised: its death is noticed
	kill -KILL "$pid"
	ctl_wait_state 0 running
	[ "$(ctl_pid 0)" != "$pid" ]
	grep -q "adopted from an earlier blktapctrl" "$CTL_LOG"
}

@test "a tapdisk that died while the daemon was down: restarted or reported" {
	ctl_start
	mkimg "$TD_DIR/a.raw" 1M
	mkimg "$TD_DIR/b.raw" 1M
	"$TAPCTL" create --restart on-failure "aio:$TD_DIR/a.raw" >/dev/null
	"$TAPCTL" create "aio:$TD_DIR/b.raw" >/dev/null
	a=$(ctl_pid 0)
	b=$(ctl_pid 1)
	ctl_stop
	kill -KILL "$a" "$b"
	td_wait_gone "$a" 5
	td_wait_gone "$b" 5
	ctl_start
	ctl_wait_state 0 running
	assert_equal "$(ctl_field 1 "['state']")" failed
	assert_equal "$(ctl_field 1 "['reason']")" "tapdisk $b died while blktapctrl was not running"
}

@test "SIGTERM leaves the tapdisks serving; --stop-disks stops them" {
	ctl_start
	mkimg "$TD_DIR/a.raw" 1M
	"$TAPCTL" create --nbd "unix:$TD_DIR/a.sock" "aio:$TD_DIR/a.raw" >/dev/null
	pid=$(ctl_pid 0)
	ctl_stop
	td_alive "$pid"
	[ -S "$TD_DIR/a.sock" ]
	[ ! -e "$CTL_RUN/ctl.sock" ]
	ctl_start --stop-disks
	assert_equal "$(ctl_pid 0)" "$pid"
	ctl_stop
	td_wait_gone "$pid" 5 || fail "tapdisk $pid still running"
	[ ! -e "$CTL_RUN/disk-0.json" ]
}

@test "a second blktapctrl on the same run directory is refused" {
	ctl_start
	run "$BLKTAPCTRL" -F --run-dir "$CTL_RUN" --tapdisk "$TAPDISK"
	assert_failure 1
	assert_output --partial "another process is listening there"
	"$TAPCTL" list >/dev/null
}

@test "pause and unpause while fio writes and verifies over NBD" {
	need fio
	ctl_start
	mkimg "$TD_DIR/a.raw" 32M
	"$TAPCTL" create --nbd "unix:$TD_DIR/a.sock" "aio:$TD_DIR/a.raw" >/dev/null
	fio --name=v --ioengine=nbd --uri="nbd+unix:///?socket=$TD_DIR/a.sock" \
		--rw=randwrite --bs=4k --iodepth=16 --size=32M --loops=4 \
		--verify=crc32c --verify_fatal=1 --do_verify=1 --verify_state_save=0 \
		--output="$TD_DIR/fio.out" >/dev/null 2>&1 &
	fio_pid=$!
	BG_PIDS+=("$fio_pid")
	paused=0
	for i in 1 2 3; do
		sleep 0.3
		td_alive "$fio_pid" || break
		paused=$((paused + 1))
		run "$TAPCTL" pause -m 0
		assert_success
		assert_equal "$(ctl_field 0 "['state']")" paused
		sleep 0.3
		run "$TAPCTL" unpause -m 0
		assert_success
		assert_equal "$(ctl_field 0 "['state']")" running
	done
	wait "$fio_pid" || fail "fio failed: $(cat "$TD_DIR/fio.out")"
	[ "$paused" -ge 1 ] || fail "fio finished before the first pause"
	grep -q 'err= 0' "$TD_DIR/fio.out"
	! grep -qi 'verify.*fail\|bad magic\|crc32c.*wanted' "$TD_DIR/fio.out"
}

@test "unpause onto a copy of the image" {
	need qemu-io
	ctl_start
	mkimg "$TD_DIR/a.raw" 8M
	"$TAPCTL" create --nbd "unix:$TD_DIR/a.sock" "aio:$TD_DIR/a.raw" >/dev/null
	uri="nbd+unix:///?socket=$TD_DIR/a.sock"
	qemu-io -f raw -c 'write -P 0x11 0 1M' "$uri" >/dev/null
	"$TAPCTL" pause -m 0
	cp "$TD_DIR/a.raw" "$TD_DIR/copy.raw"
	qemu-io -f raw -c 'write -P 0x22 1M 1M' "$TD_DIR/copy.raw" >/dev/null
	run "$TAPCTL" unpause -m 0 -a "aio:$TD_DIR/copy.raw"
	assert_success
	assert_equal "$(ctl_field 0 "['image']")" "aio:$TD_DIR/copy.raw"
	qemu-io -f raw -c 'read -P 0x11 0 1M' -c 'read -P 0x22 1M 1M' "$uri" | grep -c 'read 1048576' | grep -qx 2
	run "$TAPCTL" info -m 0 --json
	assert_equal "$(json_get 'j["image"]' <<<"$output")" "aio:$TD_DIR/copy.raw"
	# a restarted daemon knows the disk by its new image
	ctl_stop
	ctl_start
	assert_equal "$(ctl_field 0 "['state']")" running
	assert_equal "$(ctl_field 0 "['image']")" "aio:$TD_DIR/copy.raw"
}

@test "a paused disk stays paused across a daemon restart" {
	ctl_start
	mkimg "$TD_DIR/a.raw" 1M
	"$TAPCTL" create "aio:$TD_DIR/a.raw" >/dev/null
	"$TAPCTL" pause -m 0
	ctl_stop
	ctl_start
	assert_equal "$(ctl_field 0 "['state']")" paused
	"$TAPCTL" unpause -m 0
	assert_equal "$(ctl_field 0 "['state']")" running
}

@test "malformed control messages get an error reply; the daemon lives on" {
	ctl_start
	run ctl_raw "$(hexmsg 'this is not json')"
	assert_output --partial '"ok":false'
	assert_output --partial 'not a JSON object'
	run ctl_raw "$(hexmsg '[1,2]')"
	assert_output --partial 'not a JSON object'
	run ctl_raw "$(hexmsg '{"version":2,"command":"list"}')"
	assert_output --partial 'unsupported protocol version'
	run ctl_raw "$(hexmsg '{"version":1}')"
	assert_output --partial 'no \"command\"'
	run ctl_raw "$(hexmsg '{"version":1,"command":"format-disk"}')"
	assert_output --partial 'unknown command'
	run ctl_raw "$(hexmsg '{"version":1,"command":"destroy"}')"
	assert_output --partial 'no \"minor\" number'
	run ctl_raw "$(hexmsg '{"version":1,"command":"info","minor":"x"}')"
	assert_output --partial 'no \"minor\" number'
	run ctl_raw "$(hexmsg '{"version":1,"command":"create"}')"
	assert_output --partial 'no \"image\"'
	run ctl_raw "$(hexmsg '{"version":1,"command":"create","image":"ram:?size=1M","nbd":"x"}')"
	assert_output --partial '\"nbd\" is not an array'
	run ctl_raw "$(hexmsg '{"version":1,"command":"create","image":"ram:?size=1M","restart":"always"}')"
	assert_output --partial '\"restart\" is neither'
	# truncated: the length says 100 bytes, 10 come, then EOF
	run ctl_raw "00000064$(printf '{"version"' | od -An -tx1 | tr -d ' \n')"
	assert_output --partial 'truncated message'
	run ctl_raw "0000"
	assert_output --partial 'truncated message'
	# oversized: 16 MiB announced
	run ctl_raw "01000000414243"
	assert_output --partial 'message too large'
	# two messages in one write, two replies in order
	run "$TD_PY" - "$BLKTAPCTRL_SOCKET" <<'PYEOF'
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
m = [json.dumps({"version": 1, "command": c}).encode() for c in ("list", "nope")]
s.sendall(b"".join(struct.pack(">I", len(x)) + x for x in m))
f = s.makefile("rb")
for _ in m:
    n = struct.unpack(">I", f.read(4))[0]
    print(json.loads(f.read(n))["ok"])
PYEOF
	assert_output $'True\nFalse'
	td_alive "$CTL_PID"
	"$TAPCTL" list >/dev/null
	mkimg "$TD_DIR/a.raw" 1M
	"$TAPCTL" create "aio:$TD_DIR/a.raw" >/dev/null
}

@test "non-root: refused by the socket's mode, and by SO_PEERCRED" {
	need setpriv
	id nobody >/dev/null 2>&1 || skip "no user nobody"
	ctl_start
	[ "$(stat -c %a "$CTL_RUN")" = 700 ]
	[ "$(stat -c %a "$CTL_RUN/ctl.sock")" = 700 ]
	chmod 0755 "$TD_DIR" "$CTL_RUN"
	run setpriv --reuid=nobody --regid=nogroup --clear-groups "$TAPCTL" list
	assert_failure 1
	assert_output --partial "permission denied"
	# past the file mode (CAP_DAC_OVERRIDE kept across the uid change):
	# the daemon itself must refuse the peer
	run setpriv --reuid=nobody --regid=nogroup --clear-groups \
		--inh-caps=+dac_override --ambient-caps=+dac_override \
		"$TAPCTL" list
	assert_failure 1
	assert_output --partial "permission denied: blktapctrl answers root only"
	grep -q "refusing control requests of uid $(id -u nobody)" "$CTL_LOG"
	"$TAPCTL" list >/dev/null
}

@test "a tapdisk slow to start holds up nobody; destroy waits for its create" {
	printf '#!/bin/bash\nsleep 2\nexec "%s" "$@"\n' "$TAPDISK" >"$TD_DIR/slow"
	chmod +x "$TD_DIR/slow"
	ctl_start --tapdisk "$TD_DIR/slow"
	mkimg "$TD_DIR/a.raw" 1M
	"$TAPCTL" --json create "aio:$TD_DIR/a.raw" >"$TD_DIR/create.out" &
	create=$!
	BG_PIDS+=("$create")
	ctl_wait_state 0 starting
	SECONDS=0
	run "$TAPCTL" list
	assert_success
	run "$TAPCTL" destroy -m 0
	assert_failure 1
	assert_output --partial "disk 0 (aio:$TD_DIR/a.raw) is busy: it is being created"
	run "$TAPCTL" info -m 0
	assert_failure 1
	assert_output --partial "its tapdisk is starting"
	[ "$SECONDS" -lt 2 ] || fail "the daemon answered only after the start"
	wait "$create"
	assert_equal "$(json_get 'j["minor"]' <"$TD_DIR/create.out")" 0
	assert_equal "$(ctl_field 0 "['state']")" running
}

@test "a tapdisk that dies during a pause: the pause fails at once, the death is noticed" {
	ctl_start
	mkimg "$TD_DIR/a.raw" 1M
	"$TAPCTL" create "aio:$TD_DIR/a.raw" >/dev/null
	pid=$(ctl_pid 0)
	# a stopped tapdisk answers nothing: the pause waits
	kill -STOP "$pid"
	"$TAPCTL" pause -m 0 >"$TD_DIR/pause.out" 2>&1 &
	pause=$!
	BG_PIDS+=("$pid" "$pause")
	sleep 0.5
	run "$TAPCTL" list
	assert_success
	assert_output --partial running
	kill -KILL "$pid"
	ctl_wait_state 0 failed
	! wait "$pause" || fail "pause succeeded"
	grep -q "tap-ctl: disk 0 (aio:$TD_DIR/a.raw): tapdisk $pid" "$TD_DIR/pause.out" ||
		fail "pause said: $(cat "$TD_DIR/pause.out")"
}

@test "the tapdisk path is configurable: a wrapper script runs it" {
	# the README's valgrind trick, with a logging wrapper
	printf '#!/bin/bash\necho "wrapped $*" >>"%s"\nexec "%s" "$@"\n' \
		"$TD_DIR/wrapper.out" "$TAPDISK" >"$TD_DIR/wrapper"
	chmod +x "$TD_DIR/wrapper"
	"$BLKTAPCTRL" -F --run-dir "$CTL_RUN" --tapdisk "$TD_DIR/wrapper" \
		</dev/null >"$TD_DIR/blktapctrl-w.log" 2>&1 3>&- &
	CTL_PID=$!
	for ((i = 0; i < 100; i++)); do
		"$TAPCTL" list >/dev/null 2>&1 && break
		sleep 0.05
	done
	mkimg "$TD_DIR/a.raw" 1M
	run "$TAPCTL" create "aio:$TD_DIR/a.raw"
	assert_success
	grep -q "wrapped --control $CTL_RUN/tapdisk-0.sock -- aio:$TD_DIR/a.raw" "$TD_DIR/wrapper.out"
	"$TAPCTL" destroy -m 0
}

