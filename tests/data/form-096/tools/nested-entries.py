#!/usr/bin/env python3
"""Every nested input item became its own resource: each medicationOrders.prescriptions[i].administrations[j]
is a MedicationAdministration whose request is the MedicationRequest of prescription i, and each
diagnosticOrders.orders[i].results[j] an Observation basedOn the ServiceRequest of order i; both are
entries of their section, in input order.
Usage: nested-entries.py INPUT_DIR BUNDLE...   (the input of BUNDLE is INPUT_DIR/<same file name>)"""
import json
import os
import sys

LOINC_MEDS, LOINC_ORDERS = "10160-0", "18776-5"  # section codes: medication orders, ordered examinations

bad = 0
counted = [0, 0]


def fail(f, msg):
    global bad
    print(f"{f}: {msg}")
    bad += 1


def ref(x):
    return (x or {}).get("reference")


for path in sys.argv[2:]:
    f = os.path.basename(path)
    doc = json.load(open(os.path.join(sys.argv[1], f)))
    b = json.load(open(path))
    entries = [(e["fullUrl"], e["resource"]) for e in b["entry"]]
    comp = entries[0][1]
    of = lambda t: [(u, r) for u, r in entries if r["resourceType"] == t]
    sections = {s["code"]["coding"][0]["code"]: [ref(e) for e in s.get("entry", [])] for s in comp["section"]}

    # prescriptions → MedicationRequest (rule order = input order); administrations → MedicationAdministration with request
    rxs = (doc.get("medicationOrders") or {}).get("prescriptions", [])
    reqs = of("MedicationRequest")
    admins = [(u, r) for u, r in of("MedicationAdministration") if "request" in r]
    want = [(i, a) for i, rx in enumerate(rxs) for a in rx.get("administrations", [])]
    if len(reqs) != len(rxs):
        fail(f, f"{len(rxs)} prescriptions but {len(reqs)} MedicationRequest")
    if len(admins) != len(want):
        fail(f, f"{len(want)} administrations but {len(admins)} MedicationAdministration with a request")
    for (i, a), (u, r) in zip(want, admins):
        if ref(r["request"]) != reqs[i][0]:
            fail(f, f"administration of prescription {i} ({a['dateTime']}) has request {ref(r['request'])}")
        if r.get("occurenceDateTime") != a["dateTime"] or r["medication"]["concept"].get("text") != a["medication"]["text"]:
            fail(f, f"administration of prescription {i} ({a['dateTime']}) rendered as {r.get('occurenceDateTime')}")
    if want and sections.get(LOINC_MEDS, []) != [u for u, _ in reqs] + [u for u, _ in admins]:
        fail(f, "medicationOrders section entries are not the requests then the administrations, in order")
    counted[0] += len(want)

    # orders → ServiceRequest (the diagnostic-order rule comes before the procedure-order rule); results → Observation basedOn
    orders = (doc.get("diagnosticOrders") or {}).get("orders", [])
    srs = of("ServiceRequest")[: len(orders)]
    sr_urls = {u for u, _ in srs}
    results = [(u, r) for u, r in of("Observation") if any(ref(x) in sr_urls for x in r.get("basedOn", []))]
    want = [(i, x) for i, o in enumerate(orders) for x in o.get("results", [])]
    if len(results) != len(want):
        fail(f, f"{len(want)} results but {len(results)} Observation basedOn a diagnostic order")
    for (i, x), (u, r) in zip(want, results):
        if [ref(y) for y in r["basedOn"]] != [srs[i][0]]:
            fail(f, f"result of order {i} ({x['dateTime']}) is basedOn {r['basedOn']}")
        if r.get("effectiveDateTime") != x["dateTime"] or r.get("valueQuantity", {}).get("value") != x.get("value"):
            fail(f, f"result of order {i} ({x['dateTime']}) rendered as {r.get('effectiveDateTime')}")
    if orders and sections.get(LOINC_ORDERS, []) != [u for u, _ in srs] + [u for u, _ in results]:
        fail(f, "diagnosticOrders section entries are not the orders then the results, in order")
    counted[1] += len(want)

print(f"nested: {len(sys.argv) - 2} file(s), {counted[0]} administration(s), {counted[1]} result(s), {bad} problem(s)")
sys.exit(1 if bad else 0)
