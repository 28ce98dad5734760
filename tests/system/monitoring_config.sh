#!/usr/bin/env bash
# System test: the monitoring and service files in deploy/ are valid and match the daemon.
#   promtool check config  deploy/prometheus/prometheus.yml (with its rule file)
#   promtool check rules   deploy/prometheus/vuswitch.rules.yml
#   promtool test rules    deploy/prometheus/vuswitch.rules.test.yml (each alert fires on
#                          synthetic series of its trouble, and not on healthy ones)
#   the Grafana dashboard  deploy/grafana/dashboards/vuswitch.json: provisioning-format
#                          JSON, every panel has a Prometheus query, ids unique
#   metric names           every vusw_* name the dashboard, the rules and the scrape config
#                          use is on a running vuswitchd's /metrics page
#   systemd-analyze verify deploy/vuswitchd.service, ExecStart pointing at the built
#                          vuswitchd (a temp copy of the unit); any warning fails
# vuswitchd runs with --no-huge. Exit: 0 pass, 1 fail, 77 skip (not root, or promtool
# cannot be installed).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

DEPLOY=$SYS_ROOT/deploy
sys_init monitoring_config
sys_require_daemon
command -v promtool >/dev/null || skip "promtool not installed (Debian package prometheus; deploy/setup.sh installs it)"
command -v systemd-analyze >/dev/null || skip "systemd-analyze not installed (Debian package systemd)"

errors=0
# run_check WHAT COMMAND...: COMMAND must succeed; its output is shown either way.
run_check() {
  local what=$1 rc=0
  shift
  "$@" >"$SYS_TMP/check.out" 2>&1 || rc=$?
  sed 's/^/    /' "$SYS_TMP/check.out"
  if ((rc == 0)); then log "ok: $what"; else log "MISMATCH: $what (exit $rc)"; errors=$((errors + 1)); fi
}

# promtool resolves rule_files relative to the config file's directory.
run_check "promtool check config deploy/prometheus/prometheus.yml" \
  promtool check config "$DEPLOY/prometheus/prometheus.yml"
run_check "promtool check rules deploy/prometheus/vuswitch.rules.yml" \
  promtool check rules "$DEPLOY/prometheus/vuswitch.rules.yml"
run_check "promtool test rules deploy/prometheus/vuswitch.rules.test.yml" \
  promtool test rules "$DEPLOY/prometheus/vuswitch.rules.test.yml"

# The alert names the README and the rule tests rely on.
for alert in VuswitchDown VuswitchDropsRising VuswitchQueueBroken VuswitchPmdSaturated; do
  run_check "alert $alert is defined and unit-tested" \
    grep -q "alertname: $alert\$" "$DEPLOY/prometheus/vuswitch.rules.test.yml"
  grep -q "alert: $alert\$" "$DEPLOY/prometheus/vuswitch.rules.yml" \
    || { log "MISMATCH: alert $alert missing from vuswitch.rules.yml"; errors=$((errors + 1)); }
done

DASHBOARD_CHECK='
import json, sys
d = json.load(open(sys.argv[1]))
problems = []
if "dashboard" in d:
    problems.append("wrapped in {\"dashboard\": ...}: provisioning wants the bare dashboard")
for key in ("uid", "title", "panels", "templating", "schemaVersion"):
    if key not in d:
        problems.append("no %r" % key)
ids = [p.get("id") for p in d.get("panels", [])]
if len(ids) != len(set(ids)):
    problems.append("duplicate panel ids %s" % ids)
titles = []
for p in d.get("panels", []):
    if p.get("type") == "row":
        continue
    titles.append(p.get("title"))
    if not p.get("targets") or not all(t.get("expr") for t in p["targets"]):
        problems.append("panel %r has no Prometheus query" % p.get("title"))
    if p.get("datasource", {}).get("uid") != "${datasource}":
        problems.append("panel %r does not use the $datasource variable" % p.get("title"))
want = ["Packets per second per port", "Bits per second per port", "Drops by reason", "PMD busy %",
        "Memory-table updates", "RCU grace periods"]
for t in want:
    if t not in titles:
        problems.append("no panel %r" % t)
for p in problems:
    print("dashboard:", p)
print("%d panels: %s" % (len(titles), ", ".join(titles)))
sys.exit(1 if problems else 0)'
run_check "Grafana dashboard deploy/grafana/dashboards/vuswitch.json" \
  "$PYTHON" -c "$DASHBOARD_CHECK" "$DEPLOY/grafana/dashboards/vuswitch.json"
run_check "Grafana provisioning files are YAML" "$PYTHON" -c '
import sys, yaml
for f in sys.argv[1:]:
    d = yaml.safe_load(open(f))
    assert d.get("apiVersion") == 1, f + ": no apiVersion: 1"
    print(f, "ok")' "$DEPLOY/grafana/provisioning/dashboards/vuswitch.yml" \
  "$DEPLOY/grafana/provisioning/datasources/prometheus.yml"

# Metric names against a running daemon. A vhost-user port without a front-end: every
# family is declared (# TYPE) even while it has no samples.
METRICS_PORT=19490
while ss -Htln "sport = :$METRICS_PORT" | grep -q .; do METRICS_PORT=$((METRICS_PORT + 1)); done
VUSW_METRICS=127.0.0.1:$METRICS_PORT vusw_start names --no-huge --memory 128 --lcores 0,1 \
  --vhost-user "$SYS_TMP/vm1.sock" --nic net_null0
curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" >"$SYS_TMP/metrics.txt" \
  || fail "vuswitchd does not answer on http://127.0.0.1:$METRICS_PORT/metrics"
run_check "every metric name in the dashboard, rules and scrape config is on vuswitchd's /metrics" \
  "$PYTHON" "$SYS_ROOT/tests/system/metric_names.py" "$SYS_TMP/metrics.txt" \
  "$DEPLOY/grafana/dashboards/vuswitch.json" "$DEPLOY/prometheus/vuswitch.rules.yml" \
  "$DEPLOY/prometheus/vuswitch.rules.test.yml" "$DEPLOY/prometheus/prometheus.yml"
# The checker itself must catch a stale name.
printf 'expr: rate(vusw_port_rx_frames_total[1m])\n' >"$SYS_TMP/stale.yml"
if "$PYTHON" "$SYS_ROOT/tests/system/metric_names.py" "$SYS_TMP/metrics.txt" "$SYS_TMP/stale.yml" >/dev/null; then
  log "MISMATCH: metric_names.py accepted the unknown name vusw_port_rx_frames_total"
  errors=$((errors + 1))
else
  log "ok: metric_names.py rejects an unknown name (vusw_port_rx_frames_total)"
fi
rc=0
vusw_stop || rc=$?
((rc == 0)) || { log "MISMATCH: vuswitchd exit status $rc on SIGTERM"; errors=$((errors + 1)); }

# systemd-analyze verify: a copy of the unit whose ExecStart is the built daemon (verify
# checks the binary exists). It exits 0 on unknown keys and bad values (only warning
# about them), so any output is a failure too.
mkdir -p "$SYS_TMP/unit"
sed "s|^ExecStart=/usr/local/bin/vuswitchd |ExecStart=$SYS_VUSWITCHD |" \
  "$DEPLOY/vuswitchd.service" >"$SYS_TMP/unit/vuswitchd.service"
grep -q "^ExecStart=$SYS_VUSWITCHD " "$SYS_TMP/unit/vuswitchd.service" \
  || fail "deploy/vuswitchd.service has no 'ExecStart=/usr/local/bin/vuswitchd ' line to point at the build"
verify_unit() {
  local out rc=0
  out=$(systemd-analyze verify "$SYS_TMP/unit/vuswitchd.service" 2>&1) || rc=$?
  [[ -z $out ]] || printf '%s\n' "$out"
  ((rc == 0)) && [[ -z $out ]]
}
run_check "systemd-analyze verify deploy/vuswitchd.service (no warnings)" verify_unit
for key in 'Type=notify' 'WatchdogSec=' 'ProtectSystem=strict' 'LimitMEMLOCK=infinity' 'NoNewPrivileges=yes'; do
  grep -q "^$key" "$DEPLOY/vuswitchd.service" \
    || { log "MISMATCH: deploy/vuswitchd.service lacks $key"; errors=$((errors + 1)); }
done
systemd-analyze security --offline=yes "$SYS_TMP/unit/vuswitchd.service" 2>/dev/null | tail -n1 \
  | sed "s/^/[$SYS_NAME] (information) /" || true

(( errors == 0 )) || fail "$errors check(s) failed"
log "PASS: Prometheus config, alert rules and their unit tests, dashboard, metric names, systemd unit"
