#!/usr/bin/env bash
# System test: a real Prometheus server (Debian's `prometheus`) scrapes vuswitchd while
# steady traffic flows, and what it reports agrees with the switch's own counters:
#
#   testpmd A (vm1.sock, txonly) --> vuswitchd --> testpmd B (vm2.sock, rxonly)
#                                     |  /metrics every 1 s
#                                  prometheus (temp dir, loopback port)
#
# Over one window [t0, t1] of about WINDOW (20) seconds:
#   Prometheus  rate(vusw_port_rx_packets_total{port="vm1"}[<t1 - t0>ms]) evaluated at t1
#               through its HTTP API (/api/v1/query)
#   vuswitchd   (rx_packets(t1) - rx_packets(t0)) / (t1 - t0), from `vuswitchctl --json
#               show ports` (the control socket, not /metrics)
#   testpmd A   (TX-packets(t1) - TX-packets(t0)) / (t1 - t0): the traffic sent
# must agree within TOLERANCE_PCT (default 10 %); the same for vm2's
# vusw_port_tx_packets_total against vuswitchctl and testpmd B's RX-packets. Each source
# has its own t0/t1 (the midpoints of its reads), and Prometheus is asked about exactly
# that window. What still separates them: Prometheus extrapolates its 1 s samples to the
# window's edges, where our own reads (forks on the testpmds' core) slow the traffic for
# a few hundred ms -- about 5 % of a 10 s window, 2-3 % of a 20 s one. A broken exporter
# (wrong counter, wrong port label, a counter that resets, a stale value) differs by far
# more.
#
# Prometheus runs with its config and TSDB in the test's temp dir, on 127.0.0.1, and is
# stopped by PID at the end. Exit: 0 pass, 1 fail, 77 skip (not root / no hugepages /
# no testpmd / the prometheus package cannot be installed).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

TOLERANCE_PCT=${TOLERANCE_PCT:-10}
WINDOW=${WINDOW:-20} # seconds between the readings: the range of the rate() queries
MAC_A=02:00:00:00:0a:01
MAC_B=02:00:00:00:0b:01
PROMETHEUS=${PROMETHEUS:-prometheus}

sys_init prometheus
if ! command -v "$PROMETHEUS" >/dev/null; then
  # deploy/setup.sh installs it; try once here for hosts set up before it was added.
  if [[ ${VUSW_SKIP_APT:-0} != 1 ]] && command -v apt-get >/dev/null; then
    log "prometheus not installed: apt-get install prometheus"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus >"$SYS_TMP/apt.log" 2>&1 || true
  fi
  command -v "$PROMETHEUS" >/dev/null \
    || skip "the prometheus package cannot be installed here ($(tail -n1 "$SYS_TMP/apt.log" 2>/dev/null || echo 'no apt-get'))"
fi
command -v curl >/dev/null || fail "curl not installed (deploy/setup.sh installs it)"
sys_require_hugepages 1100
sys_require_daemon

METRICS_PORT=$(free_port 19470 19489)
PROM_PORT=$(free_port $((METRICS_PORT + 1)) 19499)

VUSW_METRICS=127.0.0.1:$METRICS_PORT vusw_start prom --lcores 0,1 --log-level info \
  --vhost-user "$SYS_TMP/vm1.sock" --vhost-user "$SYS_TMP/vm2.sock"
curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" >"$SYS_TMP/metrics.txt" \
  || fail "vuswitchd does not answer on http://127.0.0.1:$METRICS_PORT/metrics"
log "ok: vuswitchd serves /metrics on 127.0.0.1:$METRICS_PORT"

# ---------------------------------------------------------------- Prometheus
mkdir -p "$SYS_TMP/prometheus/data"
cat >"$SYS_TMP/prometheus/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: vuswitch
    static_configs:
      - targets: ['127.0.0.1:$METRICS_PORT']
EOF
log "start prometheus on 127.0.0.1:$PROM_PORT (config and TSDB in $SYS_TMP/prometheus)"
"$PROMETHEUS" --config.file="$SYS_TMP/prometheus/prometheus.yml" \
  --storage.tsdb.path="$SYS_TMP/prometheus/data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" \
  --log.level=warn </dev/null >"$SYS_TMP/prometheus.log" 2>&1 &
PROM_PID=$!
SYS_PIDS+=("$PROM_PID")
PROM=http://127.0.0.1:$PROM_PORT

# prom_query PROMQL [TIME]: the value of the first series of an instant query, or
# nothing when the result is empty.
prom_query() {
  local args=(--data-urlencode "query=$1")
  [[ -n ${2:-} ]] && args+=(--data-urlencode "time=$2")
  curl -sf -G "$PROM/api/v1/query" "${args[@]}" | "$PYTHON" -c '
import json, sys
r = json.load(sys.stdin)
if r["status"] != "success":
    sys.exit("query failed: %s" % r)
if r["data"]["result"]:
    print(r["data"]["result"][0]["value"][1])'
}
target_up() {
  kill -0 "$PROM_PID" 2>/dev/null || fail "prometheus exited (see prometheus.log)"
  [[ $(prom_query 'up{job="vuswitch"}' 2>/dev/null) == 1 ]]
}
wait_for 60 "prometheus to scrape vuswitchd (up == 1)" target_up
log "ok: prometheus scrapes vuswitchd (up{job=\"vuswitch\"} == 1)"

# ---------------------------------------------------------------- traffic
tp_start_virtio_user A "$SYS_TMP/vm1.sock" "$MAC_A" "$MAC_B"
tp_start_virtio_user B "$SYS_TMP/vm2.sock" "$MAC_B" "$MAC_A"
both_ready() { [[ $(vusw_port_json vm1 state 2>/dev/null) == ready && $(vusw_port_json vm2 state 2>/dev/null) == ready ]]; }
wait_for 20 "both vhost-user ports ready" both_ready

# B learns its MAC first (one frame B -> A), so A's frames are switched to vm2 alone.
tp_cmd B "set txpkts 64"
tp_cmd B "start tx_first 1"
sleep 0.5
tp_cmd B "stop"
tp_cmd B "start"
tp_cmd A "set txpkts 64"
tp_cmd A "set fwd txonly"
tp_cmd A "start"
log "steady traffic: testpmd A txonly (64 B frames) -> vm1 -> switch -> vm2 -> testpmd B"
sleep 3 # past the start-up transient, and Prometheus holds samples of flowing traffic

# Each source is read with the wall-clock time around its read (EPOCHREALTIME: no fork),
# and stamped with the midpoint: reading vuswitchctl costs a few hundred ms on a busy host.
# read_switch: SW_T, SW_RX (vm1 rx_packets), SW_TX (vm2 tx_packets) from `vuswitchctl --json`
read_switch() {
  local before=$EPOCHREALTIME json
  json=$(vusw_ctl --json show ports) || fail "vuswitchctl --json show ports failed"
  SW_T=$(mid "$before" "$EPOCHREALTIME")
  read -r SW_RX SW_TX <<<"$("$PYTHON" -c '
import json, sys
ports = {p["name"]: p for p in json.load(sys.stdin)["ports"]}
print(ports["vm1"]["rx_packets"], ports["vm2"]["tx_packets"])' <<<"$json")" || fail "cannot parse: $json"
}
# read_testpmd NAME: TP_T, and port 0's TP_RX/TP_TX (tp_read_stats) of testpmd NAME
read_testpmd() {
  local before=$EPOCHREALTIME
  tp_read_stats "$1" 1
  TP_T=$(mid "$before" "$EPOCHREALTIME")
}
mid() { "$PYTHON" -c 'import sys; print("%.3f" % ((float(sys.argv[1]) + float(sys.argv[2])) / 2))' "$1" "$2"; }

read_switch;   sw_t0=$SW_T sw_rx0=$SW_RX sw_tx0=$SW_TX
read_testpmd A; a_t0=$TP_T a_tx0=${TP_TX[0]}
read_testpmd B; b_t0=$TP_T b_rx0=${TP_RX[0]}
sleep "$WINDOW"
read_switch;   sw_t1=$SW_T sw_rx1=$SW_RX sw_tx1=$SW_TX
read_testpmd A; a_t1=$TP_T a_tx1=${TP_TX[0]}
read_testpmd B; b_t1=$TP_T b_rx1=${TP_RX[0]}
sleep 2 # Prometheus has stored the scrapes up to the last reading
tp_cmd A "stop"
tp_cmd B "stop"

errors=0
# agree WHAT SERIES T0 COUNT0 T1 COUNT1: Prometheus' rate(SERIES[T1 - T0]) evaluated at
# T1 -- the same window as the two readings -- within TOLERANCE_PCT of
# (COUNT1 - COUNT0) / (T1 - T0).
agree() {
  local what=$1 series=$2 t0=$3 c0=$4 t1=$5 c1=$6 ms prom verdict
  ms=$("$PYTHON" -c 'import sys; print(round((float(sys.argv[2]) - float(sys.argv[1])) * 1000))' "$t0" "$t1")
  prom=$(prom_query "rate(${series}[${ms}ms])" "$t1") || fail "query to prometheus failed"
  [[ -n $prom ]] || { log "MISMATCH: $what: prometheus has no series $series"; errors=$((errors + 1)); return; }
  if verdict=$("$PYTHON" -c '
import sys
what, q, prom, c0, c1, t0, t1, tol = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7]), float(sys.argv[8])
own = (c1 - c0) / (t1 - t0)
dev = abs(prom - own) / own * 100 if own > 0 else float("inf")
ok = own > 100 and dev <= tol
print("%s %s: %s = %.0f/s, counted %.0f/s (%d frames in %.2f s), %.1f %% apart (tolerance %g %%)"
      % ("ok:" if ok else "MISMATCH:", what, q, prom, own, c1 - c0, t1 - t0, dev, tol))
sys.exit(0 if ok else 1)' "$what" "rate(${series}[${ms}ms])" "$prom" "$c0" "$c1" "$t0" "$t1" "$TOLERANCE_PCT"); then
    log "$verdict"
  else
    log "$verdict"
    errors=$((errors + 1))
  fi
}
agree "vm1 received vs vuswitchctl rx_packets" 'vusw_port_rx_packets_total{port="vm1"}' \
  "$sw_t0" "$sw_rx0" "$sw_t1" "$sw_rx1"
agree "vm1 received vs testpmd A TX-packets (traffic sent)" 'vusw_port_rx_packets_total{port="vm1"}' \
  "$a_t0" "$a_tx0" "$a_t1" "$a_tx1"
agree "vm2 delivered vs vuswitchctl tx_packets" 'vusw_port_tx_packets_total{port="vm2"}' \
  "$sw_t0" "$sw_tx0" "$sw_t1" "$sw_tx1"
agree "vm2 delivered vs testpmd B RX-packets (traffic received)" 'vusw_port_tx_packets_total{port="vm2"}' \
  "$b_t0" "$b_rx0" "$b_t1" "$b_rx1"

# The PMD did work and Prometheus sees it (the dashboard's busy % panel).
busy=$(prom_query "sum(rate(vusw_pmd_busy_cycles_total[${WINDOW}s]))" "$sw_t1")
if "$PYTHON" -c 'import sys; sys.exit(0 if float(sys.argv[1] or 0) > 0 else 1)' "${busy:-0}"; then
  log "ok: rate(vusw_pmd_busy_cycles_total) > 0 during traffic ($busy cycles/s)"
else
  log "MISMATCH: rate(vusw_pmd_busy_cycles_total) is '${busy}' during traffic"
  errors=$((errors + 1))
fi

tp_quit A
tp_quit B
rc=0
stop_pid "$PROM_PID" 10
vusw_stop || rc=$?
[[ $rc == 0 ]] || { log "MISMATCH: vuswitchd exit status $rc on SIGTERM"; errors=$((errors + 1)); }
(( errors == 0 )) || fail "$errors check(s) failed"
log "PASS: Prometheus' rate() of vuswitchd's counters agrees with the switch and the traffic within $TOLERANCE_PCT %"
