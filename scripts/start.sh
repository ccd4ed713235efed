#!/usr/bin/env bash
# Starts Corral on this host, in the foreground: installs what the host lacks (as root),
# builds the `corral` binary, then runs `corral serve`, which builds the default images on
# first use (progress on stderr) and serves the EC2 API. Arguments go to `corral serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
echo "[corral] building corral (release)" >&2
cargo build --release -q -p corral-cli
exec target/release/corral serve "$@"
