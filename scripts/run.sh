#!/usr/bin/env bash
# Sets up the machine and runs the appliance with its embedded defaults (SIP on 0.0.0.0:5060 UDP+TCP,
# HTTP API on 127.0.0.1:8080, SQLite in var/, bundled prompts). Extra arguments go to `voxgate run`,
# e.g. `./scripts/run.sh --config /etc/voxgate.toml`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --release --bin voxgate
exec target/release/voxgate run "$@"
