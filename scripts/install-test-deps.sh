#!/usr/bin/env bash
# Installs the non-Rust things the tests use, so that no test has to be
# skipped: python3 with the package the signature interop test needs
# (contracts/tests/interop.rs), the FHIR validator's models
# (fhir.resources, for tests/fhir.rs via scripts/fhir/validate.py), aiosmtpd
# for the SMTP server the e-mail tests start (tests/email.rs), and Debian's
# Chromium and ChromeDriver for the
# browser test (tests/browser.rs), with poppler-utils and axe-core for its
# printed-PDF and accessibility checks. Safe to run repeatedly; it installs only
# what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
APT_UPDATED=""
# Installs Debian packages, refreshing the package lists once per run.
apt_install() {
  if [ -z "$APT_UPDATED" ]; then
    $SUDO apt-get update
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "$@"
}

if ! command -v python3 >/dev/null 2>&1; then
  apt_install python3 python3-pip
elif ! python3 -m pip --version >/dev/null 2>&1; then
  apt_install python3-pip
fi

# The interop test's package, the FHIR validator's models, and aiosmtpd for
# the e-mail tests' real SMTP server (scripts/smtp-server.py, tests/email.rs).
pip_install() {
  python3 -m pip install --quiet --disable-pip-version-check "$@" \
    -r scripts/interop/requirements.txt -r scripts/fhir/requirements.txt \
    -r scripts/email-test-requirements.txt
}
# Debian's own python3 refuses installs into the system environment
# (PEP 668, "externally-managed-environment"); the user's site-packages is
# then the place that touches no Debian package.
if ! pip_install 2>/dev/null; then
  pip_install --user --break-system-packages
fi

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  apt_install chromium chromium-driver
fi

# A Chinese font: the Chinese browser story (tests/browser.rs) checks the
# pages' layout at phone width and saves screenshots; without a font with
# CJK glyphs Chromium draws boxes of another width.
if ! fc-list :lang=zh 2>/dev/null | grep -q .; then
  apt_install fonts-wqy-zenhei
fi

# poppler-utils: the browser test prints the prescription to PDF and renders
# its first page to PNG with pdftoppm to decode the printed QR code.
if ! command -v pdftoppm >/dev/null 2>&1; then
  apt_install poppler-utils
fi

# axe-core, injected by the browser test into every page (accessibility:
# no violation of serious or critical impact). Installed under target/ (not
# committed); the test reads target/test-deps/axe/node_modules/axe-core/axe.min.js
# or the file named by RXCHAIN_AXE.
AXE_DIR=target/test-deps/axe
if [ ! -f "$AXE_DIR/node_modules/axe-core/axe.min.js" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    apt_install npm
  fi
  mkdir -p "$AXE_DIR"
  npm install --prefix "$AXE_DIR" --no-audit --no-fund --silent axe-core@4
fi
