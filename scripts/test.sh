#!/usr/bin/env bash
# Runs the whole rxchain test suite. Installs what the tests need on a fresh
# machine first (idempotent), so CI and developers run the same thing:
#   ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# The signature interop test checks k256 against an independent secp256k1
# implementation from PyPI, and the browser test drives Chromium. Both fail
# when their tools are missing (nothing is skipped silently), so install them
# first; CI must never need RXCHAIN_SKIP_INTEROP, RXCHAIN_SKIP_BROWSER or
# RXCHAIN_SKIP_EMAIL (the e-mail tests start aiosmtpd, scripts/smtp-server.py).
./scripts/install-test-deps.sh

if ! command -v cargo-nextest >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi

# Tests start real nodes; keep their logs quiet unless asked.
export RXCHAIN_LOG="${RXCHAIN_LOG:-warn}"
# The crates have no runnable doc examples (their docs show text diagrams),
# so nextest's summary is the whole result.
cargo nextest run --workspace --no-fail-fast "$@"
