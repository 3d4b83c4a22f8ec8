#!/usr/bin/env bats
# Pause and resume through tapdisk's control socket: clients stay connected
# and see no error; resume may move the disk onto another image.

load helpers

setup() { td_setup; }
teardown() { td_teardown; }

# ctl_msg SOCK JSON: one control request with arbitrary members
ctl_msg() {
	"$TD_PY" - "$1" "$2" <<'EOF'
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(60)
s.connect(sys.argv[1])
m = json.loads(sys.argv[2])
m["version"] = 1
p = json.dumps(m).encode()
s.sendall(struct.pack(">I", len(p)) + p)
f = s.makefile("rb")
n = struct.unpack(">I", f.read(4))[0]
print(f.read(n).decode())
EOF
}

@test "pause and resume under fio with verify: no error, data intact" {
	need fio
	mkimg "$TD_DIR/disk.raw" 64M
	td_start "aio:$TD_DIR/disk.raw" -c "$TD_DIR/ctl.sock"
	fio --name=v --ioengine=nbd --uri="$TD_URI" --rw=randwrite --bs=4k \
		--iodepth=16 --size=32M --verify=crc32c --verify_state_save=0 \
		--output="$TD_DIR/fio.out" &
	fio_pid=$!
	sleep 1
	for i in 1 2 3; do
		run ctl_msg "$TD_DIR/ctl.sock" '{"command":"pause"}'
		assert_output --partial '"ok":true'
		run td_ctl "$TD_DIR/ctl.sock" info
		assert_output --partial '"paused": true'
		sleep 0.3
		run ctl_msg "$TD_DIR/ctl.sock" '{"command":"resume"}'
		assert_output --partial '"ok":true'
		sleep 0.3
	done
	wait "$fio_pid" || fail "fio failed: $(cat "$TD_DIR/fio.out")"
	grep -q 'err= 0' "$TD_DIR/fio.out"
	td_stop
}

@test "resume onto a copy of the image serves the copy" {
	need nbdsh
	mkimg "$TD_DIR/a.raw" 8M
	td_start "aio:$TD_DIR/a.raw" -c "$TD_DIR/ctl.sock"
	run td_nbdsh "$TD_URI" <<<'h.pwrite(b"A" * 4096, 0); h.flush()'
	assert_success
	run ctl_msg "$TD_DIR/ctl.sock" '{"command":"pause"}'
	assert_output --partial '"ok":true'
	cp "$TD_DIR/a.raw" "$TD_DIR/b.raw"
	run ctl_msg "$TD_DIR/ctl.sock" \
		"{\"command\":\"resume\",\"image\":\"aio:$TD_DIR/b.raw\"}"
	assert_output --partial '"ok":true'
	assert_output --partial "b.raw"
	run td_nbdsh "$TD_URI" <<<'print(h.pread(4096, 0) == b"A" * 4096); h.pwrite(b"B" * 4096, 0); h.flush()'
	assert_output "True"
	# the write after the resume went to the copy only
	[ "$(head -c 1 "$TD_DIR/a.raw")" = A ]
	[ "$(head -c 1 "$TD_DIR/b.raw")" = B ]
	td_stop
}

@test "resume onto an image of another size is refused and stays paused" {
	mkimg "$TD_DIR/a.raw" 8M
	mkimg "$TD_DIR/big.raw" 16M
	td_start "aio:$TD_DIR/a.raw" -c "$TD_DIR/ctl.sock"
	ctl_msg "$TD_DIR/ctl.sock" '{"command":"pause"}'
	run ctl_msg "$TD_DIR/ctl.sock" \
		"{\"command\":\"resume\",\"image\":\"aio:$TD_DIR/big.raw\"}"
	assert_output --partial '"ok":false'
	assert_output --partial "size"
	run td_ctl "$TD_DIR/ctl.sock" info
	assert_output --partial '"paused": true'
	run ctl_msg "$TD_DIR/ctl.sock" \
		"{\"command\":\"resume\",\"image\":\"aio:$TD_DIR/missing.raw\"}"
	assert_output --partial '"ok":false'
	run ctl_msg "$TD_DIR/ctl.sock" '{"command":"resume"}'
	assert_output --partial '"ok":true'
	td_stop
}

@test "pause twice and resume when running are errors" {
	mkimg "$TD_DIR/a.raw" 8M
	td_start "aio:$TD_DIR/a.raw" -c "$TD_DIR/ctl.sock"
	run ctl_msg "$TD_DIR/ctl.sock" '{"command":"resume"}'
	assert_output --partial '"ok":false'
	ctl_msg "$TD_DIR/ctl.sock" '{"command":"pause"}'
	run ctl_msg "$TD_DIR/ctl.sock" '{"command":"pause"}'
	assert_output --partial '"ok":false'
	ctl_msg "$TD_DIR/ctl.sock" '{"command":"resume"}'
	td_stop
}

@test "SIGTERM while paused with a request waiting exits cleanly" {
	need nbdsh
	mkimg "$TD_DIR/a.raw" 8M
	td_start "aio:$TD_DIR/a.raw" -c "$TD_DIR/ctl.sock"
	ctl_msg "$TD_DIR/ctl.sock" '{"command":"pause"}'
	td_nbdsh "$TD_URI" <<<'h.pread(4096, 0)' >"$TD_DIR/client.out" 2>&1 &
	client=$!
	sleep 0.5
	td_stop
	wait "$client" || true
}
