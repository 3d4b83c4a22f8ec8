# SPDX-License-Identifier: GPL-2.0-only
# bench/lib.sh: how every bench script starts. Sourced, not run.

# bench_init "$@": cd to the top of the tree ($top); --help prints the
# calling script's header comment; no other arguments are taken. BUILD
# becomes absolute (default build), BENCH_DIR gets its default.
bench_init() {
	top=$(cd "$(dirname "${BASH_SOURCE[1]}")/.." && pwd)
	cd "$top"
	case "${1:-}" in
	-h|--help) sed -n '3,/^# Exit status/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	"") ;;
	*) echo "$0: no arguments expected (see --help)" >&2; exit 2 ;;
	esac
	BUILD=${BUILD:-build}
	case "$BUILD" in /*) ;; *) BUILD=$top/$BUILD ;; esac
	BENCH_DIR=${BENCH_DIR:-/var/tmp/blktap-bench}
}
