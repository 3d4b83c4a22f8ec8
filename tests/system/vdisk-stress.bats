#!/usr/bin/env bats
# The pool under concurrency and crashes: 32 processes creating and
# deleting disks against one database, and vd_create killed with SIGKILL
# at random moments while it zeroes reused space.
#
#   VDISK_STRESS_SECS   how long the 32 processes run (default 30)
#   VDISK_CRASH_ROUNDS  how many vd_create runs are killed (default 100)

load helpers

BIN=$(dirname "$TAPDISK")

setup() {
	td_setup
	export VDISK_DB=$TD_DIR/pool.sqlite
	need sqlite3
}

# pool_check: integrity, no extent region on a device twice, every live
# disk's extents cover its size; prints "EXTENTS SECTORS" of the pool
pool_check() {
	[ "$(sqlite3 "$VDISK_DB" 'PRAGMA integrity_check')" = ok ] ||
		fail "integrity_check: $(sqlite3 "$VDISK_DB" 'PRAGMA integrity_check')"
	[ "$(sqlite3 "$VDISK_DB" 'PRAGMA foreign_key_check' | wc -l)" = 0 ] ||
		fail "foreign_key_check failed"
	local overlap short
	overlap=$(sqlite3 "$VDISK_DB" "SELECT count(*) FROM extents a JOIN extents b
		ON a.device = b.device AND a.id < b.id
		AND a.start < b.start + b.sectors AND b.start < a.start + a.sectors")
	[ "$overlap" = 0 ] || fail "$overlap overlapping extents"
	short=$(sqlite3 "$VDISK_DB" "SELECT count(*) FROM vdisks v WHERE state = 'live'
		AND size > 512 * (SELECT coalesce(sum(sectors), 0) FROM extents WHERE vdisk = v.id)")
	[ "$short" = 0 ] || fail "$short disks hold less than their size"
	sqlite3 "$VDISK_DB" 'SELECT count(*), sum(sectors) FROM extents' | tr '|' ' '
}

@test "32 processes create and delete disks for ${VDISK_STRESS_SECS:-30}s: no extent given twice, none lost" {
	local secs=${VDISK_STRESS_SECS:-30} i
	mkimg "$TD_DIR/p1" 2G
	mkimg "$TD_DIR/p2" 2G
	"$BIN/vd_format" "$TD_DIR/p1" --extent-size 4M
	"$BIN/vd_format" "$TD_DIR/p2" --extent-size 8M
	before=$(pool_check)
	end=$((SECONDS + secs))
	for ((i = 0; i < 32; i++)); do
		(
			n=0
			kept=
			while [ $SECONDS -lt $end ]; do
				# sizes that span extents and devices; every other one scrubs
				size=$(((RANDOM % 32) + 1))
				flag=--no-scrub
				[ $((n % 2)) = 0 ] && flag=
				id=$("$BIN/vd_create" $flag "$size" 2>>"$TD_DIR/err.$i") ||
					{ echo "create failed" >>"$TD_DIR/err.$i"; exit 1; }
				echo "$id" >>"$TD_DIR/ids.$i"
				# one disk in four is kept until the worker's next keeper
				if [ $((RANDOM % 4)) = 0 ]; then
					[ -n "$kept" ] && { "$BIN/vd_delete" "$kept" 2>>"$TD_DIR/err.$i" ||
						{ echo "delete failed" >>"$TD_DIR/err.$i"; exit 1; }; }
					kept=$id
				else
					"$BIN/vd_delete" "$id" 2>>"$TD_DIR/err.$i" ||
						{ echo "delete failed" >>"$TD_DIR/err.$i"; exit 1; }
				fi
				n=$((n + 1))
			done
		) &
		BG_PIDS+=($!)
	done
	local failed=0
	for i in "${BG_PIDS[@]}"; do
		wait "$i" || failed=$((failed + 1))
	done
	BG_PIDS=()
	cat "$TD_DIR"/err.* 2>/dev/null | head -n 20
	[ "$failed" = 0 ] || fail "$failed workers failed"
	total=$(cat "$TD_DIR"/ids.* | wc -l)
	unique=$(sort -u "$TD_DIR"/ids.* | wc -l)
	echo "# $total disks created by 32 processes in ${secs}s" >&3
	[ "$total" -gt 32 ]
	[ "$total" = "$unique" ] || fail "ids handed out twice: $total vs $unique"
	after=$(pool_check)
	[ "$before" = "$after" ] || fail "extents before: $before, after: $after"
	# the kept disks are all live, with their own extents
	live=$(sqlite3 "$VDISK_DB" "SELECT count(*) FROM vdisks WHERE state = 'live' AND expires = 0")
	[ "$live" -gt 0 ]
	[ "$(sqlite3 "$VDISK_DB" "SELECT count(*) FROM vdisks WHERE state = 'pending'")" = 0 ]
}

@test "vd_create killed at random moments while zeroing ${VDISK_CRASH_ROUNDS:-100} times: no old byte handed out" {
	local rounds=${VDISK_CRASH_ROUNDS:-100}
	mkimg "$TD_DIR/p1" 256M
	mkimg "$TD_DIR/p2" 256M
	"$BIN/vd_format" "$TD_DIR/p1" --extent-size 1M
	"$BIN/vd_format" "$TD_DIR/p2" --extent-size 1M
	before=$(pool_check)
	run "$TD_PY" - "$BIN" "$rounds" <<'EOF'
import json, os, random, signal, sqlite3, subprocess, sys, time
bindir, rounds = sys.argv[1], int(sys.argv[2])
db = os.environ["VDISK_DB"]
rnd = random.Random(1)
PAT = b"\xa5" * (1 << 20)

def runs(vid):
    out = subprocess.run([bindir + "/vd_info", "--json", str(vid)],
                         capture_output=True, check=True).stdout
    return json.loads(out)["map"]

def write_pattern(vid):
    # what a disk's owner leaves behind when it is deleted
    for r in runs(vid):
        fd = os.open(r["device"], os.O_WRONLY)
        for o in range(0, r["nr_sectors"] * 512, len(PAT)):
            n = min(len(PAT), r["nr_sectors"] * 512 - o)
            os.pwrite(fd, PAT[:n], r["start_sector"] * 512 + o)
        os.fsync(fd)
        os.close(fd)

def all_zero(vid):
    for r in runs(vid):
        with open(r["device"], "rb") as f:
            f.seek(r["start_sector"] * 512)
            left = r["nr_sectors"] * 512
            while left:
                b = f.read(min(left, 1 << 20))
                if b.count(0) != len(b):
                    return False
                left -= len(b)
    return True

def live():
    c = sqlite3.connect(db)
    ids = [r[0] for r in c.execute(
        "SELECT id FROM vdisks WHERE state = 'live' AND expires = 0")]
    c.close()
    return ids

# fill the pool with used, deleted disks
for _ in range(4):
    vid = int(subprocess.check_output([bindir + "/vd_create", "--no-scrub", "100"]))
    write_pattern(vid)
    subprocess.check_call([bindir + "/vd_delete", str(vid)])
killed = completed = midscrub = 0
for i in range(rounds):
    p = subprocess.Popen([bindir + "/vd_create", str(rnd.randint(20, 120))],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    time.sleep(rnd.uniform(0.002, 0.05))
    if p.poll() is None:
        p.send_signal(signal.SIGKILL)
        killed += 1
    p.wait()
    c = sqlite3.connect(db)
    assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    midscrub += c.execute("SELECT count(*) FROM vdisks WHERE state = 'pending'").fetchone()[0] > 0
    c.close()
    if p.returncode == 0:
        completed += 1
    # every disk handed out so far reads zeroes; then it is used and freed
    for vid in live():
        assert all_zero(vid), "VD %d holds old bytes (round %d)" % (vid, i)
        write_pattern(vid)
        subprocess.check_call([bindir + "/vd_delete", str(vid)])
print("rounds %d killed %d (%d left a reservation) completed %d" %
      (rounds, killed, midscrub, completed))
# how many die mid-way depends on the machine's speed; enough must
assert killed >= rounds // 10 and completed > 0
EOF
	echo "# $output" >&3
	assert_success
	# one more create reclaims whatever the killed ones reserved
	"$BIN/vd_create" 1
	[ "$(sqlite3 "$VDISK_DB" "SELECT count(*) FROM vdisks WHERE state = 'pending'")" = 0 ]
	after=$(pool_check)
	[ "$before" = "$after" ] || fail "extents before: $before, after: $after"
}
