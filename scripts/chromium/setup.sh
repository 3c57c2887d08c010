#!/usr/bin/env bash
# Install Debian's Chromium for the report-rendering test (idempotent; needs root/apt).
# Prints the chromium path on success.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium (Debian package, one-time) ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q chromium >&2
fi
command -v chromium
