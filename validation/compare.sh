#!/usr/bin/env bash
# Compares s3tally's extraction of LOG_DIR with the independent reference (reference_extract.py):
# per object, GET-2xx requests, bytes sent and downloads. Prints differing objects; exit 0 when
# there are none, 1 otherwise.
#
#   validation/compare.sh LOG_DIR [S3TALLY]     (S3TALLY defaults to target/release/s3tally)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
logs=$1
s3tally=${2:-target/release/s3tally}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 "$here/reference_extract.py" "$logs" >"$work/reference.tsv"
S3TALLY_SALT=${S3TALLY_SALT:-validation-salt-0123456789abcdef} S3TALLY_CONFIG_DIR="$work/config" \
  "$s3tally" --cache "$work/cache" extract "$logs" 2>"$work/extract.log" || { tail -5 "$work/extract.log"; exit 1; }
S3TALLY_SALT=${S3TALLY_SALT:-validation-salt-0123456789abcdef} S3TALLY_CONFIG_DIR="$work/config" \
  "$s3tally" --cache "$work/cache" dump >"$work/dump.tsv"

python3 - "$work/reference.tsv" "$work/dump.tsv" <<'PY'
import collections, sys
reference = {}
with open(sys.argv[1], "rb") as stream:
    next(stream)
    for line in stream:
        key, requests, sent, downloads = line.rstrip(b"\n").split(b"\t")
        reference[key] = (int(requests), int(sent), int(downloads))
ours = collections.defaultdict(lambda: [0, 0, 0])
with open(sys.argv[2], "rb") as stream:
    next(stream)
    for line in stream:
        key, _, sent, status = line.rstrip(b"\n").split(b"\t")[:4]
        entry = ours[key]
        entry[0] += 1
        entry[1] += int(sent)
        entry[2] += status == b"200"
ours = {k: tuple(v) for k, v in ours.items()}
differing = sorted(k for k in reference.keys() | ours.keys() if reference.get(k) != ours.get(k))
print(f"objects: {len(reference)} (reference) {len(ours)} (s3tally), differing: {len(differing)}")
for key in differing[:20]:
    print(f"  {key.decode(errors='replace')}: reference {reference.get(key)} s3tally {ours.get(key)}  (requests, bytes, downloads)")
sys.exit(1 if differing else 0)
PY
