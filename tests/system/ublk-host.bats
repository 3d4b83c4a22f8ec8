#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-only
#
# tapdisk --ublk on a host without ublk (no /dev/ublk-control, as on the
# development and CI machines): a clear refusal, not a hang or a crash.
# The export itself is tested in the test host (make check-host).

load helpers

setup() {
	td_setup
	[ ! -e /dev/ublk-control ] || skip "this host has ublk: make check-host tests it"
}

@test "ublk: without /dev/ublk-control tapdisk --ublk fails and says why" {
	run timeout 20 "$TAPDISK" --ublk "ram:?size=16M"
	assert_failure 1
	assert_output --partial "cannot open /dev/ublk-control"
	assert_output --partial "ublk_drv"
}

@test "ublk: --ublk-recover without /dev/ublk-control fails the same way" {
	run timeout 20 "$TAPDISK" --ublk-recover 3 "ram:?size=16M"
	assert_failure 1
	assert_output --partial "cannot open /dev/ublk-control"
}

@test "ublk: a bad device number is a usage error" {
	run "$TAPDISK" --ublk-id nine "ram:?size=16M"
	assert_failure 2
	assert_output --partial "--ublk-id: 'nine' is not a device number"
	run "$TAPDISK" --ublk-recover -1 "ram:?size=16M"
	assert_failure 2
}
