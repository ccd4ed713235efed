#!/usr/bin/env python3
"""Refreshes crates/ec2-query/model/ec2-2016-11-15.json from the botocore package installed
here: EC2's service model, with documentation stripped. The Query decoder and XML encoder
are driven by it, so member names and shapes are botocore's, not ours."""
import gzip, json, os, sys
import botocore

src = os.path.join(os.path.dirname(botocore.__file__), "data", "ec2", "2016-11-15", "service-2.json.gz")
model = json.load(gzip.open(src))

def strip(x):
    if isinstance(x, dict):
        return {k: strip(v) for k, v in x.items() if k not in ("documentation", "documentationUrl", "deprecatedMessage")}
    if isinstance(x, list):
        return [strip(v) for v in x]
    return x

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "ec2-query", "model", "ec2-2016-11-15.json")
with open(out, "w") as f:
    json.dump(strip(model), f, separators=(",", ":"), sort_keys=True)
print(f"wrote {out} from botocore {botocore.__version__}", file=sys.stderr)
