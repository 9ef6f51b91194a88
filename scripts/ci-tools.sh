#!/bin/sh
# Best-effort installation of the tools some tests use. Never fails the build:
# a test whose tool is missing is skipped with a printed reason.
#   pgbouncer (Debian package): test/db/poolers.test.ts

if [ ! -x "${PGSHIFT_PGBOUNCER:-/usr/sbin/pgbouncer}" ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
      echo "ci-tools: pgbouncer missing and not root (no sudo); its tests will be skipped" >&2
      exit 0
    fi
  fi
  echo "ci-tools: installing pgbouncer" >&2
  $SUDO apt-get install -y pgbouncer >/dev/null 2>&1 \
    || { $SUDO apt-get update >/dev/null 2>&1 && $SUDO apt-get install -y pgbouncer >/dev/null 2>&1; } \
    || echo "ci-tools: could not install pgbouncer; its tests will be skipped" >&2
fi
exit 0
