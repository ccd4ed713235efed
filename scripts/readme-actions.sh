#!/usr/bin/env bash
# Rewrites README.md's list of served actions (between the actions markers) from the dispatch
# table, using the list the README drift test prints.
set -euo pipefail
cd "$(dirname "$0")/.."
line=$(cargo test -q -p corral-api --lib readme_lists_the_dispatch_table 2>&1 | grep -A1 "put this between the markers:" | tail -1 || true)
if [ -z "$line" ]; then
  echo "README.md already lists the dispatch table" >&2
  exit 0
fi
python3 - "$line" <<'PY'
import re, sys
line = sys.argv[1]
s = open("README.md").read()
s = re.sub(r"(<!-- actions:begin[^\n]*\n).*?(<!-- actions:end -->)", lambda m: m.group(1) + line + "\n" + m.group(2), s, flags=re.S)
open("README.md", "w").write(s)
PY
echo "README.md's action list rewritten" >&2
