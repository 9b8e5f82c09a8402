#!/usr/bin/env python3
"""Builds the Loghub fixtures in this folder from a Loghub checkout.

For every system X with `X/X_2k.log` and `X/X_2k.log_structured.csv` under SOURCE, writes
`X.jsonl`: one compact JSON object per log line,

    {"line": <raw line>, "level": <Level column, or null>, "content": <Content column>}

`line` is the raw line without its line ending (the samples use CRLF); `level` is the
column value verbatim (null when the system has no Level column); the test
(aggregator/tests/loghub.rs) maps it to a Logferry level. Also copies SOURCE/LICENSE here.

Usage: python3 tests/corpus/loghub/import.py [SOURCE]
SOURCE defaults to ../shared/corpus/loghub relative to the repository root.
"""

import csv
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))


def raw_lines(path):
    """The file's lines, split on LF only, each without a trailing CR."""
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [l[:-1].decode("utf-8") if l.endswith(b"\r") else l.decode("utf-8") for l in lines]


def import_system(source, name):
    log = os.path.join(source, name, f"{name}_2k.log")
    structured = log + "_structured.csv"
    lines = raw_lines(log)
    with open(structured, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if len(rows) != len(lines):
        sys.exit(f"{name}: {len(lines)} lines but {len(rows)} CSV rows")
    out = os.path.join(HERE, f"{name}.jsonl")
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        for n, (line, row) in enumerate(zip(lines, rows), 1):
            if row["LineId"] != str(n):
                sys.exit(f"{name}: CSV row {n} has LineId {row['LineId']}")
            record = {"line": line, "level": row.get("Level"), "content": row["Content"]}
            f.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
            f.write("\n")
    return len(lines)


def main():
    source = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "corpus", "loghub")
    source = os.path.normpath(source)
    systems = sorted(
        d for d in os.listdir(source)
        if os.path.isfile(os.path.join(source, d, f"{d}_2k.log_structured.csv"))
    )
    if not systems:
        sys.exit(f"no Loghub systems under {source}")
    for name in systems:
        print(f"{name}: {import_system(source, name)} lines")
    shutil.copyfile(os.path.join(source, "LICENSE"), os.path.join(HERE, "LICENSE"))


if __name__ == "__main__":
    main()
