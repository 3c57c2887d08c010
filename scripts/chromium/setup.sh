#!/usr/bin/env bash
# Install Debian's Chromium for the report-rendering test (idempotent; needs root/apt).
# Prints the chromium path on success.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium (Debian package, one-time) ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  # tests may set up several Debian packages at once: one apt at a time
  exec 8>/tmp/rass-apt.lock; flock 8
  apt-get update -q >&2
  apt-get install -y -q -o DPkg::Lock::Timeout=300 chromium >&2
  flock -u 8
fi
command -v chromium
