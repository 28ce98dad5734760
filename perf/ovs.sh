# shellcheck shell=bash
# OVS-DPDK as a benchmark reference, run privately: its own database, run, log and
# vhost-user socket directory under one DIR, its own DPDK file prefix, started and stopped
# by PID. Nothing touches /var/run/openvswitch, /etc/openvswitch or the system service.
#
# Source after tests/system/lib.sh (uses log, fail, wait_for, sys_prefix, SYS_PIDS).
#
#   ovs_start DIR PMD_MASK LCORE_MASK   ovsdb-server + ovs-vswitchd (DPDK), bridge br0 (netdev)
#   ovs_add_vhost NAME [COL=VAL...]     dpdkvhostuser port; its socket is DIR/NAME
#   ovs_add_vhost_client NAME PATH      dpdkvhostuserclient port (connects to PATH)
#   ovs_add_nic NAME DEVARGS            type=dpdk port with options:dpdk-devargs=DEVARGS
#   ovs_add_vxlan NAME UL_BRIDGE UL_MAC DEVARGS LOCAL_IP REMOTE_IP REMOTE_MAC VNI
#                                       a vxlan port on br0 over an underlay bridge
#   ovs_ready                           wait for the ports, no-flood on LOCAL, print flows
#   ovs_vsctl ARGS / ovs_appctl ARGS    against this instance
#   ovs_stop                            TERM both daemons by PID, check they are gone
#
# Debian's openvswitch-switch-dpdk ships the DPDK build of ovs-vswitchd as
# /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk; we run it directly instead of
# switching the system-wide ovs-vswitchd alternative.

OVS_VSWITCHD_DPDK=${OVS_VSWITCHD_DPDK:-/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk}
OVS_SCHEMA=${OVS_SCHEMA:-/usr/share/openvswitch/vswitch.ovsschema}
OVS_SOCKET_MEM=${OVS_SOCKET_MEM:-1024}   # MB of hugepages for OVS's mbuf pools
# More Open_vSwitch other_config settings for ovs_start, set before ovs-vswitchd starts
# (some are read only at start-up), e.g. (userspace-tso-enable=true).
OVS_OTHER_CONFIG=()
OVS_DIR=
OVS_DB_PID=
OVS_VSD_PID=
OVS_TAPS=()   # kernel taps of the bridges we made with an address (removed by ovs_stop)

# ovs_check: print why OVS-DPDK cannot run here (and return 1), or nothing.
ovs_check() {
  local t
  for t in "$OVS_VSWITCHD_DPDK" ovsdb-tool ovsdb-server ovs-vsctl ovs-ofctl ovs-appctl; do
    if ! command -v "$t" >/dev/null 2>&1; then
      echo "$t not found: install the Debian package openvswitch-switch-dpdk (deploy/setup.sh does)"
      return 1
    fi
  done
  [[ -r $OVS_SCHEMA ]] || { echo "$OVS_SCHEMA missing (package openvswitch-common)"; return 1; }
}

# ovs_env CMD ARGS: run CMD with this instance's directories (env execs CMD, so a
# backgrounded "ovs_env ... &" is still a subshell: the daemons are started with env directly).
ovs_env() {
  env OVS_RUNDIR="$OVS_DIR" OVS_DBDIR="$OVS_DIR" OVS_LOGDIR="$OVS_DIR" OVS_SYSCONFDIR="$OVS_DIR" "$@"
}
ovs_vsctl() { ovs_env timeout 30 ovs-vsctl --db="unix:$OVS_DIR/db.sock" --timeout=20 "$@"; }
ovs_appctl() { ovs_env timeout 30 ovs-appctl -t "$OVS_DIR/ovs-vswitchd.ctl" "$@"; }
ovs_ofctl() { ovs_env timeout 30 ovs-ofctl "$@"; }

# ovs_start DIR PMD_MASK LCORE_MASK
ovs_start() {
  OVS_DIR=$1
  local pmd_mask=$2 lcore_mask=$3 why
  why=$(ovs_check) || fail "OVS-DPDK: $why"
  rm -rf "$OVS_DIR"
  mkdir -p "$OVS_DIR"
  ovs_env ovsdb-tool create "$OVS_DIR/conf.db" "$OVS_SCHEMA" || fail "ovsdb-tool create failed"
  # Both daemons run in the foreground as our children (no --detach), so the cleanup
  # trap of tests/system/lib.sh kills them by PID if the script dies; they also write
  # pidfiles in DIR, which ovs_stop cross-checks.
  env OVS_RUNDIR="$OVS_DIR" OVS_DBDIR="$OVS_DIR" OVS_LOGDIR="$OVS_DIR" OVS_SYSCONFDIR="$OVS_DIR" \
    ovsdb-server "$OVS_DIR/conf.db" --remote="punix:$OVS_DIR/db.sock" \
    --pidfile="$OVS_DIR/ovsdb-server.pid" --unixctl="$OVS_DIR/ovsdb-server.ctl" \
    --log-file="$OVS_DIR/ovsdb-server.log" --no-chdir -vconsole:off \
    </dev/null >>"$OVS_DIR/ovsdb-server.out" 2>&1 &
  OVS_DB_PID=$!
  SYS_PIDS+=("$OVS_DB_PID")
  wait_for 10 "ovsdb-server socket $OVS_DIR/db.sock" test -S "$OVS_DIR/db.sock"
  ovs_vsctl --no-wait init
  # dpdk-lcore-mask: OVS's main (non-PMD) threads on the control core, like vuswitchd's
  # control thread; pmd-cpu-mask: exactly one PMD thread, on the switch core.
  ovs_vsctl --no-wait set Open_vSwitch . \
    other_config:dpdk-init=true \
    other_config:dpdk-lcore-mask="$lcore_mask" \
    other_config:pmd-cpu-mask="$pmd_mask" \
    other_config:dpdk-socket-mem="$OVS_SOCKET_MEM" \
    other_config:dpdk-socket-limit="$OVS_SOCKET_MEM" \
    other_config:dpdk-extra="--file-prefix=$(sys_prefix ovs) --no-pci --iova-mode=va" \
    other_config:vhost-sock-dir=. \
    ${OVS_OTHER_CONFIG[@]+"${OVS_OTHER_CONFIG[@]/#/other_config:}"}
  log "start ovs-vswitchd (DPDK): run dir $OVS_DIR, pmd-cpu-mask $pmd_mask, dpdk-lcore-mask $lcore_mask, socket-mem $OVS_SOCKET_MEM MB${OVS_OTHER_CONFIG[*]:+, ${OVS_OTHER_CONFIG[*]}}"
  env OVS_RUNDIR="$OVS_DIR" OVS_DBDIR="$OVS_DIR" OVS_LOGDIR="$OVS_DIR" OVS_SYSCONFDIR="$OVS_DIR" \
    "$OVS_VSWITCHD_DPDK" "unix:$OVS_DIR/db.sock" --pidfile="$OVS_DIR/ovs-vswitchd.pid" \
    --unixctl="$OVS_DIR/ovs-vswitchd.ctl" --log-file="$OVS_DIR/ovs-vswitchd.log" \
    --no-chdir -vconsole:off -vfile:info \
    </dev/null >>"$OVS_DIR/ovs-vswitchd.out" 2>&1 &
  OVS_VSD_PID=$!
  SYS_PIDS+=("$OVS_VSD_PID")
  local i
  for ((i = 0; i < 600; i++)); do
    [[ $(ovs_vsctl get Open_vSwitch . dpdk_initialized 2>/dev/null) == true ]] && break
    if ! kill -0 "$OVS_VSD_PID" 2>/dev/null; then
      local why
      why=$(grep -E '\|(ERR|EMER)\|' "$OVS_DIR/ovs-vswitchd.log" 2>/dev/null | sed 's/^.*|\(ERR\|EMER\)|//' | paste -sd';' || true)
      fail "ovs-vswitchd exited during start-up: ${why:-no error logged} (log: $OVS_DIR/ovs-vswitchd.log; free hugepages: $(awk '/^HugePages_Free:/ {print $2 * 2}' /proc/meminfo) MiB, OVS asks for OVS_SOCKET_MEM=$OVS_SOCKET_MEM)"
    fi
    sleep 0.1
  done
  ((i < 600)) || fail "ovs-vswitchd: DPDK not initialised after 60 s (log: $OVS_DIR/ovs-vswitchd.log)"
  ovs_vsctl add-br br0 -- set bridge br0 datapath_type=netdev \
    || fail "ovs-vsctl add-br br0 (netdev) failed; see $OVS_DIR/ovs-vswitchd.log"
}

ovs_add_vhost() { # NAME [COLUMN=VALUE...]: OVS creates the server socket DIR/NAME; the guest's
  # virtio-user connects. COLUMN=VALUE: more settings of the Interface, e.g.
  # other_config:tx-steering=hash.
  ovs_vsctl add-port br0 "$1" -- set Interface "$1" type=dpdkvhostuser "${@:2}" \
    || fail "ovs-vsctl add-port $1 (dpdkvhostuser) failed; see $OVS_DIR/ovs-vswitchd.log"
  wait_for 10 "OVS vhost-user socket $OVS_DIR/$1" test -S "$OVS_DIR/$1"
}

ovs_add_vhost_client() { # NAME PATH [COLUMN=VALUE...]: dpdkvhostuserclient port; OVS
  # connects to the server socket PATH (e.g. QEMU's chardev server=on) and keeps retrying
  # until it exists. OVS 3.1 applies userspace-tso-enable to vhost-user ports in this mode
  # only: with dpdkvhostuser it offers CSUM but drops the guest's partial-checksum TCP
  # ("No TCP checksum support").
  ovs_vsctl add-port br0 "$1" -- set Interface "$1" type=dpdkvhostuserclient "options:vhost-server-path=$2" "${@:3}" \
    || fail "ovs-vsctl add-port $1 (dpdkvhostuserclient $2) failed; see $OVS_DIR/ovs-vswitchd.log"
}

ovs_add_nic() { # NAME DEVARGS
  ovs_vsctl add-port br0 "$1" -- set Interface "$1" type=dpdk "options:dpdk-devargs=$2" \
    || fail "ovs-vsctl add-port $1 (dpdk-devargs=$2) failed; see $OVS_DIR/ovs-vswitchd.log"
  local err
  err=$(ovs_vsctl get Interface "$1" error 2>/dev/null || true)
  [[ -z $err || $err == '[]' ]] || fail "OVS port $1 ($2): $err"
}

# ovs_add_vxlan NAME UL_BRIDGE UL_MAC DEVARGS LOCAL_IP REMOTE_IP REMOTE_MAC VNI: OVS's
# userspace tunnelling (Documentation/howto/userspace-tunneling.rst): the underlay is a
# second netdev bridge UL_BRIDGE (MAC UL_MAC) with the NIC DEVARGS, whose LOCAL port (a
# kernel tap) holds LOCAL_IP, the tunnel's source; a route to REMOTE_IP through it and a
# static ARP entry REMOTE_IP -> REMOTE_MAC (vuswitchd learns it from the NIC instead). The
# vxlan port NAME (VNI, remote_ip) is on br0. Decapsulation happens where br0's NORMAL
# flow on UL_BRIDGE delivers a VXLAN packet for LOCAL_IP to its LOCAL port (tnl_pop).
ovs_add_vxlan() {
  local name=$1 br=$2 mac=$3 devargs=$4 local_ip=$5 remote_ip=$6 remote_mac=$7 vni=$8
  ovs_vsctl add-br "$br" -- set bridge "$br" datapath_type=netdev "other-config:hwaddr=\"$mac\"" \
    || fail "ovs-vsctl add-br $br (netdev) failed; see $OVS_DIR/ovs-vswitchd.log"
  OVS_TAPS+=("$br")
  ovs_vsctl add-port "$br" "$name-ul" -- set Interface "$name-ul" type=dpdk "options:dpdk-devargs=$devargs" mtu_request=9000 \
    || fail "ovs-vsctl add-port $name-ul (dpdk-devargs=$devargs) failed; see $OVS_DIR/ovs-vswitchd.log"
  wait_for 10 "OVS bridge $br's tap" ip link show dev "$br" >/dev/null
  ip addr add "$local_ip/24" dev "$br" && ip link set "$br" up || fail "cannot give $br the address $local_ip/24"
  ovs_appctl ovs/route/add "$remote_ip/32" "$br" >/dev/null || fail "ovs-appctl ovs/route/add $remote_ip/32 $br failed"
  ovs_appctl tnl/arp/set "$br" "$remote_ip" "$remote_mac" >/dev/null || fail "ovs-appctl tnl/arp/set $br $remote_ip failed"
  ovs_vsctl add-port br0 "$name" -- set Interface "$name" type=vxlan "options:remote_ip=$remote_ip" \
    "options:local_ip=$local_ip" "options:key=$vni" \
    || fail "ovs-vsctl add-port $name (vxlan) failed; see $OVS_DIR/ovs-vswitchd.log"
  local err
  err=$(ovs_vsctl get Interface "$name-ul" error 2>/dev/null || true)
  [[ -z $err || $err == '[]' ]] || fail "OVS port $name-ul ($devargs): $err"
  log "OVS $br: $(ovs_vsctl list-ports "$br" | paste -sd' '), tunnel $name VNI $vni $local_ip -> $remote_ip; route: $(ovs_appctl ovs/route/show | grep -F "$remote_ip" | tr -s ' ')"
}

# ovs_iface_counters: the datapath ports' counters now, "NAME rx_packets tx_packets drops"
# per line (dpctl/show -s reads them from the ports; the Interface table's statistics
# are refreshed only every 5 s).
ovs_iface_counters() {
  ovs_appctl dpctl/show -s 2>/dev/null | awk '
    /^ *port [0-9]+:/ { name = $3 }
    /^ *RX packets:/ { split($2, a, ":"); rx[name] = a[2]; split($4, d, ":"); drop[name] = d[2] }
    /^ *TX packets:/ { split($2, a, ":"); tx[name] = a[2]; split($4, d, ":"); drop[name] += d[2] }
    END { for (n in rx) print n, rx[n], tx[n], drop[n] }'
}

# ovs_ready: the bridge's own port (LOCAL, a kernel tap) must not take part in flooding,
# so that the bridge switches between exactly the two ports under test; the flow table is
# the default single NORMAL flow (fail-mode standalone, no controller).
ovs_ready() {
  ovs_ofctl mod-port br0 br0 no-flood || fail "ovs-ofctl mod-port br0 br0 no-flood failed"
  ovs_ofctl mod-port br0 br0 down || true
  local flows
  flows=$(ovs_ofctl dump-flows br0 --no-stats 2>&1 | tr -s ' ')
  [[ $flows == *actions=NORMAL* ]] || fail "OVS br0: unexpected flow table: $flows"
  log "OVS br0 ports: $(ovs_vsctl list-ports br0 | paste -sd' '), flows: ${flows# }"
}

# ovs_stop: SIGTERM ovs-vswitchd then ovsdb-server by PID (pidfiles cross-checked),
# wait for both to exit, check no process of this instance remains.
ovs_stop() {
  [[ -n $OVS_DIR ]] || return 0
  local pid f
  for f in ovs-vswitchd ovsdb-server; do
    if [[ -r $OVS_DIR/$f.pid ]]; then
      pid=$(<"$OVS_DIR/$f.pid")
      if [[ $f == ovs-vswitchd && $pid != "$OVS_VSD_PID" ]] || [[ $f == ovsdb-server && $pid != "$OVS_DB_PID" ]]; then
        log "WARNING: $OVS_DIR/$f.pid says $pid, we started $([[ $f == ovs-vswitchd ]] && echo "$OVS_VSD_PID" || echo "$OVS_DB_PID")"
      fi
    fi
  done
  [[ -n $OVS_VSD_PID ]] && sys_stop_pid "$OVS_VSD_PID" 15
  [[ -n $OVS_DB_PID ]] && sys_stop_pid "$OVS_DB_PID" 5
  for pid in $OVS_VSD_PID $OVS_DB_PID; do
    kill -0 "$pid" 2>/dev/null && fail "OVS process $pid still running after stop"
  done
  local tap
  for tap in ${OVS_TAPS[@]+"${OVS_TAPS[@]}"}; do ip link del "$tap" 2>/dev/null || true; done
  OVS_TAPS=()
  if pgrep -f -- "$OVS_DIR/" >/dev/null 2>&1; then
    log "WARNING: processes referring to $OVS_DIR still run: $(pgrep -af -- "$OVS_DIR/" | paste -sd';')"
  fi
  OVS_VSD_PID= OVS_DB_PID=
}
