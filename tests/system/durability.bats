#!/usr/bin/env bats
# What survives: FUA and flushed writes across kill -9, clean shutdown
# with clients connected.

load helpers

setup() {
	td_setup
	need nbdsh
}

@test "a FUA write is in the file after kill -9" {
	mkimg "$TD_DIR/disk.raw" 16M
	td_start "aio:$TD_DIR/disk.raw"
	run td_nbdsh "$TD_URI" <<'EOF'
import nbd
h.pwrite(b"\xfa" * 65536, 3 << 20, nbd.CMD_FLAG_FUA)
print("acked")
EOF
	assert_output "acked"
	td_kill9
	cmp -i $((3 << 20)):0 -n 65536 "$TD_DIR/disk.raw" \
		<(head -c 65536 /dev/zero | tr '\0' '\372')
}

@test "a FUA write on a sync: image is in the file after kill -9" {
	mkimg "$TD_DIR/disk.raw" 16M
	td_start "sync:$TD_DIR/disk.raw"
	run td_nbdsh "$TD_URI" <<'EOF'
import nbd
h.pwrite(b"\xfb" * 4096, 4096, nbd.CMD_FLAG_FUA)
print("acked")
EOF
	assert_output "acked"
	td_kill9
	cmp -i 4096:0 -n 4096 "$TD_DIR/disk.raw" <(head -c 4096 /dev/zero | tr '\0' '\373')
}

# The writer used below: round i writes 64 KiB of a pattern of i at
# i * 64 KiB, then flushes, then records i (fsynced) in the journal.
WRITER='
import os
jfd = os.open(JOURNAL, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
size = h.get_size()
i = 0
while (i + 1) * 65536 <= size:
    block = (b"round %08d " % i) * (65536 // 15)
    block += b"." * (65536 - len(block))
    h.pwrite(block, i * 65536)
    if i % 3 == 0:
        h.pwrite(block[:4096], i * 65536)   # rewrite, same data
    h.flush()
    os.write(jfd, b"%d\n" % i)
    os.fsync(jfd)
    i += 1
'

@test "kill -9 during a write loop keeps every flushed write" {
	need nbdinfo nbdcopy
	mkimg "$TD_DIR/disk.raw" 64M
	td_start "aio:$TD_DIR/disk.raw"
	journal=$TD_DIR/journal
	td_nbdsh "$TD_URI" <<<"JOURNAL = '$journal'
$WRITER" >"$TD_DIR/writer.out" 2>&1 3>&- &
	writer=$!
	BG_PIDS+=("$writer")
	# let it complete some rounds (bounded), then crash the server
	for ((n = 0; n < 600; n++)); do
		[ -f "$journal" ] && [ "$(wc -l <"$journal")" -ge 40 ] && break
		td_alive "$writer" || break
		sleep 0.05
	done
	[ -f "$journal" ] && [ "$(wc -l <"$journal")" -ge 40 ] ||
		fail "writer made no progress: $(cat "$TD_DIR/writer.out")"
	td_kill9
	wait "$writer" || true	# it loses its server mid-loop
	flushed=$(tail -n 1 "$journal")
	# every round the journal records is in the file, intact
	run "$TD_PY" - "$TD_DIR/disk.raw" "$journal" <<'EOF'
import sys
img = open(sys.argv[1], "rb").read()
rounds = [int(l) for l in open(sys.argv[2]) if l.strip()]
for i in rounds:
    block = (b"round %08d " % i) * (65536 // 15)
    got = img[i * 65536:i * 65536 + len(block)]
    assert got == block, "round %d flushed but not in the image" % i
print(len(rounds))
EOF
	assert_success
	assert_output "$((flushed + 1))"
	# and the image serves again, whole and readable
	td_start "aio:$TD_DIR/disk.raw"
	run nbdinfo --size "$TD_URI"
	assert_output "67108864"
	nbdcopy "$TD_URI" "$TD_DIR/copy.raw"
	cmp "$TD_DIR/disk.raw" "$TD_DIR/copy.raw"
	td_stop
}

@test "SIGTERM with clients connected exits 0 and removes the socket" {
	mkimg "$TD_DIR/disk.raw" 16M
	td_start "aio:$TD_DIR/disk.raw"
	# two idle clients holding their connections open
	for i in 1 2; do
		nbdsh -u "$TD_URI" -c 'import time; time.sleep(60)' \
			>/dev/null 2>&1 3>&- &
		BG_PIDS+=($!)
	done
	# wait (bounded) until both are connected
	for ((n = 0; n < 200; n++)); do
		[ "$(ss -xH state connected 2>/dev/null | grep -c "$TD_SOCK")" -ge 2 ] && break
		sleep 0.05
	done
	td_stop
	assert [ ! -e "$TD_SOCK" ]
}

@test "SIGTERM during a stream of writes: every acknowledged write is in the file" {
	mkimg "$TD_DIR/disk.raw" 64M
	td_start "aio:$TD_DIR/disk.raw"
	journal=$TD_DIR/journal
	# acknowledged (not flushed) writes are recorded; a clean shutdown
	# must finish in-flight requests and flush them all
	td_nbdsh "$TD_URI" <<EOF >"$TD_DIR/writer.out" 2>&1 3>&- &
import os
jfd = os.open("$journal", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
for i in range(1024):
    h.pwrite(bytes([i % 251 + 1]) * 65536, i * 65536)
    os.write(jfd, b"%d\n" % i)
EOF
	writer=$!
	BG_PIDS+=("$writer")
	for ((n = 0; n < 600; n++)); do
		[ -f "$journal" ] && [ "$(wc -l <"$journal")" -ge 20 ] && break
		td_alive "$writer" || break
		sleep 0.05
	done
	td_stop
	wait "$writer" || true
	run "$TD_PY" - "$TD_DIR/disk.raw" "$journal" <<'EOF'
import sys
img = open(sys.argv[1], "rb").read()
rounds = [int(l) for l in open(sys.argv[2]) if l.strip()]
assert rounds, "no write was acknowledged"
for i in rounds:
    assert img[i * 65536:(i + 1) * 65536] == bytes([i % 251 + 1]) * 65536, \
        "acknowledged write %d missing" % i
print("ok")
EOF
	assert_success
	assert_output "ok"
}

@test "data written before SIGTERM is in the file after exit" {
	mkimg "$TD_DIR/disk.raw" 4M
	td_start "aio:$TD_DIR/disk.raw"
	run td_nbdsh "$TD_URI" <<'EOF'
h.pwrite(b"\x99" * 8192, 8192)
print("ok")
EOF
	assert_output "ok"
	td_stop
	cmp -i 8192:0 -n 8192 "$TD_DIR/disk.raw" <(head -c 8192 /dev/zero | tr '\0' '\231')
}

@test "a second SIGTERM during shutdown does not hang" {
	mkimg "$TD_DIR/disk.raw" 4M
	td_start "aio:$TD_DIR/disk.raw"
	kill -TERM "$TD_PID"
	kill -TERM "$TD_PID" 2>/dev/null || true
	td_wait_gone "$TD_PID" "$TD_WAIT_SECS" || fail "tapdisk still running"
	assert [ ! -e "$TD_SOCK" ]
}
