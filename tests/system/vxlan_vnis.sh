#!/usr/bin/env bash
# System test: one VXLAN tunnel, two VNIs mapped to VLANs (vni=5000:10,vni=5001:20), against
# the Linux kernel's VTEPs: two kernel vxlan devices in one namespace, on one underlay IP
# and UDP port (the kernel shares the socket), and two guests in VLAN 10 and VLAN 20.
#
#   netns g10 (..-g10-PID)  gtap0 192.168.50.1    vuswitchd               netns vtep (vusw-vxlan_vnis-PID)
#     testpmd -> vm10.sock (vlan=10) --+                                  vx0 192.168.50.2 VNI 5000
#   netns g20 (..-g20-PID)  gtap0 192.168.50.3    switch -- vx (tunnel)   vx1 192.168.50.4 VNI 5001
#     testpmd -> vm20.sock (vlan=20) --+          underlay net_af_packet0  vx2 192.168.52.2 VNI 5002 (unmapped)
#                                                      ==veth== 10.99.0.1 | 10.99.0.2
#
# Both segments use one subnet, so only the VNI keeps them apart: vx0 pings the VLAN-10
# guest, vx1 the VLAN-20 guest, and neither reaches the other segment's guest (its ARP
# crosses in its VNI only). VNI 5002 is dropped as vxlan_unknown_vni. `vuswitchctl show
# port vx` shows the map; /metrics has each VNI's frames (vusw_vxlan_vni_*), which agree
# with the kernel devices' counts. The pings start in the kernel namespace, bound to a
# device (-I): with one subnet on two devices its replies would take the first route.
# About 12 s (most of it the two testpmd guests). Exit: 0 pass, 1 fail, 77 skip.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

LOCAL=10.99.0.1 REMOTE=10.99.0.2

sys_init vxlan_vnis
sys_require_hugepages 900
sys_require_daemon
sys_require_tools python3 curl ping
modprobe vxlan 2>/dev/null || true

sys_netns
sys_veth
G10=vusw-vxv-g10-$$ G20=vusw-vxv-g20-$$
sys_extra_netns "$G10"
sys_extra_netns "$G20"
ethtool -K "$VETH_HOST" rx off tx off >/dev/null 2>&1 || true
in_ns ethtool -K "$VETH_NS" rx off tx off >/dev/null 2>&1 || true

# The kernel VTEPs: one underlay address, three VNIs. One subnet on two devices: strict
# reverse-path filtering would drop replies on the second, and each answers ARP only for
# its own address (arp_ignore=1), as two separate hosts would.
in_ns ip addr add "$REMOTE/24" dev "$VETH_NS"
in_ns sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
  net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.default.arp_ignore=1
kernel_vtep() { # DEVICE VNI ADDR/PREFIX
  in_ns ip link add "$1" type vxlan id "$2" remote "$LOCAL" local "$REMOTE" dstport 4789 dev "$VETH_NS" \
    || skip "cannot create a kernel vxlan device (module vxlan)"
  in_ns ip addr add "$3" dev "$1"
  in_ns ip link set "$1" up
}
kernel_vtep vx0 5000 192.168.50.2/24
kernel_vtep vx1 5001 192.168.50.4/24
kernel_vtep vx2 5002 192.168.52.2/24

METRICS_PORT=$(free_port 19620 19639)
VUSW_METRICS=127.0.0.1:$METRICS_PORT vusw_start vxlan_vnis --lcores 0,1 --log-level info \
  --nic "net_af_packet0,iface=$VETH_HOST" \
  --vxlan "vx,local=$LOCAL,remote=$REMOTE,vni=5000:10,vni=5001:20,underlay=net_af_packet0" \
  --vhost-user "$SYS_TMP/vm10.sock|vlan=10" --vhost-user "$SYS_TMP/vm20.sock|vlan=20"

tp_start_tap_guest g10 "$G10" "$SYS_TMP/vm10.sock" 192.168.50.1/24
tp_start_tap_guest g20 "$G20" "$SYS_TMP/vm20.sock" 192.168.50.3/24

vx() { vusw_port_field vx "$1"; }  # FIELD.PATH in `vuswitchctl --json show port vx`
scrape() { curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" >"$SYS_TMP/metrics"; }
metric() { metric_sum "$@" <"$SYS_TMP/metrics"; }  # NAME [LABEL=VALUE...] in the last scrape
kstat() { in_ns cat "/sys/class/net/$1/statistics/$2"; }

for ((i = 0; i < 50; i++)); do [[ $(vx vxlan.remotes) == *mac*:* ]] && break; sleep 0.1; done
vusw_ctl show port vx || true
expect "show port vx shows the map" grep -q "VNIs 5000 (VLAN 10; .*), 5001 (VLAN 20; " <(vusw_ctl show port vx)
expect "vx is a trunk of VLANs 10 and 20" test "$(vx vlan_mode) $(vx trunks)" == "trunk 10,20"

# ---- each kernel VNI device reaches its own VLAN's guest
read -r vx0_tx0 vx1_tx0 < <(echo "$(kstat vx0 tx_packets) $(kstat vx1 tx_packets)")
in_ns ping -c 1 -W 2 -I vx0 192.168.50.1 >/dev/null 2>&1 || true  # ARP across the tunnel
expect "vx0 (VNI 5000) pings the VLAN-10 guest, no loss" in_ns ping -q -c 5 -i 0.1 -W 2 -I vx0 192.168.50.1
expect "vx1 (VNI 5001) pings the VLAN-20 guest, no loss" in_ns ping -q -c 5 -i 0.1 -W 2 -I vx1 192.168.50.3

# ---- and nothing crosses segments
refuse "vx0 (VNI 5000) does not reach the VLAN-20 guest" in_ns ping -q -c 1 -W 1 -I vx0 192.168.50.3
refuse "vx1 (VNI 5001) does not reach the VLAN-10 guest" in_ns ping -q -c 1 -W 1 -I vx1 192.168.50.1
unknown0=$(vx drops.vxlan_unknown_vni)
refuse "vx2 (VNI 5002, not mapped) reaches nobody" in_ns ping -q -c 1 -W 1 192.168.52.1
expect "VNI 5002's frames were dropped as vxlan_unknown_vni" test "$(( $(vx drops.vxlan_unknown_vni) - unknown0 ))" -ge 1

# ---- per-VNI counts on /metrics: what vx0 and vx1 sent, every one decapsulated here
sleep 0.3
vusw_ctl show port vx || true
scrape
for pair in "5000 vx0 $vx0_tx0" "5001 vx1 $vx1_tx0"; do
  read -r vni dev tx0 <<<"$pair"
  sent=$(( $(kstat "$dev" tx_packets) - tx0 ))
  got=$(metric vusw_vxlan_vni_decapsulated_packets_total port=vx vni="$vni")
  expect "VNI $vni: decapsulated on /metrics ($got) = what $dev sent ($sent, the pings at least)" \
    test "$got" -eq "$sent" -a "$got" -ge 5
  expect "VNI $vni: frames encapsulated into it on /metrics" \
    test "$(metric vusw_vxlan_vni_encapsulated_packets_total port=vx vni="$vni")" -ge 5
done
expect "the VNIs' frames are the port's (rx = decapsulated)" \
  test "$(metric vusw_port_rx_packets_total port=vx)" -eq "$(metric vusw_vxlan_vni_decapsulated_packets_total port=vx)"

rc=0
vusw_stop || rc=$?
expect "vuswitchd exits 0 on SIGTERM (got $rc)" test "$rc" -eq 0

(( errors == 0 )) || fail "$errors check(s) failed"
log "PASS: two VNIs over one tunnel, each in its VLAN: each kernel VNI device reaches only its own guest"
