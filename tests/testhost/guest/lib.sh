# SPDX-License-Identifier: GPL-2.0-only
#
# /th-lib.sh: sourced by the guests' /init (busybox sh). The host reads the
# console for these marker lines:
#   TH-MARK <info>                 progress, with the guest's uptime
#   TH-CHECK <name> OK|FAIL ...    one boot check (modules, devices, 9p)
#   TH-RUN exit=<n>                the suites ran; bats' worst exit status
export PATH=/usr/bin:/usr/sbin:/usr/lib/xen-4.17/bin HOME=/root

up() { cut -d' ' -f1 /proc/uptime; }

# chk NAME CMD...: run CMD, print one TH-CHECK line with its output.
chk() {
	n=$1
	shift
	if o=$("$@" 2>&1); then r=OK; else r=FAIL; fi
	echo "TH-CHECK $n $r" $o
}

early() {
	mount -t proc proc /proc
	mount -t sysfs sys /sys
	mount -t devtmpfs dev /dev
	mkdir -p /dev/pts /dev/shm /run/lock
	mount -t devpts devpts /dev/pts
	mount -t tmpfs tmpfs /dev/shm
	# bash's process substitution needs /dev/fd; devtmpfs has none
	ln -s /proc/self/fd /dev/fd
	ln -s /proc/self/fd/0 /dev/stdin
	ln -s /proc/self/fd/1 /dev/stdout
	ln -s /proc/self/fd/2 /dev/stderr
	# mount(8) keeps its table there
	ln -sf /proc/mounts /etc/mtab
	echo "TH-MARK $TH_ROLE start kernel=$(uname -r) uptime=$(up)"
}

modules() { for m in "$@"; do chk "modprobe-$m" modprobe "$m"; done; }
devices() { for d in "$@"; do chk "dev-$d" ls -l "/dev/$d"; done; }

mount9p() {
	mkdir -p "$2" && mount -t 9p -o "trans=virtio,version=9p2000.L,msize=262144,cache=none${3:+,$3}" "$1" "$2"
}

# The shares: the source tree with the build (read-only) and the folder
# the results go to.
shares() {
	chk 9p-src mount9p src /mnt/src ro
	chk 9p-results mount9p results /mnt/results
}

# finish: run the suites for this role, report, power off.
finish() {
	if [ -d /mnt/src/tests/testhost ] && [ -d /mnt/results ]; then
		echo "TH-MARK suites start uptime=$(up)"
		/mnt/src/tests/testhost/guest/run-suites "$TH_ROLE" </dev/null
		echo "TH-RUN exit=$? uptime=$(up)"
	fi
	echo "TH-MARK done uptime=$(up)"
	sync
	poweroff -f
}
