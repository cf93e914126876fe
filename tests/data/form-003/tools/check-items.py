#!/usr/bin/env python3
"""Usage: check-items.py OUT/NAME.json... (each the composed Bundle of tests/data/form-003/NAME.json).

Checks that nothing of the nested / indexed input is lost: every prescriptions[].administrations[] item is a
MedicationAdministration whose request is its prescription's MedicationRequest; every transfer is an
Encounter.location (department, and room partOf it) whose period ends at the next transfer or discharge; every
diagnostic results[] analyte is an Observation referenced from its DiagnosticReport.result (no contained
resources); hospitalizationsThisYear has effectivePeriod = the calendar year of admission. Exit 1 on a failure."""
import json, sys, os
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
bad = 0
def fail(f, msg):
    global bad; bad += 1; print(f"{f}: FAIL {msg}")
for out in sys.argv[1:]:
    name = os.path.basename(out)
    inp = json.load(open(os.path.join(DATA, name)))
    b = json.load(open(out))
    ents = {e["fullUrl"]: e["resource"] for e in b["entry"]}
    by_type = {}
    for e in b["entry"]:
        by_type.setdefault(e["resource"]["resourceType"], []).append(e)
    r = lambda ref: ents[ref["reference"]]
    # --- administrations
    P = inp.get("medicationSheet", {}).get("prescriptions", [])
    mrs = by_type.get("MedicationRequest", [])
    mas = [e["resource"] for e in by_type.get("MedicationAdministration", [])]
    want = [(i, a) for i, p in enumerate(P) for a in p.get("administrations", [])]
    if len(mas) != len(want): fail(name, f"{len(mas)} MedicationAdministrations, want {len(want)}")
    for (i, a), ma in zip(want, mas):
        mr = r(ma["request"])
        if mr is not mrs[i]["resource"]: fail(name, f"administration of prescriptions[{i}] requests the wrong MedicationRequest")
        if ma["medication"]["concept"]["text"] != P[i]["medication"]["text"]: fail(name, "medication text")
        if ma["occurenceDateTime"] != a["dateTime"]: fail(name, "occurenceDateTime")
        if "performer" in a and ma["performer"][0]["actor"]["reference"]["reference"] not in ents: fail(name, "performer")
        if "performer" not in a and "performer" in ma: fail(name, "performer without input")
        if a.get("result") and ma["note"][0]["text"] != a["result"]: fail(name, "note")
    # --- transfers
    ai = inp["administrativeInformation"]; T = ai.get("transfers", [])
    enc = by_type["Encounter"][0]["resource"]
    locs = enc.get("location", [])
    dis = ai.get("dischargeDateTime")
    for i, t in enumerate(T):
        end = T[i + 1]["transferredAt"] if i + 1 < len(T) else dis
        d = [l for l in locs if r(l["location"]).get("name") == t["department"] and "partOf" not in r(l["location"])
             and l["period"]["start"] == t["transferredAt"]]
        if len(d) != 1: fail(name, f"transfers[{i}] department: {len(d)} Encounter.location entries"); continue
        if d[0]["period"].get("end") != end: fail(name, f"transfers[{i}] department period.end {d[0]['period'].get('end')} != {end}")
        if "roomNumber" in t:
            rm = [l for l in locs if r(l["location"]).get("name") == t["roomNumber"] and l["period"]["start"] == t["transferredAt"]]
            if len(rm) != 1: fail(name, f"transfers[{i}] room: {len(rm)} entries"); continue
            room = r(rm[0]["location"])
            if r(room["partOf"]) is not r(d[0]["location"]): fail(name, f"transfers[{i}] room partOf")
            if rm[0]["period"].get("end") != end: fail(name, f"transfers[{i}] room period.end")
    n_loc = len([x for x in (ai.get("department"), ai.get("roomNumber")) if x]) + len(T) + len([t for t in T if "roomNumber" in t])
    if len(locs) != n_loc: fail(name, f"{len(locs)} Encounter.location, want {n_loc}")
    if len(by_type.get("Location", [])) != n_loc: fail(name, f"{len(by_type.get('Location', []))} Locations, want {n_loc}")
    # --- analytes
    dr_in = inp.get("diagnosticResults", {})
    drs = [e["resource"] for e in by_type.get("DiagnosticReport", [])]
    n_an = 0
    for key, studies in dr_in.items():
        if key == "specialistConsultations": continue
        for j, st in enumerate(studies):
            m = [d for d in drs if d.get("effectiveDateTime") == st["dateTime"] and d.get("conclusion") == st.get("conclusion")
                 and len(d.get("result", [])) == len(st.get("results", []))]
            if not m: fail(name, f"{key}[{j}]: no DiagnosticReport"); continue
            for k, (ref, a) in enumerate(zip(m[0].get("result", []), st.get("results", []))):
                o = r(ref); n_an += 1
                if o["resourceType"] != "Observation": fail(name, "result not an Observation")
                if o["code"].get("text") != a.get("name") or (a.get("loincCode") and o["code"]["coding"][0]["code"] != a["loincCode"]):
                    fail(name, f"{key}[{j}].results[{k}] code")
                if "value" in a and o["valueQuantity"]["value"] != a["value"]: fail(name, f"{key}[{j}].results[{k}] value")
                if "valueText" in a and a["valueText"] not in (o.get("valueString"), (o.get("note") or [{}])[0].get("text")):
                    fail(name, f"{key}[{j}].results[{k}] valueText")
                if o["effectiveDateTime"] != st["dateTime"]: fail(name, "analyte effective")
    obs_in_dr = {ref["reference"] for d in drs for ref in d.get("result", [])}
    if len(obs_in_dr) != n_an: fail(name, f"{len(obs_in_dr)} distinct analyte Observations, want {n_an}")
    if any("contained" in e["resource"] for e in b["entry"]): fail(name, "contained resources left")
    # --- hospitalizationsThisYear
    h = inp.get("hospitalizationSummary", {}).get("hospitalizationsThisYear")
    if h is not None:
        y = ai["admissionDateTime"][:4]
        o = [e["resource"] for e in by_type["Observation"] if e["resource"]["code"].get("coding", [{}])[0].get("code") == "num-previous-hospitalizations"]
        if len(o) != 1 or o[0]["valueInteger"] != h or o[0].get("effectivePeriod") != {"start": f"{y}-01-01", "end": f"{y}-12-31"}:
            fail(name, f"hospitalizationsThisYear {o}")
    print(f"{name}: {len(mas)} MedicationAdministration / {len(want)} administrations, {len(T)} transfers -> "
          f"{len(locs)} Encounter.location, {n_an} analyte Observations")
sys.exit(1 if bad else 0)
