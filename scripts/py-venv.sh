#!/usr/bin/env bash
# Create (once) and print the path of a Python venv for a requirements file.
# The venv lives in .venv/<name>-<hash of the requirements file>, so a changed requirements
# file gets a new venv and a warm machine reuses the old one. Used by fixture scripts,
# benchmark peers and integration tests (MLflow server); the product itself is TypeScript.
# Usage: scripts/py-venv.sh NAME REQUIREMENTS_FILE   -> prints the venv directory on stdout
set -euo pipefail
name="$1"; req="$2"
root="$(cd "$(dirname "$0")/.." && pwd)"
hash="$(sha256sum "$req" | cut -c1-12)"
venv="$root/.venv/$name-$hash"
if [ ! -f "$venv/.complete" ]; then
  # (braces: a bare `exec 9>f 2>/dev/null` would silence this script's stderr for good)
  { exec 9>"$root/.venv.$name.lock"; } 2>/dev/null || exec 9>"/tmp/rass-venv-$name.lock"
  flock 9
  if [ ! -f "$venv/.complete" ]; then
    echo "creating Python venv $venv (one-time) ..." >&2
    rm -rf "$venv"
    mkdir -p "$root/.venv"
    # pip's output (resolver notices, warnings, progress) goes to a log that is printed only
    # when a step fails: a working install prints the line above and nothing else
    log="$root/.venv/$name-$hash.log"
    : > "$log"
    run_logged() {
      if ! "$@" >>"$log" 2>&1; then
        echo "py-venv: \`$*\` failed; its output:" >&2
        cat "$log" >&2
        return 1
      fi
    }
    run_logged python3 -m venv "$venv"
    # a newer pip is nice to have: offline, the venv's own pip does (its failure is not news)
    "$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip >>"$log" 2>&1 || true
    run_logged "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
    touch "$venv/.complete"
    rm -f "$log"
  fi
fi
echo "$venv"
