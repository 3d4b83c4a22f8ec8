#!/usr/bin/env bats
# RAM disks: private (ram:?size=) and named, shared between tapdisks
# through POSIX shared memory, alive while any tapdisk has them open.

load helpers

setup() {
	td_setup
	need nbdsh nbdinfo
}

@test "a private RAM disk has the size asked for and reads zeroes" {
	td_start "ram:?size=64M"
	run nbdinfo --size "$TD_URI"
	assert_success
	assert_output "67108864"
	run td_nbdsh "$TD_URI" <<'EOF'
assert h.pread(1 << 20, 0) == bytes(1 << 20)
assert h.pread(4096, (64 << 20) - 4096) == bytes(4096)
print("ok")
EOF
	assert_output "ok"
	td_stop
}

@test "RAM disk sizes take K, M, G and T suffixes (binary)" {
	for spec in 512K:524288 3M:3145728 1G:1073741824 1T:1099511627776; do
		td_start "ram:?size=${spec%%:*}"
		run nbdinfo --size "$TD_URI"
		assert_success
		assert_output "${spec##*:}"
		td_stop
	done
}

@test "a private RAM disk keeps what is written" {
	td_start "ram:?size=16M"
	run td_nbdsh "$TD_URI" <<'EOF'
import os
M = 1 << 20
a = os.urandom(3 * M)
h.pwrite(a, 5 * M)
assert h.pread(3 * M, 5 * M) == a
b = b"odd bytes"
h.pwrite(b, 12345)
assert h.pread(len(b), 12345) == b
h.flush()
h.zero(M, 6 * M)
assert h.pread(M, 6 * M) == bytes(M)
h.trim(M, 5 * M)
assert h.pread(M, 5 * M) == bytes(M)
assert h.pread(M, 7 * M) == a[2 * M:]
print("ok")
EOF
	assert_success
	assert_output "ok"
	td_stop
}

@test "a RAM disk refuses I/O past its end" {
	td_start "ram:?size=1M"
	run td_nbdsh "$TD_URI" <<'EOF'
import errno, nbd
for fn, args, want in ((h.pread, (4096, 1 << 20), errno.EINVAL),
                       (h.pwrite, (b"x" * 4096, 1 << 20), errno.ENOSPC)):
    try:
        fn(*args)
        raise AssertionError("%s past the end succeeded" % fn.__name__)
    except nbd.Error as e:
        assert e.errnum == want, (fn.__name__, e.errno)
print("ok")
EOF
	assert_success
	assert_output "ok"
	td_stop
}

@test "two private RAM disks are separate" {
	td_start "ram:?size=4M"
	a=$TD_URI
	td_start "ram:?size=4M"
	b=$TD_URI
	run td_nbdsh "$a" <<<'h.pwrite(b"A" * 4096, 0); h.flush(); print("ok")'
	assert_output "ok"
	run td_nbdsh "$b" <<<'print(h.pread(4096, 0) == bytes(4096))'
	assert_output "True"
	td_stop "${TD_PIDS[0]}"
	td_stop "${TD_PIDS[1]}"
}

@test "two tapdisks on the same named RAM disk see each other's writes" {
	name=${TD_ID}shared
	td_start "ram:$name?size=64M"
	a=$TD_URI
	td_start "ram:$name?size=64M"
	b=$TD_URI
	run td_nbdsh "$a" <<'EOF'
h.pwrite(b"from a" * 1000, 1 << 20)
h.flush()
print("ok")
EOF
	assert_output "ok"
	run td_nbdsh "$b" <<'EOF'
assert h.pread(6000, 1 << 20) == b"from a" * 1000
h.pwrite(b"from b" * 1000, 32 << 20)
h.flush()
print("ok")
EOF
	assert_output "ok"
	run td_nbdsh "$a" <<'EOF'
assert h.pread(6000, 32 << 20) == b"from b" * 1000
print("ok")
EOF
	assert_output "ok"
	td_stop "${TD_PIDS[0]}"
	td_stop "${TD_PIDS[1]}"
}

@test "ram:NAME without a size attaches to an existing RAM disk" {
	name=${TD_ID}attach
	td_start "ram:$name?size=8M"
	a=$TD_URI
	run td_nbdsh "$a" <<<'h.pwrite(b"\x5a" * 512, 4096); h.flush(); print("ok")'
	assert_output "ok"
	td_start "ram:$name"
	run nbdinfo --size "$TD_URI"
	assert_output "8388608"
	run td_nbdsh "$TD_URI" <<<'print(h.pread(512, 4096) == b"\x5a" * 512)'
	assert_output "True"
	td_stop "${TD_PIDS[1]}"
	td_stop "${TD_PIDS[0]}"
}

@test "a named RAM disk lives while any tapdisk has it open" {
	name=${TD_ID}life
	td_start "ram:$name?size=4M"
	run td_nbdsh "$TD_URI" <<<'h.pwrite(b"keep" * 256, 0); h.flush(); print("ok")'
	assert_output "ok"
	td_start "ram:$name"
	b=$TD_URI
	# the creator goes; the data stays while the second one serves it
	td_stop "${TD_PIDS[0]}"
	run td_nbdsh "$b" <<<'print(h.pread(1024, 0) == b"keep" * 256)'
	assert_output "True"
	# a third one can still attach through the second
	td_start "ram:$name"
	run td_nbdsh "$TD_URI" <<<'print(h.pread(1024, 0) == b"keep" * 256)'
	assert_output "True"
	td_stop "${TD_PIDS[1]}"
	td_stop "${TD_PIDS[2]}"
	# the last one gone, the RAM disk is gone: attaching fails...
	run timeout 10 "$TAPDISK" -n "unix:$TD_DIR/late.sock" "ram:$name"
	assert_failure
	assert_output --partial "$name"
	# ...and creating it again gives a fresh, zeroed disk
	td_start "ram:$name?size=4M"
	run td_nbdsh "$TD_URI" <<<'print(h.pread(1024, 0) == bytes(1024))'
	assert_output "True"
	td_stop
}

@test "a named RAM disk is gone after its tapdisk is killed with SIGKILL" {
	name=${TD_ID}crash
	td_start "ram:$name?size=4M"
	td_kill9
	run timeout 10 "$TAPDISK" -n "unix:$TD_DIR/late.sock" "ram:$name"
	# either refused (cleaned up) or attached to the leftover; never a hang
	if [ "$status" -eq 0 ]; then
		fail "tapdisk exited 0 without being stopped"
	fi
	[ "$status" -ne 124 ] || fail "tapdisk kept running: it attached to a dead disk's memory"
}

@test "a read-only tapdisk on a shared RAM disk refuses writes but sees others'" {
	name=${TD_ID}ro
	td_start "ram:$name?size=4M"
	rw=$TD_URI
	td_start "ram:$name" --readonly
	ro=$TD_URI
	run td_nbdsh "$ro" <<'EOF'
import errno, nbd
try:
    h.pwrite(b"x" * 512, 0)
    raise AssertionError("write on a read-only export succeeded")
except nbd.Error as e:
    assert e.errnum == errno.EPERM, e.errno
print("ok")
EOF
	assert_output "ok"
	run td_nbdsh "$rw" <<<'h.pwrite(b"rw" * 256, 0); h.flush(); print("ok")'
	assert_output "ok"
	run td_nbdsh "$ro" <<<'print(h.pread(512, 0) == b"rw" * 256)'
	assert_output "True"
	td_stop "${TD_PIDS[1]}"
	td_stop "${TD_PIDS[0]}"
}

@test "fio verifies data on a RAM disk" {
	need fio
	td_start "ram:?size=64M"
	run timeout -k 5 120 fio --name=ram --ioengine=nbd --uri="$TD_URI" --rw=randwrite \
		--bs=4k --size=16M --iodepth=16 --verify=crc32c --verify_state_save=0 --do_verify=1 \
		--numjobs=2 --offset_increment=32M --group_reporting
	assert_success
	refute_output --partial "verify: bad"
	td_stop
}
