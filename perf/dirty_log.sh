#!/usr/bin/env bash
# What dirty-page logging (live migration, issue 10) costs: perf/run.sh's loopback
# (VM-to-VM through two vhost-user ports, testpmd virtio-user generator) with vuswitchd
#   off    as it runs normally (the logging variants of the ring loops are not chosen)
#   on     with --debug-dirty-log-always: every guest write is logged into a private
#          bitmap, as while a guest migrates (one atomic OR per page per buffer written,
#          and per used-ring update)
#   base   (with --base BIN) another vuswitchd build, e.g. the commit before logging
#          existed: "off" must cost nothing against it
# each against testpmd net_vhost measured in the same run.sh call, the variants
# interleaved round by round so slow drifts of a shared host hit all of them alike.
#
# Usage (root, after building build/): perf/dirty_log.sh [options]
#   --sizes "64 1518"   frame sizes, bytes incl. FCS
#   --trials 3          rounds
#   --base BIN          a vuswitchd without logging (adds the "base" variant)
#   --duration 4 --warmup 2   perf/run.sh's window and warm-up, s
#   --quiet-wait S      passed to perf/run.sh
#   --markdown FILE     tables (default perf/results/dirty-log.md; "-" = stdout);
#                       all trials go to FILE with .csv
#   --no-setup          skip deploy/setup.sh
#   -h, --help
# Time: variants x trials x sizes x 2 switches measurements of about warm-up + window
# + 5 s: the defaults (2-3 variants) take 5-8 minutes on a quiet host.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
source perf/lib.sh  # usage, need_arg

SIZES="64 1518"
TRIALS=3
BASE=
DURATION=4
WARMUP=2
PASS=()
MARKDOWN=perf/results/dirty-log.md
SETUP=1
while [[ $# -gt 0 ]]; do
  case $1 in
    --sizes) need_arg "$@"; SIZES=$2; shift 2 ;;
    --trials) need_arg "$@"; TRIALS=$2; shift 2 ;;
    --base) need_arg "$@"; BASE=$2; shift 2 ;;
    --duration) need_arg "$@"; DURATION=$2; shift 2 ;;
    --warmup) need_arg "$@"; WARMUP=$2; shift 2 ;;
    --quiet-wait) need_arg "$@"; PASS+=("$1" "$2"); shift 2 ;;
    --markdown) need_arg "$@"; MARKDOWN=$2; shift 2 ;;
    --no-setup) SETUP=0; shift ;;
    -h|--help) usage 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $TRIALS =~ ^[1-9][0-9]*$ ]] || { echo "--trials: $TRIALS is not a positive number" >&2; exit 2; }
[[ -z $BASE || -x $BASE ]] || { echo "--base: $BASE is not an executable vuswitchd" >&2; exit 2; }
[[ -x build/control/vuswitchd ]] || { echo "build/control/vuswitchd missing: run ninja -C build first" >&2; exit 2; }
if [[ $SETUP == 1 ]]; then deploy/setup.sh || { echo "deploy/setup.sh failed; fix it or pass --no-setup" >&2; exit 1; }; fi

work=$(mktemp -d /tmp/vusw-dirty-log.XXXXXX)
trap '[[ ${SYS_KEEP_LOGS:-0} == 1 ]] || rm -rf "$work"' EXIT
variants=(off on)
[[ -n $BASE ]] && variants=(base off on)
start=$(date -u '+%Y-%m-%d %H:%M UTC') t0=$SECONDS
for ((round = 1; round <= TRIALS; round++)); do
  for v in "${variants[@]}"; do
    echo "[dirty-log] $(date -u +%H:%M:%S) round $round/$TRIALS: $v; load average $(cut -d' ' -f1-3 /proc/loadavg)"
    bin=$PWD/build/control/vuswitchd args=()
    [[ $v == base ]] && bin=$BASE
    [[ $v == on ]] && args=(--vuswitchd-args "--debug-dirty-log-always")
    VUSWITCHD=$bin perf/run.sh --no-setup --no-memory --topologies loopback --targets "vuswitch testpmd" \
      --sizes "$SIZES" --trials 1 --duration "$DURATION" --warmup "$WARMUP" ${args[@]+"${args[@]}"} \
      ${PASS[@]+"${PASS[@]}"} --markdown "$work/$v-$round.md" --no-plot | sed -u 's/^/    /' ||
      echo "[dirty-log] WARNING: perf/run.sh reported failures in this run (see above)"
  done
done
end=$(date -u '+%H:%M UTC')
echo "[dirty-log] done at $end after $(((SECONDS - t0) / 60)) min"

csv=$work/all.csv
first=1
for f in "$work"/*-*.csv; do
  [[ -e $f ]] || continue
  b=$(basename "$f" .csv)
  if ((first)); then echo "$(head -n1 "$f"),variant,round" >"$csv"; first=0; fi
  tail -n +2 "$f" | sed "s/\$/,${b%-*},${b##*-}/" >>"$csv"
done
[[ -s $csv ]] || { echo "[dirty-log] no results" >&2; exit 1; }
{
  echo "### Dirty-page logging: loopback Mpps with logging off and on"
  echo
  echo "$start - $end, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')."
  echo "Command: \`perf/dirty_log.sh --sizes \"$SIZES\" --trials $TRIALS${BASE:+ --base $BASE} --duration $DURATION --warmup $WARMUP${PASS[*]:+ ${PASS[*]}}\`"
  echo
  /usr/bin/python3 - "$csv" <<'PY'
import csv, statistics, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["status"] in ("ok", "disturbed")]
variants = [v for v in ("base", "off", "on") if any(r["variant"] == v for r in rows)]
sizes = sorted({int(r["size"]) for r in rows})
def pick(target, size, v):
    return [r for r in rows if r["target"] == target and int(r["size"]) == size and r["variant"] == v]
def med(rs):
    v = [float(r["mpps"]) for r in rs if r["mpps"] not in ("", "-")]
    return statistics.median(v) if v else None
def ratios(size, v):
    # vuswitch / testpmd within each run.sh call (the same round and variant)
    out = []
    for rnd in sorted({r["round"] for r in rows}):
        a = [r for r in pick("vuswitch", size, v) if r["round"] == rnd]
        b = [r for r in pick("testpmd", size, v) if r["round"] == rnd]
        if a and b and med(a) and med(b):
            out.append(med(a) / med(b))
    return out
print("| frame | logging | vuswitch Mpps median (min-max) | testpmd net_vhost, same runs | vuswitch / testpmd (median of rounds) | disturbed |")
print("|---:|---|---:|---:|---:|---:|")
for s in sizes:
    for v in variants:
        vs = pick("vuswitch", s, v)
        if not vs:
            continue
        m = sorted(float(r["mpps"]) for r in vs)
        rt = ratios(s, v)
        dist = sum(r["status"] == "disturbed" for r in vs + pick("testpmd", s, v))
        print("| %d B | %s | %.2f (%.2f-%.2f) | %s | %s | %d |" % (s, v, med(vs), m[0], m[-1],
              "%.2f" % med(pick("testpmd", s, v)) if med(pick("testpmd", s, v)) else "-",
              "%.2f" % statistics.median(rt) if rt else "-", dist))
print()
for s in sizes:
    r = {v: ratios(s, v) for v in variants}
    parts = []
    if r.get("on") and r.get("off"):
        parts.append("on / off %.2fx" % (statistics.median(r["on"]) / statistics.median(r["off"])))
    if r.get("off") and r.get("base"):
        parts.append("off / base %.2fx" % (statistics.median(r["off"]) / statistics.median(r["base"])))
    if parts:
        print("- %d B: %s (ratios of the vuswitch/testpmd ratios)" % (s, ", ".join(parts)))
PY
} >"$work/report.md"
cat "$work/report.md"
if [[ $MARKDOWN != - ]]; then
  mkdir -p "$(dirname "$MARKDOWN")"
  cp "$work/report.md" "$MARKDOWN"
  cp "$csv" "${MARKDOWN%.md}.csv"
  echo "[dirty-log] written: $MARKDOWN ${MARKDOWN%.md}.csv"
fi
