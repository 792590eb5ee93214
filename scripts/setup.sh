#!/usr/bin/env bash
# Set up lipdub on a fresh machine: Python packages (torch version pinned in requirements.txt), plus with --dev the test tools
# (Debian's chromium for the browser tests; the espeak-ng speech the cue tests use is stored in tests/data).
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
[ "${1:-}" = "--dev" ] && dev=1

if [ "$dev" = 1 ]; then
  need=()
  command -v chromium >/dev/null || need+=(chromium)
  apt_pid=
  if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "setup: please install with apt: ${need[*]}" >&2
      exit 1
    fi
    # apt runs beside pip (both mostly wait on downloads and unpacking): a fresh machine is set up sooner
    apt_log=$(mktemp)
    (export DEBIAN_FRONTEND=noninteractive
     apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}") >"$apt_log" 2>&1 &
    apt_pid=$!
  fi
  python -m pip install -q -r requirements-dev.txt
  if [ -n "$apt_pid" ] && ! wait "$apt_pid"; then
    cat "$apt_log" >&2
    echo "setup: apt-get install ${need[*]} failed (its output above)" >&2
    exit 1
  fi
else
  python -m pip install -q -r requirements.txt
fi
