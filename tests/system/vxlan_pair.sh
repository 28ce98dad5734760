#!/usr/bin/env bash
# System test: two vuswitchd instances ("two hosts") carry their guests' traffic to each
# other over VXLAN, and a guest that moves from one to the other is learned again.
#
#   netns ga: guest A (192.168.7.1, MAC 02:00:00:07:00:01)     netns gb: guest B (192.168.7.2)
#      testpmd io: gtap0 <-> virtio-user                          testpmd io: gtap0 <-> virtio-user
#            |                                                          |
#   vuswitchd A: a1.sock, a2.sock -- switch -- vx                vuswitchd B: b1.sock, b2.sock -- vx
#       vx: local 10.98.0.1, remote 10.98.0.2, VNI 7              vx: local 10.98.0.2, remote 10.98.0.1
#       underlay net_af_packet0 on vpa-PID  ==========veth==========  underlay on vpb-PID
#
# 1. A's guest and B's guest ping each other across the tunnel; each switch's FDB has the
#    other host's guest behind its tunnel port.
# 2. Guest A "migrates" to host B: its testpmd on a1.sock quits and a new one with the same
#    MAC and address starts on b2.sock. Its first ARP broadcast reaches A over the tunnel:
#    A's FDB moves its MAC from a1 to vx, B's from vx to b2; ping works again, now within B.
# The veth pair stays in the host namespace without addresses (the underlay is vuswitchd's
# own: it answers ARP for local=). Exit: 0 pass, 1 fail, 77 skip.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

GUEST_A_MAC=02:00:00:07:00:01

sys_init vxlan_pair
sys_require_hugepages 1100
sys_require_daemon
command -v "$PYTHON" >/dev/null || skip "python3 not installed"
command -v ping >/dev/null || skip "ping not installed (Debian package iputils-ping; deploy/setup.sh installs it)"

VA=vpa-$$ VB=vpb-$$
VA=${VA:0:15} VB=${VB:0:15}
SYS_CLEANUP_HOOKS+=("ip link del $VA")
ip link add "$VA" type veth peer name "$VB" || fail "cannot create veth pair $VA/$VB"
for v in "$VA" "$VB"; do
  sysctl -qw "net.ipv6.conf.$v.disable_ipv6=1" || true
  ethtool -K "$v" rx off tx off >/dev/null 2>&1 || true
  ip link set "$v" up
done
GA=vusw-vxp-a-$$ GB=vusw-vxp-b-$$
sys_extra_netns "$GA"
sys_extra_netns "$GB"

host() { # NAME LOCAL REMOTE VETH: vuswitchd for one "host"
  vusw_start "$1" --lcores 0,1 --memory 128 --log-level info --nic "net_af_packet0,iface=$4" \
    --vxlan "vx,local=$2,remote=$3,vni=7,underlay=net_af_packet0" \
    --vhost-user "$SYS_TMP/${1}1.sock" --vhost-user "$SYS_TMP/${1}2.sock"
}
host a 10.98.0.1 10.98.0.2 "$VA"
A_CTL=$VUSW_CTL A_PID=$VUSW_PID
host b 10.98.0.2 10.98.0.1 "$VB"
B_CTL=$VUSW_CTL B_PID=$VUSW_PID

ctl() { # a|b ARGS...
  local which=$1
  shift
  if [[ $which == a ]]; then VUSW_CTL=$A_CTL vusw_ctl "$@"; else VUSW_CTL=$B_CTL vusw_ctl "$@"; fi
}
fdb_port() { # a|b MAC: the port the switch's FDB has MAC behind, or "-"
  ctl "$1" --json show fdb | "$PYTHON" -c '
import json, sys
mac = sys.argv[1].replace(":", "").lower()
print(next((e["port"] for e in json.load(sys.stdin)["fdb"] if e["mac"] == mac), "-"))' "$2"
}
pings() { # NETNS ADDR: five pings, none lost (after two that may resolve ARP)
  ip netns exec "$1" ping -q -c 2 -i 0.3 -W 2 "$2" >/dev/null 2>&1 || true
  ip netns exec "$1" ping -q -c 5 -i 0.2 -W 2 "$2"
}

tp_start_tap_guest ga "$GA" "$SYS_TMP/a1.sock" 192.168.7.1/24 "$GUEST_A_MAC"
tp_start_tap_guest gb "$GB" "$SYS_TMP/b1.sock" 192.168.7.2/24
GUEST_B_MAC=$(ip netns exec "$GB" cat /sys/class/net/gtap0/address)

# ---- 1. across the tunnel
expect "guest A (host a) pings guest B (host b) over VXLAN" pings "$GA" 192.168.7.2
expect "guest B pings guest A" pings "$GB" 192.168.7.1
expect "host a: guest A is behind a1 ($(fdb_port a $GUEST_A_MAC))" test "$(fdb_port a $GUEST_A_MAC)" == a1
expect "host a: guest B is behind the tunnel ($(fdb_port a "$GUEST_B_MAC"))" test "$(fdb_port a "$GUEST_B_MAC")" == vx
expect "host b: guest A is behind the tunnel ($(fdb_port b $GUEST_A_MAC))" test "$(fdb_port b $GUEST_A_MAC)" == vx
ctl a show port vx || true

# ---- 2. guest A moves to host b
tp_quit ga
ip netns exec "$GA" ip neigh flush all
tp_start_tap_guest ga2 "$GA" "$SYS_TMP/b2.sock" 192.168.7.1/24 "$GUEST_A_MAC"
expect "guest A, now on host b, pings guest B" pings "$GA" 192.168.7.2
expect "guest B pings guest A on its new host" pings "$GB" 192.168.7.1
expect "host b learned guest A's move: behind b2 ($(fdb_port b $GUEST_A_MAC))" test "$(fdb_port b $GUEST_A_MAC)" == b2
expect "host a learned guest A's move: behind the tunnel ($(fdb_port a $GUEST_A_MAC))" \
  test "$(fdb_port a $GUEST_A_MAC)" == vx
ctl b show port vx || true
drops=$(for h in a b; do ctl "$h" --json show port vx; done | "$PYTHON" -c '
import json, sys
dec = json.JSONDecoder(); text = sys.stdin.read().strip(); total = 0; seen = []
while text:
    port, end = dec.raw_decode(text); text = text[end:].strip()
    d = port["port"]["drops"]; d.pop("no_neighbour", None); total += sum(d.values()); seen.append(d)
print(total, seen)')
expect "no drops on either tunnel but while a remote VTEP was unresolved ($drops)" test "${drops%% *}" -eq 0

tp_quit ga2
tp_quit gb
for pid in "$A_PID" "$B_PID"; do
  rc=0
  VUSW_PID=$pid vusw_stop || rc=$?
  expect "vuswitchd $pid exits 0 on SIGTERM (got $rc)" test "$rc" -eq 0
done

(( errors == 0 )) || fail "$errors check(s) failed"
log "PASS: two vuswitchd instances carry their guests' traffic over VXLAN; a moved guest is learned again"
