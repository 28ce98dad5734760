#!/usr/bin/env python3
"""Every vusw_* metric name a file mentions must exist in a vuswitchd /metrics page, so
the dashboard and the alert rules cannot silently go stale when a metric is renamed.

Usage: metric_names.py METRICS_TEXT FILE...
METRICS_TEXT is a saved /metrics page (Prometheus text format). A name exists if a
sample of it is on the page or a `# TYPE` line declares it (a histogram NAME also
declares NAME_bucket, NAME_sum and NAME_count). Recording-rule names (vusw:...) are not
metric names and are skipped. Prints each missing name with the file that uses it;
exit 1 if any is missing, 2 on bad usage.
"""
import re
import sys

NAME = re.compile(r"\bvusw_[a-zA-Z0-9_]*[a-zA-Z0-9]")


def exposed(text):
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            names.add(name)
            if kind.strip() in ("histogram", "summary"):
                names.update(name + s for s in ("_bucket", "_sum", "_count"))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    have = exposed(open(argv[1]).read())
    if not any(n.startswith("vusw_") for n in have):
        print("%s has no vusw_ metrics: not a vuswitchd /metrics page" % argv[1])
        return 1
    missing = 0
    for path in argv[2:]:
        used = set(NAME.findall(open(path).read()))
        for name in sorted(used - have):
            print("MISSING: %s uses %s, which vuswitchd does not export" % (path, name))
            missing += 1
        print("%s: %d metric names, %d missing" % (path, len(used), len(used - have)))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
