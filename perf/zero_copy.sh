#!/usr/bin/env bash
# Zero-copy threshold sweep (issue 4): is lending a guest TX buffer to an mbuf (DPDK
# external buffer, descriptor returned when the mbuf is freed) faster than copying it,
# and from which frame size on? For every size, vuswitch runs once with every frame lent
# (--zero-copy-min 60) and once with none lent (--zero-copy-min off), alternating, in
# perf/run.sh's guest-nic (lent frames go to the NIC: zero copy against one copy) and
# loopback (lent frames go to the other guest: one copy against two) topologies.
# The default --zero-copy-min should be the smallest size from which lending is not
# slower in either topology.
#
# Usage (root, after building build/): perf/zero_copy.sh [options]
#   --sizes "64 128 256 512 1024 1518"   frame sizes, bytes incl. FCS (as perf/run.sh)
#   --topologies "guest-nic loopback"
#   --trials 2          alternating lend/copy rounds; the median is reported
#   --duration 4        measurement window, s
#   --warmup 2          s between starting traffic and the window
#   --markdown FILE     the table (default perf/results/zero-copy.md; "-" = stdout only)
#   --no-setup          skip deploy/setup.sh
#   --lock FILE         passed to perf/run.sh (hold flock(FILE) during each measurement)
#   -h, --help
# Takes about 2 minutes per trial and size with both topologies.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
source perf/lib.sh  # usage, need_arg

SIZES="64 128 256 512 1024 1518"
TOPOLOGIES="guest-nic loopback"
TRIALS=2
DURATION=4
WARMUP=2
MARKDOWN=perf/results/zero-copy.md
SETUP=1
LOCK_ARGS=()

while [[ $# -gt 0 ]]; do
  case $1 in
    --sizes) need_arg "$@"; SIZES=$2; shift 2 ;;
    --topologies) need_arg "$@"; TOPOLOGIES=$2; shift 2 ;;
    --trials) need_arg "$@"; TRIALS=$2; shift 2 ;;
    --duration) need_arg "$@"; DURATION=$2; shift 2 ;;
    --warmup) need_arg "$@"; WARMUP=$2; shift 2 ;;
    --markdown) need_arg "$@"; MARKDOWN=$2; shift 2 ;;
    --no-setup) SETUP=0; shift ;;
    --lock) need_arg "$@"; LOCK_ARGS=(--lock "$2"); shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $TRIALS =~ ^[1-9][0-9]*$ ]] || { echo "--trials: $TRIALS is not a positive number" >&2; exit 2; }
for t in $TOPOLOGIES; do
  [[ $t == loopback || $t == guest-nic ]] || { echo "--topologies: $t: only guest-nic and loopback lend guest buffers" >&2; exit 2; }
done

work=$(mktemp -d /tmp/vusw-zero-copy.XXXXXX)
trap 'rm -rf "$work"' EXIT
if [[ $SETUP == 1 ]]; then deploy/setup.sh || { echo "deploy/setup.sh failed; fix it or pass --no-setup" >&2; exit 1; }; fi
rounds=$((TRIALS * 2)) round=0
for ((trial = 1; trial <= TRIALS; trial++)); do
  for mode in lend copy; do
    round=$((round + 1))
    if [[ $mode == lend ]]; then min=60; else min=off; fi
    echo "[zero-copy] round $round/$rounds: trial $trial, $mode (--zero-copy-min $min)"
    perf/run.sh --no-setup --no-memory --targets vuswitch --topologies "$TOPOLOGIES" --sizes "$SIZES" \
      --trials 1 --duration "$DURATION" --warmup "$WARMUP" --markdown "$work/$mode-$trial.md" \
      --vuswitchd-args "--zero-copy-min $min" ${LOCK_ARGS[@]+"${LOCK_ARGS[@]}"} |
      sed -u 's/^/    /' || echo "[zero-copy] WARNING: perf/run.sh reported failures in this round (see above)"
  done
done

# CSV rows of run.sh: topology,target,size,trial,mpps,crosscheck,foreign,busy,cycles,status
table=$(for f in "$work"/*.csv; do
  mode=$(basename "$f" .csv); mode=${mode%-*}
  awk -F, -v m="$mode" 'NR > 1 && $10 == "ok" { print $1, $3, m, $5, $9 }' "$f"
done | sort -k1,1 -k2,2n -k3,3 -k4,4g | awk '
  function median(key,   n) {
    n = cnt[key]
    if (n == 0) return 0
    return n % 2 ? v[key, (n + 1) / 2] : (v[key, n / 2] + v[key, n / 2 + 1]) / 2
  }
  { key = $1 " " $2 " " $3; v[key, ++cnt[key]] = $4; if (!(($1 " " $2) in seen)) { seen[$1 " " $2] = 1; order[++o] = $1 " " $2 } }
  END {
    print "| topology | frame B | lent Mpps | copied Mpps | lent / copied |"
    print "|---|---:|---:|---:|---:|"
    for (i = 1; i <= o; i++) {
      split(order[i], tp, " ")
      l = median(order[i] " lend")
      c = median(order[i] " copy")
      ratio = "-"
      if (c > 0) ratio = sprintf("%.2fx", l / c)
      printf "| %s | %d | %.2f | %.2f | %s |\n", tp[1], tp[2], l, c, ratio
    }
  }')

{
  echo "### Zero-copy threshold: lending vs copying guest TX buffers"
  echo
  echo "Command: \`perf/zero_copy.sh --sizes \"$SIZES\" --topologies \"$TOPOLOGIES\" --trials $TRIALS --duration $DURATION --warmup $WARMUP\`,"
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'). Median of $TRIALS trials;"
  echo "lent = \`--zero-copy-min 60\` (every frame lent), copied = \`--zero-copy-min off\`."
  echo
  echo "$table"
} >"$work/report.md"
cat "$work/report.md"
if [[ $MARKDOWN != - ]]; then
  mkdir -p "$(dirname "$MARKDOWN")"
  cp "$work/report.md" "$MARKDOWN"
  echo "[zero-copy] written to $MARKDOWN"
fi
