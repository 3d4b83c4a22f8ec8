#!/usr/bin/env bats
# The NBD protocol, command by command, through nbdsh (libnbd's Python
# shell). Strict mode is off in td_nbdsh so that the server answers every
# request, including the ones it must refuse.

load helpers

setup() {
	td_setup
	need nbdsh
}

# Python prelude for the scripts below: errno names, a helper that expects a
# request to fail with one, and block status collected over a range.
PY_PRELUDE='
import errno, nbd
M = 1024 * 1024
def expect_errno(name, fn, *args):
    try:
        fn(*args)
    except nbd.Error as e:
        assert e.errnum == getattr(errno, name), \
            "%s: got %s (%s), want %s" % (fn.__name__, e.errno, e.string, name)
        return
    raise AssertionError("%s%r succeeded, want %s" % (fn.__name__, args, name))
def extents(off, count):
    """[(start, len, flags)] from base:allocation, covering off..off+count"""
    out = []
    end = off + count
    while off < end:
        got = []
        def cb(ctx, o, entries, *rest):
            if ctx == nbd.CONTEXT_BASE_ALLOCATION:
                got.extend(entries)
            return 0
        h.block_status(end - off, off, cb)
        assert got, "no extents at %d" % off
        for i in range(0, len(got), 2):
            ln, fl = got[i], got[i + 1]
            assert ln > 0, "zero-length extent at %d" % off
            out.append((off, ln, fl))
            off += ln
    # merge neighbours with the same flags, clip at the end
    merged = []
    for s, ln, fl in out:
        if merged and merged[-1][2] == fl and merged[-1][0] + merged[-1][1] == s:
            merged[-1] = (merged[-1][0], merged[-1][1] + ln, fl)
        else:
            merged.append((s, ln, fl))
    s, ln, fl = merged[-1]
    merged[-1] = (s, min(ln, end - s), fl)
    return merged
'

nbdpy() {
	td_nbdsh "$1" <<<"$PY_PRELUDE
$(cat)"
}

@test "handshake: structured replies and base:allocation are negotiated" {
	mkimg "$TD_DIR/disk.raw" 16M
	td_start "aio:$TD_DIR/disk.raw"
	run nbdpy "$TD_URI" <<'EOF'
assert h.get_structured_replies_negotiated()
assert h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
assert h.get_size() == 16 * M
assert h.get_protocol() == "newstyle-fixed", h.get_protocol()
print("ok")
EOF
	assert_success
	assert_output "ok"
	td_stop
}

@test "write then read back, aligned and unaligned" {
	mkimg "$TD_DIR/disk.raw" 16M
	td_start "aio:$TD_DIR/disk.raw"
	run nbdpy "$TD_URI" <<'EOF'
import os
a = os.urandom(M)
h.pwrite(a, 2 * M)
assert h.pread(M, 2 * M) == a
b = b"hello, blktap"
h.pwrite(b, 4095)                      # straddles a 4 KiB boundary
assert h.pread(len(b), 4095) == b
assert h.pread(4095, 0) == bytes(4095)  # the neighbours are untouched
assert h.pread(100, 4095 + len(b)) == bytes(100)
c = os.urandom(777)
h.pwrite(c, 3 * M - 300)               # inside and past an aligned write
assert h.pread(777, 3 * M - 300) == c
assert h.pread(M - 300, 2 * M) == a[:M - 300]
h.flush()
print("ok")
EOF
	assert_success
	assert_output "ok"
	td_stop
	# the file holds the unaligned write
	run dd if="$TD_DIR/disk.raw" bs=1 skip=4095 count=13 status=none
	assert_output "hello, blktap"
}

@test "a read of a hole returns zeroes" {
	mkimg "$TD_DIR/disk.raw" 16M
	td_start "aio:$TD_DIR/disk.raw"
	run nbdpy "$TD_URI" <<'EOF'
assert h.pread(4 * M, 0) == bytes(4 * M)
print("ok")
EOF
	assert_success
	assert_output "ok"
	td_stop
}

@test "zeroes are answered with one hole chunk, data with a data chunk (DF too)" {
	mkimg "$TD_DIR/disk.raw" 16M
	td_start "aio:$TD_DIR/disk.raw"
	run nbdpy "$TD_URI" <<'EOF'
h.pwrite(b"\1" * 4096, 8192)
h.pwrite(bytes(4096), 16384)  # allocated, but zeroes
for off, n, flags in ((0, 65536, 0), (0, 65536, nbd.CMD_FLAG_DF),
                      (16384, 4096, 0), (1 * M, 1 * M, nbd.CMD_FLAG_DF)):
    chunks = []
    def cb(sub, o, status, err):
        chunks.append((o, len(sub), status))
        return 0
    buf = h.pread_structured(n, off, cb, flags)
    print(off, flags, chunks, buf.count(0) == len(buf))
EOF
	assert_success
	assert_line "0 0 [(0, 65536, 1)] False"
	assert_line "0 4 [(0, 65536, 1)] False"
	assert_line "16384 0 [(16384, 4096, 2)] True"
	assert_line "1048576 4 [(1048576, 1048576, 2)] True"
	td_stop
}

@test "large requests: 16 MiB write and read" {
	mkimg "$TD_DIR/disk.raw" 64M
	td_start "aio:$TD_DIR/disk.raw"
	run nbdpy "$TD_URI" <<'EOF'
import os
a = os.urandom(16 * M)
h.pwrite(a, 7 * M)
assert h.pread(16 * M, 7 * M) == a
print("ok")
EOF
	assert_success
	assert_output "ok"
	td_stop
}

@test "many requests in flight at once, past --max-inflight" {
	mkimg "$TD_DIR/disk.raw" 16M
	td_start "aio:$TD_DIR/disk.raw" --max-inflight 4
	run nbdpy "$TD_URI" <<'EOF'
import time
deadline = time.monotonic() + 120     # a hang fails here, not in CI's timeout
def wait_all():
    while h.aio_in_flight() > 0:
        assert time.monotonic() < deadline, \
            "%d requests never completed" % h.aio_in_flight()
        h.poll(1000)
cookies = []
for i in range(256):
    cookies.append(h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray([i]) * 4096), i * 8192))
wait_all()
for c in cookies:
    assert h.aio_command_completed(c)
bufs = [nbd.Buffer(4096) for i in range(256)]
cookies = [h.aio_pread(bufs[i], i * 8192) for i in range(256)]
wait_all()
for i, c in enumerate(cookies):
    assert h.aio_command_completed(c)
    assert bufs[i].to_bytearray() == bytes([i]) * 4096, "block %d" % i
print("ok")
EOF
	assert_success
	assert_output "ok"
	td_stop
}

@test "TRIM then read zeroes" {
	mkimg_random "$TD_DIR/disk.raw" 16
	td_start "aio:$TD_DIR/disk.raw"
	run nbdpy "$TD_URI" <<'EOF'
assert h.can_trim()
before = h.pread(4096, 4 * M - 4096)
h.trim(4 * M, 4 * M)
h.flush()
assert h.pread(4 * M, 4 * M) == bytes(4 * M)
assert h.pread(4096, 4 * M - 4096) == before    # neighbours intact
assert h.pread(4096, 8 * M) != bytes(4096)
print("ok")
EOF
	assert_success
	assert_output "ok"
	td_stop
}

@test "WRITE_ZEROES without NO_HOLE reads zeroes and frees the space" {
	mkimg_random "$TD_DIR/disk.raw" 16
	sync "$TD_DIR/disk.raw"
	before=$(allocated_kib "$TD_DIR/disk.raw")
	td_start "aio:$TD_DIR/disk.raw"
	run nbdpy "$TD_URI" <<'EOF'
assert h.can_zero()
h.zero(8 * M, 4 * M)
h.flush()
assert h.pread(8 * M, 4 * M) == bytes(8 * M)
assert h.pread(4096, 4 * M - 4096) != bytes(4096)
assert h.pread(4096, 12 * M) != bytes(4096)
print("ok")
EOF
	assert_success
	assert_output "ok"
	td_stop
	after=$(allocated_kib "$TD_DIR/disk.raw")
	# 8 MiB punched out (allow the file system a little slack)
	[ "$after" -le $((before - 8 * 1024 + 64)) ] ||
		fail "allocation $before KiB -> $after KiB: the zeroed range was not punched"
	run data_ranges "$TD_DIR/disk.raw"
	assert_output "$(printf '0 4194304\n12582912 16777216')"
}

@test "WRITE_ZEROES with NO_HOLE reads zeroes and keeps the space allocated" {
	mkimg "$TD_DIR/disk.raw" 16M
	before=$(allocated_kib "$TD_DIR/disk.raw")
	td_start "aio:$TD_DIR/disk.raw"
	run nbdpy "$TD_URI" <<'EOF'
h.pwrite(b"\xff" * M, 2 * M)
h.zero(8 * M, 2 * M, nbd.CMD_FLAG_NO_HOLE)   # over the data and the hole
h.flush()
assert h.pread(10 * M, 0) == bytes(10 * M)
print("ok")
EOF
	assert_success
	assert_output "ok"
	td_stop
	after=$(allocated_kib "$TD_DIR/disk.raw")
	# 2 MiB data + 6 MiB of hole, all allocated now
	[ "$after" -ge $((before + 8 * 1024)) ] ||
		fail "allocation $before KiB -> $after KiB: NO_HOLE left a hole"
	cmp -n $((10 * 1024 * 1024)) "$TD_DIR/disk.raw" /dev/zero
}

@test "FAST_ZERO on a raw file succeeds and reads zeroes" {
	mkimg_random "$TD_DIR/disk.raw" 8
	td_start "aio:$TD_DIR/disk.raw"
	run nbdpy "$TD_URI" <<'EOF'
assert h.can_fast_zero()
h.zero(M, M, nbd.CMD_FLAG_FAST_ZERO)
h.zero(M, 4 * M, nbd.CMD_FLAG_FAST_ZERO | nbd.CMD_FLAG_NO_HOLE)
assert h.pread(M, M) == bytes(M)
assert h.pread(M, 4 * M) == bytes(M)
print("ok")
EOF
	assert_success
	assert_output "ok"
	td_stop
}

@test "FLUSH and FUA writes are accepted" {
	mkimg "$TD_DIR/disk.raw" 8M
	td_start "aio:$TD_DIR/disk.raw"
	run nbdpy "$TD_URI" <<'EOF'
assert h.can_flush() and h.can_fua()
h.flush()
h.pwrite(b"\x42" * 65536, 0, nbd.CMD_FLAG_FUA)
h.zero(65536, 65536, nbd.CMD_FLAG_FUA)
h.trim(65536, 131072, nbd.CMD_FLAG_FUA)
h.flush()
assert h.pread(65536, 0) == b"\x42" * 65536
print("ok")
EOF
	assert_success
	assert_output "ok"
	td_stop
}

@test "CACHE is accepted" {
	mkimg_random "$TD_DIR/disk.raw" 4
	td_start "aio:$TD_DIR/disk.raw"
	run nbdpy "$TD_URI" <<'EOF'
assert h.can_cache()
h.cache(M, 0)
h.cache(4096, 4 * M - 4096)
print("ok")
EOF
	assert_success
	assert_output "ok"
	td_stop
}

@test "block status reports data and holes where they are" {
	mkimg "$TD_DIR/disk.raw" 16M
	dd if=/dev/urandom of="$TD_DIR/disk.raw" bs=1M seek=2 count=1 conv=notrunc status=none
	dd if=/dev/urandom of="$TD_DIR/disk.raw" bs=64K seek=100 count=2 conv=notrunc status=none
	td_start "aio:$TD_DIR/disk.raw"
	run nbdpy "$TD_URI" <<'EOF'
got = extents(0, 16 * M)
want = [(0, 2 * M, 3), (2 * M, M, 0), (3 * M, 100 * 65536 - 3 * M, 3),
        (100 * 65536, 2 * 65536, 0), (102 * 65536, 16 * M - 102 * 65536, 3)]
assert got == want, "got %r" % got
# a request starting inside a hole, and one inside data
assert extents(M, M) == [(M, M, 3)], extents(M, M)
assert extents(2 * M + 4096, 4096) == [(2 * M + 4096, 4096, 0)]
# REQ_ONE: exactly one extent, no longer than asked
got = []
h.block_status(8 * M, 0, lambda c, o, e, *r: got.extend(e) or 0,
               nbd.CMD_FLAG_REQ_ONE)
assert len(got) == 2 and got[1] == 3 and 0 < got[0] <= 2 * M, got
print("ok")
EOF
	assert_success
	assert_output "ok"
	td_stop
}

@test "block status follows writes and trims" {
	mkimg "$TD_DIR/disk.raw" 8M
	td_start "aio:$TD_DIR/disk.raw"
	run nbdpy "$TD_URI" <<'EOF'
assert extents(0, 8 * M) == [(0, 8 * M, 3)]
h.pwrite(b"\x01" * M, 4 * M)
h.flush()
assert extents(0, 8 * M) == [(0, 4 * M, 3), (4 * M, M, 0), (5 * M, 3 * M, 3)], \
    extents(0, 8 * M)
h.trim(M, 4 * M)
h.flush()
e = extents(0, 8 * M)
assert h.pread(M, 4 * M) == bytes(M)
# trimmed space reads as zero; it may or may not be reported as a hole
assert all(fl & 2 for s, ln, fl in e if s < 5 * M and s + ln > 4 * M), e
print("ok")
EOF
	assert_success
	assert_output "ok"
	td_stop
}

@test "a read past the end fails with EINVAL" {
	mkimg "$TD_DIR/disk.raw" 1M
	td_start "aio:$TD_DIR/disk.raw"
	run nbdpy "$TD_URI" <<'EOF'
expect_errno("EINVAL", h.pread, 4096, M)
expect_errno("EINVAL", h.pread, 8192, M - 4096)   # crosses the end
assert h.pread(4096, M - 4096) == bytes(4096)     # still serving
print("ok")
EOF
	assert_success
	assert_output "ok"
	td_stop
}

@test "a write past the end fails with ENOSPC" {
	mkimg "$TD_DIR/disk.raw" 1M
	td_start "aio:$TD_DIR/disk.raw"
	run nbdpy "$TD_URI" <<'EOF'
expect_errno("ENOSPC", h.pwrite, b"x" * 4096, M)
expect_errno("ENOSPC", h.pwrite, b"x" * 8192, M - 4096)
assert h.pread(4096, M - 4096) == bytes(4096)     # nothing was written
h.pwrite(b"y" * 4096, M - 4096)                   # the last block is fine
print("ok")
EOF
	assert_success
	assert_output "ok"
	td_stop
	[ "$(stat -c %s "$TD_DIR/disk.raw")" -eq 1048576 ] || fail "the file grew"
}

@test "a read-only export refuses writes, trims and zeroes with EPERM" {
	mkimg_random "$TD_DIR/disk.raw" 1
	want=$(sha "$TD_DIR/disk.raw")
	td_start "aio:$TD_DIR/disk.raw" --readonly
	run nbdpy "$TD_URI" <<'EOF'
assert h.is_read_only()
expect_errno("EPERM", h.pwrite, b"x" * 4096, 0)
expect_errno("EPERM", h.trim, 4096, 0)
expect_errno("EPERM", h.zero, 4096, 0)
h.flush()
assert len(h.pread(4096, 0)) == 4096
print("ok")
EOF
	assert_success
	assert_output "ok"
	td_stop
	assert_equal "$(sha "$TD_DIR/disk.raw")" "$want"
}

@test "nbdsh to a wrong export name fails; the right one works" {
	mkimg "$TD_DIR/disk.raw" 1M
	td_start "aio:$TD_DIR/disk.raw" -e right
	run nbdsh -u "nbd+unix:///wrong?socket=$TD_SOCK" -c 'print(h.get_size())'
	assert_failure
	run nbdsh -u "nbd+unix:///right?socket=$TD_SOCK" -c 'print(h.get_size())'
	assert_success
	assert_output "1048576"
	td_stop
}

@test "NBD_OPT_INFO / GO report the export's block sizes" {
	mkimg "$TD_DIR/disk.raw" 1M
	td_start "aio:$TD_DIR/disk.raw"
	run nbdpy "$TD_URI" <<'EOF'
mn = h.get_block_size(nbd.SIZE_MINIMUM)
pf = h.get_block_size(nbd.SIZE_PREFERRED)
mx = h.get_block_size(nbd.SIZE_MAXIMUM)
# when advertised, they must be sane: 1 <= min <= preferred, max >= 1 MiB
if mn:
    assert mn & (mn - 1) == 0 and mn <= 4096, mn
    assert pf >= mn, (mn, pf)
    assert mx >= M, mx
print("ok")
EOF
	assert_success
	assert_output "ok"
	td_stop
}

@test "a client disconnecting (DISC) leaves the server serving others" {
	mkimg "$TD_DIR/disk.raw" 1M
	td_start "aio:$TD_DIR/disk.raw"
	for i in 1 2 3; do
		run nbdpy "$TD_URI" <<EOF
h.pwrite(b"$i" * 512, $i * 512)
h.shutdown()
print("ok")
EOF
		assert_success
	done
	run nbdpy "$TD_URI" <<'EOF'
assert h.pread(512, 1024) == b"2" * 512
print("ok")
EOF
	assert_output "ok"
	td_stop
}

@test "a client that vanishes mid-request leaves the server serving" {
	mkimg "$TD_DIR/disk.raw" 64M
	td_start "aio:$TD_DIR/disk.raw"
	# queue many large requests and exit without reading the replies
	run nbdpy "$TD_URI" <<'EOF'
import os
for i in range(32):
    h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(b"\x33") * (2 * M)), i * 2 * M)
for i in range(32):
    h.aio_pread(nbd.Buffer(2 * M), i * 2 * M)
h.poll(0)
os._exit(0)
EOF
	run nbdpy "$TD_URI" <<'EOF'
h.pwrite(b"\x44" * 4096, 0)
assert h.pread(4096, 0) == b"\x44" * 4096
print("ok")
EOF
	assert_success
	assert_output "ok"
	td_stop
}

@test "garbage instead of a handshake does not hurt the server" {
	need socat
	mkimg "$TD_DIR/disk.raw" 1M
	td_start "aio:$TD_DIR/disk.raw"
	head -c 4096 /dev/urandom | socat -t 2 - "UNIX-CONNECT:$TD_SOCK" >/dev/null 2>&1 || true
	printf 'NBDMAGICIHAVEOPT\0\0\0\0' | socat -t 2 - "UNIX-CONNECT:$TD_SOCK" >/dev/null 2>&1 || true
	run nbdpy "$TD_URI" <<'EOF'
print(h.get_size())
EOF
	assert_success
	assert_output "1048576"
	td_stop
}
