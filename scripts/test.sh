#!/usr/bin/env bash
# Sets up the machine and runs every check CI runs: formatting, lints, unit and integration tests
# (the integration tests start the real binary and drive it with sipp and baresip).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --no-fail-fast
