#!/usr/bin/env bash
# Runs the whole test suite: unit and integration tests, end-to-end tests on real QEMU guests
# (building the default image into the image cache on first use), crash injection, the fuzz
# targets for a bounded time each, the conformance suite
# through the aws CLI and boto3, and an Ansible playbook (amazon.aws) against the sim
# hypervisor. Installs what the host lacks first. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
echo "[corral test] building" >&2
cargo build -p corral-cli
echo "[corral test] cargo tests (unit, integration, end-to-end on QEMU)" >&2
cargo test --workspace 2>&1
echo "[corral test] fuzzing: every target for 20 s from its corpus (RELIABILITY.md)" >&2
bash scripts/fuzz.sh 20
echo "[corral test] conformance suite (aws CLI and boto3)" >&2
bash tests/conformance/run.sh
echo "[corral test] Ansible: an amazon.aws playbook builds and tears down a VPC deployment (sim)" >&2
python3 -m pytest -q tests/ansible
echo "[corral test] end to end: the README flow through the aws CLI on a real QEMU guest" >&2
python3 -m pytest -q tests/e2e
