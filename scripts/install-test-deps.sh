#!/usr/bin/env bash
# Installs the non-Rust things the tests use. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -f scripts/interop/requirements.txt ]; then
  python3 -m pip install --quiet --disable-pip-version-check -r scripts/interop/requirements.txt
fi
