#!/usr/bin/env bash
# Compose every Form 096 test input with the engine and run both oracles plus the reachability and
# nested-entries checks; every input under invalid/ must be rejected. Run from the repository root:
#   tests/data/form-096/tools/run-oracles.sh [OUTDIR]
set -u
DATA=tests/data/form-096
OUT=${1:-$(mktemp -d)}
TOOLS=${ORACLES:-../shared/tools}
mkdir -p "$OUT/valid" "$OUT/invalid"
fail=0
cargo build -q || exit 2
for f in "$DATA"/*.json; do
  n=$(basename "$f" .json)
  if ! cargo run -q -- compose "$f" > "$OUT/valid/$n.json" 2> "$OUT/valid/$n.err"; then
    echo "compose failed: $f"; cat "$OUT/valid/$n.err"; fail=1
  fi
done
"$TOOLS/fhir-validate" "$OUT"/valid/*.json || fail=1
"$TOOLS/dhp-profile-check" "$OUT"/valid/*.json || fail=1
python3 "$DATA/tools/reachability.py" "$OUT"/valid/*.json || fail=1
python3 "$DATA/tools/nested-entries.py" "$DATA" "$OUT"/valid/*.json || fail=1
for f in "$DATA"/invalid/*.json; do
  n=$(basename "$f" .json)
  if cargo run -q -- compose "$f" > "$OUT/invalid/$n.json" 2>/dev/null; then
    echo "NOT REJECTED: $f"; fail=1
  else
    printf '%s: %s\n' "$n" "$(python3 -c 'import json,sys; print("; ".join(",".join(i.get("expression") or []) for i in json.load(open(sys.argv[1]))["issue"]))' "$OUT/invalid/$n.json")"
  fi
done
echo "outputs in $OUT"
exit $fail
