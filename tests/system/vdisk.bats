#!/usr/bin/env bats
# The virtual-disk pool end to end: the vd_* commands, a pool disk served
# by tapdisk's vd driver over NBD (its bytes found exactly where the map
# says on the "partitions"), and add_vbd_to_dom / remove_vbd_from_dom for
# domain 0 through blktapctrl, the FUSE export and a loop device.

load helpers
load ctl-helpers

BIN=$(dirname "$TAPDISK")

setup() {
	ctl_setup
	export VDISK_DB=$TD_DIR/pool.sqlite
	export BLKTAP_VBD_DIR=$TD_DIR/vbd
	LOOPS=()
	MOUNTS=()
	DEVNODES=()
}

teardown() {
	local m l d
	for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null; done
	for d in "${DEVNODES[@]}"; do
		"$BIN/remove_vbd_from_dom" "$d" 0 >/dev/null 2>&1
		[ -L "$d" ] && rm -f "$d"
	done
	for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null; done
	ctl_teardown
}

vd() {
	"$BIN/$@"
}

# map_json ID: the disk's runs as JSON
map_json() {
	vd vd_info "$1" --json
}

@test "vd commands: --help, usage errors exit 2, refusals exit 1 with the reason" {
	local c
	for c in vd_format vd_create vd_refresh vd_delete vd_undelete vd_list \
		vd_info vd_freespace vd_enlarge add_vbd_to_dom remove_vbd_from_dom; do
		run vd "$c" --help
		assert_success
		assert_output --partial "Usage: $c"
	done
	run vd vd_create
	assert_failure 2
	run vd vd_create ten
	assert_failure 2
	run vd vd_delete 0
	assert_failure 2
	run vd vd_delete 99
	assert_failure 1
	assert_output --partial "VD 99: no such disk"
	run vd vd_create 10
	assert_failure 1
	assert_output --partial "10 MiB asked for, the free pool has 0 MiB"
	run vd add_vbd_to_dom vd:1 /dev/xvdq 0 rwx
	assert_failure 2
	[ -f "$VDISK_DB" ]
	[ "$(sqlite3 "$VDISK_DB" 'PRAGMA user_version')" = 1 ]
	[ "$(sqlite3 "$VDISK_DB" 'PRAGMA journal_mode')" = wal ]
}

@test "vd_format guards: in the pool, loop-backed, mounted, --db overrides VDISK_DB" {
	need losetup mkfs.ext4
	mkimg "$TD_DIR/p1" 64M
	mkimg "$TD_DIR/fs" 64M
	run vd vd_format "$TD_DIR/p1" --extent-size 8M
	assert_success
	run vd vd_format "$TD_DIR/p1"
	assert_failure 1
	assert_output --partial "is already in the pool"
	run vd vd_freespace
	assert_output 64
	run vd vd_freespace --db "$TD_DIR/other.sqlite"
	assert_output 0
	local loop
	loop=$(losetup --find --show "$TD_DIR/fs")
	LOOPS+=("$loop")
	run vd vd_format "$TD_DIR/fs"
	assert_failure 1
	assert_output --partial "it backs $loop"
	mkfs.ext4 -q "$loop"
	mkdir "$TD_DIR/mnt"
	mount "$loop" "$TD_DIR/mnt"
	MOUNTS+=("$TD_DIR/mnt")
	run vd vd_format "$loop"
	assert_failure 1
	assert_output --partial "$loop: mounted on $TD_DIR/mnt"
}

@test "a disk spanning two partitions over NBD: the pattern lands exactly where the map says" {
	need nbdsh
	mkimg "$TD_DIR/p1" 24M
	mkimg "$TD_DIR/p2" 24M
	vd vd_format "$TD_DIR/p1" --extent-size 4M
	vd vd_format "$TD_DIR/p2" --extent-size 4M
	# a small disk first, deleted, so the big one's map is not trivial
	small=$(vd vd_create 4)
	vd vd_delete "$small"
	id=$(vd vd_create 36)
	run vd vd_info "$id"
	assert_output --partial "36 MiB, 9 extents"
	map_json "$id" >"$TD_DIR/map.json"
	[ "$(json_get 'len(set(r["device"] for r in j["map"]))' <"$TD_DIR/map.json")" = 2 ]
	td_start "vd:$id"
	run nbdinfo --size "$TD_URI"
	assert_output $((36 << 20))
	run td_nbdsh "$TD_URI" <<'EOF'
import random
r = random.Random(7)
size = h.get_size()
pat = bytes(r.getrandbits(8) | 1 for _ in range(1 << 20))
# 3 MiB writes: most of them span two runs
for off in range(0, size, 3 << 20):
    h.pwrite(pat * 3, off)
h.flush()
for off in range(0, size, 3 << 20):
    assert h.pread(3 << 20, off) == pat * 3, off
print("ok")
EOF
	assert_success
	assert_output ok
	td_stop
	# every byte of both files: the pattern inside the map, zero outside
	run "$TD_PY" - "$TD_DIR/map.json" <<'EOF'
import json, random, sys
m = json.load(open(sys.argv[1]))
r = random.Random(7)
pat = bytes(r.getrandbits(8) | 1 for _ in range(1 << 20))
files = {}
for run in m["map"]:
    files.setdefault(run["device"], [])
expect = {}
pos = 0
for run in m["map"]:
    start = run["start_sector"] * 512
    n = run["nr_sectors"] * 512
    expect.setdefault(run["device"], []).append((start, n, pos))
    pos += n
assert pos == m["size"], (pos, m["size"])
for dev, runs in expect.items():
    data = open(dev, "rb").read()
    covered = bytearray(len(data))
    for start, n, dpos in runs:
        for o in range(0, n, 1 << 20):
            chunk = data[start + o:start + o + (1 << 20)]
            assert chunk == pat[:len(chunk)], (dev, start + o, dpos + o)
        covered[start:start + n] = b"\x01" * n
    outside = bytes(b for b, c in zip(data, covered) if not c)
    assert outside.count(0) == len(outside), (dev, "bytes outside the map")
print("ok")
EOF
	assert_success
	assert_output ok
}

@test "vd driver: an expired disk is refused at open; a missing database too" {
	mkimg "$TD_DIR/p1" 16M
	vd vd_format "$TD_DIR/p1" --extent-size 4M
	id=$(vd vd_create 8)
	vd vd_delete "$id"
	run "$TAPDISK" -n "unix:$TD_DIR/x.sock" "vd:$id"
	assert_failure
	assert_output --partial "VD $id has expired"
	run "$TAPDISK" -n "unix:$TD_DIR/x.sock" "vd:$id?db=$TD_DIR/none.sqlite"
	assert_failure
	assert_output --partial "no virtual-disk database"
	[ ! -e "$TD_DIR/none.sqlite" ]
	vd vd_undelete "$id"
	td_start "vd:$id?db=$VDISK_DB"
	run nbdinfo --size "$TD_URI"
	assert_output $((8 << 20))
	td_stop
}

@test "tap-img takes a pool disk by its name: info, map, convert, compare vd:ID" {
	local img=$(dirname "$TAPDISK")/tap-img id
	mkimg "$TD_DIR/p1" 16M
	vd vd_format "$TD_DIR/p1" --extent-size 4M
	id=$(vd vd_create 8)
	td_start "vd:$id"
	qemu-io -f raw -c "write -P 7 1M 64k" "$TD_URI" >/dev/null
	td_stop
	run "$img" info --json "vd:$id"
	assert_success
	assert_output --partial '"format":"vd"'
	assert_output --partial '"filename":"vd:'"$id"'"'
	"$img" convert -O qcow2 "vd:$id" "$TD_DIR/o.qcow2"
	run "$img" compare "vd:$id" "$TD_DIR/o.qcow2"
	assert_success
	run qemu-io -f qcow2 -c "read -P 7 1M 64k" "$TD_DIR/o.qcow2"
	assert_success
	run "$img" map "vd:$id?db=$VDISK_DB"
	assert_success
	# a file of that very name is still a file
	mkimg "$TD_DIR/vd:$id" 1M
	run "$img" info --json "$TD_DIR/vd:$id"
	assert_output --partial '"format":"raw"'
}

@test "add_vbd_to_dom vd:ID DEVNODE 0 rw: mkfs.ext4, mount, write; sharing refused; remove_vbd_from_dom" {
	need mkfs.ext4 losetup e2fsck
	[ -c /dev/fuse ] || skip "no /dev/fuse"
	mkimg "$TD_DIR/p1" 48M
	mkimg "$TD_DIR/p2" 48M
	vd vd_format "$TD_DIR/p1" --extent-size 8M
	vd vd_format "$TD_DIR/p2" --extent-size 8M
	id=$(vd vd_create 80)
	ctl_start
	dev=/dev/xvda
	[ -e "$dev" ] && dev=/dev/xvdv$$
	DEVNODES+=("$dev")
	run vd add_vbd_to_dom "vd:$id" "$dev" 0 rw
	assert_success
	[ -L "$dev" ]
	loop=$(readlink "$dev")
	[ -b "$loop" ]
	# the same disk writable again, from another command: refused
	run vd add_vbd_to_dom "vd:$id" /dev/xvdw$$ 0 rw
	assert_failure 1
	assert_output --partial "needs --expert 2"
	run vd vd_delete "$id"
	assert_failure 1
	assert_output --partial "attached to domain 0"
	mkfs.ext4 -q "$dev"
	mkdir "$TD_DIR/mnt"
	mount "$dev" "$TD_DIR/mnt"
	MOUNTS+=("$TD_DIR/mnt")
	head -c 20M /dev/urandom >"$TD_DIR/mnt/data"
	sum=$(sha "$TD_DIR/mnt/data")
	umount "$TD_DIR/mnt"
	MOUNTS=()
	run vd remove_vbd_from_dom "$dev" 0
	assert_success
	[ ! -e "$dev" ]
	# again: the filesystem is on the pool disk, checked through NBD
	td_start "vd:$id"
	need nbdcopy
	nbdcopy "$TD_URI" "$TD_DIR/copy.img"
	td_stop
	run e2fsck -fn "$TD_DIR/copy.img"
	assert_success
	run vd remove_vbd_from_dom "$dev" 0
	assert_failure 1
	assert_output --partial "no such VBD"
	vd vd_delete "$id"
}
