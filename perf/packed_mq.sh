#!/usr/bin/env bash
# Packed against split virtqueues, and 1/2/4 queue pairs (issue 9): perf/run.sh once per
# (queue pairs, ring type) configuration and round, the configurations interleaved round
# by round (and the switches inside each run.sh call), so slow drifts of a shared host hit
# all of them alike. Every run uses --multi-flow (the generator's frames are 256 flows,
# different IPv4 source addresses), also with 1 queue pair, so that only the queue count
# and the ring type change between the configurations.
#
# Usage (root, after building build/): perf/packed_mq.sh [options]
#   --sizes "64 1518"             frame sizes, bytes incl. FCS
#   --topology loopback           one of perf/run.sh's topologies
#   --targets "vuswitch testpmd ovs"
#   --queues "1 2 4"              queue pairs (perf/run.sh --queues)
#   --rings "split packed"        split = no devargs, packed = --virtio packed_vq=1
#   --trials 3                    rounds of the 1-queue-pair configurations
#   --mq-trials 2                 rounds of the configurations with more queue pairs
#   --mq-sizes "64"               frame sizes of those (default: --sizes)
#   --budget MIN                  skip the remaining runs once the next one would end after
#                                 MIN minutes (estimated from the runs so far); runs go
#                                 round 1 of everything first, then the 1-pair rounds
#   --duration 4 --warmup 2       perf/run.sh's window and warm-up, s
#   --quiet-wait S --lock FILE    passed to perf/run.sh
#   --markdown FILE               tables (default perf/results/packed-mq.md; "-" = stdout);
#                                 all trials go to FILE with .csv
#   --no-setup                    skip deploy/setup.sh
#   -h, --help
# Time: (configurations x rounds) x sizes x targets measurements of about warm-up +
# window + 5 s (+ the quiet wait); the defaults, 2 x 3 + 4 x 2 = 14 runs x 6 points = 84
# measurements, take about 17 minutes on a quiet host.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
source perf/lib.sh  # usage, need_arg

SIZES="64 1518"
TOPOLOGY=loopback
TARGETS="vuswitch testpmd ovs"
QUEUES="1 2 4"
RINGS="split packed"
TRIALS=3
MQ_TRIALS=2
MQ_SIZES=
BUDGET=0
DURATION=4
WARMUP=2
PASS=()
MARKDOWN=perf/results/packed-mq.md
SETUP=1

while [[ $# -gt 0 ]]; do
  case $1 in
    --sizes) need_arg "$@"; SIZES=$2; shift 2 ;;
    --topology) need_arg "$@"; TOPOLOGY=$2; shift 2 ;;
    --targets) need_arg "$@"; TARGETS=$2; shift 2 ;;
    --queues) need_arg "$@"; QUEUES=$2; shift 2 ;;
    --rings) need_arg "$@"; RINGS=$2; shift 2 ;;
    --trials) need_arg "$@"; TRIALS=$2; shift 2 ;;
    --mq-trials) need_arg "$@"; MQ_TRIALS=$2; shift 2 ;;
    --mq-sizes) need_arg "$@"; MQ_SIZES=$2; shift 2 ;;
    --budget) need_arg "$@"; BUDGET=$2; shift 2 ;;
    --duration) need_arg "$@"; DURATION=$2; shift 2 ;;
    --warmup) need_arg "$@"; WARMUP=$2; shift 2 ;;
    --quiet-wait|--lock) need_arg "$@"; PASS+=("$1" "$2"); shift 2 ;;
    --markdown) need_arg "$@"; MARKDOWN=$2; shift 2 ;;
    --no-setup) SETUP=0; shift ;;
    -h|--help) usage 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $BUDGET =~ ^[0-9]+$ ]] || { echo "--budget: $BUDGET is not a whole number of minutes" >&2; exit 2; }
for v in TRIALS MQ_TRIALS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "--${v,,}: ${!v} is not a positive number" >&2; exit 2; }
done
for r in $RINGS; do
  [[ $r == split || $r == packed ]] || { echo "--rings: $r is not split or packed" >&2; exit 2; }
done

work=$(mktemp -d /tmp/vusw-packed-mq.XXXXXX)
trap '[[ ${SYS_KEEP_LOGS:-0} == 1 ]] || rm -rf "$work"' EXIT
if [[ $SETUP == 1 ]]; then deploy/setup.sh || { echo "deploy/setup.sh failed; fix it or pass --no-setup" >&2; exit 1; }; fi
# The runs in order of priority: round 1 of every configuration, then the further rounds
# of the 1-pair configurations, then those of the others. --budget stops before a run that
# would end past it (estimated from the runs so far), so a tight budget keeps round 1 of
# everything and as many 1-pair trials as fit.
plan=()
for q in $QUEUES; do for ring in $RINGS; do plan+=("1 $q $ring"); done; done
for ((round = 2; round <= TRIALS; round++)); do
  for q in $QUEUES; do ((q == 1)) || continue; for ring in $RINGS; do plan+=("$round $q $ring"); done; done
done
for ((round = 2; round <= MQ_TRIALS; round++)); do
  for q in $QUEUES; do ((q > 1)) || continue; for ring in $RINGS; do plan+=("$round $q $ring"); done; done
done
start=$(date -u '+%Y-%m-%d %H:%M UTC') t0=$SECONDS
loads=() done_runs=0 skipped=0
echo "[packed-mq] $start; load average $(cut -d' ' -f1-3 /proc/loadavg); ${#plan[@]} runs of perf/run.sh"
for item in "${plan[@]}"; do
  read -r round q ring <<<"$item"
  sizes=$SIZES
  ((q > 1)) && [[ -n $MQ_SIZES ]] && sizes=$MQ_SIZES
  if ((BUDGET > 0 && done_runs > 0)); then
    per=$(((SECONDS - t0) / done_runs))
    if ((SECONDS - t0 + per > BUDGET * 60)); then
      echo "[packed-mq] budget of $BUDGET min: skipping round $round, $q queue pair(s), $ring ring"
      skipped=$((skipped + 1))
      continue
    fi
  fi
  virtio=()
  [[ $ring == packed ]] && virtio=(--virtio packed_vq=1)
  loads+=("$(cut -d' ' -f1 /proc/loadavg)")
  echo "[packed-mq] $(date -u +%H:%M:%S) round $round: $q queue pair(s), $ring ring; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  perf/run.sh --no-setup --no-memory --topologies "$TOPOLOGY" --targets "$TARGETS" --sizes "$sizes" \
    --trials 1 --duration "$DURATION" --warmup "$WARMUP" --queues "$q" --multi-flow ${virtio[@]+"${virtio[@]}"} \
    ${PASS[@]+"${PASS[@]}"} --markdown "$work/q$q-$ring-$round.md" --no-plot |
    sed -u 's/^/    /' || echo "[packed-mq] WARNING: perf/run.sh reported failures in this run (see above)"
  done_runs=$((done_runs + 1))
done
end=$(date -u '+%H:%M UTC')
echo "[packed-mq] done at $end after $(((SECONDS - t0) / 60)) min, $done_runs runs, $skipped skipped for the budget; load average $(cut -d' ' -f1-3 /proc/loadavg)"

# One CSV of every trial: run.sh's columns plus config_ring (what was asked for) and round.
csv=$work/all.csv
first=1
for f in "$work"/q*-*.csv; do
  [[ -e $f ]] || continue
  b=$(basename "$f" .csv)      # q2-packed-1
  IFS=- read -r _ want rr <<<"$b"
  if ((first)); then echo "$(head -n1 "$f"),config_ring,round" >"$csv"; first=0; fi
  tail -n +2 "$f" | sed "s/\$/,$want,$rr/" >>"$csv"
done
[[ -s $csv ]] || { echo "[packed-mq] no results" >&2; exit 1; }

{
  echo "### Packed vs split rings, 1/2/4 queue pairs ($TOPOLOGY)"
  echo
  echo "$start - $end, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'); load average (1 min) at the start of each run.sh call: $(printf '%s\n' "${loads[@]}" | sort -g | sed -n '1p;$p' | paste -sd- -) (median $(printf '%s\n' "${loads[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'))."
  echo "Command: \`perf/packed_mq.sh --sizes \"$SIZES\" --topology $TOPOLOGY --targets \"$TARGETS\" --queues \"$QUEUES\" --rings \"$RINGS\" --trials $TRIALS --mq-trials $MQ_TRIALS${MQ_SIZES:+ --mq-sizes \"$MQ_SIZES\"} --duration $DURATION --warmup $WARMUP${PASS[*]:+ ${PASS[*]}}$( ((BUDGET)) && echo " --budget $BUDGET")\`; $done_runs run.sh calls, $skipped skipped for the budget."
  echo
  /usr/bin/python3 - "$csv" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
NAMES = {"vuswitch": "vuswitch", "testpmd": "testpmd net_vhost", "ovs": "OVS-DPDK"}
def cell(target, size, ring, q):
    rs = [r for r in rows if r["target"] == target and int(r["size"]) == size and r["config_ring"] == ring
          and int(r["queues"] or 0) == q and r["status"] in ("ok", "disturbed")]
    return rs
def med(rs, k="mpps"):
    v = [float(r[k]) for r in rs if r[k] not in ("", "-")]
    return statistics.median(v) if v else None
def fmt(rs):
    m = med(rs)
    if m is None:
        return "-"
    v = sorted(float(r["mpps"]) for r in rs)
    d = sum(r["status"] == "disturbed" for r in rs)
    return "%.2f (%.2f-%.2f)%s" % (m, v[0], v[-1], " *%d dist.*" % d if d else "")
def ratio(a, b):
    return "%.2fx" % (a / b) if a and b else "-"
targets = [t for t in ("vuswitch", "testpmd", "ovs") if any(r["target"] == t for r in rows)]
sizes = sorted({int(r["size"]) for r in rows})
queues = sorted({int(r["queues"]) for r in rows if r["queues"]})
rings = [x for x in ("split", "packed") if any(r["config_ring"] == x for r in rows)]
# Negotiated ring per requested ring: must match.
bad = [r for r in rows if r["ring"] and r["ring"] != r["config_ring"]]
if bad:
    print("**Warning: %d trial(s) negotiated another ring than requested** (%s)\n" % (
        len(bad), ", ".join("%s %s B %s q%s: %s" % (r["target"], r["size"], r["config_ring"], r["queues"], r["ring"]) for r in bad[:6])))
for q in queues:
    if len(rings) < 2:
        break
    print("#### Packed vs split, %d queue pair%s: Mpps median (min-max)\n" % (q, "" if q == 1 else "s"))
    print("| frame | switch | split | packed | packed / split | cycles/pkt split / packed | vuswitch / this, split | vuswitch / this, packed |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for s in sizes:
        for t in targets:
            sp, pk = cell(t, s, "split", q), cell(t, s, "packed", q)
            if not sp and not pk:
                continue
            cs, cp = med(sp, "cycles_per_packet"), med(pk, "cycles_per_packet")
            cyc = "%s / %s" % ("%.0f" % cs if cs else "-", "%.0f" % cp if cp else "-")
            vs = ratio(med(cell("vuswitch", s, "split", q)), med(sp)) if t != "vuswitch" else "-"
            vp = ratio(med(cell("vuswitch", s, "packed", q)), med(pk)) if t != "vuswitch" else "-"
            print("| %d B | %s | %s | %s | %s | %s | %s | %s |" % (s, NAMES[t], fmt(sp), fmt(pk), ratio(med(pk), med(sp)), cyc, vs, vp))
    print()
if len(queues) > 1:
    print("#### Queue pairs: Mpps median (min-max)\n")
    head = " | ".join("%d pair%s" % (q, "" if q == 1 else "s") for q in queues)
    rat = " | ".join("%d / 1" % q for q in queues if q != 1)
    print("| frame | ring | switch | %s | %s | vuswitch / this (%s) |" % (head, rat, ", ".join(str(q) for q in queues)))
    print("|---:|---|---|" + "---:|" * (2 * len(queues)))
    for s in sizes:
        for ring in rings:
            for t in targets:
                cs = {q: cell(t, s, ring, q) for q in queues}
                if not any(cs.values()):
                    continue
                base = med(cs.get(1, []))
                vus = ", ".join(ratio(med(cell("vuswitch", s, ring, q)), med(cs[q])) for q in queues) if t != "vuswitch" else "-"
                print("| %d B | %s | %s | %s | %s | %s |" % (s, ring, NAMES[t], " | ".join(fmt(cs[q]) for q in queues),
                      " | ".join(ratio(med(cs[q]), base) for q in queues if q != 1), vus))
    print()
n = len(rows)
dist = sum(r["status"] == "disturbed" for r in rows)
fail = sum(r["status"] in ("failed", "skipped") for r in rows)
fp = sorted(float(r["foreign_pct"]) for r in rows if r["foreign_pct"] not in ("", "-"))
print("%d trials: %d ok, %d disturbed (other processes > 10 %% of a core in the window), %d failed; foreign CPU per window median %s %%, max %s %% of a core." % (
    n, n - dist - fail, dist, fail, "%.0f" % statistics.median(fp) if fp else "-", "%.0f" % fp[-1] if fp else "-"))
EOF
} >"$work/report.md"
echo
cat "$work/report.md"
if [[ $MARKDOWN != - ]]; then
  mkdir -p "$(dirname "$MARKDOWN")"
  cp "$work/report.md" "$MARKDOWN"
  cp "$csv" "${MARKDOWN%.md}.csv"
  echo "[packed-mq] written to $MARKDOWN and ${MARKDOWN%.md}.csv"
fi
