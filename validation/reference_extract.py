#!/usr/bin/env python3
"""An independent reference extraction of S3 access logs, for checking s3tally.

Written separately from s3tally's Rust parser, with a different method: one regular expression
over the whole line (Python's backtracking `re`), instead of a field-by-field scan. For every
REST.GET.OBJECT line with a 2xx status it counts, per object key: requests, bytes sent (`-` is 0)
and downloads (status 200). Lines it cannot match are counted, not guessed.

    reference_extract.py LOG_DIR...   > reference.tsv

Output: TSV `object_key, requests, bytes_sent, downloads`, sorted by key (bytes order).
"""
import collections
import datetime
import gzip
import os
import re
import sys

LOG_NAME = re.compile(rb"\d{4}-\d{1,2}-\d{1,2}-\d{1,2}-\d{1,2}-\d{1,2}-[0-9A-Za-z]{1,64}(\.gz)?$")
# owner bucket [time] ip requester request-id operation key "uri" status error bytes size total
# turnaround "referrer... The requester may hold spaces (a CloudFront origin access identity): the
# operation is the first field, after at least two, shaped like one (REST.GET.OBJECT).
HEAD = rb'^\S+ +\S+ +\[(?P<time>[^\]]*)\] +(?P<ip>\S+) +(?:\S+ +){2,9}?(?P<op>[A-Z0-9_]+(?:\.[A-Z0-9_]+)+) +'
TAIL = rb'(?P<key>\S+) +(?:"(?P<uri>.*?)"|(?P<bare>\S+)) +(?P<status>\d{3}) +\S+ +(?P<bytes>\d+|-) +(?:\d+|-) +(?:\d+|-) +(?:\d+|-) +'
# the referrer is quoted; a bare - is read only when no quoted one fits
LINE_QUOTED = re.compile(HEAD + TAIL + rb'"')
LINE_BARE = re.compile(HEAD + TAIL + rb'-(?: |$)')
OPERATION = re.compile(HEAD + rb'\S')
TIME = re.compile(rb"^\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}$")


def real_time(text):
    """Whether a log time is a real date and time of day (no 30:58:50)."""
    if not TIME.match(text):
        return False
    try:
        datetime.datetime.strptime(text.decode(), "%d/%b/%Y:%H:%M:%S %z")
    except ValueError:
        return False
    return True


def log_files(root):
    for directory, _, names in os.walk(root):
        for name in names:
            if LOG_NAME.search(os.fsencode(name)):
                yield os.path.join(directory, name)


def read(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as stream:
        return stream.read()


def main(roots):
    totals = collections.defaultdict(lambda: [0, 0, 0])
    unreadable = 0
    seen = set()
    for root in roots:
        for path in sorted(log_files(root)):
            identity = os.path.basename(path).removesuffix(".gz")
            if identity in seen:
                continue
            seen.add(identity)
            for line in read(path).split(b"\n"):
                line = line.rstrip(b"\r")
                operation = OPERATION.match(line)
                if operation is None:
                    unreadable += bool(line.strip())
                    continue
                if operation.group("op") != b"REST.GET.OBJECT":
                    continue
                match = LINE_QUOTED.match(line) or LINE_BARE.match(line)
                if match is None or not real_time(match.group("time")):
                    unreadable += 1
                    continue
                if not match.group("status").startswith(b"2"):
                    continue
                sent = match.group("bytes")
                entry = totals[match.group("key")]
                entry[0] += 1
                entry[1] += 0 if sent == b"-" else int(sent)
                entry[2] += match.group("status") == b"200"
    out = sys.stdout.buffer
    out.write(b"object_key\trequests\tbytes_sent\tdownloads\n")
    for key in sorted(totals):
        requests, sent, downloads = totals[key]
        out.write(key + b"\t%d\t%d\t%d\n" % (requests, sent, downloads))
    print(f"reference: {len(totals)} objects, {unreadable} lines not matched", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
