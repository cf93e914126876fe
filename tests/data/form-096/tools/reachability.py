#!/usr/bin/env python3
"""Every entry reachable from the Composition through references; every reference resolves."""
import json
import sys

bad = 0
for f in sys.argv[1:]:
    b = json.load(open(f))
    if b.get("resourceType") != "Bundle":
        print(f"{f}: not a Bundle ({b.get('resourceType')})")
        bad += 1
        continue
    by = {e["fullUrl"]: e["resource"] for e in b["entry"]}

    def refs(x, out):
        if isinstance(x, dict):
            for k, v in x.items():
                if k == "reference" and isinstance(v, str):
                    out.append(v)
                else:
                    refs(v, out)
        elif isinstance(x, list):
            for v in x:
                refs(v, out)
        return out

    comp = b["entry"][0]["fullUrl"]
    seen, todo = {comp}, [comp]
    while todo:
        u = todo.pop()
        for r in refs(by[u], []):
            if r not in by:
                print(f"{f}: dangling reference {r} in {by[u]['resourceType']}")
                bad += 1
            elif r not in seen:
                seen.add(r)
                todo.append(r)
    for u, r in by.items():
        if u not in seen:
            print(f"{f}: orphan {r['resourceType']} {u}")
            bad += 1
print(f"reach: {len(sys.argv) - 1} file(s), {bad} problem(s)")
sys.exit(1 if bad else 0)
