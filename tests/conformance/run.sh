#!/usr/bin/env bash
# Runs the conformance suite (boto3 and the aws CLI against the EC2 Query API).
#
#   tests/conformance/run.sh [pytest args...]
#
# Without AWS_ENDPOINT_URL the suite starts its own `corral serve --hypervisor sim`, so Corral
# is built first (cargo build -p corral-cli; a no-op when up to date) unless CORRAL_BIN names a
# binary. With AWS_ENDPOINT_URL (and AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
# AWS_DEFAULT_REGION) it runs against that endpoint and builds nothing.
#
# Exits non-zero when any test fails, and also when pytest collects no tests (its exit code 5).
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ -z "${AWS_ENDPOINT_URL:-}" ] && [ -z "${CORRAL_BIN:-}" ]; then
  echo "[conformance] building corral (cargo build -p corral-cli)" >&2
  cargo build -q -p corral-cli
fi

if ! python3 -c 'import pytest, boto3' 2>/dev/null; then
  echo "[conformance] needs pytest and boto3: python3 -m pip install pytest boto3 awscli" >&2
  exit 2
fi

set +e
python3 -m pytest -q tests/conformance "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "[conformance] pytest collected no tests: counting that as a failure" >&2
  exit 1
fi
exit "$status"
