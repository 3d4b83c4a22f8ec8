#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-only
# The tapdisk command line: options, usage errors, image names, signals.

load helpers

@test "--help prints usage and exits 0" {
	run "$TAPDISK" --help
	assert_success
	assert_output --partial "--nbd"
	assert_output --partial "--io-engine"
	assert_output --partial "IMAGE"
}

@test "-h is --help" {
	run "$TAPDISK" -h
	assert_success
	assert_output --partial "--nbd"
}

@test "--version prints a version and exits 0" {
	run "$TAPDISK" --version
	assert_success
	assert_output --regexp '[0-9]+\.[0-9]+'
}

@test "no image is a usage error (exit 2)" {
	run timeout 20 "$TAPDISK" -n "unix:$TD_DIR/s.sock"
	assert_failure 2
	refute_output ""
}

@test "an unknown option is a usage error (exit 2)" {
	mkimg "$TD_DIR/disk.raw" 1M
	run timeout 20 "$TAPDISK" --no-such-option -n "unix:$TD_DIR/s.sock" "$TD_DIR/disk.raw"
	assert_failure 2
	assert_output --partial "no-such-option"
}

@test "two images is a usage error (exit 2)" {
	mkimg "$TD_DIR/a.raw" 1M
	mkimg "$TD_DIR/b.raw" 1M
	run timeout 20 "$TAPDISK" -n "unix:$TD_DIR/s.sock" "$TD_DIR/a.raw" "$TD_DIR/b.raw"
	assert_failure 2
}

@test "a bad --io-engine is a usage error (exit 2)" {
	mkimg "$TD_DIR/disk.raw" 1M
	run timeout 20 "$TAPDISK" -i bogus -n "unix:$TD_DIR/s.sock" "$TD_DIR/disk.raw"
	assert_failure 2
	assert_output --partial "bogus"
}

@test "a bad --nbd address is refused with a message naming it" {
	mkimg "$TD_DIR/disk.raw" 1M
	run timeout 20 "$TAPDISK" -n "carrier-pigeon:somewhere" "$TD_DIR/disk.raw"
	assert_failure
	assert_output --partial "carrier-pigeon"
}

@test "a bad --max-inflight is a usage error (exit 2)" {
	mkimg "$TD_DIR/disk.raw" 1M
	run timeout 20 "$TAPDISK" -q notanumber -n "unix:$TD_DIR/s.sock" "$TD_DIR/disk.raw"
	assert_failure 2
}

@test "a missing image is refused with a message naming it (exit 1)" {
	run timeout 20 "$TAPDISK" -n "unix:$TD_DIR/s.sock" "aio:$TD_DIR/missing.raw"
	assert_failure 1
	assert_output --partial "$TD_DIR/missing.raw"
	assert [ ! -e "$TD_DIR/s.sock" ]
}

@test "a missing bare path is refused with a message naming it" {
	run timeout 20 "$TAPDISK" -n "unix:$TD_DIR/s.sock" "$TD_DIR/missing.raw"
	assert_failure 1
	assert_output --partial "$TD_DIR/missing.raw"
}

@test "a directory is refused with a message naming it" {
	mkdir "$TD_DIR/adir"
	run timeout 20 "$TAPDISK" -n "unix:$TD_DIR/s.sock" "aio:$TD_DIR/adir"
	assert_failure 1
	assert_output --partial "$TD_DIR/adir"
}

@test "a qcow2 file is served with qemu-img's content, or refused naming it" {
	# The first milestone refuses qcow2; once the qcow2 driver is in,
	# the same file must be served with exactly what qemu wrote.
	need qemu-img qemu-io nbdcopy
	qemu-img create -q -f qcow2 "$TD_DIR/disk.qcow2" 64M
	qemu-io -f qcow2 -c 'write -P 0x61 1M 64k' "$TD_DIR/disk.qcow2" >/dev/null
	timeout 20 "$TAPDISK" -n "unix:$TD_DIR/probe.sock" -r "$TD_DIR/disk.qcow2" \
		>"$TD_DIR/probe.log" 2>&1 3>&- &
	probe=$!
	BG_PIDS+=("$probe")
	if td_wait_socket "$TD_DIR/probe.sock" "$probe"; then
		kill -TERM "$probe"
		wait "$probe" || true
		td_start "$TD_DIR/disk.qcow2" -r
		nbdcopy "$TD_URI" "$TD_DIR/out.raw"
		td_stop
		qemu-img convert -f qcow2 -O raw "$TD_DIR/disk.qcow2" "$TD_DIR/want.raw"
		cmp "$TD_DIR/want.raw" "$TD_DIR/out.raw"
	else
		wait "$probe" && fail "tapdisk on a qcow2 file exited 0"
		run timeout 20 "$TAPDISK" -n "unix:$TD_DIR/s.sock" "$TD_DIR/disk.qcow2"
		assert_failure
		assert_output --partial "$TD_DIR/disk.qcow2"
		assert_output --partial "qcow2"
		assert [ ! -e "$TD_DIR/s.sock" ]
	fi
}

@test "an unknown image type is refused with a message naming it" {
	mkimg "$TD_DIR/disk.raw" 1M
	run timeout 20 "$TAPDISK" -n "unix:$TD_DIR/s.sock" "floppy:$TD_DIR/disk.raw"
	assert_failure
	assert_output --partial "floppy"
}

@test "a ram disk without a size that does not exist is refused" {
	run timeout 20 "$TAPDISK" -n "unix:$TD_DIR/s.sock" "ram:${TD_ID}nosuch"
	assert_failure
	assert_output --partial "${TD_ID}nosuch"
}

@test "a bad ram size is refused" {
	run timeout 20 "$TAPDISK" -n "unix:$TD_DIR/s.sock" "ram:?size=lots"
	assert_failure
	assert_output --partial "lots"
}

@test "a bare path to a raw file is served (probed as aio)" {
	need nbdinfo
	mkimg "$TD_DIR/disk.raw" 8M
	td_start "$TD_DIR/disk.raw"
	run nbdinfo --size "$TD_URI"
	assert_success
	assert_output "8388608"
	td_stop
}

@test "legacy tap:aio: names work" {
	need nbdinfo
	mkimg "$TD_DIR/disk.raw" 4M
	td_start "tap:aio:$TD_DIR/disk.raw"
	run nbdinfo --size "$TD_URI"
	assert_success
	assert_output "4194304"
	td_stop
}

@test "sync: serves a raw file through the page cache" {
	need nbdinfo
	mkimg "$TD_DIR/disk.raw" 2M
	td_start "sync:$TD_DIR/disk.raw"
	run nbdinfo --size "$TD_URI"
	assert_success
	assert_output "2097152"
	td_stop
}

@test "SIGTERM exits 0 and removes the Unix socket" {
	mkimg "$TD_DIR/disk.raw" 1M
	td_start "aio:$TD_DIR/disk.raw"
	assert [ -S "$TD_SOCK" ]
	td_stop
	assert [ ! -e "$TD_SOCK" ]
}

@test "SIGINT exits 0 and removes the Unix socket" {
	mkimg "$TD_DIR/disk.raw" 1M
	td_start "aio:$TD_DIR/disk.raw"
	kill -INT "$TD_PID"
	td_wait_gone "$TD_PID" "$TD_WAIT_SECS"
	run wait "$TD_PID"
	assert_success
	assert [ ! -e "$TD_SOCK" ]
}

@test "--readonly exports a read-only disk" {
	need nbdinfo
	mkimg "$TD_DIR/disk.raw" 1M
	td_start "aio:$TD_DIR/disk.raw" --readonly
	run nbdinfo --is read-only "$TD_URI"
	assert_success
	td_stop
}

@test "a writable export is not read-only" {
	need nbdinfo
	mkimg "$TD_DIR/disk.raw" 1M
	td_start "aio:$TD_DIR/disk.raw"
	run nbdinfo --is read-only "$TD_URI"
	assert_failure
	td_stop
}

@test "--verbose and --log=stderr log to stderr" {
	mkimg "$TD_DIR/disk.raw" 1M
	td_start "aio:$TD_DIR/disk.raw" --verbose --log=stderr
	td_stop
	assert [ -s "$TD_LOG" ]
}

@test "--log with a bad value is a usage error (exit 2)" {
	mkimg "$TD_DIR/disk.raw" 1M
	run timeout 20 "$TAPDISK" --log=carrier-pigeon -n "unix:$TD_DIR/s.sock" "$TD_DIR/disk.raw"
	assert_failure 2
}

@test "--daemon detaches once the export is listening" {
	need nbdinfo
	mkimg "$TD_DIR/disk.raw" 1M
	run timeout 30 "$TAPDISK" --daemon -n "unix:$TD_DIR/d.sock" "aio:$TD_DIR/disk.raw" 3>&-
	assert_success
	# listening at the moment the command returned: no waiting here
	assert [ -S "$TD_DIR/d.sock" ]
	pid=$(pgrep -f -- "unix:$TD_DIR/d.sock")
	[ -n "$pid" ] || fail "no daemon process found"
	BG_PIDS+=("$pid")
	run nbdinfo --size "nbd+unix:///?socket=$TD_DIR/d.sock"
	assert_success
	assert_output "1048576"
	kill -TERM "$pid"
	td_wait_gone "$pid" "$TD_WAIT_SECS"
	assert [ ! -e "$TD_DIR/d.sock" ]
}

@test "a Unix socket path that is already served is refused" {
	mkimg "$TD_DIR/a.raw" 1M
	mkimg "$TD_DIR/b.raw" 1M
	td_start "aio:$TD_DIR/a.raw"
	run timeout 20 "$TAPDISK" -n "unix:$TD_SOCK" "aio:$TD_DIR/b.raw"
	assert_failure
	assert_output --partial "$TD_SOCK"
	# the first server still works
	need nbdinfo
	run nbdinfo --size "$TD_URI"
	assert_success
	td_stop
}
