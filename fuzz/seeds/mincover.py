#!/usr/bin/env python3
"""Chooses a small corpus: from a libFuzzer merge control file (`-merge=1
-merge_control_file=F`), inputs picked greedily, most new edges first, until every edge any
input covers is covered or MAX inputs are chosen (default 60: the long tail of edges each
covered by one input is what a short run finds again in seconds, and it would triple the
files). Handwritten seeds (names that are not 40 hex digits) are kept whatever they cover;
other files in OUT_DIR are replaced.

    mincover.py CONTROL_FILE OUT_DIR [MAX]"""
import hashlib, os, re, shutil, sys

control, out = sys.argv[1], sys.argv[2]
limit = int(sys.argv[3]) if len(sys.argv) > 3 else 60
lines = open(control).read().splitlines()
n = int(lines[0])
files = lines[2:2 + n]
cov = {}
for l in lines[2 + n:]:
    if l.startswith("COV "):
        parts = l.split()
        cov[int(parts[1])] = set(parts[2:])
hashed = re.compile(r"^[0-9a-f]{40}$")
keep = [i for i, f in enumerate(files) if not hashed.match(os.path.basename(f))]
covered = set().union(*(cov.get(i, set()) for i in keep)) if keep else set()
universe = set().union(*cov.values())
chosen = []
while covered != universe and len(chosen) < limit:
    best = max(cov, key=lambda i: (len(cov[i] - covered), -os.path.getsize(files[i])))
    chosen.append(best)
    covered |= cov[best]
data = [open(files[i], "rb").read() for i in chosen]
os.makedirs(out, exist_ok=True)
for f in os.listdir(out):
    if hashed.match(f):
        os.remove(os.path.join(out, f))
for d in data:
    with open(os.path.join(out, hashlib.sha1(d).hexdigest()), "wb") as g:
        g.write(d)
print(f"{len(keep)} handwritten seeds and {len(chosen)} chosen of {n} inputs cover {len(covered)} of {len(universe)} edges")
