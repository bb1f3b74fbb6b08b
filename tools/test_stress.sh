#!/usr/bin/env bash
# The test suite on a starved machine, to catch tests that depend on speed (issue: a suite that passes on
# every machine). Two modes:
#   hog      one CPU core taken by `stress-ng --cpu 1` for the whole run (the suite shares the rest)
#   onecore  the whole suite pinned to CPU 0 with `taskset -c 0`
# Usage: tools/test_stress.sh MODE [RUNS]   (RUNS in a row, default 1; stops at the first red run)
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:?usage: tools/test_stress.sh hog|onecore [RUNS]}
RUNS=${2:-1}
VENV=${VENV:-.venv}
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST

if [ "$MODE" = hog ] && ! command -v stress-ng >/dev/null; then
  echo "test-stress: installing Debian package stress-ng"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stress-ng
fi
command -v taskset >/dev/null || { echo "test-stress: taskset (util-linux) is missing" >&2; exit 2; }

hog=
cleanup() { [ -n "$hog" ] && kill "$hog" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
for i in $(seq 1 "$RUNS"); do
  start=$(date +%s)
  case "$MODE" in
    hog)
      stress-ng --cpu 1 --quiet &
      hog=$!
      "$VENV/bin/python" -m pytest test -q -p no:cacheprovider
      kill "$hog"; wait "$hog" 2>/dev/null || true; hog= ;;
    onecore)
      taskset -c 0 "$VENV/bin/python" -m pytest test -q -p no:cacheprovider ;;
    *) echo "test-stress: unknown mode '$MODE' (hog or onecore)" >&2; exit 2 ;;
  esac
  echo "test-stress: $MODE run $i/$RUNS green in $(( $(date +%s) - start )) s (nproc $(nproc), $(uname -m))"
done
