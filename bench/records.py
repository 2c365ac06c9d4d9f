"""bench/records.py - the format of the benchmark records under bench/results/.

One record is two files written by `bench/record` after `bench/run all`:
bench/results/<YYYY-MM-DD>-<shortsha>.tsv (one row per figure, the columns
below, a header line first) and a .md of the same name (the table, the
machine and versions, and the raw output of every benchmark). bench/readme-table
reads the newest .tsv. Standard library only.
"""
import csv
import os
import re

COLUMNS = ["benchmark", "metric", "value", "unit", "baseline", "baseline_value", "ratio",
           "target", "verdict", "mode", "window", "nproc", "commit", "recorded"]

# verdicts: PASS and MISS judge a target; CAPPED means the configured schedule, not the
# bridge, limited the figure (bench/compare/README.md); "-" is a context row without target
VERDICTS = ("PASS", "MISS", "CAPPED", "-")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")


def write_tsv(path, rows):
    """rows: dicts with every key of COLUMNS."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(COLUMNS)
        for r in rows:
            w.writerow([r[c] for c in COLUMNS])


def read_tsv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    if not rows or rows[0] != COLUMNS:
        raise ValueError("%s: header is not %s" % (path, "\t".join(COLUMNS)))
    out = [dict(zip(COLUMNS, r)) for r in rows[1:] if r]
    for r in out:
        if r["verdict"] not in VERDICTS:
            raise ValueError("%s: verdict %r of %r" % (path, r["verdict"], r["metric"]))
    return out


def latest():
    """The newest record's .tsv (by its `recorded` timestamp), or None."""
    best = None
    for name in sorted(os.listdir(RESULTS)) if os.path.isdir(RESULTS) else []:
        if not name.endswith(".tsv"):
            continue
        path = os.path.join(RESULTS, name)
        rows = read_tsv(path)
        stamp = rows[0]["recorded"] if rows else ""
        if best is None or stamp > best[0]:
            best = (stamp, path)
    return best[1] if best else None


# ---- how a row reads in markdown (the record's .md and the README block) --------------------

UNITS = {"us": "µs"}


def num(s):
    """'42091' -> '42,091'; '23.30' -> '23.30'; anything else unchanged."""
    try:
        v = float(s)
    except ValueError:
        return s
    if v == int(v) and "." not in s and abs(v) >= 1000:
        return "{:,}".format(int(v))
    return s


def fmt_value(r):
    unit = UNITS.get(r["unit"], r["unit"])
    if unit == "x":
        return "x" + r["value"]
    return "%s %s" % (num(r["value"]), unit) if unit not in ("", "-") else num(r["value"])


def fmt_baseline(r):
    if r["baseline"] in ("", "-"):
        return ""
    if r["baseline_value"] in ("", "-"):
        return r["baseline"]
    return "%s, %s" % (r["baseline"], fmt_value(dict(r, value=r["baseline_value"])))


def fmt_ratio(r):
    return "" if r["ratio"] in ("", "-") else r["ratio"] + "x"


def fmt_target(r):
    """'>= 0.25' judges the ratio: '≥ 0.25x'; other targets ('p99 <= 5 ms') read as written."""
    t = r["target"]
    if t in ("", "-"):
        return ""
    m = re.match(r"(<=|>=|=) *([0-9.]+)(.*)$", t)
    if m:
        t = "%s %sx%s" % (m.group(1), m.group(2), m.group(3))
    return t.replace("<=", "≤").replace(">=", "≥")


def fmt_verdict(r):
    return {"PASS": "PASS", "MISS": "**MISS**", "CAPPED": "CAPPED"}.get(r["verdict"], "")


def md_table(rows):
    """The figures as a markdown table, one line per row."""
    out = ["| benchmark | figure | rest2mqtt | baseline (same run) | ratio | target | verdict |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [r["benchmark"], r["metric"], fmt_value(r), fmt_baseline(r), fmt_ratio(r),
                 fmt_target(r), fmt_verdict(r)]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return out
