#!/usr/bin/env bats
# The Python module blktap.vdisk (ctypes over the build's libvdisk.so): its
# unittest suite, run with Debian's python3.

load helpers

@test "blktap.vdisk: python3 -m unittest" {
	local lib
	lib=$(dirname "$TAPDISK")/libvdisk.so
	[ -f "$lib" ] || fail "no $lib (run make)"
	cd "$TD_TOP/vdisk/python"
	run env BLKTAP_LIBVDISK="$lib" VDISK_BIN="$(dirname "$TAPDISK")" \
		PYTHONPATH="$TD_TOP/vdisk/python" "$TD_PY" -m unittest -v tests.test_vdisk
	echo "$output"
	assert_success
	assert_output --partial "Ran 5 tests"
	refute_output --partial "skipped"
}
