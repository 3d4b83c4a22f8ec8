#!/usr/bin/env bats
# The I/O engines (io_uring, libaio) under fio's verify workloads.

load helpers

setup() {
	td_setup
	need fio
}

# fio_verify URI: 4 jobs, each on its own 16 MiB region, random mixed
# reads and writes, every written block verified with crc32c.
fio_verify() {
	timeout -k 5 120 fio --name=verify --ioengine=nbd --uri="$1" --rw=randrw --rwmixread=50 \
		--bs=4k --size=16M --offset_increment=16M --numjobs=4 \
		--iodepth=16 --verify=crc32c --verify_state_save=0 --verify_fatal=1 --do_verify=1 \
		--group_reporting
}

engine_test() {
	local engine=$1 image=$2
	mkimg "$TD_DIR/disk.raw" 64M
	td_start "$image" --io-engine="$engine" -c "$TD_DIR/ctl.sock"
	run td_ctl "$TD_DIR/ctl.sock" info
	assert_success
	assert_equal "$(json_get 'j["io_engine"]' <<<"$output")" "$engine"
	run fio_verify "$TD_URI"
	assert_success
	refute_output --partial "verify: bad"
	refute_output --regexp "err= *[1-9]"
	td_stop
}

@test "fio randrw with crc32c verify, io_uring engine" {
	engine_test io_uring "aio:$TD_DIR/disk.raw"
}

@test "fio randrw with crc32c verify, libaio engine" {
	engine_test libaio "aio:$TD_DIR/disk.raw"
}

@test "fio randrw with crc32c verify, sync: image (io_uring)" {
	engine_test io_uring "sync:$TD_DIR/disk.raw"
}

@test "fio randrw with crc32c verify, sync: image (libaio)" {
	engine_test libaio "sync:$TD_DIR/disk.raw"
}

@test "--io-engine=auto picks io_uring here" {
	need nbdinfo
	mkimg "$TD_DIR/disk.raw" 4M
	td_start "aio:$TD_DIR/disk.raw" --io-engine=auto -c "$TD_DIR/ctl.sock"
	run td_ctl "$TD_DIR/ctl.sock" info
	assert_success
	assert_equal "$(json_get 'j["io_engine"]' <<<"$output")" io_uring
	td_stop
}

@test "fio sequential 1 MiB writes then verify, both engines" {
	for engine in io_uring libaio; do
		mkimg "$TD_DIR/disk.raw" 64M
		td_start "aio:$TD_DIR/disk.raw" --io-engine=$engine
		run timeout -k 5 120 fio --name=seq --ioengine=nbd --uri="$TD_URI" --rw=write \
			--bs=1M --size=64M --iodepth=8 --verify=crc32c --verify_state_save=0 \
			--verify_fatal=1 --do_verify=1
		assert_success
		refute_output --partial "verify: bad"
		td_stop
	done
}

@test "fio with unaligned 512-byte blocks on an O_DIRECT image" {
	mkimg "$TD_DIR/disk.raw" 16M
	td_start "aio:$TD_DIR/disk.raw"
	run timeout -k 5 120 fio --name=small --ioengine=nbd --uri="$TD_URI" --rw=randwrite \
		--bs=512 --size=4M --iodepth=32 --verify=crc32c --verify_state_save=0 --verify_fatal=1 \
		--do_verify=1
	assert_success
	refute_output --partial "verify: bad"
	td_stop
}

@test "--max-inflight 1 still serves a deep queue correctly" {
	mkimg "$TD_DIR/disk.raw" 32M
	td_start "aio:$TD_DIR/disk.raw" --max-inflight 1
	run timeout -k 5 120 fio --name=q1 --ioengine=nbd --uri="$TD_URI" --rw=randrw \
		--bs=8k --size=8M --iodepth=32 --verify=crc32c --verify_state_save=0 --verify_fatal=1 \
		--do_verify=1
	assert_success
	refute_output --partial "verify: bad"
	td_stop
}
