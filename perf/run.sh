#!/usr/bin/env bash
# Switch benchmark (issue 4): vuswitch against two references, three topologies, several
# frame sizes and trials, in one invocation on a 2-core host. The traffic generator
# (dpdk-testpmd with virtio-user ports) runs on core 0, the switch under test on core 1.
#
# Topologies (--topologies):
#   loopback   VM-to-VM: two vhost-user ports; the generator mac-forwards between its
#              two virtio-user ports (perf/loopback.sh's loop). Rate = generator RX,
#              both directions summed.
#   guest-nic  one vhost-user port -> NIC net_null0,no-rx=1 (a sink). The generator
#              sends (txonly) to an unknown MAC, flooded to the only other port, the NIC.
#              Rate = generator TX (frames the switch took off the virtqueue).
#   nic-guest  NIC net_pcap0 (infinite_rx replay of one frame addressed to the guest)
#              -> one vhost-user port. Rate = generator RX (rxonly).
#   guest-vxlan  VXLAN encapsulation: one vhost-user port -> a VXLAN tunnel port (VNI 42,
#              198.51.100.1 -> remote VTEP 198.51.100.2) over NIC net_pcap0, whose TX is a sink
#              and whose RX holds one ARP reply (the remote VTEP's MAC; OVS is told it with
#              tnl/arp/set). The generator sends (txonly) to an unknown MAC: flooded into
#              the tunnel. Rate = generator TX. SIZE is the inner frame; the underlay
#              carries SIZE + 50 bytes (its MTU is 9000).
#   vxlan-guest  VXLAN decapsulation: NIC net_pcap0 (infinite_rx replay of VXLAN packets
#              from 198.51.100.2, VNI 42, holding a frame addressed to the guest) -> the tunnel
#              port -> one vhost-user port. Rate = generator RX. (testpmd has no VXLAN
#              forwarding: the two VXLAN topologies compare vuswitch and OVS only.)
# Switches (--targets), one at a time, each started afresh for every measurement:
#   vuswitch   build/control/vuswitchd --lcores 0,1 (control thread core 0, PMD core 1)
#   testpmd    dpdk-testpmd --vdev net_vhost0 (+ net_vhost1 or the NIC), io forwarding, core 1
#   ovs        OVS-DPDK (Debian openvswitch-switch-dpdk), private run dir and database,
#              bridge br0 (netdev datapath, NORMAL flow), one PMD thread on core 1
# Frame sizes include the 4-byte FCS virtio does not carry (testpmd "set txpkts SIZE-4").
#
# Usage (root, after building build/): perf/run.sh [options]
#   --sizes "64 256 512 1518"               frame sizes, bytes incl. FCS
#   --topologies "loopback guest-nic nic-guest"   (or guest-vxlan, vxlan-guest)
#   --targets "vuswitch testpmd ovs"
#   --trials 3          measurements per (topology, size, switch); median and min-max reported
#   --duration 5        measurement window, s
#   --warmup 3          s between starting traffic and the window
#   --bursts 64         loopback: tx_first bursts of 32 frames per generator port
#   --markdown FILE     tables (default perf/results/latest.md; "-" = stdout only);
#                       every trial also goes to FILE with .csv instead of .md
#   --plot FILE.png     Mpps vs frame size, one panel per topology (default: FILE.md -> .png)
#   --no-plot           no PNG
#   --no-memory         skip the vuswitchd resident-memory measurement (2 and 64 idle ports)
#   --no-setup          skip deploy/setup.sh (packages, hugepages)
#   --quiet-wait S      before each measurement wait up to S s for 3 idle seconds on the host
#   --vuswitchd-args "ARGS"  extra vuswitchd options, e.g. "--zero-copy-min off"
#   --virtio "DEVARGS"  appended to every net_virtio_user devargs of the generator, e.g.
#                       "packed_vq=1" (the ring each trial negotiated is logged and in the CSV)
#   --queues N          queue pairs (1-16, default 1): generator virtio-user queues=N and
#                       --rxq=N --txq=N; testpmd net_vhost queues=N and --rxq=N --txq=N;
#                       OVS vhost ports follow the guest's queue count (OVS refuses n_rxq
#                       on them) and get other_config:tx-steering=hash; vuswitchd offers MQ.
#                       N > 1 implies --multi-flow. Default: no queue options at all.
#   --multi-flow        the generator sends many flows, so a switch spreading by flow hash
#                       has something to spread: testpmd --txonly-multi-flow (txonly, and
#                       the loopback's tx_first frames, which then circulate unchanged:
#                       mac forwarding rewrites MACs only), nic-guest replays 64 frames with
#                       different source IPs
#   --lock FILE         hold flock(FILE) during each measurement only (not between them),
#                       so a shared machine's other users (who lock FILE around their own
#                       builds and benchmarks) never run during a window
#   -h, --help
# Environment: VUSWITCHD / VUSW_BUILD (another vuswitchd build), SYS_KEEP_LOGS=1 (keep
# every daemon and generator log in /tmp/vusw-perf-run.*), OVS_SOCKET_MEM (MB, 1024).
# A full default run (3 topologies x 4 sizes x 3 switches x 3 trials) takes ~20 minutes.
# Exit status: 0 all measured; 1 some measurements failed (the report says which and why,
# the rest is still measured and written); 2 bad command line.
# Method, columns and caveats: perf/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../tests/system/lib.sh
source tests/system/lib.sh
# shellcheck source=lib.sh
source perf/lib.sh
# shellcheck source=ovs.sh
source perf/ovs.sh

SIZES="64 256 512 1518"
TOPOLOGIES="loopback guest-nic nic-guest"
TARGETS="vuswitch testpmd ovs"
TRIALS=3
DURATION=5
WARMUP=3
BURSTS=64
MARKDOWN=perf/results/latest.md
PLOT=
NO_PLOT=0
MEMORY=1
SETUP=1
QUIET_WAIT=0
LOCK=
VUSWITCHD_ARGS=()
VIRTIO=
QUEUES=1
MULTI_FLOW=0
UNKNOWN_MAC=02:00:00:00:00:99   # guest-nic: destination nobody has (flooded)
NIC_MAC=02:00:00:00:00:aa       # nic-guest: source of the NIC's frames
# The VXLAN topologies: the tunnel 198.51.100.1 -> 198.51.100.2 (TEST-NET-2), VNI 42. The
# underlay's MAC is net_pcap's own ("pcap" + its index; vuswitch's trial checks it), and
# OVS's underlay bridge is given the same, so that both take the same VXLAN packets.
VX_LOCAL=198.51.100.1 VX_REMOTE=198.51.100.2 VX_VNI=42
VX_REMOTE_MAC=02:00:00:00:00:bb
UL_MAC=02:70:63:61:70:00
OVS_UL_BRIDGE=vuswperf-ul       # OVS's underlay bridge (its LOCAL port is a kernel tap)

ORIG_ARGS=("$@")
while [[ $# -gt 0 ]]; do
  case $1 in
    --sizes) need_arg "$@"; SIZES=$2; shift 2 ;;
    --topologies) need_arg "$@"; TOPOLOGIES=$2; shift 2 ;;
    --targets) need_arg "$@"; TARGETS=$2; shift 2 ;;
    --trials) need_arg "$@"; TRIALS=$2; shift 2 ;;
    --duration) need_arg "$@"; DURATION=$2; shift 2 ;;
    --warmup) need_arg "$@"; WARMUP=$2; shift 2 ;;
    --bursts) need_arg "$@"; BURSTS=$2; shift 2 ;;
    --markdown) need_arg "$@"; MARKDOWN=$2; shift 2 ;;
    --plot) need_arg "$@"; PLOT=$2; shift 2 ;;
    --no-plot) NO_PLOT=1; shift ;;
    --no-memory) MEMORY=0; shift ;;
    --no-setup) SETUP=0; shift ;;
    --quiet-wait) need_arg "$@"; QUIET_WAIT=$2; shift 2 ;;
    --lock) need_arg "$@"; LOCK=$2; shift 2 ;;
    --vuswitchd-args) need_arg "$@"; read -r -a VUSWITCHD_ARGS <<<"$2"; shift 2 ;;
    --virtio) need_arg "$@"; VIRTIO=$2; shift 2 ;;
    --queues) need_arg "$@"; QUEUES=$2; shift 2 ;;
    --multi-flow) MULTI_FLOW=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done

bad() { echo "perf/run.sh: $*" >&2; exit 2; }
for s in $SIZES; do
  [[ $s =~ ^[0-9]+$ ]] && ((s >= 64 && s <= 1518)) || bad "--sizes: $s is not a frame size in 64..1518"
done
for t in $TOPOLOGIES; do
  [[ $t =~ ^(loopback|guest-nic|nic-guest|guest-vxlan|vxlan-guest)$ ]] \
    || bad "--topologies: $t is not one of loopback guest-nic nic-guest guest-vxlan vxlan-guest"
done
for t in $TARGETS; do
  [[ $t == vuswitch || $t == testpmd || $t == ovs ]] || bad "--targets: $t is not one of vuswitch testpmd ovs"
done
[[ -n $SIZES && -n $TOPOLOGIES && -n $TARGETS ]] || bad "--sizes, --topologies and --targets must not be empty"
for v in TRIALS DURATION WARMUP BURSTS QUIET_WAIT QUEUES; do
  [[ ${!v} =~ ^[0-9]+$ ]] || bad "--${v,,}: ${!v} is not a whole number"
done
((TRIALS >= 1 && DURATION >= 1)) || bad "--trials and --duration must be at least 1"
((QUEUES >= 1 && QUEUES <= 16)) || bad "--queues: $QUEUES is not in 1..16 (vuswitchd offers 16 queue pairs)"
[[ $VIRTIO =~ ^[A-Za-z0-9_=,.:/-]*$ ]] || bad "--virtio: '$VIRTIO' does not look like devargs (key=value,...)"
[[ ,$VIRTIO, == *,queues=* ]] && bad "--virtio: use --queues N, not queues= (the references and --rxq/--txq must follow)"
VIRTIO=${VIRTIO#,}
((QUEUES > 1)) && MULTI_FLOW=1
# The generator: the virtio PMD logs the features it negotiated ("features after
# negotiate"), from which each trial's ring type and queue count are checked and logged.
GEN_EAL=(--log-level=pmd.net.virtio.init:debug)
GEN_VIRTIO_ARGS=${VIRTIO:+,$VIRTIO}
GEN_APP=()
REF_VHOST_ARGS= REF_APP=() OVS_VHOST_ARGS=()
if ((QUEUES > 1)); then
  GEN_VIRTIO_ARGS+=",queues=$QUEUES"
  GEN_APP+=(--rxq="$QUEUES" --txq="$QUEUES")
  REF_VHOST_ARGS=",queues=$QUEUES"
  REF_APP=(--rxq="$QUEUES" --txq="$QUEUES")
  # OVS: one PMD thread would send everything towards a guest on one TX queue ("thread"
  # steering); hash steering spreads by 5-tuple hash like vuswitchd's flow hash.
  OVS_VHOST_ARGS=(other_config:tx-steering=hash)
fi
((MULTI_FLOW)) && GEN_APP+=(--txonly-multi-flow)
NIC_FLOWS=1
((MULTI_FLOW)) && NIC_FLOWS=64
if [[ $MARKDOWN == - ]]; then
  CSV=
else
  CSV=${MARKDOWN%.md}.csv
  [[ -z $PLOT ]] && PLOT=${MARKDOWN%.md}.png
  mkdir -p "$(dirname "$MARKDOWN")" || bad "cannot create the directory of $MARKDOWN"
fi
((NO_PLOT)) && PLOT=
[[ -z $PLOT ]] || mkdir -p "$(dirname "$PLOT")" || bad "cannot create the directory of $PLOT"

sys_init perf-run
LOCK_FD=
if [[ -n $LOCK ]]; then
  exec {LOCK_FD}>>"$LOCK" || fail "--lock: cannot open $LOCK"
fi
# lock_take / lock_drop: around each measurement with --lock. Children inherit the fd,
# but an explicit unlock releases the lock for all of them.
lock_take() {
  [[ -n $LOCK_FD ]] || return 0
  flock -n "$LOCK_FD" && return 0
  log "          waiting for $LOCK (another user of the machine holds it)"
  flock "$LOCK_FD"
}
lock_drop() { [[ -z $LOCK_FD ]] || flock -u "$LOCK_FD"; }
if [[ $SETUP == 1 ]]; then
  lock_take
  deploy/setup.sh || fail "deploy/setup.sh failed (see above); fix it or pass --no-setup"
  lock_drop
fi
if [[ " $TARGETS " == *" ovs "* ]]; then sys_require_hugepages $((512 + OVS_SOCKET_MEM + 64)); else sys_require_hugepages 1100; fi
[[ " $TARGETS " == *" vuswitch "* ]] && sys_require_daemon
[[ " $TOPOLOGIES " =~ \ (nic-guest|guest-vxlan|vxlan-guest)\  ]] && { ls /usr/lib/x86_64-linux-gnu/dpdk/pmds-*/librte_net_pcap.so* >/dev/null 2>&1 \
  || fail "nic-guest and the VXLAN topologies need DPDK's net_pcap PMD (Debian package librte-net-pcap23; run deploy/setup.sh) or drop it from --topologies"; }
OVS_SKIPPED=
if [[ " $TARGETS " == *" ovs "* ]] && ! why=$(ovs_check); then
  OVS_SKIPPED="OVS-DPDK not measured: $why"
  log "WARNING: $OVS_SKIPPED"
  TARGETS=$(tr ' ' '\n' <<<"$TARGETS" | grep -vx ovs | paste -sd' ')
  [[ -n $TARGETS ]] || fail "no switch left to measure"
fi
if [[ -n $PLOT ]] && ! "$PYTHON" -c 'import matplotlib' 2>/dev/null; then
  log "WARNING: python3-matplotlib missing (deploy/setup.sh installs it): no plot"
  PLOT=
fi

# ---------------------------------------------------------------- switches under test

# dut_start TARGET TOPOLOGY SIZE DIR: start the switch with the topology's two ports;
# sets SOCK0 (and SOCK1 for loopback), the sockets the generator connects to, DUT_PIDS
# (processes of the switch, for the CPU accounting) and NIC (the NIC's devargs).
SOCK0= SOCK1= NIC= DUT_PIDS=()
nic_devargs() { # TOPOLOGY SIZE DIR
  case $1 in
    guest-nic) echo "net_null0,no-rx=1" ;;
    nic-guest)
      write_pcap "$3/nic.pcap" "$(($2 - 4))" "$MAC0" "$NIC_MAC" "$NIC_FLOWS" || fail "cannot write $3/nic.pcap"
      echo "net_pcap0,rx_pcap=$3/nic.pcap,infinite_rx=1" ;;
    guest-vxlan)  # RX: one ARP reply, read once; TX: no tx_pcap, so net_pcap drops it
      "$PYTHON" perf/pcap.py arp "$3/arp.pcap" "$UL_MAC" "$VX_REMOTE_MAC" "$VX_REMOTE" "$VX_LOCAL" \
        || fail "cannot write $3/arp.pcap"
      echo "net_pcap0,rx_pcap=$3/arp.pcap" ;;
    vxlan-guest)
      "$PYTHON" perf/pcap.py vxlan "$3/vxlan.pcap" "$(($2 - 4))" "$MAC0" "$NIC_MAC" --flows "$NIC_FLOWS" \
        --outer "$UL_MAC,$VX_REMOTE_MAC,$VX_REMOTE,$VX_LOCAL,$VX_VNI" || fail "cannot write $3/vxlan.pcap"
      echo "net_pcap0,rx_pcap=$3/vxlan.pcap,infinite_rx=1" ;;
  esac
}
dut_start() {
  local target=$1 topo=$2 size=$3 dir=$4
  NIC=
  [[ $topo != loopback ]] && NIC=$(nic_devargs "$topo" "$size" "$dir")
  case $target in
    vuswitch)
      SOCK0=$dir/vm0.sock SOCK1=$dir/vm1.sock
      local ports=(--vhost-user "$SOCK0")
      case $topo in
        loopback) ports+=(--vhost-user "$SOCK1") ;;
        *-vxlan|vxlan-*) ports+=(--nic "$NIC|name=ul|mtu=9000"
                                 --vxlan "vx0,local=$VX_LOCAL,remote=$VX_REMOTE,vni=$VX_VNI,underlay=ul") ;;
        *) ports+=(--nic "$NIC") ;;
      esac
      vusw_start dut --lcores "$GEN_CORE,$DUT_CORE" --log-level warn "${ports[@]}" ${VUSWITCHD_ARGS[@]+"${VUSWITCHD_ARGS[@]}"}
      DUT_PIDS=("$VUSW_PID")
      [[ $topo == *vxlan* ]] && vusw_check_tunnel "$topo"
      ;;
    testpmd)
      SOCK0=$dir/vm0.sock SOCK1=$dir/vm1.sock
      local second
      if [[ $topo == loopback ]]; then second="net_vhost1,iface=$SOCK1$REF_VHOST_ARGS"; else second=$NIC; fi
      # --rxq/--txq apply to every port: net_pcap has one RX queue per rx_pcap (and as
      # many dropping TX queues), so the reference's NIC replays the file on each of N
      # queues; net_null takes any number of queues.
      if [[ $topo == nic-guest ]] && ((QUEUES > 1)); then
        local q
        for ((q = 1; q < QUEUES; q++)); do second+=",rx_pcap=$dir/nic.pcap"; done
      fi
      tp_start ref --lcores "0@$DUT_CORE,1@$DUT_CORE" --main-lcore 0 --no-pci \
        --file-prefix "$(sys_prefix ref)" -m 512 \
        --vdev "net_vhost0,iface=$SOCK0$REF_VHOST_ARGS" --vdev "$second" \
        -- --forward-mode=io --auto-start ${REF_APP[@]+"${REF_APP[@]}"}
      tp_wait_ready ref
      DUT_PIDS=("${TP_PID[ref]}")
      ;;
    ovs)
      ovs_start "$dir/ovs" "$(printf '0x%x' $((1 << DUT_CORE)))" "$(printf '0x%x' $((1 << GEN_CORE)))"
      ovs_add_vhost vm0 ${OVS_VHOST_ARGS[@]+"${OVS_VHOST_ARGS[@]}"}
      case $topo in
        loopback) ovs_add_vhost vm1 ${OVS_VHOST_ARGS[@]+"${OVS_VHOST_ARGS[@]}"} ;;
        *-vxlan|vxlan-*) ovs_add_vxlan vx0 "$OVS_UL_BRIDGE" "$UL_MAC" "$NIC" "$VX_LOCAL" "$VX_REMOTE" "$VX_REMOTE_MAC" "$VX_VNI" ;;
        *) ovs_add_nic nic0 "$NIC" ;;
      esac
      ovs_ready
      SOCK0=$dir/ovs/vm0 SOCK1=$dir/ovs/vm1
      DUT_PIDS=("$OVS_VSD_PID" "$OVS_DB_PID")
      ;;
  esac
  wait_for 10 "vhost-user socket $SOCK0" test -S "$SOCK0"
}

# vusw_check_tunnel TOPOLOGY: the tunnel has the underlay MAC the VXLAN packets are sent
# to, and (guest-vxlan) has learned the remote VTEP's MAC from the ARP reply.
vusw_check_tunnel() {
  local i got
  for ((i = 0; i < 50; i++)); do
    got=$(vusw_ctl --json show port vx0 | "$PYTHON" -c '
import json, sys
v = json.load(sys.stdin)["port"]["vxlan"]
print(v["local_mac"], v["remotes"][0]["mac"])')
    [[ $got == "$UL_MAC $VX_REMOTE_MAC" || ($1 == vxlan-guest && $got == "$UL_MAC "*) ]] && return 0
    sleep 0.1
  done
  fail "tunnel vx0: local MAC and remote VTEP MAC are '$got', expected '$UL_MAC $VX_REMOTE_MAC' (did net_pcap's MAC change?)"
}

dut_stop() {
  case $1 in
    vuswitch)
      vusw_ctl show ports >>"$SYS_TMP/vuswitchctl.log" 2>&1 || true
      vusw_stop || log "WARNING: vuswitchd exited non-zero (log: $VUSW_LOG)"
      ;;
    testpmd) tp_quit ref ;;
    ovs) ovs_stop ;;
  esac
}

# vusw_port_rates JSON0 JSON1 SECONDS: per-port rates between two `vuswitchctl --json
# show ports` replies, taken raw inside the window (python would take a few hundred ms on
# a host whose two cores are busy-polling). A reply takes ~0.1 s (the control thread
# shares core 0 with the generator), so each snapshot is dated at the middle of its call.
vusw_port_rates() {
  "$PYTHON" -c '
import json, sys
a, b = (json.loads(x)["ports"] for x in sys.argv[1:3])
s = float(sys.argv[3])
old = {p["name"]: p for p in a}
for p in b:
    o = old.get(p["name"])
    if o is None:
        continue
    d = lambda k: (p[k] - o[k]) / s / 1e6
    drops = (sum(p["drops"].values()) - sum(o["drops"].values())) / s / 1e6
    ring = ""
    if "ring_type" in p:
        pairs = sum(1 for q in p.get("queues", []) if q["rx"]["enabled"] or q["tx"]["enabled"])
        ring = " (%s, %d queue pair%s enabled)" % (p["ring_type"], pairs, "" if pairs == 1 else "s")
    print("  %s%s rx %.3f tx %.3f drops %.3f Mpps;" % (p["name"], ring, d("rx_packets"), d("tx_packets"), drops), end="")
print()' "$1" "$2" "$3" 2>/dev/null || echo " (no counters)"
}

# ovs_iface_rates BEFORE AFTER SECONDS: per-port rates between two ovs_iface_counters
# snapshots (the same cross-check as vusw_port_rates: did the frames really leave?).
ovs_iface_rates() {
  awk -v s="$3" '
    FNR == NR { rx[$1] = $2; tx[$1] = $3; dr[$1] = $4; next }
    ($1 in rx) && $1 != "ovs-netdev" && $1 != "br0" {
      printf "  %s rx %.3f tx %.3f drops %.3f Mpps;", $1, ($2 - rx[$1]) / s / 1e6, ($3 - tx[$1]) / s / 1e6, ($4 - dr[$1]) / s / 1e6 }
    END { print "" }' <(printf '%s\n' "$1") <(printf '%s\n' "$2")
}

# OVS PMD statistics since the last pmd-stats-clear: "busy_pct cycles_per_packet".
ovs_pmd_window() {
  ovs_appctl dpif-netdev/pmd-stats-show 2>/dev/null | awk '
    /pmd thread/ { in_pmd = 1 } /main thread/ { in_pmd = 0 }
    in_pmd && /packets received:/ { pk += $3 }
    in_pmd && /idle cycles:/ { idle += $3 }
    in_pmd && /processing cycles:/ { proc += $3 }
    END {
      if (idle + proc > 0) printf "%.0f ", 100 * proc / (idle + proc); else printf "- "
      if (pk > 0) printf "%.0f\n", (idle + proc) / pk; else printf "-\n" }'
}

# gen_ring LOG_OFFSET: what the generator's virtio ports negotiated ("features after
# negotiate", logged by pmd.net.virtio.init:debug, after LOG_OFFSET bytes of the log, which
# every measurement's generator appends to): prints "RING PAIRS FEATURES" (RING packed/split, "mixed"
# if the ports differ; PAIRS = queue pairs the generator configured when MQ was negotiated,
# else 1; FEATURES the hex values, /-separated).
gen_ring() {
  local f feats=() ring= r pairs=1
  while read -r f; do feats+=("$f"); done < <(tail -c +"$(($1 + 1))" "${TP_LOG[gen]}" | grep -o 'features after negotiate = [0-9a-fA-F]*' | awk '{ print $NF }')
  ((${#feats[@]} > 0)) || { echo "? ? -"; return; }
  for f in "${feats[@]}"; do
    if (((0x$f >> 34) & 1)); then r="packed"; else r="split"; fi   # VIRTIO_F_RING_PACKED
    [[ -z $ring || $ring == "$r" ]] && ring=$r || ring=mixed
    (((0x$f >> 22) & 1)) && pairs=$QUEUES                      # VIRTIO_NET_F_MQ
  done
  echo "$ring $pairs $(printf '0x%s\n' "${feats[@]}" | sort -u | paste -sd/)"
}

# gen_wait_ready LOG_OFFSET: wait for this generator's first prompt. Every measurement's
# generator appends to the same log, and tp_wait_ready looks for a prompt anywhere in it,
# so from the second measurement on it returned at once, before the new generator had
# initialised its ports: the warm-up then began while the generator was still starting.
gen_wait_ready() {
  local i
  for ((i = 0; i < 600; i++)); do
    tail -c +"$(($1 + 1))" "${TP_LOG[gen]}" | grep -q 'testpmd> ' && return 0
    tp_alive gen || fail "testpmd gen exited during start-up"
    sleep 0.1
  done
  fail "testpmd gen: no prompt after 60 s"
}

# gen_queue_spread NPORTS: share of each queue in the generator's per-queue counters so far
# (virtio xstats rx_qN_good_packets, or tx_qN_ for a port that received nothing): did the
# switch spread the flows over the queues? Prints e.g. "port 0 rx 26/24/25/25 %; port 1 ...".
gen_queue_spread() {
  local off
  off=$(stat -c %s "${TP_LOG[gen]}")
  tp_cmd gen "show port xstats all"
  sleep 0.5
  tail -c +"$((off + 1))" "${TP_LOG[gen]}" | awk -v n="$1" '
    /NIC extended statistics for port/ { for (i = 1; i <= NF; i++) if ($i == "port") p = $(i + 1); if (!(p in seen)) { seen[p] = 1; order[++np] = p } }
    /^[rt]x_q[0-9]+_good_packets:/ {
      d = substr($1, 1, 2); q = $1; sub(/^[rt]x_q/, "", q); sub(/_.*/, "", q)
      c[p, d, q] = $2; tot[p, d] += $2; if (q + 1 > nq[p, d]) nq[p, d] = q + 1 }
    END {
      out = ""
      for (k = 1; k <= np && k <= n; k++) {
        p = order[k]; d = tot[p, "rx"] > 0 ? "rx" : "tx"; s = ""
        if (tot[p, d] == 0) { out = out sprintf("%sport %s: no frames", out == "" ? "" : "; ", p); continue }
        for (q = 0; q < nq[p, d]; q++) s = s sprintf("%s%.0f", q ? "/" : "", 100 * c[p, d, q] / tot[p, d])
        out = out sprintf("%sport %s %s %s %%", out == "" ? "" : "; ", p, d, s)
      }
      print out == "" ? "(no per-queue counters)" : out }'
}

# ---------------------------------------------------------------- one measurement

# measure TOPOLOGY TARGET SIZE TRIAL: start switch and generator, warm up, measure one
# window, stop both. Runs in a subshell (run_point); writes one result line to fd 3:
#   mpps crosscheck_mpps foreign_pct pmd_busy_pct cycles_per_packet frames_per_poll
#   ... ring queue_pairs   (what the generator negotiated: packed/split, MQ pairs)
# (progress and details go to stdout/stderr as usual).
measure() {
  local topo=$1 target=$2 size=$3 trial=$4 dir nports col
  dir=$SYS_TMP/$topo-$target-$size-$trial
  mkdir -p "$dir"
  ((QUIET_WAIT > 0)) && wait_quiet
  dut_start "$target" "$topo" "$size" "$dir"
  local gen_off
  gen_off=$(stat -c %s "$SYS_TMP/gen.log" 2>/dev/null || echo 0)
  case $topo in
    loopback)
      gen_start_loopback "$SOCK0" "$SOCK1"
      tp_cmd gen "set txpkts $((size - 4))"
      tp_cmd gen "start tx_first $BURSTS"
      nports=2 col=4 ;;          # generator RX, both ports
    guest-nic|guest-vxlan)
      gen_start_one "$SOCK0" txonly "$UNKNOWN_MAC"
      tp_cmd gen "set txpkts $((size - 4))"
      tp_cmd gen "start"
      nports=1 col=5 ;;          # generator TX
    nic-guest|vxlan-guest)
      gen_start_one "$SOCK0" rxonly "$NIC_MAC"
      tp_cmd gen "set txpkts $((size - 4))"
      # One burst from the guest first, so the switch learns its MAC: the NIC's frames
      # are then known unicast (a learning switch's common case), not floods.
      tp_cmd gen "start tx_first 1"
      nports=1 col=4 ;;          # generator RX
  esac
  local ring pairs feats
  gen_wait_ready "$gen_off"
  read -r ring pairs feats <<<"$(gen_ring "$gen_off")"
  echo "          generator negotiated: $ring ring, $pairs queue pair(s) (features $feats)"
  sleep "$WARMUP"
  local pmd0= pmd1= ports0= ports1= pt0= pt1= ta tb before after busy=- cyc=- fpt=-
  case $target in
    vuswitch) pmd0=$(pmd_cycles) ;;
    ovs) ovs_appctl dpif-netdev/pmd-stats-clear >/dev/null 2>&1 || true ;;
  esac
  window_begin "${TP_PID[gen]}" "${DUT_PIDS[@]}"
  # ta/tb: just before each "show port stats" (testpmd answers within milliseconds, the
  # helper then polls its log), for the counter cross-check; the switch's own port
  # counters are read inside the same span.
  ta=$(date +%s.%N)
  before=$(tp_stats gen "$nports")
  [[ $target == vuswitch ]] && { pt0=$(date +%s.%N); ports0=$(vusw_ctl --json show ports 2>/dev/null || true); pt0="$pt0 $(date +%s.%N)"; }
  [[ $target == ovs ]] && { pt0=$(date +%s.%N); ports0=$(ovs_iface_counters); pt0="$pt0 $(date +%s.%N)"; }
  sleep "$DURATION"
  [[ $target == vuswitch ]] && { pt1=$(date +%s.%N); ports1=$(vusw_ctl --json show ports 2>/dev/null || true); pt1="$pt1 $(date +%s.%N)"; }
  [[ $target == ovs ]] && { pt1=$(date +%s.%N); ports1=$(ovs_iface_counters); pt1="$pt1 $(date +%s.%N)"; }
  tb=$(date +%s.%N)
  after=$(tp_stats gen "$nports")
  window_end
  case $target in
    vuswitch)
      pmd1=$(pmd_cycles)
      read -r busy cyc fpt <<<"$(pmd_window "$pmd0" "$pmd1")"
      # Switch's own counters over the window, a cross-check of what the generator saw.
      echo "          vuswitchd ports:$(vusw_port_rates "$ports0" "$ports1" "$(awk -v a="$pt0" -v b="$pt1" 'BEGIN { split(a, x, " "); split(b, y, " "); print (y[1] + y[2] - x[1] - x[2]) / 2 }')")"
      ;;
    ovs)
      read -r busy cyc <<<"$(ovs_pmd_window)"
      echo "          OVS interfaces:$(ovs_iface_rates "$ports0" "$ports1" "$(awk -v a="$pt0" -v b="$pt1" 'BEGIN { split(a, x, " "); split(b, y, " "); print (y[1] + y[2] - x[1] - x[2]) / 2 }')")"
      ;;
  esac
  printf '%s\n%s\n' "$before" "$after" >>"$SYS_TMP/stats-$topo-$target-$size.txt"
  ((QUEUES > 1)) && echo "          generator per-queue share: $(gen_queue_spread "$nports")"
  tp_quit gen
  dut_stop "$target"
  # Rate: testpmd's own Rx-pps/Tx-pps (its timestamps, since the previous "show port
  # stats"); cross-check: the packet counter's delta over our wall clock (ta..tb).
  awk -v n="$nports" -v c="$col" -v s="$(awk -v a="$ta" -v b="$tb" 'BEGIN { print b - a }')" -v f="$FOREIGN" -v b="$busy" -v y="$cyc" -v t="$fpt" '
    NR <= n { cnt0[$1] = (c == 4 ? $2 : $3); next }
    { pps += $c; d += (c == 4 ? $2 : $3) - cnt0[$1] }
    END { printf "%.3f %.3f %s %s %s %s", pps / 1e6, d / s / 1e6, f, b, y, t }' <<<"$before"$'\n'"$after" >&3
  echo " $ring $pairs" >&3
}

# run_point ...: measure in a subshell so that a failure (fail, a dead daemon) costs this
# point only; the subshell's own trap stops whatever it started. Sets POINT (result line)
# or POINT_ERR.
POINT= POINT_ERR=
run_point() {
  local out=$SYS_TMP/point.out err=$SYS_TMP/point.err rc=0
  : >"$out"; : >"$err"
  (
    SYS_PIDS=()
    # shellcheck disable=SC2317  # invoked by the trap
    point_cleanup() {
      local rc=$? pid
      trap - EXIT
      # Not under errexit: sys_stop_pid's "wait" returns a reaped daemon's status (143
      # for OVS stopped by SIGTERM), which would end the cleanup early.
      set +e
      if ((rc != 0)); then
        local f
        for f in "${TP_LOG[gen]:-}" "${TP_LOG[ref]:-}" "$VUSW_LOG" "${OVS_DIR:+$OVS_DIR/ovs-vswitchd.log}"; do
          [[ -n $f && -f $f ]] || continue
          printf '  ----- %s (last 8 lines)\n' "$f" >&2
          tail -n 8 "$f" | sed 's/^/  | /' >&2
        done
      fi
      for pid in "${SYS_PIDS[@]}"; do sys_stop_pid "$pid" 5; done
      exit "$rc"
    }
    fail() { printf '%s\n' "$*" >"$err"; printf '[%s] FAIL: %s\n' "$SYS_NAME" "$*" >&2; exit 1; }
    trap point_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    measure "$@" 3>"$out"
  ) || rc=$?
  ((rc == 130 || rc == 143)) && exit "$rc"
  POINT=$(<"$out") POINT_ERR=
  if ((rc != 0)) || [[ -z $POINT ]]; then
    POINT= POINT_ERR=$(<"$err")
    [[ -n $POINT_ERR ]] || POINT_ERR="measurement exited with status $rc"
  fi
}

# ---------------------------------------------------------------- memory

# vusw_memory N: resident memory of an idle vuswitchd with N vhost-user server ports
# (no front-end attached), to fd 3: "N VmRSS_kB VmHWM_kB HugetlbPages_kB".
vusw_memory() {
  local n=$1 dir=$SYS_TMP/mem-$1 i args=()
  mkdir -p "$dir"
  for ((i = 0; i < n; i++)); do args+=(--vhost-user "$dir/p$i.sock"); done
  vusw_start mem --lcores "$GEN_CORE,$DUT_CORE" --log-level warn "${args[@]}"
  sleep 2
  awk -v n="$n" '/^VmRSS:/ { r = $2 } /^VmHWM:/ { h = $2 } /^HugetlbPages:/ { g = $2 }
    END { print n, r, h, g + 0 }' "/proc/$VUSW_PID/status" >&3
  vusw_stop || log "WARNING: vuswitchd exited non-zero (log: $VUSW_LOG)"
}

# ---------------------------------------------------------------- run

# measurable TOPOLOGY TARGET: testpmd's io forwarding has no VXLAN.
measurable() { [[ $2 != testpmd || $1 != *vxlan* ]]; }
nsize=$(wc -w <<<"$SIZES") total=0
for topo in $TOPOLOGIES; do
  for target in $TARGETS; do measurable "$topo" "$target" && total=$((total + nsize * TRIALS)); done
done
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo '?')
[[ -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]] && COMMIT="$COMMIT (uncommitted changes in the tree)"
# The binary may be older than the tree: say when it was built.
[[ -x $SYS_VUSWITCHD ]] && COMMIT="$COMMIT, vuswitchd built $(date -u -r "$SYS_VUSWITCHD" '+%Y-%m-%d %H:%M UTC')"
HOST="$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(nproc) cores, kernel $(uname -r), DPDK $(dpkg-query -W -f='${Version}' dpdk 2>/dev/null || echo '?')"
OVS_VERSION=$("$OVS_VSWITCHD_DPDK" --version 2>/dev/null | head -1 | awk '{print $NF}' || true)
START=$(date -u '+%Y-%m-%d %H:%M UTC')
log "topologies: $TOPOLOGIES   sizes: $SIZES   switches: $TARGETS   trials: $TRIALS"
log "window: ${WARMUP}s warm-up + ${DURATION}s; $total measurements, about $((total * (WARMUP * 10 + DURATION * 10 + 25) / 600 + 1)) min"
log "generator: testpmd virtio-user on core $GEN_CORE; switch under test on core $DUT_CORE"
log "host: $HOST; vuswitch $COMMIT${OVS_VERSION:+; OVS $OVS_VERSION}"
log "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

T_START=$SECONDS
RAW=$SYS_TMP/trials.csv
echo "topology,target,size,trial,mpps,crosscheck_mpps,foreign_pct,pmd_busy_pct,cycles_per_packet,status,ring,queues,virtio" >"$RAW"
declare -A FAILED_IN=()   # topology/target -> reason: the switch is not tried again there
i=0
for topo in $TOPOLOGIES; do
  for size in $SIZES; do
    for ((trial = 1; trial <= TRIALS; trial++)); do
      for target in $TARGETS; do   # interleaved, so slow drifts of the host hit every switch alike
        measurable "$topo" "$target" || continue
        i=$((i + 1))
        what="$(printf '(%d/%d) %-9s %4s B  %-8s trial %d/%d' "$i" "$total" "$topo" "$size" "$target" "$trial" "$TRIALS")"
        if [[ -n ${FAILED_IN[$topo/$target]:-} ]]; then
          echo "$topo,$target,$size,$trial,,,,,,skipped,,$QUEUES,${VIRTIO//,/ }" >>"$RAW"
          continue
        fi
        lock_take
        log "$what: measuring"
        run_point "$topo" "$target" "$size" "$trial"
        lock_drop
        if [[ -z $POINT ]]; then
          log "$what: FAILED: $POINT_ERR"
          log "          $target is skipped for the rest of $topo (re-run with SYS_KEEP_LOGS=1 to keep its logs)"
          FAILED_IN[$topo/$target]=$POINT_ERR
          echo "$topo,$target,$size,$trial,,,,,,failed,,$QUEUES,${VIRTIO//,/ }" >>"$RAW"
          continue
        fi
        read -r mpps check foreign busy cyc fpt ring pairs <<<"$POINT"
        status=ok
        ((foreign > 10)) && status=disturbed
        log "$what: $(printf '%7.3f Mpps' "$mpps") (counter cross-check $check; foreign CPU $foreign% of a core$([[ $busy != - ]] && echo "; PMD busy $busy%, $cyc cycles/packet")$([[ $fpt != - ]] && echo ", $fpt frames/poll"))"
        [[ $status == disturbed ]] && log "          WARNING: other processes used $foreign% of a core during this window: disturbed"
        echo "$topo,$target,$size,$trial,$mpps,$check,$foreign,${busy/-/},${cyc/-/},$status,$ring,$pairs,${VIRTIO//,/ }" >>"$RAW"
      done
    done
  done
done

MEM=$SYS_TMP/memory.txt
: >"$MEM"
if [[ $MEMORY == 1 && " $TARGETS " == *" vuswitch "* ]]; then
  for n in 2 64; do
    lock_take
    log "memory: vuswitchd with $n idle vhost-user ports"
    if ( SYS_PIDS=(); trap 'set +e; for p in "${SYS_PIDS[@]}"; do sys_stop_pid "$p" 5; done' EXIT; vusw_memory "$n" ) 3>>"$MEM"; then
      log "          $(tail -n 1 "$MEM" | awk '{ printf "VmRSS %.1f MiB, VmHWM %.1f MiB, hugetlb %.0f MiB", $2 / 1024, $3 / 1024, $4 / 1024 }')"
    else
      log "          FAILED (see above)"
    fi
    lock_drop
  done
fi
log "load average after: $(cut -d' ' -f1-3 /proc/loadavg); took $(((SECONDS - T_START) / 60)) min $(((SECONDS - T_START) % 60)) s"

# ---------------------------------------------------------------- report

report() {
  printf '## vuswitch vs. testpmd net_vhost vs. OVS-DPDK (perf/run.sh)\n\n'
  printf '%s; commit %s; %s.\n' "$START" "$COMMIT" "$HOST"
  printf 'Generator: dpdk-testpmd, virtio-user, core %s; switch under test: core %s. %s trial(s) per point, %ss window after %ss warm-up. ' \
    "$GEN_CORE" "$DUT_CORE" "$TRIALS" "$DURATION" "$WARMUP"
  printf 'Command: `perf/run.sh%s`.\n\n' "${ARGS:+ $ARGS}"
  [[ -n $OVS_SKIPPED ]] && printf '**%s**\n\n' "$OVS_SKIPPED"
  [[ " $TARGETS " == *" testpmd "* && $TOPOLOGIES == *vxlan* ]] \
    && printf 'testpmd (net_vhost, io forwarding) has no VXLAN: the VXLAN topologies compare vuswitch and OVS.\n\n'
  local k
  for k in "${!FAILED_IN[@]}"; do
    printf '**%s failed in %s**: %s\n\n' "${k#*/}" "${k%%/*}" "${FAILED_IN[$k]}"
  done
  "$PYTHON" perf/plot.py --csv "$RAW" --tables ${PLOT:+--plot "$PLOT"}
  if [[ -s $MEM ]]; then
    printf '\n### vuswitchd memory, idle (no guest attached)\n\n'
    printf '| vhost-user ports | VmRSS | VmHWM | hugetlb mapped |\n|---:|---:|---:|---:|\n'
    awk '{ printf "| %d | %.1f MiB | %.1f MiB | %.0f MiB |\n", $1, $2 / 1024, $3 / 1024, $4 / 1024 }' "$MEM"
    printf '\nVmRSS/VmHWM from /proc/PID/status (hugetlbfs pages not included; they are the last column, HugetlbPages).\n'
  fi
}
ARGS=
((${#ORIG_ARGS[@]} > 0)) && ARGS=$(printf ' %q' "${ORIG_ARGS[@]}" | sed 's/^ //')
echo
report | tee "$SYS_TMP/report.md"
if [[ -n $CSV ]]; then
  cp "$SYS_TMP/report.md" "$MARKDOWN"
  cp "$RAW" "$CSV"
  log "tables written to $MARKDOWN, every trial to $CSV"
fi
[[ -n $PLOT && -s $PLOT ]] && log "plot written to $PLOT"
if ((${#FAILED_IN[@]} > 0)); then
  log "some measurements failed (see FAILED above and the report); exit 1"
  exit 1
fi
exit 0
