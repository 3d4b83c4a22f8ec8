#!/usr/bin/env bats
# The control socket: 4-byte big-endian length + JSON, one reply each.

load helpers

setup() {
	td_setup
	need python3-libnbd
}

@test "info reports the image, size, engine and exports" {
	mkimg "$TD_DIR/disk.raw" 8M
	td_start "aio:$TD_DIR/disk.raw" -c "$TD_DIR/ctl.sock"
	run td_ctl "$TD_DIR/ctl.sock" info
	assert_success
	j=$output
	assert_equal "$(json_get 'j["ok"]' <<<"$j")" True
	assert_equal "$(json_get 'j["size"]' <<<"$j")" 8388608
	assert_equal "$(json_get 'j["readonly"]' <<<"$j")" False
	assert_equal "$(json_get 'j["pid"]' <<<"$j")" "$TD_PID"
	assert_equal "$(json_get '"'"$TD_DIR/disk.raw"'" in j["image"]' <<<"$j")" True
	assert_equal "$(json_get '"'"$TD_SOCK"'" in " ".join(j["nbd"])' <<<"$j")" True
	td_stop
}

@test "stats counts exactly what a client did" {
	mkimg "$TD_DIR/disk.raw" 8M
	td_start "aio:$TD_DIR/disk.raw" -c "$TD_DIR/ctl.sock"
	run td_nbdsh "$TD_URI" <<'EOF'
for i in range(5):
    h.pread(4096, i * 8192)
for i in range(3):
    h.pwrite(b"s" * 65536, i * 65536)
h.flush()
h.flush()
h.trim(65536, 1 << 20)
h.zero(65536, 2 << 20)
print("ok")
EOF
	assert_output "ok"
	run td_ctl "$TD_DIR/ctl.sock" stats
	assert_success
	s=$output
	assert_equal "$(json_get 'j["ok"]' <<<"$s")" True
	ops='j["stats"]["ops"]'
	assert_equal "$(json_get "$ops[\"read\"][\"requests\"]" <<<"$s")" 5
	assert_equal "$(json_get "$ops[\"read\"][\"bytes\"]" <<<"$s")" $((5 * 4096))
	assert_equal "$(json_get "$ops[\"write\"][\"requests\"]" <<<"$s")" 3
	assert_equal "$(json_get "$ops[\"write\"][\"bytes\"]" <<<"$s")" $((3 * 65536))
	assert_equal "$(json_get "$ops[\"flush\"][\"requests\"]" <<<"$s")" 2
	assert_equal "$(json_get "$ops[\"discard\"][\"requests\"]" <<<"$s")" 1
	assert_equal "$(json_get "$ops[\"write_zeroes\"][\"requests\"]" <<<"$s")" 1
	assert_equal "$(json_get "$ops[\"read\"][\"errors\"]" <<<"$s")" 0
	td_stop
}

@test "stats counts errors" {
	mkimg "$TD_DIR/disk.raw" 1M
	td_start "aio:$TD_DIR/disk.raw" -c "$TD_DIR/ctl.sock"
	run td_nbdsh "$TD_URI" <<'EOF'
import nbd
try:
    h.pread(4096, 1 << 20)
except nbd.Error:
    print("refused")
EOF
	assert_output "refused"
	run td_ctl "$TD_DIR/ctl.sock" stats
	assert_equal "$(json_get 'j["stats"]["ops"]["read"]["errors"]' <<<"$output")" 1
	td_stop
}

@test "stats on a fresh disk are all zero" {
	mkimg "$TD_DIR/disk.raw" 1M
	td_start "aio:$TD_DIR/disk.raw" -c "$TD_DIR/ctl.sock"
	run td_ctl "$TD_DIR/ctl.sock" stats
	assert_success
	assert_equal "$(json_get 'sum(o["requests"] for o in j["stats"]["ops"].values())' <<<"$output")" 0
	td_stop
}

@test "an unknown command gets ok:false with an error and an errno" {
	mkimg "$TD_DIR/disk.raw" 1M
	td_start "aio:$TD_DIR/disk.raw" -c "$TD_DIR/ctl.sock"
	run td_ctl "$TD_DIR/ctl.sock" frobnicate
	assert_success
	assert_equal "$(json_get 'j["ok"]' <<<"$output")" False
	assert_equal "$(json_get 'isinstance(j["error"], str) and j["errno"] > 0' <<<"$output")" True
	td_stop
}

# ctl_raw SOCK PAYLOAD: send one framed raw payload, print the reply (or
# "closed" if the server hangs up instead).
ctl_raw() {
	"$TD_PY" - "$1" "$2" <<'EOF'
import socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(30)
s.connect(sys.argv[1])
p = sys.argv[2].encode()
s.sendall(struct.pack(">I", len(p)) + p)
b = b""
while len(b) < 4:
    c = s.recv(4 - len(b))
    if not c:
        print("closed"); sys.exit(0)
    b += c
n = struct.unpack(">I", b)[0]
r = b""
while len(r) < n:
    c = s.recv(n - len(r))
    if not c:
        break
    r += c
print(r.decode())
EOF
}

@test "a wrong version, a missing command and bad JSON are refused" {
	mkimg "$TD_DIR/disk.raw" 1M
	td_start "aio:$TD_DIR/disk.raw" -c "$TD_DIR/ctl.sock"
	for payload in '{"version":99,"command":"info"}' '{"version":1}' \
		'not json at all' '[1,2,3]'; do
		run ctl_raw "$TD_DIR/ctl.sock" "$payload"
		assert_success
		[ "$output" = closed ] && continue
		assert_equal "$(json_get 'j["ok"]' <<<"$output")" False
	done
	# still answering
	run td_ctl "$TD_DIR/ctl.sock" info
	assert_equal "$(json_get 'j["ok"]' <<<"$output")" True
	td_stop
}

@test "several requests on one control connection get one reply each" {
	mkimg "$TD_DIR/disk.raw" 1M
	td_start "aio:$TD_DIR/disk.raw" -c "$TD_DIR/ctl.sock"
	run "$TD_PY" - "$TD_DIR/ctl.sock" <<'EOF'
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(30)
s.connect(sys.argv[1])
msgs = b""
for cmd in ("info", "stats", "info"):
    p = json.dumps({"version": 1, "command": cmd}).encode()
    msgs += struct.pack(">I", len(p)) + p
s.sendall(msgs)          # all three in one write
f = s.makefile("rb")
for cmd in ("info", "stats", "info"):
    n = struct.unpack(">I", f.read(4))[0]
    r = json.loads(f.read(n))
    assert r["ok"], r
    assert ("stats" in r) == (cmd == "stats"), (cmd, r)
print("ok")
EOF
	assert_success
	assert_output "ok"
	td_stop
}

@test "a garbage length does not kill tapdisk" {
	need nbdinfo
	mkimg "$TD_DIR/disk.raw" 1M
	td_start "aio:$TD_DIR/disk.raw" -c "$TD_DIR/ctl.sock"
	run "$TD_PY" - "$TD_DIR/ctl.sock" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(30)
s.connect(sys.argv[1])
s.sendall(b"\xff\xff\xff\xff" + b"x" * 100)
try:
    print(len(s.recv(65536)))
except OSError:
    print("closed")
EOF
	assert_success
	run nbdinfo --size "$TD_URI"
	assert_output "1048576"
	run td_ctl "$TD_DIR/ctl.sock" info
	assert_equal "$(json_get 'j["ok"]' <<<"$output")" True
	td_stop
}
