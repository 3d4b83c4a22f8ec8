#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-only
# tap-ctl: the command line of blktapctrl. Output for people, --json for
# scripts, clear errors and exit statuses.

load helpers
load ctl-helpers

@test "--help: the usage, for tap-ctl and each command" {
	run "$TAPCTL" --help
	assert_success
	assert_output --partial "Usage: tap-ctl [--socket PATH] COMMAND"
	for c in create list destroy pause unpause stats info; do
		run "$TAPCTL" "$c" --help
		assert_success
		assert_output --partial "Usage: tap-ctl $c"
	done
}

@test "usage errors exit 2" {
	run "$TAPCTL"
	assert_failure 2
	assert_output --partial "no command given"
	run "$TAPCTL" frobnicate
	assert_failure 2
	assert_output --partial "unknown command 'frobnicate'"
	run "$TAPCTL" destroy
	assert_failure 2
	assert_output --partial "which disk? (-m N)"
	run "$TAPCTL" info -m x
	assert_failure 2
	assert_output --partial "'x' is not a minor number"
	run "$TAPCTL" create
	assert_failure 2
	assert_output --partial "no image (TYPE:PATH) given"
	run "$TAPCTL" create --restart always ram:
	assert_failure 2
	assert_output --partial "neither no nor on-failure"
	run "$TAPCTL" list -m 3
	assert_failure 2
	run "$TAPCTL" pause -m 0 -a aio:/x
	assert_failure 2
}

@test "no daemon: a clear error, exit 1" {
	run "$TAPCTL" list
	assert_failure 1
	assert_output "tap-ctl: cannot reach blktapctrl at $CTL_RUN/ctl.sock: is it running?"
	run "$TAPCTL" --socket "$TD_DIR/elsewhere.sock" create ram:?size=1M
	assert_failure 1
	assert_output --partial "cannot reach blktapctrl at $TD_DIR/elsewhere.sock"
}

@test "--socket and BLKTAPCTRL_SOCKET reach a daemon elsewhere" {
	ctl_start
	sock=$BLKTAPCTRL_SOCKET
	run env -u BLKTAPCTRL_SOCKET "$TAPCTL" --socket "$sock" list
	assert_success
	run env BLKTAPCTRL_SOCKET="$sock" "$TAPCTL" list
	assert_success
	run "$TAPCTL" list --socket "$sock"
	assert_success
	# --socket wins over the environment
	run env BLKTAPCTRL_SOCKET="$TD_DIR/none.sock" "$TAPCTL" --socket "$sock" list
	assert_success
}

@test "a minor that does not exist: exit 1, named" {
	ctl_start
	for c in destroy pause unpause stats info; do
		run "$TAPCTL" "$c" -m 7
		assert_failure 1
		assert_output "tap-ctl: no disk with minor 7"
	done
}

@test "create prints the minor and exports; list shows them in columns" {
	ctl_start
	mkimg "$TD_DIR/a.raw" 4M
	mkimg "$TD_DIR/long-image-name-for-the-columns.raw" 4M
	port=$(free_port)
	run "$TAPCTL" create --nbd "unix:$TD_DIR/a.sock" --nbd "tcp:127.0.0.1:$port" "aio:$TD_DIR/a.raw"
	assert_success
	assert_line --regexp '^minor +0$'
	assert_line --regexp '^pid +[0-9]+$'
	assert_line "exports  unix:$TD_DIR/a.sock,tcp:127.0.0.1:$port"
	run "$TAPCTL" create -R "aio:$TD_DIR/long-image-name-for-the-columns.raw"
	assert_success
	assert_line --regexp '^minor +1$'
	run "$TAPCTL" list
	assert_success
	assert_line --index 0 --regexp '^MINOR +PID +STATE +RESTARTS +IMAGE +EXPORTS$'
	assert_line --index 1 --regexp "^0 +[0-9]+ +running +0 +aio:$TD_DIR/a.raw +unix:"
	assert_line --index 2 --regexp "^1 +[0-9]+ +running +0 +aio:$TD_DIR/long-image-name-for-the-columns.raw +-$"
	# aligned: IMAGE starts in the same column on every line
	col=$(printf '%s\n' "${lines[@]}" | awk '{ print index($0, $5) }' | sort -u | wc -l)
	assert_equal "$col" 1
	nbdinfo --size "nbd://127.0.0.1:$port" | grep -qx 4194304
}

@test "list --json: the daemon's reply for scripts" {
	ctl_start
	"$TAPCTL" create --restart on-failure ram:?size=1M >/dev/null
	run "$TAPCTL" list --json
	assert_success
	assert_equal "$(json_get 'j["ok"]' <<<"$output")" True
	assert_equal "$(json_get 'sorted(j["disks"][0].keys())' <<<"$output")" \
		'["exports", "image", "minor", "pid", "readonly", "reason", "restart", "restarts", "started", "state"]'
	assert_equal "$(json_get 'j["disks"][0]["restart"]' <<<"$output")" on-failure
	run "$TAPCTL" --json list
	assert_success
	assert_equal "$(json_get 'len(j["disks"])' <<<"$output")" 1
}

@test "create -R: the export refuses writes" {
	need qemu-io
	ctl_start
	mkimg "$TD_DIR/a.raw" 1M
	"$TAPCTL" create -R --nbd "unix:$TD_DIR/a.sock" "aio:$TD_DIR/a.raw" >/dev/null
	assert_equal "$(ctl_field 0 "['readonly']")" True
	run qemu-io -f raw -c 'write 0 4k' "nbd+unix:///?socket=$TD_DIR/a.sock"
	assert_output --partial "ermission denied"
	run "$TAPCTL" info -m 0
	assert_line "readonly   true"
}

@test "the lowest free minor is reused" {
	ctl_start
	for i in 0 1 2; do "$TAPCTL" create ram:?size=1M >/dev/null; done
	"$TAPCTL" destroy -m 1
	run "$TAPCTL" --json create ram:?size=1M
	assert_equal "$(json_get 'j["minor"]' <<<"$output")" 1
	run "$TAPCTL" --json create ram:?size=1M
	assert_equal "$(json_get 'j["minor"]' <<<"$output")" 3
}

@test "stats: a table, or tapdisk's counters as JSON" {
	need qemu-io
	ctl_start
	mkimg "$TD_DIR/a.raw" 4M
	"$TAPCTL" create --nbd "unix:$TD_DIR/a.sock" "aio:$TD_DIR/a.raw" >/dev/null
	qemu-io -f raw -c 'write 0 64k' -c 'read 0 4k' -c 'read 4k 4k' "nbd+unix:///?socket=$TD_DIR/a.sock" >/dev/null
	run "$TAPCTL" stats -m 0
	assert_success
	assert_line --index 1 --regexp '^OP +REQUESTS +BYTES +ERRORS +AVG_US +P50_US +P99_US$'
	assert_line --regexp '^read +2 +8192 +0 '
	assert_line --regexp '^write +1 +65536 +0 '
	run "$TAPCTL" stats -m 0 --json
	assert_success
	assert_equal "$(json_get 'j["minor"]' <<<"$output")" 0
	assert_equal "$(json_get 'j["stats"]["ops"]["read"]["requests"]' <<<"$output")" 2
	assert_equal "$(json_get 'j["stats"]["ops"]["write"]["bytes"]' <<<"$output")" 65536
}

@test "info: the image, size and exports" {
	ctl_start
	mkimg "$TD_DIR/a.raw" 3M
	"$TAPCTL" create --nbd "unix:$TD_DIR/a.sock" "aio:$TD_DIR/a.raw" >/dev/null
	run "$TAPCTL" info -m 0
	assert_success
	assert_line "image      aio:$TD_DIR/a.raw"
	assert_line "size       3145728"
	assert_line "state      running"
	assert_line "nbd        unix:$TD_DIR/a.sock"
	run "$TAPCTL" info -m 0 --json
	assert_equal "$(json_get 'j["size"]' <<<"$output")" 3145728
	assert_equal "$(json_get 'j["pid"]' <<<"$output")" "$(ctl_pid 0)"
}

@test "pause and unpause report the state; errors come from tapdisk" {
	ctl_start
	mkimg "$TD_DIR/a.raw" 1M
	mkimg "$TD_DIR/b.raw" 2M
	"$TAPCTL" create "aio:$TD_DIR/a.raw" >/dev/null
	run "$TAPCTL" pause -m 0
	assert_success
	assert_output "disk 0 paused"
	run "$TAPCTL" list
	assert_line --index 1 --regexp '^0 +[0-9]+ +paused '
	# another size: tapdisk refuses, the disk stays paused
	run "$TAPCTL" unpause -m 0 -a "aio:$TD_DIR/b.raw"
	assert_failure 1
	assert_output --partial "disk 0 (aio:$TD_DIR/a.raw): tapdisk:"
	assert_equal "$(ctl_field 0 "['state']")" paused
	run "$TAPCTL" unpause -m 0
	assert_success
	assert_output "disk 0 resumed"
}

@test "destroy: the tapdisk exits cleanly and the disk is gone" {
	ctl_start
	mkimg "$TD_DIR/a.raw" 1M
	"$TAPCTL" create --nbd "unix:$TD_DIR/a.sock" "aio:$TD_DIR/a.raw" >/dev/null
	pid=$(ctl_pid 0)
	run "$TAPCTL" destroy -m 0
	assert_success
	assert_output "disk 0 destroyed"
	! td_alive "$pid"
	[ ! -e "$TD_DIR/a.sock" ]
	grep -q "tapdisk $pid exited with status 0" "$CTL_LOG"
	run "$TAPCTL" destroy -m 0
	assert_failure 1
}

@test "create --ublk without ublk in the kernel: tapdisk's reason relayed, no disk left; --ublk-id is a number" {
	[ ! -e /dev/ublk-control ] || skip "this host has ublk: make check-host tests it"
	run "$TAPCTL" create --ublk-id x ram:?size=1M
	assert_failure 2
	assert_output --partial "--ublk-id: 'x' is not a device number"
	run "$TAPCTL" list --ublk
	assert_failure 2
	ctl_start
	run "$TAPCTL" create --ublk ram:?size=1M
	assert_failure 1
	assert_output --partial "cannot open /dev/ublk-control"
	run "$TAPCTL" list --json
	assert_output --partial '"disks":[]'
}
