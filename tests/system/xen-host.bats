#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-only
#
# tapdisk --xen-backend on a host that is not a Xen dom0 (no /dev/xen, as
# on the development and CI machines): a clear refusal, not a hang or a
# crash. The backend itself is tested in the test host (make check-host).

load helpers

setup() {
	td_setup
	[ ! -e /dev/xen ] || skip "this host has /dev/xen: make check-host tests it"
}

@test "xen: without /dev/xen tapdisk --xen-backend fails and says why" {
	run timeout 20 "$TAPDISK" --xen-backend /local/domain/0/backend/vbd/1/51712 \
		"ram:?size=16M"
	assert_failure 1
	assert_output --partial "/local/domain/0/backend/vbd/1/51712: no /dev/xen"
	assert_output --partial "not a Xen domain"
}

@test "xen: --xen-backend twice is a usage error" {
	run "$TAPDISK" --xen-backend /a --xen-backend /b "ram:?size=16M"
	assert_failure 2
	assert_output --partial "at most one --xen-backend"
}
