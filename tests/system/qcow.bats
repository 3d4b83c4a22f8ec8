#!/usr/bin/env bats
# qcow (version 1) images served over NBD, with qemu-img and qemu-io as the
# referee: images qemu writes serve right, and what clients write through
# tapdisk is what qemu reads, also after tapdisk is killed mid-write.

load helpers

setup() {
	td_setup
	need qemu-img qemu-io nbdcopy
}

@test "a qcow image made by qemu serves its data (qcow: and probed)" {
	mkimg_random "$TD_DIR/src.raw" 16
	# qemu-img 7.2 exits 1 after writing qcow images; compare decides
	qemu-img convert -f raw -O qcow "$TD_DIR/src.raw" "$TD_DIR/a.qcow" || true
	run qemu-img compare -f raw -F qcow "$TD_DIR/src.raw" "$TD_DIR/a.qcow"
	assert_success
	td_start "qcow:$TD_DIR/a.qcow"
	run qemu-img compare -f raw -F raw "$TD_DIR/src.raw" "$TD_URI"
	assert_success
	td_stop
	td_start "$TD_DIR/a.qcow"
	assert grep -q "qcow:$TD_DIR/a.qcow" "$TD_LOG"
	run qemu-img compare -f raw -F raw "$TD_DIR/src.raw" "$TD_URI"
	assert_success
	td_stop
}

@test "compressed clusters (qemu-img convert -c) serve their data" {
	"$TD_PY" - "$TD_DIR/src.raw" <<'EOF'
import os, sys
with open(sys.argv[1], "wb") as f:
    for i in range(4096):
        f.write(bytes([i % 251]) * 2048 + os.urandom(16) + bytes(2032))
EOF
	qemu-img convert -c -f raw -O qcow "$TD_DIR/src.raw" "$TD_DIR/c.qcow" || true
	run qemu-img compare -f raw -F qcow "$TD_DIR/src.raw" "$TD_DIR/c.qcow"
	assert_success
	# compressed for real: much smaller than the data
	[ "$(stat -c %s "$TD_DIR/c.qcow")" -lt $((8 << 20)) ]
	td_start "qcow:$TD_DIR/c.qcow"
	run qemu-img compare -f raw -F raw "$TD_DIR/src.raw" "$TD_URI"
	assert_success
	td_stop
}

@test "nbdcopy a random file into an empty qcow image; qemu reads it" {
	mkimg_random "$TD_DIR/src.raw" 32
	qemu-img create -q -f qcow "$TD_DIR/w.qcow" 32M
	td_start "qcow:$TD_DIR/w.qcow"
	run nbdcopy "$TD_DIR/src.raw" "$TD_URI"
	assert_success
	run qemu-img compare -f raw -F raw "$TD_DIR/src.raw" "$TD_URI"
	assert_success
	td_stop
	run qemu-img compare -f raw -F qcow "$TD_DIR/src.raw" "$TD_DIR/w.qcow"
	assert_success
	# the image grew by appending: no bigger than the data and its tables
	[ "$(stat -c %s "$TD_DIR/w.qcow")" -lt $(((32 << 20) + (1 << 20))) ]
}

@test "a copy-on-write image over a raw file: writes land in the qcow only" {
	mkimg_random "$TD_DIR/base.raw" 8
	cp "$TD_DIR/base.raw" "$TD_DIR/base.orig"
	qemu-img create -q -f qcow -b base.raw -F raw "$TD_DIR/cow.qcow"
	td_start "qcow:$TD_DIR/cow.qcow"
	run td_nbdsh "$TD_URI" <<EOF
import os
base = open("$TD_DIR/base.raw", "rb").read()
assert h.pread(len(base), 0) == base
a = os.urandom(10000)
h.pwrite(a, 123457 - 123457 % 512 + 512)  # partial clusters at both ends
h.pwrite(b"x" * 512, 8 * 1024 * 1024 - 512)
h.flush()
print("ok")
EOF
	assert_success
	assert_output "ok"
	td_stop
	cmp "$TD_DIR/base.raw" "$TD_DIR/base.orig"
	qemu-img convert -f qcow -O raw "$TD_DIR/cow.qcow" "$TD_DIR/out.raw"
	td_start "qcow:$TD_DIR/cow.qcow"
	run qemu-img compare -f raw -F raw "$TD_DIR/out.raw" "$TD_URI"
	assert_success
	td_stop
	# what qemu reads: the backing file, with the two writes on top
	run "$TD_PY" - "$TD_DIR/base.raw" "$TD_DIR/out.raw" <<'EOF'
import sys
base = open(sys.argv[1], "rb").read()
out = open(sys.argv[2], "rb").read()
off = 123457 - 123457 % 512 + 512
assert out[:off] == base[:off]
assert out[off + 10240:len(out) - 512] == base[off + 10240:len(out) - 512]
assert out[-512:] == b"x" * 512
print("ok")
EOF
	assert_output "ok"
}

@test "kill -9 during allocating writes leaves an image qemu reads" {
	need nbdsh
	qemu-img create -q -f qcow "$TD_DIR/k.qcow" 64M
	td_start "qcow:$TD_DIR/k.qcow"
	progress=$TD_DIR/progress
	td_nbdsh "$TD_URI" >"$TD_DIR/writer.out" 2>&1 3>&- <<EOF &
import os
size = h.get_size()
i = 0
while True:
    off = (i * 7919 * 4096) % size
    h.pwrite((b"%08d" % i) * 512, off)
    if i % 50 == 0:
        h.flush()
        with open("$progress", "w") as f:
            f.write(str(i))
    i += 1
EOF
	writer=$!
	BG_PIDS+=("$writer")
	for ((n = 0; n < 600; n++)); do
		[ -f "$progress" ] && [ "$(cat "$progress")" -ge 500 ] && break
		td_alive "$writer" || break
		sleep 0.05
	done
	[ -f "$progress" ] || fail "writer made no progress: $(cat "$TD_DIR/writer.out")"
	td_kill9
	wait "$writer" || true
	# qemu reads the whole image; every 4 KiB cluster is either never
	# written (zeroes) or one whole write: no table points at garbage
	run qemu-img convert -f qcow -O raw "$TD_DIR/k.qcow" "$TD_DIR/k.raw"
	assert_success
	run "$TD_PY" - "$TD_DIR/k.raw" <<'EOF'
import re, sys
img = open(sys.argv[1], "rb").read()
written = 0
for off in range(0, len(img), 4096):
    c = img[off:off + 4096]
    if c == bytes(4096):
        continue
    assert c == c[:8] * 512 and re.fullmatch(rb"\d{8}", c[:8]), off
    written += 1
assert written >= 100, written
print("ok", written)
EOF
	assert_success
	assert_output --partial "ok"
	# and tapdisk serves it again, writes included
	td_start "qcow:$TD_DIR/k.qcow"
	run qemu-img compare -f raw -F raw "$TD_DIR/k.raw" "$TD_URI"
	assert_success
	td_stop
}

@test "an AES-encrypted image serves with ?key-file= and is refused without" {
	qemu-img create -q -f qcow --object secret,id=s0,data=sesame \
		-o encrypt.format=aes,encrypt.key-secret=s0 "$TD_DIR/e.qcow" 4M
	qemu-io --object secret,id=s0,data=sesame --image-opts \
		"driver=qcow,file.filename=$TD_DIR/e.qcow,encrypt.key-secret=s0" \
		-c 'write -P 0x5a 64k 128k' >/dev/null
	echo sesame >"$TD_DIR/key"
	run "$TAPDISK" -n "unix:$TD_DIR/x.sock" "qcow:$TD_DIR/e.qcow"
	assert_failure
	assert_output --partial "AES-encrypted"
	assert_output --partial "key-file="
	td_start "qcow:$TD_DIR/e.qcow?key-file=$TD_DIR/key"
	run qemu-io -f raw -c 'read -P 0x5a 64k 128k' -c 'read -P 0 0 64k' \
		-c 'write -P 0xa5 1M 4k' "$TD_URI"
	assert_success
	refute_output --partial "fail"
	td_stop
	run qemu-io --object secret,id=s0,data=sesame --image-opts \
		"driver=qcow,file.filename=$TD_DIR/e.qcow,encrypt.key-secret=s0" \
		-c 'read -P 0xa5 1M 4k' -c 'read -P 0x5a 64k 128k'
	assert_success
	refute_output --partial "fail"
	# the key from the environment, too
	TD_QCOW_KEY_FILE=$TD_DIR/key td_start "qcow:$TD_DIR/e.qcow"
	run qemu-io -f raw -c 'read -P 0xa5 1M 4k' "$TD_URI"
	assert_success
	refute_output --partial "fail"
	td_stop
}

@test "a malformed qcow image is refused, naming the file and the field" {
	qemu-img create -q -f qcow "$TD_DIR/bad.qcow" 8M
	# cluster_bits is byte 32
	printf '\x11' | dd of="$TD_DIR/bad.qcow" bs=1 seek=32 conv=notrunc 2>/dev/null
	run "$TAPDISK" -n "unix:$TD_DIR/x.sock" "qcow:$TD_DIR/bad.qcow"
	assert_failure
	assert_output --partial "$TD_DIR/bad.qcow: cluster_bits 17"
	head -c 30 "$TD_DIR/bad.qcow" >"$TD_DIR/short.qcow"
	run "$TAPDISK" -n "unix:$TD_DIR/x.sock" "qcow:$TD_DIR/short.qcow"
	assert_failure
	assert_output --partial "truncated header"
}
