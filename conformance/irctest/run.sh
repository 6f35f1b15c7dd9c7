#!/bin/bash
# Runs irctest's server tests against mxircd; see docs/irctest.md.
#
#   conformance/irctest/run.sh /path/to/irctest [pytest args...]
#
# With no pytest arguments it runs irctest's default selection; arguments
# are added to the pytest command line (e.g. -k 'Topic', -x, -v).
#
# Environment:
#   PYTHON                     the Python with pytest (default /usr/bin/python3)
#   MXIRCD_IRCTEST_BIN         where mxircd and the rig are built (default: a
#                              new temporary folder)
#   MXIRCD_IRCTEST_SYNC_SLEEP  seconds irctest waits before reading a client
#                              (default 0.3; see mxircd_controller.py)
#   MXIRCD_IRCTEST_LOGS        keep each test's mxircd and Dendrite logs here
#   MXIRCD_IRCTEST_SELECTION   the -m expression (default below)
set -euo pipefail

if [ $# -lt 1 ] || [ ! -f "$1/conftest.py" ]; then
	echo "usage: $0 /path/to/irctest [pytest args...]" >&2
	exit 2
fi
irctest=$(cd "$1" && pwd)
shift
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${PYTHON:-/usr/bin/python3}
selection=${MXIRCD_IRCTEST_SELECTION:-not implementation-specific and not deprecated and not strict}

bin=${MXIRCD_IRCTEST_BIN:-}
if [ -z "$bin" ]; then
	bin=$(mktemp -d "${TMPDIR:-/tmp}/mxircd-irctest-bin.XXXXXX")
fi
mkdir -p "$bin"
echo "building mxircd and the rig into $bin" >&2
(cd "$root" && go build -tags goolm -o "$bin/mxircd" ./cmd/mxircd \
	&& go build -tags goolm -o "$bin/rig" ./conformance/irctest/rig)
# Builds Dendrite if no earlier run has (minutes), before irctest's clock runs.
"$bin/rig" prepare

log=$(mktemp "${TMPDIR:-/tmp}/mxircd-irctest.XXXXXX.log")
echo "irctest output: $log" >&2
status=0
(
	cd "$irctest"
	export MXIRCD_IRCTEST_BIN="$bin"
	export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
	export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ beside the controller
	"$python" -m pytest -p pluggy_compat -p no:cacheprovider \
		--controller mxircd_controller \
		-m "$selection" \
		-rfEX \
		irctest/server_tests/ "$@"
) 2>&1 | tee "$log" | grep --line-buffered -E '^irctest/[^ :]+ |test session starts' || status=$?

# The short summary (one line per failure) and the counts.
sed -n '/short test summary info/,$p' "$log"
exit "$status"
