#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-only
# tap-img against qemu-img as the referee: images one writes, the other
# reads; conversions compared by content; exit codes as qemu-img's.

load helpers

# the tools are built beside tapdisk
TAPIMG=$(dirname "$TAPDISK")/tap-img

setup() {
	td_setup
	[ -x "$TAPIMG" ] || fail "no tap-img at $TAPIMG (run make)"
	need qemu-img qemu-io
	cd "$TD_DIR" || fail "no scratch dir"
}

# need_fmt FMT: skip until the driver is built (fail under CI=true)
need_fmt() {
	local out
	out=$("$TAPIMG" create -f "$1" "$TD_DIR/.probe.$1" 1M 2>&1) && return 0
	if [[ "$out" == *"not supported"* ]]; then
		[ "${CI:-}" = true ] && fail "$1 driver not built, under CI"
		skip "$1 driver not built"
	fi
	fail "tap-img create -f $1 failed: $out"
}

# a raw image with data at 1M..3M and 9M..9M+64k, zeroes elsewhere
mkdata() {
	mkimg "$1" 16M
	qemu-io -f raw -c 'write -P 0x5a 1M 2M' -c 'write -P 0xa5 9M 64k' "$1" >/dev/null
}

@test "--help lists the subcommands; each has --help" {
	run "$TAPIMG" --help
	assert_success
	list=$output
	for c in create info check convert compare map commit rebase resize snapshot; do
		[[ "$list" == *"  $c "* ]] || fail "--help does not list $c"
		run "$TAPIMG" "$c" --help
		assert_success
		assert_output --partial "usage: tap-img $c"
	done
}

@test "usage errors exit 1 with a usage line" {
	run "$TAPIMG" create
	assert_failure 1
	assert_output --partial "usage: tap-img create"
	run "$TAPIMG" frobnicate
	assert_failure 1
	assert_output --partial "unknown command"
	run "$TAPIMG" convert --bogus a b
	assert_failure 1
}

@test "create raw: sparse, sized, qemu-img agrees" {
	run "$TAPIMG" create -f raw d.raw 64M
	assert_success
	[ "$(stat -c %s d.raw)" -eq 67108864 ]
	[ "$(allocated_kib d.raw)" -eq 0 ]
	run qemu-img info --output=json d.raw
	assert_output --partial '"virtual-size": 67108864'
	assert_output --partial '"format": "raw"'
}

@test "create raw -o preallocation=full allocates, falloc too" {
	"$TAPIMG" create -f raw -o preallocation=full f.raw 4M
	[ "$(allocated_kib f.raw)" -ge 4096 ]
	"$TAPIMG" create -f raw -o preallocation=falloc g.raw 4M
	[ "$(allocated_kib g.raw)" -ge 4096 ]
}

@test "sizes: suffixes and plain bytes; 12Q is refused" {
	"$TAPIMG" create -f raw a.raw 1536K
	[ "$(stat -c %s a.raw)" -eq 1572864 ]
	"$TAPIMG" create -f raw b.raw 1.5M
	[ "$(stat -c %s b.raw)" -eq 1572864 ]
	"$TAPIMG" create -f raw c.raw 4096
	[ "$(stat -c %s c.raw)" -eq 4096 ]
	run "$TAPIMG" create -f raw d.raw 12Q
	assert_failure 1
	assert_output --partial "12Q"
	[ ! -e d.raw ]
}

@test "unknown format and unknown -o key are refused, naming them" {
	run "$TAPIMG" create -f nosuch x.img 1M
	assert_failure 1
	assert_output --partial "nosuch"
	run "$TAPIMG" create -f raw -o bogus_key=1 x.raw 1M
	assert_failure 1
	assert_output --partial "bogus_key"
}

@test "missing file: error names the file" {
	run "$TAPIMG" info "$TD_DIR/nope.img"
	assert_failure 1
	assert_output --partial "nope.img"
}

@test "create qcow2 (options, backing): qemu-img info and check accept it" {
	need_fmt qcow2
	"$TAPIMG" create -f qcow2 -o cluster_size=4096 a.qcow2 64M
	run qemu-img check a.qcow2
	assert_success
	run qemu-img info --output=json a.qcow2
	assert_output --partial '"cluster-size": 4096'
	assert_output --partial '"virtual-size": 67108864'
	"$TAPIMG" create -f qcow2 -b a.qcow2 -F qcow2 top.qcow2
	run qemu-img info --output=json top.qcow2
	assert_output --partial '"backing-filename": "a.qcow2"'
	assert_output --partial '"virtual-size": 67108864'
	qemu-img check top.qcow2
}

@test "create qcow: qemu-img reads it" {
	need_fmt qcow
	"$TAPIMG" create -f qcow a.qcow 32M
	run qemu-img info --output=json a.qcow
	assert_output --partial '"format": "qcow"'
	assert_output --partial '"virtual-size": 33554432'
}

@test "info --json matches qemu-img info for a qcow2 with a backing file" {
	need_fmt qcow2
	qemu-img create -q -f qcow2 -o cluster_size=131072 base.qcow2 100M
	qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2
	for f in base.qcow2 top.qcow2; do
		q=$(qemu-img info --output=json "$f")
		t=$("$TAPIMG" info --json "$f")
		for k in virtual-size format cluster-size backing-filename filename; do
			[ "$(json_get "j.get('$k')" <<<"$q")" = "$(json_get "j.get('$k')" <<<"$t")" ] ||
				fail "$f: $k differs: qemu $q / tap-img $t"
		done
	done
	run "$TAPIMG" info top.qcow2
	assert_output --partial "backing file: base.qcow2"
	assert_output --partial "cluster_size: 65536"
	run "$TAPIMG" info --backing-chain --json top.qcow2
	[ "$(json_get 'len(j)' <<<"$output")" -eq 2 ]
}

@test "convert raw->raw keeps holes; -S 0 writes everything" {
	mkdata src.raw
	"$TAPIMG" convert -O raw src.raw out.raw
	qemu-img compare src.raw out.raw
	[ "$(allocated_kib out.raw)" -le 3200 ]
	"$TAPIMG" convert -S 0 -O raw src.raw full.raw
	qemu-img compare src.raw full.raw
	[ "$(allocated_kib full.raw)" -ge 16384 ]
}

@test "convert skips zero runs inside data (-S)" {
	mkimg src.raw 8M
	# allocated, but zeroes: written with real zero bytes
	dd if=/dev/zero of=src.raw bs=1M count=8 conv=notrunc status=none
	qemu-io -f raw -c 'write -P 1 0 4k' src.raw >/dev/null
	"$TAPIMG" convert -O raw src.raw out.raw
	qemu-img compare src.raw out.raw
	[ "$(allocated_kib out.raw)" -le 64 ]
}

@test "convert raw->qcow2->raw equals qemu-img's, stays sparse" {
	need_fmt qcow2
	mkdata src.raw
	"$TAPIMG" convert -O qcow2 src.raw t.qcow2
	qemu-img convert -O qcow2 src.raw q.qcow2
	qemu-img check t.qcow2
	run qemu-img compare t.qcow2 q.qcow2
	assert_success
	[ "$(allocated_kib t.qcow2)" -le $(($(allocated_kib q.qcow2) + 256)) ]
	"$TAPIMG" convert -p -O raw t.qcow2 back.raw
	cmp src.raw back.raw
	[ "$(allocated_kib back.raw)" -le 3200 ]
}

@test "a raw file that ends inside a sector: rounded up as qemu-img, no byte lost" {
	need_fmt qcow2
	head -c 1000000 /dev/urandom >odd.raw
	run "$TAPIMG" info --json odd.raw
	assert_success
	assert_output --partial '1000448'
	"$TAPIMG" convert -O qcow2 odd.raw t.qcow2
	qemu-img convert -O qcow2 odd.raw q.qcow2
	qemu-img compare t.qcow2 q.qcow2
	"$TAPIMG" convert -O raw odd.raw t.raw
	[ "$(stat -c %s t.raw)" = 1000448 ]
	cmp -n 1000000 odd.raw t.raw
	[ "$(tail -c 448 t.raw | tr -d '\0' | wc -c)" = 0 ]
}

@test "convert -o passes options to the driver; a bad key is refused" {
	need_fmt qcow2
	mkdata src.raw
	"$TAPIMG" convert -O qcow2 -o cluster_size=16384 src.raw t.qcow2
	run qemu-img info --output=json t.qcow2
	assert_output --partial '"cluster-size": 16384'
	run "$TAPIMG" convert -O qcow2 -o no_such_key=1 src.raw u.qcow2
	assert_failure 1
	assert_output --partial "no_such_key"
}

@test "convert qcow->qcow2 and a qcow2 chain flattened" {
	need_fmt qcow
	need_fmt qcow2
	mkdata src.raw
	qemu-img convert -O qcow src.raw s.qcow
	"$TAPIMG" convert -O qcow2 s.qcow t.qcow2
	qemu-img compare src.raw t.qcow2
	qemu-img create -q -f qcow2 -b t.qcow2 -F qcow2 top.qcow2
	qemu-io -c 'write -P 7 2M 1M' top.qcow2 >/dev/null
	"$TAPIMG" convert -O raw top.qcow2 flat.raw
	qemu-img compare top.qcow2 flat.raw
}

# mkdata, plus a cluster of real zero bytes (data to block_status) at 12M
# and a last 64k cluster cut short: 16M + 36352 bytes
mkdata_tail() {
	mkdata "$1"
	qemu-io -f raw -c 'write -P 0 12M 64k' "$1" >/dev/null
	truncate -s $((16 * 1024 * 1024 + 36352)) "$1"
	qemu-io -f raw -c 'write -P 0x11 16M 36352' "$1" >/dev/null
}

# a qemu-img check --output=json count of FILE (absent when 0)
check_field() {
	qemu-img check --output=json "$1" | json_get "j.get('$2', 0)"
}

@test "convert -c: every data cluster compressed (zlib, zstd), zeroes skipped" {
	need_fmt qcow2
	mkdata_tail src.raw
	for t in zlib zstd; do
		"$TAPIMG" convert -c -O qcow2 -o compression_type=$t src.raw $t.qcow2
		qemu-img check $t.qcow2
		qemu-img compare src.raw $t.qcow2
		run qemu-img info $t.qcow2
		assert_output --partial "compression type: $t"
		# 2M at 1M, 64k at 9M, the short last cluster; not the zeroes
		[ "$(check_field $t.qcow2 allocated-clusters)" -eq 34 ]
		[ "$(check_field $t.qcow2 compressed-clusters)" -eq 34 ]
		# qemu 8.2 and later also say so in map (7.2 has no such field)
		[ "$(qemu-img map --output=json $t.qcow2 |
			json_get 'all(e.get("compressed", True) for e in j if e["data"])')" = True ]
		# 2.1 MiB of data in one pattern each: a few KiB once compressed
		[ "$(stat -c %s $t.qcow2)" -lt $((512 * 1024)) ]
	done
	qemu-img convert -c -O qcow2 src.raw q.qcow2
	[ "$(stat -c %s zlib.qcow2)" -le "$(stat -c %s q.qcow2)" ]
}

@test "convert -c -S 0 compresses every cluster, zeroes too" {
	need_fmt qcow2
	mkdata_tail src.raw
	"$TAPIMG" convert -c -S 0 -O qcow2 -o cluster_size=16384 src.raw c.qcow2
	qemu-img check c.qcow2
	qemu-img compare src.raw c.qcow2
	# 16M + 36352 bytes in 16k clusters
	[ "$(check_field c.qcow2 compressed-clusters)" -eq 1027 ]
	[ "$(check_field c.qcow2 allocated-clusters)" -eq 1027 ]
}

@test "convert -c: random data stays readable (stored uncompressed)" {
	need_fmt qcow2
	mkimg_random src.raw 1
	"$TAPIMG" convert -c -O qcow2 -o cluster_size=4096 src.raw c.qcow2
	qemu-img check c.qcow2
	qemu-img compare src.raw c.qcow2
	[ "$(check_field c.qcow2 allocated-clusters)" -eq 256 ]
	[ "$(check_field c.qcow2 compressed-clusters)" -eq 0 ]
}

@test "convert -c to anything but qcow2 is refused before creating it" {
	need_fmt qcow
	mkdata src.raw
	for f in qcow raw; do
		run "$TAPIMG" convert -c -O $f src.raw c.$f
		assert_failure 1
		assert_output --partial "compressed output (-c) is only supported for qcow2"
		[ ! -e c.$f ]
	done
}

@test "compare: 0 identical, 1 different with the offset, 2 error; -s" {
	mkdata a.raw
	cp --sparse=always a.raw b.raw
	run "$TAPIMG" compare a.raw b.raw
	assert_success
	assert_output --partial "identical"
	qemu-io -f raw -c 'write -P 1 5000 1' b.raw >/dev/null
	run "$TAPIMG" compare a.raw b.raw
	assert_failure 1
	assert_output --partial "offset 4608"
	run qemu-img compare a.raw b.raw
	assert_output --partial "offset 4608"
	run "$TAPIMG" compare a.raw nope.raw
	assert_failure 2
	# a larger image that is zero past the smaller's end: same, unless -s
	cp --sparse=always a.raw c.raw
	truncate -s 20M c.raw
	run "$TAPIMG" compare a.raw c.raw
	assert_success
	run "$TAPIMG" compare -s a.raw c.raw
	assert_failure 1
	qemu-io -f raw -c 'write -P 1 18M 512' c.raw >/dev/null
	run "$TAPIMG" compare a.raw c.raw
	assert_failure 1
	assert_output --partial "offset $((18 * 1024 * 1024))"
}

@test "compare raw with qcow2 of the same content" {
	need_fmt qcow2
	mkdata a.raw
	qemu-img convert -O qcow2 a.raw a.qcow2
	run "$TAPIMG" compare a.raw a.qcow2
	assert_success
	run "$TAPIMG" compare -f raw -F qcow2 a.raw a.qcow2
	assert_success
}

# the (start, length, zero, data) list of a map --json output
map_list() {
	json_get '[(e["start"], e["length"], e["zero"], e["data"]) for e in j]'
}

@test "map --json agrees with qemu-img map on data and zero (raw, qcow2)" {
	mkdata a.raw
	[ "$("$TAPIMG" map --json a.raw | map_list)" = "$(qemu-img map --output=json a.raw | map_list)" ]
	run "$TAPIMG" map a.raw
	assert_success
	assert_output --partial "Offset"
	need_fmt qcow2
	qemu-img convert -O qcow2 a.raw a.qcow2
	qemu-io -c 'write -z 9M 64k' a.qcow2 >/dev/null
	[ "$("$TAPIMG" map --json a.qcow2 | map_list)" = "$(qemu-img map --output=json a.qcow2 | map_list)" ]
}

@test "check: 0 on a clean qcow2; raw has no metadata (1)" {
	mkimg a.raw 1M
	run "$TAPIMG" check a.raw
	assert_failure 1
	need_fmt qcow2
	mkdata s.raw
	qemu-img convert -O qcow2 s.raw a.qcow2
	run "$TAPIMG" check a.qcow2
	assert_success
	assert_output --partial "No errors"
	run "$TAPIMG" check --json a.qcow2
	assert_success
	[ "$(json_get 'j["corruptions"]' <<<"$output")" -eq 0 ]
}

# qcow2 header fields: refcount table offset (u64 at 48), L1 offset (u64 at 40)
be64() {
	od -An -tx1 -j "$2" -N 8 "$1" | tr -d ' \n' | { read -r h; echo $((16#$h)); }
}

@test "check: a bumped refcount is a leak (3); -r leaks repairs it" {
	need_fmt qcow2
	mkdata s.raw
	qemu-img convert -O qcow2 s.raw a.qcow2
	rt=$(be64 a.qcow2 48)
	rb=$(be64 a.qcow2 "$rt")
	# refcount of cluster 0 (the header) from 1 to 2: a leak
	printf '\x00\x02' | dd of=a.qcow2 bs=1 seek="$rb" conv=notrunc status=none
	run qemu-img check a.qcow2
	[ "$status" -eq 3 ]
	run "$TAPIMG" check a.qcow2
	assert_failure 3
	run "$TAPIMG" check -r leaks a.qcow2
	assert_success
	run qemu-img check a.qcow2
	assert_success
}

@test "check: two L2 entries at one cluster is corruption (2)" {
	need_fmt qcow2
	mkimg s.raw 16M
	qemu-io -f raw -c 'write -P 1 0 64k' -c 'write -P 2 64k 64k' s.raw >/dev/null
	qemu-img convert -O qcow2 s.raw a.qcow2
	l1=$(be64 a.qcow2 40)
	l2=$(($(be64 a.qcow2 "$l1") & 0x00fffffffffffe00))
	# the second L2 entry := the first
	dd if=a.qcow2 of=a.qcow2 bs=1 skip="$l2" seek=$((l2 + 8)) count=8 conv=notrunc status=none
	run qemu-img check a.qcow2
	[ "$status" -eq 2 ]
	run "$TAPIMG" check a.qcow2
	assert_failure 2
}

@test "commit merges the top into its backing file and empties it" {
	need_fmt qcow2
	mkdata b.raw
	qemu-img convert -O qcow2 b.raw base.qcow2
	qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2
	qemu-io -c 'write -P 3 2M 2M' -c 'write -z 9M 64k' top.qcow2 >/dev/null
	qemu-img convert -O raw top.qcow2 want.raw
	run "$TAPIMG" commit top.qcow2
	assert_success
	qemu-img compare base.qcow2 want.raw
	qemu-img compare top.qcow2 want.raw
	qemu-img check base.qcow2
	qemu-img check top.qcow2
	[ "$(qemu-img map --output=json top.qcow2 | json_get 'sum(1 for e in j if e["depth"] == 0 and e["present"])')" -eq 0 ]
}

@test "commit -d leaves the top as it was" {
	need_fmt qcow2
	mkdata b.raw
	qemu-img convert -O qcow2 b.raw base.qcow2
	qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2
	qemu-io -c 'write -P 3 2M 2M' top.qcow2 >/dev/null
	qemu-img convert -O raw top.qcow2 want.raw
	"$TAPIMG" commit -d top.qcow2
	qemu-img compare base.qcow2 want.raw
	[ "$(qemu-img map --output=json top.qcow2 | json_get 'sum(1 for e in j if e["depth"] == 0 and e["data"])')" -ge 1 ]
}

@test "rebase (safe) keeps the content; -u only rewrites; -b '' removes" {
	need_fmt qcow2
	qemu-img create -q -f qcow2 old.qcow2 16M
	qemu-io -c 'write -P 1 0 4M' old.qcow2 >/dev/null
	qemu-img create -q -f qcow2 new.qcow2 16M
	qemu-io -c 'write -P 9 2M 4M' new.qcow2 >/dev/null
	qemu-img create -q -f qcow2 -b old.qcow2 -F qcow2 top.qcow2
	qemu-io -c 'write -P 2 1M 512k' top.qcow2 >/dev/null
	qemu-img convert -O raw top.qcow2 want.raw
	"$TAPIMG" rebase -b new.qcow2 -F qcow2 top.qcow2
	run qemu-img info --output=json top.qcow2
	assert_output --partial '"backing-filename": "new.qcow2"'
	qemu-img compare top.qcow2 want.raw
	"$TAPIMG" rebase -b "" top.qcow2
	run qemu-img info --output=json top.qcow2
	refute_output --partial "backing-filename"
	qemu-img compare top.qcow2 want.raw
	"$TAPIMG" rebase -u -b old.qcow2 -F qcow2 top.qcow2
	run qemu-img info --output=json top.qcow2
	assert_output --partial '"backing-filename": "old.qcow2"'
}

@test "resize grows raw and qcow2; shrinking needs --shrink" {
	mkimg a.raw 8M
	run "$TAPIMG" resize a.raw +8M
	assert_success
	[ "$(stat -c %s a.raw)" -eq $((16 << 20)) ]
	run "$TAPIMG" resize a.raw 4M
	assert_failure 1
	assert_output --partial "--shrink"
	"$TAPIMG" resize --shrink a.raw -12M
	[ "$(stat -c %s a.raw)" -eq $((4 << 20)) ]
	need_fmt qcow2
	qemu-img create -q -f qcow2 a.qcow2 8M
	"$TAPIMG" resize a.qcow2 1G
	run qemu-img info --output=json a.qcow2
	assert_output --partial '"virtual-size": 1073741824'
	qemu-img check a.qcow2
}

@test "snapshot -l lists qemu-img's snapshots" {
	need_fmt qcow2
	qemu-img create -q -f qcow2 a.qcow2 8M
	qemu-img snapshot -c first a.qcow2
	qemu-img snapshot -c second a.qcow2
	run "$TAPIMG" snapshot -l a.qcow2
	assert_success
	assert_output --partial "first"
	assert_output --partial "second"
	run "$TAPIMG" info a.qcow2
	assert_output --partial "Snapshot list"
}
