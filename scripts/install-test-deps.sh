#!/usr/bin/env bash
# Installs the non-Rust things the tests use. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -f scripts/interop/requirements.txt ]; then
  python3 -m pip install --quiet --disable-pip-version-check -r scripts/interop/requirements.txt
fi

# The browser test (tests/browser.rs) drives Debian's Chromium through
# chromedriver. Install them only when missing, refreshing the package lists
# once.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y chromium chromium-driver
fi
