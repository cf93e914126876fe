"""Python peer of hujjat's benchmark (benches/hujjat.rs, BENCHMARKS.md): what an integrator would
assemble with `jwcrypto` and `rfc8785`. Usage: python pipeline.py BUNDLE.json SECONDS
Prints one JSON object: per-operation microseconds (median batch) of
  canonicalize: the FHIR `json#document` view (root id/meta/signature dropped) -> RFC 8785 bytes
  sign:         canonicalize + fresh P-256 key pair + detached compact ES256 JWS
  verify:       canonicalize again + verify the detached JWS with the key's public part
  pipeline:     sign then verify, per iteration (the loop the ratios compare)
"""

import json
import platform
import sys
import time
from datetime import datetime, timezone

import rfc8785
from jwcrypto import jwk, jws

CANON = "http://hl7.org/fhir/canonicalization/json#document"


def payload_of(b):
    view = {k: v for k, v in b.items() if k not in ("id", "meta", "signature")}
    return rfc8785.dumps(view)


def sign(b):
    payload = payload_of(b)
    key = jwk.JWK.generate(kty="EC", crv="P-256")
    header = {
        "alg": "ES256",
        "typ": "JOSE",
        "sigT": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "canon": CANON,
    }
    s = jws.JWS(payload)
    s.add_signature(key, None, protected=json.dumps(header))
    h, _, sig = s.serialize(compact=True).split(".")
    public = jwk.JWK(**key.export_public(as_dict=True))
    return f"{h}..{sig}", public


def verify(b, signed):
    compact, public = signed
    payload = payload_of(b)
    v = jws.JWS()
    v.deserialize(compact)
    v.verify(public, alg="ES256", detached_payload=payload)


def measure(f, secs):
    """hujjat's protocol: warm up secs/4, batches of ~20 ms for secs, the median batch."""
    n, w0 = 0, time.perf_counter()
    while time.perf_counter() - w0 < secs / 4 or n == 0:
        f()
        n += 1
    per = (time.perf_counter() - w0) / n
    batch = max(1, int(0.02 / per))
    samples, t0 = [], time.perf_counter()
    while time.perf_counter() - t0 < secs or len(samples) < 3:
        t = time.perf_counter()
        for _ in range(batch):
            f()
        samples.append((time.perf_counter() - t) / batch)
    samples.sort()
    return samples[len(samples) // 2] * 1e6


def main():
    file, secs = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 6.0
    with open(file, encoding="utf-8") as f:
        bundle = json.load(f)
    signed = sign(bundle)
    verify(bundle, signed)  # raises when the pair does not verify
    result = {
        "impl": f"python {platform.python_version()} jwcrypto + rfc8785",
        "per_op_us": {
            "canonicalize": measure(lambda: payload_of(bundle), secs),
            "sign": measure(lambda: sign(bundle), secs),
            "verify": measure(lambda: verify(bundle, signed), secs),
            "pipeline": measure(lambda: verify(bundle, sign(bundle)), secs),
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
