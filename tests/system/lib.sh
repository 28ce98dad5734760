# shellcheck shell=bash
# Helpers for the system tests and perf scripts: run vuswitchd and dpdk-testpmd
# in the background, drive testpmd's interactive prompt without a tty (commands go
# through a fifo), parse its port statistics, and clean up every process, temp file,
# DPDK runtime directory and hugepage file we created -- also on failure.
#
# Source it, then call sys_init NAME once. Everything lives under $SYS_TMP.

SYS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../lib/proc.sh
source "$SYS_ROOT/tests/lib/proc.sh"
SYS_TESTPMD=${TESTPMD:-dpdk-testpmd}
SYS_BUILD=${VUSW_BUILD:-$SYS_ROOT/build}
SYS_VUSWITCHD=${VUSWITCHD:-$SYS_BUILD/control/vuswitchd}
SYS_VUSWITCHCTL=${VUSWITCHCTL:-$SYS_BUILD/control/vuswitchctl}
# Debian's python3 (setup.sh installs it), not whatever a version manager puts first in PATH.
if [[ -x /usr/bin/python3 ]]; then PYTHON=${PYTHON:-/usr/bin/python3}; else PYTHON=${PYTHON:-python3}; fi

SYS_NAME=
SYS_TMP=
SYS_PIDS=()          # every background process we started, killed by PID on exit
SYS_CLEANUP_HOOKS=() # extra commands run at exit (netns removal, ...)
declare -A TP_FD=() TP_PID=() TP_LOG=()

log()  { printf '[%s] %s\n' "$SYS_NAME" "$*"; }
fail() { printf '[%s] FAIL: %s\n' "$SYS_NAME" "$*" >&2; exit 1; }
skip() { printf '[%s] SKIP: %s\n' "$SYS_NAME" "$*" >&2; exit 77; }

# sys_init NAME: temp dir, exit trap, basic preconditions (root, hugepages, tools).
sys_init() {
  SYS_NAME=$1
  [[ $(id -u) -eq 0 ]] || skip "needs root (hugepages, vhost-user sockets, netns)"
  command -v "$SYS_TESTPMD" >/dev/null || skip "dpdk-testpmd not found (Debian package dpdk-dev; run deploy/setup.sh)"
  SYS_TMP=$(mktemp -d "/tmp/vusw-$SYS_NAME.XXXXXX")
  trap sys_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# Skip only when hugepages are impossible here (none reserved, no hugetlbfs); too few
# free pages is an environment problem worth a failure, so it is only warned about.
sys_require_hugepages() { # MB
  local need_mb=$1 total free
  findmnt -n -t hugetlbfs /dev/hugepages >/dev/null 2>&1 \
    || skip "no hugetlbfs mounted at /dev/hugepages (deploy/setup.sh mounts it)"
  total=$(awk '/^HugePages_Total:/ {print $2}' /proc/meminfo)
  free=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)
  (( total > 0 )) || skip "no 2 MiB hugepages reserved (deploy/setup.sh reserves them)"
  if (( free * 2 < need_mb )); then
    log "WARNING: needs about ${need_mb} MiB of free hugepages, only $((free * 2)) MiB free; DPDK may fail to start"
  fi
}

sys_require_daemon() {
  [[ -x $SYS_VUSWITCHD ]] || fail "vuswitchd not built at $SYS_VUSWITCHD (meson setup build && ninja -C build)"
  [[ -x $SYS_VUSWITCHCTL ]] || fail "vuswitchctl not built at $SYS_VUSWITCHCTL"
}

# sys_require_tools TOOL...: skip unless each is installed (python3: Debian's, $PYTHON);
# the message says where it comes from.
sys_require_tools() {
  local tool
  for tool in "$@"; do
    case $tool in
      python3) command -v "$PYTHON" >/dev/null || skip "python3 not installed" ;;
      curl) command -v curl >/dev/null || skip "curl not installed (deploy/setup.sh installs it)" ;;
      ping) command -v ping >/dev/null \
        || skip "ping not installed (Debian package iputils-ping; deploy/setup.sh installs it)" ;;
      *) command -v "$tool" >/dev/null || skip "$tool not installed" ;;
    esac
  done
}

# A DPDK file prefix unique to this run. sys_cleanup removes the hugepage files and
# runtime directories of every prefix of this form ($$ is the script's PID, also in
# subshells), since EAL leaves them behind and they would pin hugepages.
sys_prefix() { # TAG
  printf 'vusw-%s-%s-%s' "$SYS_NAME" "$1" "$$"
}

# sys_stop_pid PID [timeout_s]: stop_pid under the name perf/ scripts call it by.
sys_stop_pid() { stop_pid "$@"; }

sys_cleanup() {
  local rc=$?
  trap - EXIT
  stop_pids "${SYS_PIDS[@]}"
  run_hooks "${SYS_CLEANUP_HOOKS[@]}"
  rm -f /dev/hugepages/"vusw-$SYS_NAME-"*"-$$map_"* 2>/dev/null || true
  rm -rf /var/run/dpdk/"vusw-$SYS_NAME-"*"-$$" 2>/dev/null || true
  if [[ $rc -ne 0 && $rc -ne 77 && -n $SYS_TMP && -d $SYS_TMP && ${SYS_KEEP_LOGS:-0} != 1 ]]; then
    print_log_tails "$SYS_TMP" 40
  fi
  [[ -n $SYS_TMP && ${SYS_KEEP_LOGS:-0} != 1 ]] && rm -rf "$SYS_TMP"
  [[ ${SYS_KEEP_LOGS:-0} == 1 ]] && printf '[%s] logs kept in %s\n' "$SYS_NAME" "$SYS_TMP" >&2
  exit "$rc"
}

# ---------------------------------------------------------------- checks

# expect DESCRIPTION CONDITION...: run the condition, log "ok" or "MISMATCH"; mismatches
# are counted in `errors`, which the script checks at its end. refuse: the condition
# must fail.
errors=0
expect() {
  local what=$1
  shift
  if "$@"; then log "ok: $what"; else log "MISMATCH: $what"; errors=$((errors + 1)); fi
}
refuse() {
  local what=$1
  shift
  if "$@"; then log "MISMATCH: $what"; errors=$((errors + 1)); else log "ok: $what"; fi
}

# metric_sum NAME [LABEL=VALUE...] <METRICS: the sum of NAME's samples that have these
# labels, in Prometheus text on stdin (a /metrics scrape), as a whole number.
metric_sum() {
  "$PYTHON" -c '
import re, sys
name, want, total = sys.argv[1], dict(a.split("=", 1) for a in sys.argv[2:]), 0
for line in sys.stdin:
    m = re.match(r"(\w+)(?:\{(.*)\})? (\S+)$", line.strip())
    labels = dict(re.findall(r"(\w+)=\"([^\"]*)\"", m.group(2) or "")) if m else {}
    if m and m.group(1) == name and all(labels.get(k) == v for k, v in want.items()):
        total += float(m.group(3))
print(int(total))' "$@"
}

# free_port FIRST LAST: the first TCP port in FIRST..LAST nobody listens on.
free_port() {
  local p
  for ((p = $1; p <= $2; p++)); do
    ss -Htln "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return 0; }
  done
  fail "no free TCP port in $1..$2"
}

# ---------------------------------------------------------------- network namespaces

NS=
VETH_HOST= VETH_NS= VETH_NS_MAC=
SYS_VETHS=0

in_ns() { ip netns exec "$NS" "$@"; }

# sys_netns: a new network namespace, named in NS, with IPv6 off (its kernel then sends
# nothing by itself); removed at exit. Skips where namespaces cannot be made.
sys_netns() {
  command -v ip >/dev/null || skip "ip (iproute2) not installed"
  NS=vusw-$SYS_NAME-$$
  SYS_CLEANUP_HOOKS+=("ip netns del $NS")
  ip netns add "$NS" 2>"$SYS_TMP/netns.err" || skip "cannot create a network namespace: $(cat "$SYS_TMP/netns.err")"
  in_ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 || true
}

# sys_extra_netns NAME: one more namespace (a guest's), IPv6 off, removed at exit.
sys_extra_netns() {
  SYS_CLEANUP_HOOKS+=("ip netns del $1")
  ip netns add "$1" || fail "cannot create namespace $1"
  ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 || true
}

# sys_veth [MTU]: a veth pair from the host namespace into NS (sys_netns first), both
# ends up, with MTU on both if given, no IPv6 on the host end, transmit checksum offload
# off on both (frames leave with complete checksums). Sets VETH_HOST (the host end, for
# a --nic), VETH_NS and VETH_NS_MAC (the namespace end), overwritten by the next call;
# removed at exit.
sys_veth() {
  local mtu=${1:-} n=$((SYS_VETHS++))
  VETH_HOST=vsh$n-$$ VETH_NS=vsn$n-$$
  VETH_HOST=${VETH_HOST:0:15} VETH_NS=${VETH_NS:0:15}
  SYS_CLEANUP_HOOKS+=("ip link del $VETH_HOST")
  ip link add "$VETH_HOST" type veth peer name "$VETH_NS" || fail "cannot create veth pair $VETH_HOST/$VETH_NS"
  ip link set "$VETH_NS" netns "$NS"
  sysctl -qw "net.ipv6.conf.$VETH_HOST.disable_ipv6=1" || true
  if [[ -n $mtu ]]; then
    ip link set "$VETH_HOST" mtu "$mtu" || fail "cannot set MTU $mtu on $VETH_HOST"
    in_ns ip link set "$VETH_NS" mtu "$mtu" || fail "cannot set MTU $mtu on $VETH_NS"
  fi
  if command -v ethtool >/dev/null; then
    ethtool -K "$VETH_HOST" tx off >/dev/null 2>&1 || true
    in_ns ethtool -K "$VETH_NS" tx off >/dev/null 2>&1 || true
  fi
  ip link set "$VETH_HOST" up
  in_ns ip link set "$VETH_NS" up
  VETH_NS_MAC=$(in_ns cat "/sys/class/net/$VETH_NS/address")
  log "namespace $NS: $VETH_NS ($VETH_NS_MAC) <-veth-> $VETH_HOST (host)${mtu:+, MTU $mtu}"
}

# ns_rx_packets IF: the rx_packets counter of interface IF in NS.
ns_rx_packets() { in_ns cat "/sys/class/net/$1/statistics/rx_packets"; }

# ns_send IF DST_MAC ETHERTYPE COUNT SIZE FIRST: COUNT frames of SIZE bytes (header
# included) from interface IF in NS to DST_MAC, from a raw AF_PACKET socket on core 0;
# ETHERTYPE in hex; payload: sequence numbers from FIRST on.
NS_SENDER='
import socket, sys
ifname, dst, ethertype, count, size, first = sys.argv[1], sys.argv[2], int(sys.argv[3], 16), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
src = open("/sys/class/net/%s/address" % ifname).read().strip()
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
hdr = bytes.fromhex(dst.replace(":", "")) + bytes.fromhex(src.replace(":", "")) + ethertype.to_bytes(2, "big")
for seq in range(first, first + count):
    s.send(hdr + (seq.to_bytes(4, "big") * (size // 4 + 1))[: size - 14])
'
ns_send() {
  in_ns taskset -c 0 "$PYTHON" -c "$NS_SENDER" "$@" || fail "raw sender on $1 in the namespace failed"
}

# ---------------------------------------------------------------- vuswitchd

VUSW_PID=
VUSW_LOG=
VUSW_CTL=

# vusw_start TAG ARGS...: start vuswitchd (own prefix, run dir, control socket; metrics
# off unless VUSW_METRICS=ADDR:PORT) and
# wait for "vuswitchd: ready". Extra ARGS are passed through (--vhost-user, --nic ...).
vusw_start() {
  local tag=$1 prefix
  shift
  prefix=$(sys_prefix "$tag")
  VUSW_LOG=$SYS_TMP/vuswitchd-$tag.log
  VUSW_CTL=$SYS_TMP/run-$tag/vuswitchd.ctl
  mkdir -p "$SYS_TMP/run-$tag"
  log "start vuswitchd: --file-prefix $prefix --run-dir $SYS_TMP/run-$tag $*"
  "$SYS_VUSWITCHD" --file-prefix "$prefix" --run-dir "$SYS_TMP/run-$tag" \
    --control "$VUSW_CTL" --metrics "${VUSW_METRICS:-off}" "$@" </dev/null >"$VUSW_LOG" 2>&1 &
  VUSW_PID=$!
  SYS_PIDS+=("$VUSW_PID")
  local i
  for ((i = 0; i < 300; i++)); do
    grep -q 'vuswitchd: ready' "$VUSW_LOG" && return 0
    kill -0 "$VUSW_PID" 2>/dev/null || fail "vuswitchd exited during start-up"
    sleep 0.1
  done
  fail "vuswitchd not ready after 30 s"
}

# vusw_stop: SIGTERM; returns vuswitchd's exit status (fails if it runs 10 s later).
vusw_stop() {
  [[ -n $VUSW_PID ]] || return 0
  local pid=$VUSW_PID
  VUSW_PID=
  term_and_wait "$pid" vuswitchd
}

# vusw_ctl ARGS...: vuswitchctl against our daemon, bounded in time (a hung daemon
# must fail the test, not hang it).
vusw_ctl() {
  timeout 10 "$SYS_VUSWITCHCTL" --control "$VUSW_CTL" "$@"
}

# vusw_port_json NAME FIELD: one field of one port from `vuswitchctl --json show ports`
# (dicts such as "drops" are summed).
vusw_port_json() {
  vusw_ctl --json show ports \
    | "$PYTHON" -c '
import json, sys
name, field = sys.argv[1], sys.argv[2]
for p in json.load(sys.stdin)["ports"]:
    if p["name"] == name:
        v = p[field]
        print(sum(v.values()) if isinstance(v, dict) else v)
        sys.exit(0)
sys.exit("no port %r in vuswitchctl output" % name)' "$1" "$2"
}

# vusw_port_field NAME FIELD.PATH: one (nested) field of `vuswitchctl --json show port
# NAME`, e.g. vxlan.arp_received; 0 where the path is missing.
vusw_port_field() {
  vusw_ctl --json show port "$1" | "$PYTHON" -c '
import json, sys
v = json.load(sys.stdin)["port"]
for k in sys.argv[1].split("."):
    v = v.get(k, 0) if isinstance(v, dict) else 0
print(v)' "$2"
}

# vusw_metric NAME [LABEL=VALUE...]: the sum of NAME's samples with these labels on the
# daemon's /metrics (started with VUSW_METRICS=ADDR:PORT).
vusw_metric() {
  curl -sf "http://$VUSW_METRICS/metrics" | metric_sum "$@"
}

# ---------------------------------------------------------------- dpdk-testpmd

# tp_start NAME EAL-AND-APP-ARGS...: start testpmd in interactive mode (-i is added),
# reading commands from a fifo so it needs no tty and no stdin.
tp_start() {
  local name=$1 fifo
  shift
  fifo=$SYS_TMP/$name.in
  TP_LOG[$name]=$SYS_TMP/$name.log
  rm -f "$fifo"
  mkfifo "$fifo"
  printf '===== %s %s -i\n' "$SYS_TESTPMD" "$*" >>"${TP_LOG[$name]}"
  # stdbuf: testpmd prints with stdio; without it the statistics sit in a buffer.
  stdbuf -oL -eL "$SYS_TESTPMD" "$@" -i <"$fifo" >>"${TP_LOG[$name]}" 2>&1 &
  TP_PID[$name]=$!
  SYS_PIDS+=("${TP_PID[$name]}")
  # Opening the write end blocks until testpmd's shell opened the read end.
  exec {TP_FD[$name]}>"$fifo"
}

# tp_start_virtio_user NAME SOCK MAC PEER_MAC: a testpmd whose one port is a virtio-user
# front-end on vhost-user socket SOCK (rxonly; txonly/tx_first frames go to PEER_MAC), its
# main and forwarding lcores both on core 0 (none on the switch's PMD core); waits for
# its prompt.
tp_start_virtio_user() {
  tp_start "$1" --lcores 0@0,1@0 --main-lcore 0 --no-pci --single-file-segments \
    --iova-mode=va --file-prefix "$(sys_prefix "$1")" -m 256 \
    --vdev "net_virtio_user0,path=$2,mac=$3" \
    -- --forward-mode=rxonly --eth-peer=0,"$4" --total-num-mbufs=16384
  tp_wait_ready "$1"
}

# tp_start_tap_guest NAME NETNS SOCK ADDR/PREFIX [MAC]: a guest with a kernel network stack:
# testpmd run inside namespace NETNS (so its tap interface is made there), forwarding (io)
# between a virtio-user front-end on vhost-user socket SOCK and net_tap interface gtap0,
# which gets ADDR/PREFIX (and MAC) with receive/transmit checksum offloads off; its lcores
# on core 0. Forwarding is started; the namespace's ping and sockets are the guest's.
tp_start_tap_guest() {
  local name=$1 netns=$2 sock=$3 addr=$4 mac=${5:-} testpmd=$SYS_TESTPMD
  SYS_TESTPMD=ip tp_start "$name" netns exec "$netns" "$testpmd" --lcores 0@0,1@0 --main-lcore 0 --no-pci \
    --single-file-segments --iova-mode=va --file-prefix "$(sys_prefix "$name")" -m 256 \
    --vdev "net_virtio_user0,path=$sock" --vdev net_tap0,iface=gtap0 \
    -- --forward-mode=io --total-num-mbufs=8192
  tp_wait_ready "$name"
  tp_cmd "$name" "start"
  ip netns exec "$netns" ip link set gtap0 down
  [[ -z $mac ]] || ip netns exec "$netns" ip link set gtap0 address "$mac"
  ip netns exec "$netns" ip addr replace "$addr" dev gtap0
  ip netns exec "$netns" ip link set gtap0 up
  ip netns exec "$netns" ethtool -K gtap0 rx off tx off >/dev/null 2>&1 || true
}

tp_cmd() { # NAME COMMAND
  printf '%s\n' "$2" >&"${TP_FD[$1]}" || fail "testpmd $1 is gone (command: $2)"
}

tp_alive() { kill -0 "${TP_PID[$1]}" 2>/dev/null; }

# tp_wait_ready NAME [timeout]: wait for the first prompt (ports configured, links checked).
tp_wait_ready() {
  local name=$1 t=${2:-60} i
  for ((i = 0; i < t * 10; i++)); do
    grep -q 'testpmd> ' "${TP_LOG[$name]}" && return 0
    tp_alive "$name" || fail "testpmd $name exited during start-up"
    sleep 0.1
  done
  fail "testpmd $name: no prompt after ${t}s"
}

# tp_stats NAME NPORTS: run "show port stats all" and print one line per port:
#   port rx_packets tx_packets rx_pps tx_pps rx_bytes tx_bytes
# rx_pps/tx_pps are testpmd's own rates since the previous "show port stats".
tp_stats() {
  local name=$1 nports=$2 logf=${TP_LOG[$1]} off i n
  off=$(stat -c %s "$logf")
  tp_cmd "$name" "show port stats all"
  for ((i = 0; i < 100; i++)); do
    n=$(tail -c +"$((off + 1))" "$logf" | grep -c 'Tx-pps:' || true)
    (( n >= nports )) && break
    sleep 0.1
  done
  (( n >= nports )) || fail "testpmd $name: no port statistics output"
  tail -c +"$((off + 1))" "$logf" | awk '
    /NIC statistics for port/ { for (i = 1; i <= NF; i++) if ($i == "port") p = $(i + 1) }
    /RX-packets:/ { rxp = $2; rxb = $6 }
    /TX-packets:/ { txp = $2; txb = $6 }
    /Rx-pps:/     { rxpps = $2 }
    /Tx-pps:/     { print p, rxp, txp, rxpps, $2, rxb, txb }'
}

# tp_stat NAME NPORTS PORT COLUMN: one value from tp_stats (columns as above, 2 = rx_packets).
tp_stat() {
  tp_stats "$1" "$2" | awk -v p="$3" -v c="$4" '$1 == p { print $c }'
}

# tp_read_stats NAME NPORTS: "show port stats all" like tp_stats, but parsed by bash
# builtins alone, for polling loops: on a loaded 2-core host (busy-polling testpmds and
# PMD) every fork+exec costs 10-100 ms, and tp_stats runs about six. Sets, per port P of
# NAME (overwritten by the next call, also for another testpmd):
#   TP_RX[P] TP_TX[P] TP_RXB[P] TP_TXB[P]  (packets and bytes)
# It keeps a read descriptor on NAME's log positioned after what it has parsed.
declare -A TP_RFD=() TP_RPART=() TP_RX=() TP_TX=() TP_RXB=() TP_TXB=()
TP_NAP_FD=
tp_nap() { # SECONDS: sleep without forking (read on a fifo nobody writes, with a timeout)
  if [[ -z $TP_NAP_FD ]]; then # (a subshell's first call leaves the fifo behind)
    mkfifo "$SYS_TMP/.nap" 2>/dev/null || [[ -p $SYS_TMP/.nap ]] || fail "cannot create $SYS_TMP/.nap"
    exec {TP_NAP_FD}<>"$SYS_TMP/.nap"
  fi
  read -r -t "$1" -u "$TP_NAP_FD" _ || true
}
tp_read_stats() {
  local name=$1 nports=$2 fd line buf port=-1 seen=0 end=$((SECONDS + 10))
  fd=${TP_RFD[$name]:-}
  if [[ -z $fd ]]; then
    exec {fd}<"${TP_LOG[$name]}"
    TP_RFD[$name]=$fd
  fi
  # Skip what testpmd printed so far (its last line may lack its newline: the prompt).
  buf=${TP_RPART[$name]:-}
  while IFS= read -r -u "$fd" line; do buf=; done
  buf+=$line
  tp_cmd "$name" "show port stats all"
  while ((seen < nports)); do
    if IFS= read -r -u "$fd" line; then
      line=$buf$line
      buf=
      if [[ $line =~ NIC\ statistics\ for\ port\ ([0-9]+) ]]; then
        port=${BASH_REMATCH[1]}
      elif ((port >= 0)) && [[ $line =~ RX-packets:\ *([0-9]+).*RX-bytes:\ *([0-9]+) ]]; then
        TP_RX[$port]=${BASH_REMATCH[1]} TP_RXB[$port]=${BASH_REMATCH[2]}
      elif ((port >= 0)) && [[ $line =~ TX-packets:\ *([0-9]+).*TX-bytes:\ *([0-9]+) ]]; then
        TP_TX[$port]=${BASH_REMATCH[1]} TP_TXB[$port]=${BASH_REMATCH[2]}
      elif ((port >= 0)) && [[ $line =~ Tx-pps: ]]; then
        port=-1
        seen=$((seen + 1))
      fi
    else
      buf+=$line
      ((SECONDS < end)) || fail "testpmd $name: no port statistics output"
      tp_alive "$name" || fail "testpmd $name is gone"
      tp_nap 0.01
    fi
  done
  TP_RPART[$name]=$buf
}

# tp_quit NAME: stop forwarding, quit, wait (TERM/KILL after 15 s).
tp_quit() {
  local name=$1 pid=${TP_PID[$1]}
  [[ -n $pid ]] || return 0
  printf 'stop\nquit\n' >&"${TP_FD[$name]}" 2>/dev/null || true
  exec {TP_FD[$name]}>&-
  if [[ -n ${TP_RFD[$name]:-} ]]; then exec {TP_RFD[$name]}<&-; TP_RFD[$name]=; TP_RPART[$name]=; fi
  wait_exit "$pid" 15 || true
  stop_pid "$pid" 5
  TP_PID[$name]=
}
