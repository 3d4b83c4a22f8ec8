#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-only
# The original blktap qcow tools, same arguments, qemu-img reading what
# they write: qcow-create, img2qcow, qcow2raw.

load helpers

TOOLS=$(dirname "$TAPDISK")

setup() {
	td_setup
	need qemu-img qemu-io
	cd "$TD_DIR" || fail "no scratch dir"
	local out
	out=$("$TOOLS/qcow-create" 1 "$TD_DIR/.probe.qcow" 2>&1) && return 0
	if [[ "$out" == *"not supported"* ]]; then
		[ "${CI:-}" = true ] && fail "qcow driver not built, under CI"
		skip "qcow driver not built"
	fi
	fail "qcow-create failed: $out"
}

@test "each tool: --help exits 0 with its usage; bad usage exits 1" {
	for t in qcow-create img2qcow qcow2raw; do
		run "$TOOLS/$t" --help
		assert_success
		assert_output --partial "usage: $t"
		run "$TOOLS/$t"
		assert_failure 1
		assert_output --partial "usage: $t"
	done
}

@test "qcow-create SIZE(MB) FILE: a sparse standalone qcow" {
	run "$TOOLS/qcow-create" 128 a.qcow
	assert_success
	run qemu-img info --output=json a.qcow
	assert_output --partial '"format": "qcow"'
	assert_output --partial '"virtual-size": 134217728'
	[ "$(allocated_kib a.qcow)" -lt 1024 ]
	qemu-io -c 'write -P 1 0 1M' a.qcow >/dev/null
	run qemu-io -c 'read -P 1 0 1M' a.qcow
	assert_success
}

@test "qcow-create with a backing file: copy-on-write over it" {
	mkimg base.raw 32M
	qemu-io -f raw -c 'write -P 7 0 1M' base.raw >/dev/null
	"$TOOLS/qcow-create" 32 cow.qcow base.raw
	run qemu-img info --output=json cow.qcow
	assert_output --partial '"backing-filename": "base.raw"'
	assert_output --partial '"virtual-size": 33554432'
	qemu-img compare cow.qcow base.raw
}

@test "qcow-create -r reserves the image's space" {
	"$TOOLS/qcow-create" -r 16 r.qcow
	[ "$(allocated_kib r.qcow)" -ge 16384 ]
	run qemu-img info --output=json r.qcow
	assert_output --partial '"virtual-size": 16777216'
}

@test "qcow-create refuses a bad size" {
	run "$TOOLS/qcow-create" 12Q a.qcow
	assert_failure 1
	assert_output --partial "12Q"
	[ ! -e a.qcow ]
}

@test "img2qcow: raw image to a sparse qcow of the same content" {
	mkimg src.raw 32M
	qemu-io -f raw -c 'write -P 0x33 4M 2M' src.raw >/dev/null
	run "$TOOLS/img2qcow" out.qcow src.raw
	assert_success
	run qemu-img info --output=json out.qcow
	assert_output --partial '"format": "qcow"'
	qemu-img compare src.raw out.qcow
	[ "$(allocated_kib out.qcow)" -lt 4096 ]
}

@test "img2qcow: a missing source is an error naming it" {
	run "$TOOLS/img2qcow" out.qcow nope.raw
	assert_failure 1
	assert_output --partial "nope.raw"
}

@test "qcow2raw: qcow (and qcow2) to raw, sparse" {
	mkimg src.raw 32M
	qemu-io -f raw -c 'write -P 0x44 1M 1M' src.raw >/dev/null
	qemu-img convert -O qcow src.raw in.qcow
	run "$TOOLS/qcow2raw" out.raw in.qcow
	assert_success
	cmp src.raw out.raw
	[ "$(allocated_kib out.raw)" -lt 2048 ]
	qemu-img convert -O qcow2 src.raw in.qcow2
	"$TOOLS/qcow2raw" out2.raw in.qcow2
	cmp src.raw out2.raw
}

@test "qcow2raw refuses to overwrite without -f when not on a terminal" {
	mkimg src.raw 4M
	qemu-img convert -O qcow src.raw in.qcow
	echo keep >out.raw
	run "$TOOLS/qcow2raw" out.raw in.qcow </dev/null
	assert_failure 1
	assert_output --partial "-f"
	[ "$(cat out.raw)" = keep ]
	run "$TOOLS/qcow2raw" -f out.raw in.qcow </dev/null
	assert_success
	cmp src.raw out.raw
	echo keep >out.raw
	run "$TOOLS/qcow2raw" --force out.raw in.qcow </dev/null
	assert_success
}
