#!/usr/bin/env bash
# Sets up the machine and runs every check CI runs: formatting, lints (all features, so the Opus code is
# checked too), unit and integration tests (the integration tests start the real binary and drive it with
# sipp and baresip, and its web UI with a headless Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
# The web UI test drives Debian's Chromium with playwright-core (pinned; it never downloads a browser).
(cd tests/ui && npm ci --no-audit --no-fund --loglevel=error)
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
cargo test --workspace --no-fail-fast
# Opus: the codec tests, and a real call with baresip negotiating Opus.
cargo test -p voxgate-media --features opus
cargo test --features opus --test baresip
