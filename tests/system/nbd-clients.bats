#!/usr/bin/env bats
# Real NBD clients against tapdisk's export: nbdinfo, nbdcopy, qemu-img,
# qemu-io, fio's nbd engine; Unix and TCP sockets; several clients at once.

load helpers

MiB=1048576

# nbd_data_ranges URI: the data extents nbdinfo --map reports, merged, as
# "START END" lines (the same form as data_ranges FILE).
nbd_data_ranges() {
	nbdinfo --map "$1" | awk '
		{ off = $1; len = $2; type = $3
		  if (type % 2 == 1) next          # hole
		  if (have && off == end) { end = off + len; next }
		  if (have) print start, end
		  have = 1; start = off; end = off + len }
		END { if (have) print start, end }'
}

@test "nbdinfo shows the size and the export name" {
	need nbdinfo
	mkimg "$TD_DIR/disk.raw" 64M
	td_start "aio:$TD_DIR/disk.raw" -e mydisk
	run nbdinfo "nbd+unix:///mydisk?socket=$TD_SOCK"
	assert_success
	assert_output --partial 'export="mydisk"'
	assert_output --regexp 'export-size: 67108864'
	td_stop
}

@test "the default export name \"\" reaches a named export too" {
	need nbdinfo
	mkimg "$TD_DIR/disk.raw" 16M
	td_start "aio:$TD_DIR/disk.raw" -e mydisk
	run nbdinfo --size "$TD_URI"
	assert_success
	assert_output "16777216"
	td_stop
}

@test "a wrong export name is refused" {
	need nbdinfo
	mkimg "$TD_DIR/disk.raw" 16M
	td_start "aio:$TD_DIR/disk.raw" -e mydisk
	run nbdinfo --size "nbd+unix:///otherdisk?socket=$TD_SOCK"
	assert_failure
	td_stop
}

@test "nbdinfo shows the capabilities of a raw file export" {
	need nbdinfo
	mkimg "$TD_DIR/disk.raw" 16M
	td_start "aio:$TD_DIR/disk.raw"
	for cap in flush fua trim zero fast-zero multi-conn cache \
		structured-reply; do
		run nbdinfo --can "$cap" "$TD_URI"
		[ "$status" -eq 0 ] || fail "export cannot $cap"
	done
	need nbdsh
	run td_nbdsh "$TD_URI" <<<'print(h.can_meta_context("base:allocation"))'
	assert_success
	assert_output "True"
	td_stop
}

@test "nbdinfo --map shows holes and data exactly where they are" {
	need nbdinfo
	mkimg "$TD_DIR/disk.raw" 64M
	# data at 1 MiB (64 KiB), 10 MiB (4 MiB), 40 MiB + 4 KiB (8 KiB), and
	# the last 64 KiB; holes everywhere else
	dd if=/dev/urandom of="$TD_DIR/disk.raw" bs=64K seek=16 count=1 conv=notrunc status=none
	dd if=/dev/urandom of="$TD_DIR/disk.raw" bs=1M seek=10 count=4 conv=notrunc status=none
	dd if=/dev/urandom of="$TD_DIR/disk.raw" bs=4K seek=10241 count=2 conv=notrunc status=none
	dd if=/dev/urandom of="$TD_DIR/disk.raw" bs=64K seek=1023 count=1 conv=notrunc status=none
	sync "$TD_DIR/disk.raw"
	expected=$(data_ranges "$TD_DIR/disk.raw")
	# the file system holds what we wrote where we wrote it
	assert_equal "$expected" "$(printf '%s\n' \
		"1048576 1114112" "10485760 14680064" \
		"41947136 41955328" "67043328 67108864")"
	td_start "aio:$TD_DIR/disk.raw"
	run nbd_data_ranges "$TD_URI"
	assert_success
	assert_equal "$output" "$expected"
	# and the holes are reported as reading zeroes
	run nbdinfo --map "$TD_URI"
	assert_line --regexp '^ +0 +1048576 +3 +hole,zero$'
	td_stop
}

@test "nbdinfo --map of a fully allocated image is all data" {
	need nbdinfo
	mkimg_random "$TD_DIR/disk.raw" 8
	td_start "aio:$TD_DIR/disk.raw"
	run nbd_data_ranges "$TD_URI"
	assert_success
	assert_output "0 8388608"
	td_stop
}

@test "nbdcopy out and back in is byte-identical" {
	need nbdcopy
	mkimg_random "$TD_DIR/src.raw" 48
	want=$(sha "$TD_DIR/src.raw")
	td_start "aio:$TD_DIR/src.raw" --readonly
	nbdcopy "$TD_URI" "$TD_DIR/out.raw"
	assert_equal "$(sha "$TD_DIR/out.raw")" "$want"
	td_stop
	mkimg "$TD_DIR/fresh.raw" 48M
	td_start "aio:$TD_DIR/fresh.raw"
	nbdcopy "$TD_DIR/out.raw" "$TD_URI"
	td_stop
	assert_equal "$(sha "$TD_DIR/fresh.raw")" "$want"
}

@test "nbdcopy keeps a sparse image's content through a sync: export" {
	need nbdcopy
	mkimg "$TD_DIR/src.raw" 32M
	dd if=/dev/urandom of="$TD_DIR/src.raw" bs=1M seek=3 count=2 conv=notrunc status=none
	dd if=/dev/urandom of="$TD_DIR/src.raw" bs=4K seek=5000 count=3 conv=notrunc status=none
	td_start "sync:$TD_DIR/src.raw"
	nbdcopy "$TD_URI" "$TD_DIR/out.raw"
	td_stop
	cmp "$TD_DIR/src.raw" "$TD_DIR/out.raw"
}

@test "qemu-img convert from the export equals the source" {
	need qemu-img
	mkimg_random "$TD_DIR/src.raw" 32
	td_start "aio:$TD_DIR/src.raw"
	run qemu-img convert -f raw -O raw "nbd+unix:///?socket=$TD_SOCK" "$TD_DIR/out.raw"
	assert_success
	td_stop
	assert_equal "$(sha "$TD_DIR/out.raw")" "$(sha "$TD_DIR/src.raw")"
}

@test "qemu-img convert into the export equals the source" {
	need qemu-img
	mkimg_random "$TD_DIR/src.raw" 16
	mkimg "$TD_DIR/dst.raw" 16M
	td_start "aio:$TD_DIR/dst.raw"
	run qemu-img convert -n -f raw -O raw "$TD_DIR/src.raw" "nbd+unix:///?socket=$TD_SOCK"
	assert_success
	td_stop
	cmp "$TD_DIR/src.raw" "$TD_DIR/dst.raw"
}

@test "qemu-img info and compare on the NBD URI" {
	need qemu-img
	mkimg_random "$TD_DIR/src.raw" 8
	td_start "aio:$TD_DIR/src.raw" --readonly
	run qemu-img info "nbd+unix:///?socket=$TD_SOCK"
	assert_success
	assert_output --partial "virtual size: 8 MiB (8388608 bytes)"
	run qemu-img compare -f raw -F raw "$TD_DIR/src.raw" "nbd+unix:///?socket=$TD_SOCK"
	assert_success
	td_stop
}

@test "qemu-io writes a pattern, reads it back, and the file holds it" {
	need qemu-io
	mkimg "$TD_DIR/disk.raw" 16M
	td_start "aio:$TD_DIR/disk.raw"
	run qemu-io -f raw "nbd+unix:///?socket=$TD_SOCK" \
		-c 'write -P 0xab 0 1M' -c 'read -P 0xab 0 1M' \
		-c 'write -P 0xcd 5M 64k' -c 'read -P 0xcd 5M 64k' \
		-c 'read -P 0 1M 4M'
	assert_success
	refute_output --partial "Pattern verification failed"
	cmp -n $MiB "$TD_DIR/disk.raw" <(head -c $MiB /dev/zero | tr '\0' '\253')
	cmp -i $((5 * MiB)):0 -n 65536 "$TD_DIR/disk.raw" <(head -c 65536 /dev/zero | tr '\0' '\315')
	td_stop
}

@test "qemu-io with an export name, unaligned writes" {
	need qemu-io
	mkimg "$TD_DIR/disk.raw" 4M
	td_start "aio:$TD_DIR/disk.raw" -e vol0
	run qemu-io -f raw "nbd+unix:///vol0?socket=$TD_SOCK" \
		-c 'write -P 0x5a 513 1000' -c 'read -P 0x5a 513 1000' \
		-c 'read -P 0 0 513' -c 'read -P 0 1513 2583'
	assert_success
	refute_output --partial "Pattern verification failed"
	cmp -i 513:0 -n 1000 "$TD_DIR/disk.raw" <(head -c 1000 /dev/zero | tr '\0' 'Z')
	td_stop
}

@test "a file system written through the export checks clean" {
	need mkfs.ext4 e2fsck debugfs nbdcopy
	mkdir "$TD_DIR/stage"
	echo "hello from blktap" >"$TD_DIR/stage/hello.txt"
	mkimg "$TD_DIR/fs.raw" 64M
	mkfs.ext4 -q -F -d "$TD_DIR/stage" "$TD_DIR/fs.raw"
	mkimg "$TD_DIR/disk.raw" 64M
	td_start "aio:$TD_DIR/disk.raw"
	nbdcopy "$TD_DIR/fs.raw" "$TD_URI"
	nbdcopy "$TD_URI" "$TD_DIR/back.raw"
	td_stop
	run e2fsck -fn "$TD_DIR/back.raw"
	assert_success
	run debugfs -R "cat /hello.txt" "$TD_DIR/disk.raw"
	assert_output --partial "hello from blktap"
}

@test "two clients at once: concurrent qemu-io writers to separate ranges" {
	need qemu-io nbdinfo
	mkimg "$TD_DIR/disk.raw" 32M
	td_start "aio:$TD_DIR/disk.raw"
	run nbdinfo --can multi-conn "$TD_URI"
	assert_success
	qemu-io -f raw "$TD_URI" -c 'write -P 0x11 0 8M' -c 'read -P 0x11 0 8M' \
		>"$TD_DIR/a.out" 2>&1 3>&- &
	a=$!
	qemu-io -f raw "$TD_URI" -c 'write -P 0x22 16M 8M' -c 'read -P 0x22 16M 8M' \
		>"$TD_DIR/b.out" 2>&1 3>&- &
	b=$!
	wait $a || fail "client a: $(cat "$TD_DIR/a.out")"
	wait $b || fail "client b: $(cat "$TD_DIR/b.out")"
	! grep -q "verification failed" "$TD_DIR/a.out" "$TD_DIR/b.out"
	run qemu-io -f raw -r "$TD_URI" -c 'read -P 0x11 0 8M' \
		-c 'read -P 0 8M 8M' -c 'read -P 0x22 16M 8M' -c 'read -P 0 24M 8M'
	assert_success
	refute_output --partial "verification failed"
	td_stop
}

@test "two clients at once: nbdsh sees another connection's flushed write" {
	need nbdsh
	mkimg "$TD_DIR/disk.raw" 8M
	td_start "aio:$TD_DIR/disk.raw"
	run td_nbdsh "$TD_URI" <<EOF
import nbd
h2 = nbd.NBD()
h2.connect_uri("$TD_URI")
assert h.can_multi_conn()
for i in range(16):
    buf = bytes([i + 1]) * 4096
    h.pwrite(buf, i * 65536)
    h.flush()
    assert h2.pread(4096, i * 65536) == buf, "write %d not seen by h2" % i
    h2.pwrite(bytes([0xf0 | i]) * 512, i * 65536 + 4096)
    h2.flush()
    assert h.pread(512, i * 65536 + 4096) == bytes([0xf0 | i]) * 512
h2.shutdown()
print("done")
EOF
	assert_success
	assert_output "done"
	td_stop
}

@test "parallel nbdcopy connections copy correctly" {
	need nbdcopy
	mkimg_random "$TD_DIR/src.raw" 32
	td_start "aio:$TD_DIR/src.raw"
	nbdcopy --connections=4 --requests=16 "$TD_URI" "$TD_DIR/out.raw"
	td_stop
	cmp "$TD_DIR/src.raw" "$TD_DIR/out.raw"
}

@test "TCP export on 127.0.0.1 with a free port" {
	need nbdinfo nbdcopy
	mkimg_random "$TD_DIR/src.raw" 8
	port=$(free_port)
	td_start "aio:$TD_DIR/src.raw" -n "tcp:127.0.0.1:$port"
	run nbdinfo --size "nbd://127.0.0.1:$port"
	assert_success
	assert_output "8388608"
	nbdcopy "nbd://127.0.0.1:$port" "$TD_DIR/out.raw"
	cmp "$TD_DIR/src.raw" "$TD_DIR/out.raw"
	td_stop
}

@test "TCP export with the default host (tcp::PORT) listens on 127.0.0.1" {
	need nbdinfo
	mkimg "$TD_DIR/disk.raw" 4M
	port=$(free_port)
	td_start "aio:$TD_DIR/disk.raw" -n "tcp::$port"
	run nbdinfo --size "nbd://127.0.0.1:$port"
	assert_success
	assert_output "4194304"
	td_stop
}

@test "TCP export with an export name, written with qemu-io" {
	need qemu-io
	mkimg "$TD_DIR/disk.raw" 4M
	port=$(free_port)
	td_start "aio:$TD_DIR/disk.raw" -n "tcp:127.0.0.1:$port" -e tcpdisk
	run qemu-io -f raw "nbd://127.0.0.1:$port/tcpdisk" \
		-c 'write -P 0x77 64k 64k' -c 'read -P 0x77 64k 64k'
	assert_success
	refute_output --partial "verification failed"
	td_stop
	cmp -i 65536:0 -n 65536 "$TD_DIR/disk.raw" <(head -c 65536 /dev/zero | tr '\0' '\167')
}
