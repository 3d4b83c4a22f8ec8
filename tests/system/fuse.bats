#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-only
#
# The FUSE export (tapdisk --fuse FILE) with real clients: the kernel's
# loop driver (buffered and --direct-io=on), mkfs.ext4 / fsck / mount,
# fio, fallocate, truncate; qemu-img checks the qcow2 image afterwards.
# Needs root and /dev/fuse.

load helpers

setup() {
	td_setup
	[ "$(id -u)" -eq 0 ] || skip "needs root (FUSE mounts, loop devices)"
	[ -c /dev/fuse ] || skip "no /dev/fuse"
	FX_LOOPS=()
	FX_MNTS=()
}

teardown() {
	local m l pid
	for m in "${FX_MNTS[@]}"; do
		mountpoint -q "$m" && umount "$m"
	done
	for l in "${FX_LOOPS[@]}"; do
		losetup -d "$l" 2>/dev/null
	done
	# ours, and the tapdisks a blktapctrl of ours started
	for pid in "${TD_PIDS[@]}" $([ -n "${TD_DIR:-}" ] && pgrep -f -- "$TD_DIR/"); do
		td_alive "$pid" && kill -TERM "$pid" 2>/dev/null
		td_wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null
	done
	# stale mounts a kill -9 left (the tests recover theirs; this is for
	# a test that failed half-way)
	if [ -n "${TD_DIR:-}" ]; then
		findmnt -rn -o TARGET | grep "^$TD_DIR/" | sort -r |
			while read -r m; do umount -l "$m"; done
	fi
	td_teardown
}

# fx_start IMAGE FILE [ARGS...]: tapdisk --fuse FILE -c ctl.sock ARGS
# IMAGE in the background; waits until the file is served. Sets TD_PID,
# TD_LOG, FX_CTL.
fx_start() {
	local image=$1 file=$2 i n=$((TD_WAIT_SECS * 20))
	shift 2
	TD_N=$((TD_N + 1))
	TD_LOG=$TD_DIR/td$TD_N.log
	FX_CTL=$TD_DIR/ctl$TD_N.sock
	"$TAPDISK" --fuse "$file" -c "$FX_CTL" "$@" "$image" </dev/null \
		>"$TD_LOG" 2>&1 3>&- &
	TD_PID=$!
	TD_PIDS+=("$TD_PID")
	for ((i = 0; i < n; i++)); do
		[ -S "$FX_CTL" ] && return 0
		td_alive "$TD_PID" || break
		sleep 0.05
	done
	fail "$(printf 'tapdisk --fuse %s %s did not start; its log:\n%s' \
		"$file" "$image" "$(cat "$TD_LOG")")"
}

# fx_loop ARGS...: losetup -f ARGS; sets FX_DEV (not in a subshell, so
# that teardown knows the device even when the test fails).
fx_loop() {
	FX_DEV=$(losetup -f --show "$@") || fail "losetup $* failed"
	FX_LOOPS+=("$FX_DEV")
}

fx_unloop() {
	losetup -d "$1"
	FX_LOOPS=("${FX_LOOPS[@]/$1/}")
}

# A few MB of files: directories, small and large files, symlinks.
fx_tree() {
	mkdir -p "$1"
	cp -a /usr/include/linux "$1/"
	[ -d /usr/share/doc/git ] && cp -a /usr/share/doc/git "$1/"
	head -c 3M /dev/urandom >"$1/random.bin"
}

# fx_ext4_roundtrip DEV...: mkfs.ext4 on the loop device of the FUSE file,
# copy a tree in, unmount, fsck clean, remount, compare.
fx_ext4_roundtrip() {
	local dev=$1 mnt=$TD_DIR/mnt src=$TD_DIR/src
	fx_tree "$src"
	mkdir -p "$mnt"
	run mkfs.ext4 -q -F "$dev"
	assert_success
	mount "$dev" "$mnt"
	FX_MNTS+=("$mnt")
	cp -a "$src/." "$mnt/"
	umount "$mnt"
	run fsck.ext4 -fn "$dev"
	assert_success
	mount "$dev" "$mnt"
	run diff -r --no-dereference -x lost+found "$src" "$mnt"
	assert_success
	umount "$mnt"
}

@test "fuse: ext4 on a qcow2 disk through a direct-I/O loop device; qemu-img check clean" {
	need qemu-img mkfs.ext4 fsck.ext4 losetup
	local img=$TD_DIR/disk.qcow2 file=$TD_DIR/disk.file dev
	qemu-img create -q -f qcow2 "$img" 256M
	fx_start "qcow2:$img" "$file"
	[ "$(stat -c %s "$file")" -eq $((256 << 20)) ]
	fx_loop --direct-io=on "$file"
	dev=$FX_DEV
	[ "$(losetup -n -O DIO "$dev" | tr -d ' ')" = 1 ] ||
		fail "the loop device did not take --direct-io=on"
	fx_ext4_roundtrip "$dev"
	fx_unloop "$dev"
	td_stop
	run qemu-img check "$img"
	assert_success
	assert_output --partial "No errors were found"
}

@test "fuse: ext4 on a raw disk with mount -o loop; the image is a clean ext4" {
	need mkfs.ext4 fsck.ext4
	local img=$TD_DIR/disk.raw file=$TD_DIR/disk.file mnt=$TD_DIR/mnt
	local src=$TD_DIR/src
	mkimg "$img" 128M
	fx_start "aio:$img" "$file"
	run mkfs.ext4 -q -F "$file"
	assert_success
	fx_tree "$src"
	mkdir -p "$mnt"
	mount -o loop "$file" "$mnt"
	FX_MNTS+=("$mnt")
	cp -a "$src/." "$mnt/"
	umount "$mnt"
	run fsck.ext4 -fn "$file"
	assert_success
	mount -o loop,ro "$file" "$mnt"
	run diff -r --no-dereference -x lost+found "$src" "$mnt"
	assert_success
	umount "$mnt"
	td_stop
	run fsck.ext4 -fn "$img"
	assert_success
}

@test "fuse: fio psync on the file verifies" {
	need fio
	local img=$TD_DIR/disk.raw file=$TD_DIR/disk.file
	mkimg "$img" 64M
	fx_start "aio:$img" "$file"
	run fio --name=v --filename="$file" --ioengine=psync --rw=randwrite \
		--bsrange=512-256k --size=64M --io_size=48M --verify=crc32c --verify_state_save=0 \
		--verify_fatal=1 --numjobs=1 --output-format=terse
	assert_success
	run fio --name=s --filename="$file" --ioengine=psync --rw=write \
		--bs=1M --size=64M --verify=crc32c --verify_state_save=0 --verify_fatal=1 \
		--output-format=terse
	assert_success
}

@test "fuse: fio libaio O_DIRECT through a loop device verifies" {
	need fio losetup
	local img=$TD_DIR/disk.qcow2 file=$TD_DIR/disk.file dev
	need qemu-img
	qemu-img create -q -f qcow2 "$img" 128M
	fx_start "qcow2:$img" "$file"
	fx_loop --direct-io=on "$file"
	dev=$FX_DEV
	run fio --name=v --filename="$dev" --ioengine=libaio --direct=1 \
		--rw=randwrite --bs=4k --iodepth=32 --size=128M --io_size=32M \
		--verify=crc32c --verify_state_save=0 --verify_fatal=1 --output-format=terse
	assert_success
	run fio --name=s --filename="$dev" --ioengine=libaio --direct=1 \
		--rw=write --bs=1M --iodepth=8 --size=128M --verify=crc32c --verify_state_save=0 \
		--verify_fatal=1 --output-format=terse
	assert_success
	fx_unloop "$dev"
	td_stop
	run qemu-img check "$img"
	assert_success
}

@test "fuse: many requests in flight at once through one event loop" {
	need fio losetup
	local img=$TD_DIR/disk.raw file=$TD_DIR/disk.file dev fpid i n max=0
	mkimg "$img" 64M
	fx_start "aio:$img" "$file"
	fx_loop --direct-io=on "$file"
	dev=$FX_DEV
	fio --name=qd --filename="$dev" --ioengine=libaio --direct=1 \
		--rw=randread --bs=4k --iodepth=32 --size=64M --time_based \
		--runtime=20 >/dev/null 2>&1 &
	fpid=$!
	BG_PIDS+=("$fpid")
	for ((i = 0; i < 100 && max < 8; i++)); do
		n=$(td_ctl "$FX_CTL" stats | json_get 'j["stats"]["inflight"]')
		[ "$n" -gt "$max" ] && max=$n
		sleep 0.05
	done
	kill "$fpid"
	wait "$fpid" || true
	[ "$max" -ge 8 ] || fail "at most $max requests were in flight"
	fx_unloop "$dev"
	td_stop
}

@test "fuse: the file has the disk's size, mode 0600, root's; truncate, extend refused" {
	local img=$TD_DIR/disk.raw file=$TD_DIR/disk.file
	mkimg "$img" 16M
	fx_start "aio:$img" "$file"
	assert_equal "$(stat -c '%s %a %u %g %F' "$file")" \
		"$((16 << 20)) 600 0 0 regular file"
	run truncate -s 0 "$file"
	assert_failure
	assert_output --partial "Operation not permitted"
	run truncate -s 32M "$file"
	assert_failure
	run truncate -s 16M "$file"
	assert_success
	run fallocate -l 32M "$file"
	assert_failure
	assert_output --partial "File too large"
	run dd if=/dev/zero of="$file" bs=4k count=1 seek=4096 conv=notrunc
	assert_failure
	assert_output --partial "No space left on device"
	# a read at the end is empty, like any file's
	assert_equal "$(dd if="$file" bs=4k skip=4096 2>/dev/null | wc -c)" 0
	run chmod 0644 "$file"
	assert_failure
	run touch "$file"
	assert_success
	assert_equal "$(stat -c %s "$file")" $((16 << 20))
}

@test "fuse: fallocate -p and -z read back zeroes; fsync reaches tapdisk" {
	need fallocate
	local img=$TD_DIR/disk.raw file=$TD_DIR/disk.file out flushes
	mkimg_random "$img" 16
	fx_start "aio:$img" "$file"
	fallocate -p -o 1M -l 1M "$file"
	fallocate -z -o 5M -l 1537k "$file"
	# odd edges: 4097 bytes from 10M+1
	fallocate -p -o $((10 * 1048576 + 1)) -l 4097 "$file"
	assert_equal "$(stat -c %s "$file")" $((16 << 20))
	cmp -s <(dd if="$file" bs=1M skip=1 count=1 2>/dev/null) \
		<(head -c 1M /dev/zero) || fail "punched range is not zero"
	cmp -s <(dd if="$file" iflag=skip_bytes,count_bytes skip=5M \
		count=1537k 2>/dev/null) <(head -c 1537k /dev/zero) ||
		fail "zeroed range is not zero"
	cmp -s <(dd if="$file" iflag=skip_bytes,count_bytes \
		skip=$((10 * 1048576 + 1)) count=4097 2>/dev/null) \
		<(head -c 4097 /dev/zero) || fail "unaligned punch is not zero"
	# the bytes around the unaligned punch are untouched
	cmp -s <(dd if="$file" iflag=skip_bytes,count_bytes skip=10M count=1 \
		2>/dev/null) <(dd if="$img" iflag=skip_bytes,count_bytes \
		skip=10M count=1 2>/dev/null) || fail "byte before the punch"
	run td_ctl "$FX_CTL" stats
	flushes=$(json_get 'j["stats"]["ops"]["flush"]["requests"]' <<<"$output")
	dd if=/dev/urandom of="$file" bs=4k count=1 conv=notrunc,fsync \
		2>/dev/null
	"$TD_PY" -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDWR); os.fsync(fd); os.fdatasync(fd)' "$file"
	run td_ctl "$FX_CTL" stats
	assert_equal "$(json_get 'j["stats"]["ops"]["flush"]["requests"]' <<<"$output")" \
		$((flushes + 3))
	td_stop
	cmp -s <(dd if="$img" bs=1M skip=1 count=1 2>/dev/null) \
		<(head -c 1M /dev/zero) || fail "the image does not hold the zeroes"
}

@test "fuse: --readonly is mode 0400 and refuses writers; reads work" {
	local img=$TD_DIR/disk.raw file=$TD_DIR/disk.file dev
	mkimg_random "$img" 8
	fx_start "aio:$img" "$file" --readonly
	assert_equal "$(stat -c '%a' "$file")" 400
	run dd if=/dev/zero of="$file" bs=4k count=1 conv=notrunc
	assert_failure
	assert_output --partial "Read-only file system"
	run fallocate -p -o 0 -l 4096 "$file"
	assert_failure
	assert_equal "$(sha "$file")" "$(sha "$img")"
	fx_loop "$file"
	dev=$FX_DEV
	assert_equal "$(losetup -n -O RO "$dev" | tr -d ' ')" 1
	fx_unloop "$dev"
	td_stop
}

@test "fuse: FILE is created if missing; SIGTERM unmounts and exits 0, FILE a plain file again" {
	local img=$TD_DIR/disk.raw file=$TD_DIR/new.file
	mkimg "$img" 8M
	[ ! -e "$file" ]
	fx_start "aio:$img" "$file"
	findmnt -n --mountpoint "$file" >/dev/null || fail "not mounted"
	assert_equal "$(findmnt -n -o FSTYPE,SOURCE --mountpoint "$file")" \
		"fuse.blktap tapdisk"
	td_stop
	! findmnt -n --mountpoint "$file" >/dev/null || fail "still mounted"
	assert_equal "$(stat -c '%s %F' "$file")" "0 regular empty file"
	grep -q "fuse $file: unmounted" "$TD_LOG" || fail "no unmount log line"
}

@test "fuse: SIGTERM while fio runs through a loop device finishes in-flight requests and exits 0" {
	need fio losetup
	local img=$TD_DIR/disk.raw file=$TD_DIR/disk.file dev fpid
	mkimg "$img" 64M
	fx_start "aio:$img" "$file"
	fx_loop --direct-io=on "$file"
	dev=$FX_DEV
	fio --name=b --filename="$dev" --ioengine=libaio --direct=1 \
		--rw=randwrite --bs=64k --iodepth=16 --size=64M --time_based \
		--runtime=30 >/dev/null 2>&1 &
	fpid=$!
	BG_PIDS+=("$fpid")
	sleep 1
	td_stop
	wait "$fpid" || true
	! findmnt -n --mountpoint "$file" >/dev/null || fail "still mounted"
	fx_unloop "$dev"
}

@test "fuse: kill -9 leaves a stale mount; the next tapdisk detaches it and serves" {
	local img=$TD_DIR/disk.raw file=$TD_DIR/disk.file
	mkimg_random "$img" 8
	fx_start "aio:$img" "$file"
	td_kill9
	run stat "$file"
	assert_failure
	assert_output --partial "Transport endpoint is not connected"
	fx_start "aio:$img" "$file"
	grep -q "stale FUSE mount" "$TD_LOG" || fail "no log line about the stale mount"
	assert_equal "$(sha "$file")" "$(sha "$img")"
	td_stop
	assert_equal "$(stat -c '%s %F' "$file")" "0 regular empty file"
}

@test "fuse: a FILE another tapdisk serves is refused" {
	local img=$TD_DIR/disk.raw file=$TD_DIR/disk.file rc
	mkimg "$img" 8M
	fx_start "aio:$img" "$file"
	run "$TAPDISK" --fuse "$file" "aio:$img"
	assert_equal "$status" 1
	assert_output --partial "already mounted"
	assert_equal "$(stat -c %s "$file")" $((8 << 20))
	td_stop
}

@test "fuse: FILE must be a regular file" {
	local img=$TD_DIR/disk.raw
	mkimg "$img" 8M
	mkdir "$TD_DIR/dir"
	run "$TAPDISK" --fuse "$TD_DIR/dir" "aio:$img"
	assert_equal "$status" 1
	assert_output --partial "not a regular file"
	run "$TAPDISK" --fuse "$TD_DIR/a" --fuse "$TD_DIR/b" "aio:$img"
	assert_equal "$status" 2
}

@test "fuse: through tap-ctl create --fuse: ext4 on a qcow2 disk, fsck clean, tree intact" {
	need qemu-img mkfs.ext4 fsck.ext4 losetup
	local img=$TD_DIR/disk.qcow2 file=$TD_DIR/disk.file run=$TD_DIR/run
	local bin ctl minor
	bin=$(dirname "$TAPDISK")
	qemu-img create -q -f qcow2 "$img" 256M
	export BLKTAPCTRL_SOCKET=$run/ctl.sock
	"$bin/blktapctrl" -F --no-xenstore --run-dir "$run" --tapdisk "$TAPDISK" \
		</dev/null >"$TD_DIR/blktapctrl.log" 2>&1 3>&- &
	ctl=$!
	TD_PIDS+=("$ctl")
	for ((i = 0; i < TD_WAIT_SECS * 20; i++)); do
		"$bin/tap-ctl" list >/dev/null 2>&1 && break
		sleep 0.05
	done
	run "$bin/tap-ctl" create --fuse "$file" "qcow2:$img"
	assert_success
	minor=$(awk '$1 == "minor" {print $2}' <<<"$output")
	[ "$(stat -c %s "$file")" -eq $((256 << 20)) ]
	fx_loop --direct-io=on "$file"
	fx_ext4_roundtrip "$FX_DEV"
	fx_unloop "$FX_DEV"
	run "$bin/tap-ctl" destroy -m "$minor"
	assert_success
	kill -TERM "$ctl"
	td_wait_gone "$ctl" "$TD_WAIT_SECS"
	run qemu-img check "$img"
	assert_success
	assert_output --partial "No errors were found"
}
