#!/usr/bin/env bash
# System test: a NIC trunk port carrying VLANs 10, 20 and 30 to a network namespace, and
# a guest in access VLAN 10 that answers pings.
#
#   netns vusw-vlan_nic-PID          host namespace
#   [vsn0-PID] ==veth== [vsh0-PID] <-- net_af_packet0 "uplink" (trunk 10,20,30) -- vuswitchd
#                                               -- vm10.sock (access VLAN 10) --> testpmd icmpecho
#
# A python3 raw-socket "ping" in the namespace sends ICMP echo requests to the guest's
# MAC with an 802.1Q tag in the frame (VLANs 10, 20, 30, 40) and untagged, and reads the
# replies with the VLAN the kernel saw on them (PACKET_AUXDATA: the veth takes the tag
# off into the packet's metadata). This needs no 8021q module, which containers often lack.
# Only VLAN 10 reaches the guest, and every reply comes back tagged 10. VLAN 20 and 30
# have no other port (no_destination), VLAN 40 is not in the trunk (vlan_not_allowed),
# and untagged frames are the trunk's native VLAN 0, with no other port either.
# Exit: 0 pass, 1 fail, 77 skip.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

COUNT=${COUNT:-20}
VM_MAC=02:00:00:00:0a:10

sys_init vlan_nic
sys_require_hugepages 800
sys_require_daemon
command -v "$PYTHON" >/dev/null || skip "python3 not installed"

sys_netns  # no IPv6 anywhere in the namespace: the kernel then sends nothing on its own
sys_veth
HOST_IF=$VETH_HOST NS_IF=$VETH_NS

NIC_PORT=uplink
vusw_start vlan --lcores 0,1 --log-level info \
  --nic "net_af_packet0,iface=$HOST_IF|name=$NIC_PORT|vlan-mode=trunk|trunks=10,20,30" \
  --vhost-user "$SYS_TMP/vm10.sock|vlan=10"
grep -q 'VLANs: frames are classified' "$VUSW_LOG" || fail "vuswitchd did not turn VLAN handling on"

tp_start vm --lcores 0@0,1@0 --main-lcore 0 --no-pci --single-file-segments \
  --iova-mode=va --file-prefix "$(sys_prefix vm)" -m 256 \
  --vdev "net_virtio_user0,path=$SYS_TMP/vm10.sock,mac=$VM_MAC" \
  -- --forward-mode=icmpecho --total-num-mbufs=16384
tp_wait_ready vm
for ((i = 0; i < 100; i++)); do [[ $(vusw_port_json vm10 state 2>/dev/null) == ready ]] && break; sleep 0.1; done
tp_cmd vm "start"
sleep 0.5

# ping IFNAME DST_MAC VID COUNT: sends COUNT ICMP echo requests from IFNAME's MAC (raw
# AF_PACKET) tagged with VID (0: untagged), 10.VID.0.1 -> 10.VID.0.2, and prints how many
# matching echo replies came back and the VLAN ids they carried ("-" if none).
PING='
import select, socket, struct, sys, time
ifname, dst_mac, vid, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
SOL_PACKET, PACKET_AUXDATA, TP_STATUS_VLAN_VALID = 263, 8, 0x10
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    return ~(s + (s >> 16)) & 0xffff
src_mac = bytes.fromhex(open("/sys/class/net/%s/address" % ifname).read().strip().replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
s.bind((ifname, 0))
src, dst = socket.inet_aton("10.%d.0.1" % vid), socket.inet_aton("10.%d.0.2" % vid)
tag = struct.pack("!HH", 0x8100, vid) if vid else b""
for seq in range(count):
    icmp = struct.pack("!BBHHH", 8, 0, 0, 0x7644, seq) + b"vuswitch vlan test!!" * 2
    icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), seq, 0, 64, 1, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    s.send(bytes.fromhex(dst_mac.replace(":", "")) + src_mac + tag + b"\x08\x00" + ip + icmp)
    time.sleep(0.01)
replies, vids, deadline = set(), set(), time.time() + 2
while time.time() < deadline and len(replies) < count:
    if not select.select([s], [], [], 0.1)[0]:
        continue
    f, anc, _, addr = s.recvmsg(4096, socket.CMSG_SPACE(32))
    if addr[2] == socket.PACKET_OUTGOING:
        continue
    seen = 0
    for level, kind, data in anc:
        if level == SOL_PACKET and kind == PACKET_AUXDATA:
            status, _, _, _, _, tci, _ = struct.unpack("IIIHHHH", data[:20])
            if status & TP_STATUS_VLAN_VALID:
                seen = tci & 0xfff
    if f[12:14] == b"\x81\x00":  # tag still in the frame
        seen, f = struct.unpack("!H", f[14:16])[0] & 0xfff, f[:12] + f[16:]
    ok = len(f) >= 42 and f[12:14] == b"\x08\x00" and f[23] == 1 and f[34] == 0
    if ok and f[26:30] == dst and f[30:34] == src and f[38:40] == b"\x76\x44":
        replies.add(struct.unpack("!H", f[40:42])[0])
        vids.add(seen)
print(len(replies), ",".join(map(str, sorted(vids))) or "-")
'
ping_vlan() { # VID
  in_ns taskset -c 0 "$PYTHON" -c "$PING" "$NS_IF" "$VM_MAC" "$1" "$COUNT" || fail "raw ping in the namespace failed"
}
rx_of() { in_ns cat "/sys/class/net/$1/statistics/rx_packets"; }
drops_of() { # PORT REASON
  vusw_ctl --json show ports | "$PYTHON" -c '
import json, sys
for p in json.load(sys.stdin)["ports"]:
    if p["name"] == sys.argv[1]:
        print(p["drops"].get(sys.argv[2], 0))' "$1" "$2"
}


ns_rx0=$(rx_of "$NS_IF")
declare -A replies vids
for vid in 10 20 30 40 0; do
  read -r replies[$vid] vids[$vid] < <(ping_vlan "$vid")
  log "VLAN $vid: $COUNT echo requests, ${replies[$vid]} replies, tagged with VLAN ${vids[$vid]}"
done
sleep 0.5

expect "VLAN 10: all $COUNT pings answered by the guest in access VLAN 10" test "${replies[10]}" -eq "$COUNT"
expect "VLAN 10: the replies reached the namespace tagged 10 (saw ${vids[10]})" test "${vids[10]}" = 10
for vid in 20 30 40 0; do
  expect "VLAN $vid: no reply" test "${replies[$vid]}" -eq 0
done
expect "$NS_IF received the $COUNT replies and nothing else" test "$(( $(rx_of "$NS_IF") - ns_rx0 ))" -eq "$COUNT"

vusw_ctl show ports || fail "vuswitchctl show ports failed"
json=$(vusw_ctl --json show ports) || fail "vuswitchctl --json show ports failed"
read -r mode trunks vm_mode vm_vlan nic_rx nic_tx vm_rx vm_tx < <("$PYTHON" -c '
import json, sys
p = {q["name"]: q for q in json.load(sys.stdin)["ports"]}
n, v = p[sys.argv[1]], p["vm10"]
print(n["vlan_mode"], n["trunks"], v["vlan_mode"], v["vlan"], n["rx_packets"], n["tx_packets"], v["rx_packets"], v["tx_packets"])
' "$NIC_PORT" <<<"$json") || fail "cannot parse vuswitchctl --json output: $json"
expect "show ports: $NIC_PORT is a trunk of 10,20,30 ($mode $trunks)" test "$mode $trunks" = "trunk 10,20,30"
expect "show ports: vm10 is in access VLAN 10 ($vm_mode $vm_vlan)" test "$vm_mode $vm_vlan" = "access 10"
expect "guest received the $COUNT VLAN 10 requests (vm10 tx $vm_tx)" test "$vm_tx" -eq "$COUNT"
expect "guest sent $COUNT replies (vm10 rx $vm_rx)" test "$vm_rx" -eq "$COUNT"
expect "$NIC_PORT sent the $COUNT replies (tx $nic_tx)" test "$nic_tx" -eq "$COUNT"
expect "$NIC_PORT received all $((5 * COUNT)) requests (rx $nic_rx)" test "$nic_rx" -eq $((5 * COUNT))
expect "VLANs 20, 30 and native 0: $((3 * COUNT)) frames with no other port (no_destination)" \
  test "$(drops_of "$NIC_PORT" no_destination)" -eq $((3 * COUNT))
expect "VLAN 40: $COUNT frames not allowed on the trunk (vlan_not_allowed)" \
  test "$(drops_of "$NIC_PORT" vlan_not_allowed)" -eq "$COUNT"

tp_quit vm
rc=0
vusw_stop || rc=$?
expect "vuswitchd exits 0 on SIGTERM (got $rc)" test "$rc" -eq 0

(( errors == 0 )) || fail "$errors check(s) failed"
log "PASS: VLAN trunk on a NIC: only VLAN 10 reaches the access-VLAN-10 guest, tags right both ways"
