#!/usr/bin/env python3
"""Summarise the raw measurements of bench/compare.sh.

usage: report.py RAW_TSV OUT_DIR

RAW_TSV has one measurement a line: dataset, tool, run, metric, value (tab separated).
Rows with tool "*" describe a dataset (files, bytes, modify, and
ceiling_mib_s / cores: the pipeline's CPU ceiling, from `cairn benchmark`); rows with dataset "*"
describe a tool (version). A value that is not a number (FAIL, TIMEOUT) marks a failed
step. With several runs the median of each metric is reported, or with STAT=best
(environment) the best (lowest) time of each step with the user and sys time of that
same run: page-cache and kernel state swing a step's time between identical runs, and
the best of alternating runs is each tool's time without that noise. Sizes and RSS
stay medians.

Prints one table per dataset (tools x metrics) plus cairn's ratio to every other tool,
and writes the same to OUT_DIR/summary.md, OUT_DIR/summary.tsv and OUT_DIR/summary.json.
"""
import json
import os
import statistics
import sys
from collections import OrderedDict, defaultdict

TIMES = [  # metric, column title
    ("backup_initial_s", "initial"),
    ("backup_nochange_s", "no-change"),
    ("backup_modified_s", "modified"),
    ("restore_s", "restore"),
]
SIZES = [
    ("size_initial_b", "vault size"),
    ("size_final_b", "after mod"),
    ("cache_b", "cache"),
]
RSS = [
    ("rss_backup_kb", "RSS backup"),
    ("restore_rss_kb", "RSS restore"),
]
# CPU time of each timed step (user, sys): the kernel share of a step swings
# between identical runs, so it is shown beside the wall time it explains.
CPU = [(m[:-2] + "_user_s", m[:-2] + "_sys_s", title) for m, title in TIMES]
BACKUP_RSS = ["backup_initial_rss_kb", "backup_nochange_rss_kb", "backup_modified_rss_kb"]
UNITS = {"_s": "s", "_b": "bytes", "_kb": "KiB"}
TOOL_ORDER = ["cairn", "restic", "borg", "rustic"]


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def unit(metric):
    for suffix, u in UNITS.items():
        if metric.endswith(suffix):
            return u
    return ""


def human_bytes(b):
    if b is None:
        return "-"
    for u, f in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if b >= f:
            return "%.2f %s" % (b / f, u) if u == "GiB" else "%.1f %s" % (b / f, u)
    return "%d B" % b


def load(path):
    raw = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))  # ds->tool->metric->run->v
    info = defaultdict(OrderedDict)
    versions = OrderedDict()
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 5:
                continue
            ds, tool, run, metric, value = parts
            if ds == "*":
                versions[tool] = value
            elif tool == "*":
                info[ds][metric] = value
            else:
                raw[ds][tool][metric][run] = value
    # derived: peak RSS over the three backup steps of one run
    for ds in raw:
        for tool in raw[ds]:
            m = raw[ds][tool]
            runs = set()
            for k in BACKUP_RSS:
                runs |= set(m.get(k, {}))
            for r in runs:
                vals = [m.get(k, {}).get(r) for k in BACKUP_RSS]
                got = [num(v) for v in vals if num(v) is not None]
                if got and len(got) == len([v for v in vals if v is not None]):
                    m["rss_backup_kb"][r] = str(int(max(got)))
                elif vals:
                    m["rss_backup_kb"][r] = "FAIL"
    return raw, info, versions


BEST = os.environ.get("STAT", "median") == "best"
TIME_METRICS = {m for m, _ in TIMES}


def ordered_runs(values_by_run):
    return sorted(values_by_run, key=lambda s: int(s) if s.isdigit() else 0)


def best_run(values_by_run):
    """The run with the lowest value, or None when a run failed or there is none."""
    keys = ordered_runs(values_by_run)
    if not keys or any(num(values_by_run[k]) is None for k in keys):
        return None
    return min(keys, key=lambda k: num(values_by_run[k]))


def summarise(values_by_run, run=None):
    """-> (median, or the value of `run` when given, or None; display-status or None;
    list of run values)"""
    runs = [values_by_run[k] for k in ordered_runs(values_by_run)]
    nums = [num(v) for v in runs]
    if not runs:
        return None, None, runs
    if any(n is None for n in nums):
        bad = [v for v in runs if num(v) is None]
        return None, bad[0], runs
    if run is not None and run in values_by_run:
        return num(values_by_run[run]), None, runs
    return statistics.median(nums), None, runs


def stat_name(metric):
    """What the reported value of `metric` is: "best" for a time with STAT=best."""
    return "best" if BEST and (metric in TIME_METRICS or metric.endswith(("_user_s", "_sys_s"))) else "median"


def chosen_run(m, metric):
    """With STAT=best, the run whose value of time `metric` is reported."""
    if not BEST or metric not in TIME_METRICS:
        return None
    return best_run(m.get(metric, {}))


def verify_status(values_by_run):
    runs = list(values_by_run.values())
    if not runs:
        return "-"
    ok = sum(1 for v in runs if v == "OK")
    if ok == len(runs):
        return "OK"
    return "FAILED" if len(runs) == 1 else "FAILED (%d/%d ok)" % (ok, len(runs))


def fmt(metric, med, status):
    if status is not None:
        return status
    if med is None:
        return "-"
    u = unit(metric)
    if u == "s":
        return "%.2f s" % med
    if u == "bytes":
        return human_bytes(med)
    if u == "KiB":
        return "%.0f MiB" % (med / 1024)
    return str(med)


def table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    def line(r):
        return "| " + " | ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                                 for i, (c, w) in enumerate(zip(r, widths))) + " |"
    sep = "|" + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), sep] + [line(r) for r in rows])


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    raw, info, versions = load(sys.argv[1])
    outdir = sys.argv[2]
    text = []
    tsv = [("dataset", "tool", "metric", "value", "unit", "runs")]
    js = OrderedDict(versions=versions, datasets=OrderedDict())
    for ds in raw:
        tools = sorted(raw[ds], key=lambda t: (TOOL_ORDER.index(t) if t in TOOL_ORDER else 99, t))
        inf = info.get(ds, {})
        nruns = max((len(v) for t in raw[ds].values() for v in t.values()), default=0)
        head = "## %s" % ds
        desc = []
        if "files" in inf:
            desc.append("%s files" % inf["files"])
        if "bytes" in inf and num(inf["bytes"]) is not None:
            desc.append("%s (%s bytes)" % (human_bytes(num(inf["bytes"])), inf["bytes"]))
        how = ", best times (sizes: medians)" if BEST else ", medians"
        desc.append("%d run%s%s" % (nruns, "" if nruns == 1 else "s", how if nruns > 1 else ""))
        text.append("%s: %s" % (head, ", ".join(desc)))
        if "modify" in inf:
            text.append("modification: %s" % inf["modify"])
        text.append("")
        cols = TIMES + SIZES + RSS
        header = ["tool"] + [c for _, c in cols] + ["restore check"]
        rows = []
        med = defaultdict(dict)
        jds = OrderedDict(info=dict(inf), tools=OrderedDict(), ratios=OrderedDict())
        for tool in tools:
            m = raw[ds][tool]
            row = [tool]
            jt = OrderedDict()
            for metric, _ in cols:
                md, status, runs = summarise(m.get(metric, {}), chosen_run(m, metric))
                med[tool][metric] = md
                row.append(fmt(metric, md, status))
                jt[metric] = OrderedDict([(stat_name(metric), md)], unit=unit(metric),
                                         runs=[num(v) if num(v) is not None else v for v in runs])
                tsv.append((ds, tool, metric, "" if md is None else ("%.3f" % md if unit(metric) == "s" else "%d" % md),
                            unit(metric), ",".join(runs)))
            for metric in BACKUP_RSS:  # per-step RSS: files only, the table shows their max
                md, status, runs = summarise(m.get(metric, {}))
                jt[metric] = OrderedDict([(stat_name(metric), md)], unit=unit(metric),
                                         runs=[num(v) if num(v) is not None else v for v in runs])
                tsv.append((ds, tool, metric, "" if md is None else "%d" % md, unit(metric), ",".join(runs)))
            vs = verify_status(m.get("verify", {}))
            row.append(vs)
            jt["verify"] = vs
            tsv.append((ds, tool, "verify", vs, "", ",".join(m.get("verify", {}).values())))
            rows.append(row)
            jds["tools"][tool] = jt
        text.append(table(header, rows))
        text.append("")
        how = ", of the best run" if BEST else ", medians"
        text.append("CPU seconds of each step (user / sys%s):" % (how if nruns > 1 else ""))
        text.append("")
        crows = []
        for tool in tools:
            m = raw[ds][tool]
            row = [tool]
            for (time_m, _), (user_m, sys_m, _) in zip(TIMES, CPU):
                cell = []
                for metric in (user_m, sys_m):
                    md, status, runs = summarise(m.get(metric, {}), chosen_run(m, time_m))
                    cell.append(status or ("-" if md is None else "%.2f" % md))
                    jds["tools"][tool][metric] = OrderedDict(
                        [(stat_name(metric), md)], unit="s", runs=[num(v) if num(v) is not None else v for v in runs])
                    tsv.append((ds, tool, metric, "" if md is None else "%.3f" % md, "s", ",".join(runs)))
                row.append(" / ".join(cell))
            crows.append(row)
        text.append(table(["tool"] + [t for _, _, t in CPU], crows))
        text.append("")
        others = [t for t in tools if t != "cairn"]
        if "cairn" in tools and others:
            text.append("cairn vs others (times: OTHER/cairn, > 1 means cairn is faster; "
                        "size and RSS: cairn/OTHER, < 1 means cairn is smaller):")
            text.append("")
            ratio_sizes = [x for x in SIZES + RSS if x[0] != "cache_b"]
            rh = ["ratio"] + [c for _, c in TIMES] + ["ratio"] + [c for _, c in ratio_sizes]
            rrows = []
            c = med["cairn"]
            for o in others:
                jr = OrderedDict()
                r = ["%s/cairn" % o]
                for metric, title in TIMES:
                    x = ratio(med[o].get(metric), c.get(metric))
                    r.append("-" if x is None else "%.2fx" % x)
                    jr["%s (%s/cairn)" % (metric, o)] = x
                    tsv.append((ds, "%s/cairn" % o, metric, "" if x is None else "%.3f" % x, "x", ""))
                r.append("cairn/%s" % o)
                for metric, title in ratio_sizes:
                    x = ratio(c.get(metric), med[o].get(metric))
                    r.append("-" if x is None else "%.2fx" % x)
                    jr["%s (cairn/%s)" % (metric, o)] = x
                    tsv.append((ds, "cairn/%s" % o, metric, "" if x is None else "%.3f" % x, "x", ""))
                rrows.append(r)
                jds["ratios"][o] = jr
            text.append(table(rh, rrows))
            text.append("")
            for t in tools:
                vs = jds["tools"][t]["verify"]
                if vs != "OK":
                    text.append("  note: %s restore check %s: its numbers are not comparable" % (t, vs))
            ceiling = num(inf.get("ceiling_mib_s", ""))
            initial = c.get("backup_initial_s")
            if ceiling and initial and num(inf.get("bytes", "")):
                rate = num(inf["bytes"]) / 1048576 / initial
                jds["ceiling"] = OrderedDict(ceiling_mib_s=ceiling, cores=num(inf.get("cores", "")),
                                             initial_mib_s=rate, fraction=rate / ceiling)
                tsv.append((ds, "cairn", "ceiling_mib_s", "%.1f" % ceiling, "MiB/s", ""))
                tsv.append((ds, "cairn", "initial_of_ceiling", "%.3f" % (rate / ceiling), "x", ""))
                text.append("  cairn initial backup %.0f MiB/s = %.0f%% of the pipeline's CPU ceiling "
                            "(%.0f MiB/s on %s cores, `cairn benchmark`)"
                            % (rate, 100 * rate / ceiling, ceiling, inf.get("cores", "?")))
            for o in others:
                x = ratio(med[o].get("backup_initial_s"), c.get("backup_initial_s"))
                y = ratio(c.get("size_initial_b"), med[o].get("size_initial_b"))
                if x is not None and y is not None:
                    text.append("  initial backup %s/cairn = %.2fx, vault size cairn/%s = %.2fx" % (o, x, o, y))
            text.append("")
        elif "cairn" not in tools:
            text.append("(no cairn results for this dataset: ratios omitted)")
            text.append("")
        js["datasets"][ds] = jds
    if versions:
        text.append("versions: " + "; ".join("%s: %s" % kv for kv in versions.items()))
    out = "\n".join(text).rstrip() + "\n"
    sys.stdout.write(out)
    with open(os.path.join(outdir, "summary.md"), "w") as f:
        f.write(out)
    with open(os.path.join(outdir, "summary.tsv"), "w") as f:
        for r in tsv:
            f.write("\t".join(r) + "\n")
    with open(os.path.join(outdir, "summary.json"), "w") as f:
        json.dump(js, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
