#!/usr/bin/env bash
# System test: the virtio-user front-end variants of DPDK 22.11 through vuswitchd, each
# with exact frame counts at both ends and byte-for-byte payload integrity.
#
#   testpmd A                                                     testpmd B
#   net_pcap0 rx_pcap=in_qN --io--> virtio-user0 --> vuswitchd --> virtio-user0 --io--> net_pcap0 tx_pcap=out_qN
#   (port 1, one file per queue)    (port 0, vm1.sock)      (vm2.sock, port 0)          (port 1, one file per queue)
#
# Design
# - Frames come from pcap files (tests/system/pcap_compare.py gen): Ethernet/IPv4/UDP in
#   16 flows (source IP and UDP ports vary), lengths from the variant's size set, and a
#   payload with a sequence number, the per-flow sequence number and a pattern derived
#   from the sequence number. testpmd A forwards (io mode: frames unchanged) from a
#   net_pcap port into its virtio-user port; testpmd B forwards everything its
#   virtio-user port receives into a net_pcap port that writes it to a pcap file. At the
#   end pcap_compare.py compares the two: every frame arrived exactly once and
#   byte-identical, nothing else arrived, each flow arrived in order on one RX queue.
# - Multiqueue: testpmd configures --rxq/--txq queues on every port, so each net_pcap
#   port gets one rx_pcap=/tx_pcap= file per queue (net_pcap makes one queue per file).
#   io forwarding maps RX queue q to TX queue q, so A sends flow f on virtio TX queue
#   f % N (the switch must poll them all) and B's out_q<q>.pcap is what arrived on its
#   virtio RX queue q. vuswitchd spreads traffic towards a guest over its RX queues by
#   flow hash, so with N > 1 the frames must arrive on at least 2 RX queues, and a flow
#   must stay on one queue (else it could be reordered).
# - Pacing: both testpmds and their forwarding lcores share core 0 (the switch's PMD has
#   core 1 alone), so a receiver can be descheduled for milliseconds while the sender
#   runs; a ring must never overflow, or a drop would be a false failure. The frames are
#   therefore sent in rounds of at most half a 256-entry ring worth of descriptors: one
#   set of pcap files per round, r<K>_q<Q>.pcap. Each round A's in_q<Q>.pcap symlinks
#   are pointed at the round's files and A's pcap port is stopped and started (net_pcap
#   opens rx_pcap files at port start and reads them once, to the end), then forwarding
#   runs until B has received everything sent so far ("settled"). Both testpmds run with
#   --no-flush-rx, or "start" would drain the freshly opened pcap files into the void.
# - Offload rows (traffic csum, tso=MSS; see the row table) send TCP and UDP over IPv4
#   and IPv6 through testpmd's csum engine with checksum/TSO offloads on A's virtio-user
#   port, to a B without GUEST_CSUM/GUEST_TSO: B must get what pcap_compare.py computes
#   a correct software checksum/segmentation yields (expected.pcap), byte for byte.
# - Counts: A virtio TX == switch vm1 rx_packets == switch vm2 tx_packets == B virtio RX
#   == B pcap TX == frames generated (and the bytes likewise; with tso, vm2 tx and B
#   count the expected segments); A receives nothing; the switch counts no drops (none
#   bad_offload). A fresh vuswitchd and fresh testpmds per variant.
# - Negotiated features: testpmd runs with --log-level=pmd.net.virtio.init:debug and the
#   virtio PMD logs "features after negotiate = <hex>". A devarg must show in it:
#   packed_vq=1 -> VIRTIO_F_RING_PACKED, in_order=1 -> VIRTIO_F_IN_ORDER, mrg_rxbuf=1 ->
#   VIRTIO_NET_F_MRG_RXBUF, queues=N>1 -> VIRTIO_NET_F_MQ (and the inverse for =0;
#   in_order and mrg_rxbuf only when the row sets them), so a silent fallback
#   (virtio-user drops a feature the back-end does not offer) fails the variant. The RX/TX burst functions the PMD picked
#   ("virtio: using ... path") are logged; a row can require one (vectorized=1).
#   If vuswitchctl's port JSON has a "features" field, it must agree with testpmd's.
#
# DPDK 22.11 virtio-user devargs (PMD_INFO_STRING of librte_net_virtio.so.23): path mac
# cq queue_size queues iface server mrg_rxbuf in_order packed_vq speed vectorized.
# - vectorized=1 only asks; the PMD takes a vector path only if: split ring: RX only
#   (there is no split vector TX), and only without IN_ORDER and without MRG_RXBUF and
#   RX offloads; packed ring: RX and TX, needs IN_ORDER, no MRG_RXBUF for RX, a CPU with
#   AVX512F/BW/VL and EAL --force-max-simd-bitwidth=512 (the default limit is 256). Hence
#   the two vectorized rows and their required log lines.
# - There is no mtu= devarg in 22.11 (a later release added it: the MTU the virtio-user
#   device reports in its config space). Here VIRTIO_NET_F_MTU is not negotiated (not in
#   the features above, though vuswitchd offers it), so the PMD's maximum MTU is
#   9728 - 14 - 4 - 12 = 9698 and testpmd sets the MTU: --max-pkt-len=9030 is MTU 9000
#   on the virtio-user port (testpmd subtracts the port's overhead, 14 + 4 + 12 = 30; the
#   test checks "show port info" says 9000). Ports are configured at start, so "port
#   config mtu" before start cannot work (rte_eth_dev_set_mtu wants a configured port).
#   Nor does virtio-user 22.11 send VHOST_USER_NET_SET_MTU (QEMU does, with host_mtu=),
#   so the switch ports of the jumbo rows get their MTU from the operator: |mtu=9000 on
#   their --vhost-user flags (the row's switch field). Without it they are 1500 and the
#   switch drops every longer frame as mtu_exceeded, which one row checks: a sender port
#   of MTU 9000 sends jumbo frames to a receiver port left at 1500, and every frame must
#   be counted as an mtu_exceeded drop on the receiver's port (pcap_compare.py gen
#   --max-frame: they are sent but not expected), none delivered.
#   With MRG_RXBUF a 9014 B frame spans 5 RX buffers of 2 KiB, which the PMD accepts
#   only with the RX scatter offload, set on the virtio-user port alone by the row's
#   set-up command (net_pcap has no scatter offload, so testpmd's --enable-scatter, for
#   every port, fails). A's net_pcap port reads such a frame into a chain of 5 mbufs, so
#   the virtio TX side carries multi-segment frames too. Without MRG_RXBUF an RX buffer
#   must hold a whole frame: --mbuf-size.
#
# Environment:
#   VARIANTS="queues=2 packed_vq=1"  names of the rows to run (default: all)
#   FRAMES_SCALE=N                   multiply every row's frame count by N/100 (default 100)
#   SYS_KEEP_LOGS=1                  keep logs and pcap files
#   BACKEND=testpmd-vhost            run the same checks against DPDK's own vhost-user
#                                    back-end (testpmd, net_vhost, io forwarding) instead
#                                    of vuswitchd: shows that a row can pass, i.e. that a
#                                    failure against vuswitchd is vuswitchd's. The
#                                    switch's counters are then that testpmd's port stats.
# Exit: 0 pass, 1 fail, 77 skip (not root / no hugepages / no testpmd or net_pcap).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# Frame lengths (without FCS) per size set: the smallest frame, around a cache line,
# around --zero-copy-min (1024: frames from it on are lent, shorter ones copied), full
# Ethernet, and for jumbo around one and several 2 KiB buffers up to MTU 9000 + header;
# over1500: from one byte over MTU 1500 + header to MTU 9000 + header.
# Offload rows (traffic csum / tso=MSS) take L4 payload lengths instead: for csum odd
# and even, tiny (a 60 B frame) to a full frame with the largest headers generated (VLAN
# + IPv6 + TCP with options: 90 B) and around --zero-copy-min; for tso around one and
# two segments of 1448 and up to the largest TCP frame (64 KiB IP datagram: 46 segments).
declare -A SIZESET=(
  [std]="60 64 65 127 128 255 256 511 512 1023 1024 1025 1513 1514"
  [jumbo]="60 1514 2035 2036 2037 2048 4096 6000 8192 9000 9014"
  [csum]="18 19 20 21 64 65 255 256 511 977 978 979 1000 1023 1024 1400 1423 1424"
  [tso]="18 100 1447 1448 1449 2896 2897 4000 8000 8688 9000 16000 32768 65400"
  [over1500]="1515 2036 2048 4096 8192 9014"
  [tso-pass]="18 100 1447 1448 1449 2896 2897 4000 8000 8688 9000 12000 16000"
)
# tso-pass stops at 16000 payload bytes: B's net_pcap port writes a frame of several
# mbufs through a bounce buffer of RTE_ETHER_MAX_JUMBO_FRAME_LEN (16128) bytes and
# truncates anything longer, and B receives these frames whole.

# One row per variant, fields separated by "|" (a field may be empty):
#   name          what VARIANTS selects it by; a name "mtu=N..." also makes the test
#                 check that testpmd reports MTU N on its virtio-user port; a name with
#                 "pmds=2" runs the switch with two PMD cores and checks that each
#                 guest's queue pairs are polled by both
#   devargs       appended to net_virtio_user0,path=SOCK,mac=MAC
#   EAL args      testpmd EAL arguments
#   app args      testpmd application arguments (after --); ports start with N queues
#                 if devargs have queues=N
#   setup         testpmd commands (";"-separated) run before the ports start
#   sizes         a SIZESET name or a list of frame lengths
#   frames        how many frames A sends
#   expect        an extended regex both testpmd logs must match (the PMD's chosen path)
#   traffic       what A sends and B must get (pcap_compare.py gen --offload): empty =
#                 none (UDP, unchanged end to end), csum (wrong L4 checksums that B must
#                 get right), tso=MSS (TCP frames that B must get in MSS segments),
#                 tso-pass=MSS (the same TCP frames, which B, taking TSO and partial
#                 checksums, must get whole; those with CWR segmented, as B has no ECN)
#   setup A       testpmd commands run on A alone, after setup (the offload rows' csum
#                 forwarding engine and its offload requests)
#   setup B       testpmd commands run on B alone, after setup (the RX offloads that
#                 make B's virtio PMD negotiate GUEST_CSUM / GUEST_TSO4/6)
#   switch        port options for the switch's vm1 (A's) and vm2 (B's) ports: OPTION=VALUE
#                 for both, vm1:OPTION=VALUE or vm2:OPTION=VALUE for one (e.g. mtu=9000).
#                 The switch must report each port's MTU (mtu= or 1500, never a front-end's:
#                 virtio-user sends no NET_SET_MTU); A's frames longer than vm2's MTU + 14
#                 must be dropped there as mtu_exceeded, exactly
# Offload rows: A forwards with testpmd's csum engine, which asks its virtio-user port
# (port 0) to do the L4 checksums ("csum set udp|tcp hw 0": partial checksum, the
# pseudo-header sum written by rte_eth_tx_prepare, NEEDS_CSUM in the virtio-net header)
# and TCP segmentation ("tso set MSS 0": for a TCP frame with more than MSS payload
# bytes, GSO_TCPV4/6 with gso_size MSS); the PMD negotiates CSUM for the checksum and
# HOST_TSO4/6 for the TSO offload (virtio_dev_configure). IPv4 header checksums stay in
# software ("csum set ip sw 0": virtio has no such offload); "csum mac-swap off 0" keeps
# the generated MAC addresses. B requests no RX offload, so it negotiates neither
# GUEST_CSUM nor GUEST_TSO4/6 and vuswitchd must finish every frame in software:
# checksums, and segments with their lengths, IPv4 ids and header checksums, sequence
# numbers and flags. B's frames are compared byte for byte with what pcap_compare.py
# computes (expected.pcap), so an unfinished partial checksum, an unsegmented frame or
# any wrong header field fails the row. The tso rows' segments carry 1448 payload bytes
# after up to 90 bytes of headers (VLAN, IPv6, TCP options): 1538 bytes, more than MTU
# 1500 allows, so their switch ports get mtu=1600 (at 1500 the switch would drop them as
# mtu_exceeded, judging a TSO frame by its segments).
# Pass-through rows (traffic tso-pass=MSS): B turns on its virtio-user port's RX
# offloads tcp_lro (the PMD then negotiates GUEST_TSO4/6) and tcp/udp_cksum
# (GUEST_CSUM) with per-port commands (testpmd's --enable-lro / --enable-rx-cksum apply
# to every port, and net_pcap has neither, so its port would not start). vuswitchd must
# then hand B each TSO frame whole: one virtio RX frame of up to 16 KB with GSO_TCPV4/6
# and NEEDS_CSUM in its header, which B's PMD takes as an LRO frame, leaving the partial
# checksum in place; B's pcap file holds the large frames, and the counts (B and
# switch vm2 tx == frames A sent, plus the segments of frames with CWR) prove that
# nothing was segmented on the way. A frame with CWR set goes to B in segments, as B did
# not negotiate GUEST_ECN (DPDK's virtio PMD has no ECN) and would lose CWR otherwise.
CSUM_A="set fwd csum; csum mac-swap off 0; csum set ip sw 0; csum set udp hw 0; csum set tcp hw 0"
GUEST_B="port config 0 rx_offload tcp_lro on; port config 0 rx_offload tcp_cksum on; port config 0 rx_offload udp_cksum on"
MATRIX=(
  "queues=1              | queues=1                                        |                               | --rxq=1 --txq=1    |                                  | std   | 1024 |"
  "queues=2              | queues=2                                        |                               | --rxq=2 --txq=2    |                                  | std   | 1024 |"
  "queues=4              | queues=4                                        |                               | --rxq=4 --txq=4    |                                  | std   | 1024 |"
  "queues=4,pmds=2       | queues=4                                        |                               | --rxq=4 --txq=4    |                                  | std   | 1024 |"
  "packed_vq=0           | packed_vq=0                                     |                               |                    |                                  | std   | 1024 |"
  "packed_vq=1           | packed_vq=1                                     |                               |                    |                                  | std   | 1024 |"
  "in_order=0            | in_order=0                                      |                               |                    |                                  | std   | 1024 |"
  "in_order=1            | in_order=1                                      |                               |                    |                                  | std   | 1024 |"
  "mrg_rxbuf=0           | mrg_rxbuf=0                                     |                               |                    |                                  | std   | 1024 |"
  "mrg_rxbuf=1           | mrg_rxbuf=1                                     |                               |                    |                                  | std   | 1024 |"
  "vectorized=1          | vectorized=1,in_order=0,mrg_rxbuf=0             |                               |                    |                                  | std   | 1024 | using vectorized Rx path"
  "vectorized=1,packed_vq=1 | vectorized=1,packed_vq=1,in_order=1,mrg_rxbuf=0 | --force-max-simd-bitwidth=512 |                 |                                  | std   | 1024 | using packed ring vectorized Rx path"
  "mtu=9000              |                                                 |                               | --max-pkt-len=9030 | port config 0 rx_offload scatter on | jumbo | 256 | | | | | mtu=9000"
  "mtu=9000,mrg_rxbuf=0  | mrg_rxbuf=0                                     |                               | --max-pkt-len=9030 --mbuf-size=9300 |                 | jumbo | 256  | | | | | mtu=9000"
  "packed_vq=1,in_order=0 | packed_vq=1,in_order=0                        |                               |                    |                                  | std   | 1024 |"
  "mtu=9000,packed_vq=1  | packed_vq=1                                     |                               | --max-pkt-len=9030 | port config 0 rx_offload scatter on | jumbo | 256 | | | | | mtu=9000"
  "mtu=9000,to_mtu=1500  |                                                 |                               | --max-pkt-len=9030 | port config 0 rx_offload scatter on | over1500 | 128 | | | | | vm1:mtu=9000"
  "offload=csum          |                                                 |                               |                    |                                  | csum  | 512  | | csum     | $CSUM_A"
  "offload=tso           |                                                 |                               |                    |                                  | tso   | 64   | | tso=1448 | $CSUM_A; tso set 1448 0 | | mtu=1600"
  "offload=tso,packed_vq=1 | packed_vq=1                                   |                               |                    |                                  | tso   | 64   | | tso=1448 | $CSUM_A; tso set 1448 0 | | mtu=1600"
  "offload=tso,queues=2  | queues=2                                        |                               | --rxq=2 --txq=2    |                                  | tso   | 64   | | tso=1448 | $CSUM_A; tso set 1448 0 | | mtu=1600"
  "offload=tso-pass      |                                                 |                               |                    |                                  | tso-pass | 96 | | tso-pass=1448 | $CSUM_A; tso set 1448 0 | $GUEST_B | mtu=1600"
  "offload=tso-pass,queues=2 | queues=2                                    |                               | --rxq=2 --txq=2    |                                  | tso-pass | 96 | | tso-pass=1448 | $CSUM_A; tso set 1448 0 | $GUEST_B | mtu=1600"
  "offload=tso-pass,packed_vq=1 | packed_vq=1                              |                               |                    |                                  | tso-pass | 96 | | tso-pass=1448 | $CSUM_A; tso set 1448 0 | $GUEST_B | mtu=1600"
)

MAC_A=02:00:00:00:0a:01
MAC_B=02:00:00:00:0b:01
FLOWS=16
ROUND_DESCS=128         # descriptors per round: half of virtio-user's 256-entry rings
SETTLE_TIMEOUT=15       # seconds for a round to arrive before the variant fails
COMPARE=$(dirname "$0")/pcap_compare.py
BACKEND=${BACKEND:-vuswitchd}

trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; printf '%s' "${s%"${s##*[![:space:]]}"}"; }

# row NAME: set R_NAME R_DEVARGS R_EAL R_APP R_SETUP R_SIZES R_FRAMES R_EXPECT R_TRAFFIC
# R_SETUP_A R_SETUP_B R_SWITCH from the table.
row() {
  local line f
  for line in "${MATRIX[@]}"; do
    IFS='|' read -r -a f <<<"$line"
    [[ $(trim "${f[0]}") == "$1" ]] || continue
    R_NAME=$1
    R_DEVARGS=$(trim "${f[1]}")
    R_EAL=$(trim "${f[2]}")
    R_APP=$(trim "${f[3]}")
    R_SETUP=$(trim "${f[4]}")
    R_SIZES=${SIZESET[$(trim "${f[5]}")]:-$(trim "${f[5]}")}
    R_FRAMES=$(($(trim "${f[6]}") * ${FRAMES_SCALE:-100} / 100))
    R_EXPECT=$(trim "${f[7]:-}")
    R_TRAFFIC=$(trim "${f[8]:-}")
    R_TRAFFIC=${R_TRAFFIC:-none}
    R_SETUP_A=$(trim "${f[9]:-}")
    R_SETUP_B=$(trim "${f[10]:-}")
    R_SWITCH=$(trim "${f[11]:-}")
    return 0
  done
  return 1
}
all_names() { local line; for line in "${MATRIX[@]}"; do trim "${line%%|*}"; echo; done; }

# devarg KEY DEFAULT: the value of KEY in R_DEVARGS, else DEFAULT (22.11's defaults).
devarg() {
  local kv
  IFS=',' read -r -a kv <<<"$R_DEVARGS"
  for kv in "${kv[@]}"; do [[ ${kv%%=*} == "$1" ]] && { echo "${kv#*=}"; return; }; done
  echo "$2"
}

# port_opts PORT: the row's switch options for PORT (vm1, vm2) as port-flag options: "|mtu=9000".
port_opts() {
  local w out=
  for w in $R_SWITCH; do
    if [[ $w != *:* ]]; then out+="|$w"; elif [[ ${w%%:*} == "$1" ]]; then out+="|${w#*:}"; fi
  done
  printf '%s' "$out"
}
# port_mtu PORT: "MTU SOURCE" the switch must report for PORT: its mtu= (config), else 1500 (default).
port_mtu() {
  if [[ $(port_opts "$1") =~ \|mtu=([0-9]+) ]]; then echo "${BASH_REMATCH[1]} config"; else echo "1500 default"; fi
}

# ================================================================ one variant
# The parent runs each variant as a child process of this script (VUSW_MATRIX_ONE=name),
# so a variant that fails (lib.sh's fail exits) is cleaned up by lib.sh's exit trap and
# the next one still runs.
run_one() {
  row "$VUSW_MATRIX_ONE" || { echo "unknown variant $VUSW_MATRIX_ONE" >&2; exit 2; }
  sys_init "matrix_${R_NAME//[^a-zA-Z0-9]/_}"
  note() { printf '%s\n' "$*" >>"${VUSW_MATRIX_RESULT:-/dev/null}"; }
  # lib.sh's fail, also telling the parent why.
  fail() { note "$*"; printf '[%s] FAIL: %s\n' "$SYS_NAME" "$*" >&2; exit 1; }
  sys_require_hugepages 800
  [[ $BACKEND != vuswitchd ]] || sys_require_daemon
  local errors=0 q queues round rounds max_len per_frame r d t i cmds=() round_sent=() round_want=()
  bad() { log "MISMATCH: $*"; note "$*"; errors=$((errors + 1)); }
  check() { # DESCRIPTION LEFT RIGHT
    if [[ $2 == "$3" ]]; then log "ok: $1 ($2)"; else bad "$1: $2 != $3"; fi
  }

  queues=$(devarg queues 1)
  # Round size: ROUND_DESCS descriptors. A frame takes one TX descriptor if it fits one
  # mbuf (the PMD pushes the virtio-net header into the headroom), else one per segment
  # plus one for the header; and one RX buffer, or with MRG_RXBUF one per mbuf-sized
  # piece. So neither A's TX ring nor B's RX ring can fill up even if the other side
  # does not run at all during the round. Offload rows' sizes are payload lengths
  # (headers up to 90 B), and with tso=MSS each frame reaches B as up to
  # payload/MSS segments of at most MSS + 90 B.
  local seg=2048 tx_descs rx_bufs hdr_max=0 segs=1 out_len mss
  [[ $R_APP =~ --mbuf-size=([0-9]+) ]] && seg=$((BASH_REMATCH[1] - 128))
  [[ $R_TRAFFIC == none ]] || hdr_max=90
  max_len=0
  for d in $R_SIZES; do ((d > max_len)) && max_len=$d; done
  out_len=$((max_len + hdr_max))
  if [[ $R_TRAFFIC == tso=* || $R_TRAFFIC == tso-pass=* ]]; then
    mss=${R_TRAFFIC#*=}
    segs=$(((max_len + mss - 1) / mss))
    out_len=$((mss + hdr_max))
  fi
  max_len=$((max_len + hdr_max))
  tx_descs=$((max_len <= seg ? 1 : (max_len + seg - 1) / seg + 1))
  rx_bufs=$((segs * ($(devarg mrg_rxbuf 1) ? (out_len + 12 + seg - 1) / seg : 1)))
  per_frame=$((tx_descs > rx_bufs ? tx_descs : rx_bufs))
  round=$((ROUND_DESCS / per_frame))
  ((round > 0)) || fail "a frame needs more than $ROUND_DESCS descriptors ($per_frame)"
  d=$SYS_TMP/frames
  local gen_out sent_bytes want_frames want_bytes max_frame=() drop_frames=0 drop_bytes=0 vm2_mtu
  vm2_mtu=$(port_mtu vm2)
  # Frames longer than vm2's MTU + 14 never reach B (offload rows send none that long).
  [[ $R_TRAFFIC != none ]] || max_frame=(--max-frame "$((${vm2_mtu% *} + 14))")
  gen_out=$("$PYTHON" "$COMPARE" gen --dir "$d" --frames "$R_FRAMES" --round "$round" \
    --queues "$queues" --flows "$FLOWS" --sizes "$R_SIZES" --src-mac "$MAC_A" --dst-mac "$MAC_B" \
    --offload "$R_TRAFFIC" "${max_frame[@]}") || fail "pcap_compare.py gen failed"
  read -r rounds _ sent_bytes want_frames want_bytes <<<"$gen_out"
  if [[ $R_TRAFFIC == none ]]; then
    drop_frames=$((R_FRAMES - want_frames)) drop_bytes=$((sent_bytes - want_bytes))
  fi
  if ((drop_frames > 0)) && [[ $BACKEND != vuswitchd ]]; then
    skip "$BACKEND has no MTU per port: it would deliver the $drop_frames frames vuswitchd must drop"
  fi
  # Per round: frames A has sent and frames B must have received by its end.
  while read -r r t; do round_sent+=("$r") round_want+=("$t"); done <"$d/rounds.txt"
  log "devargs '$R_DEVARGS', testpmd EAL '$R_EAL' app '$R_APP'; traffic $R_TRAFFIC: $R_FRAMES frames of $R_SIZES B$([[ $R_TRAFFIC == none ]] || echo ' payload') in $rounds rounds of $round, $queues queue(s); switch ports vm1 '$(port_opts vm1)' vm2 '$(port_opts vm2)'; B must receive $want_frames frames ($want_bytes B), the switch drop $drop_frames as mtu_exceeded"

  local a_pcap="net_pcap0" b_pcap="net_pcap0"
  for ((q = 0; q < queues; q++)); do
    ln -sfn "$d/empty.pcap" "$d/in_q$q.pcap"
    a_pcap+=",rx_pcap=$d/in_q$q.pcap"
    b_pcap+=",rx_pcap=$d/empty.pcap,tx_pcap=$SYS_TMP/out_q$q.pcap"
  done

  if [[ $BACKEND == vuswitchd ]]; then
    # A name with pmds=2: two PMD cores (sharing CPU 1), the queue pairs placed over both.
    local lcores=0,1
    [[ $R_NAME != *pmds=2* ]] || lcores=0@0,1@1,2@1
    vusw_start sw --lcores "$lcores" --log-level info \
      --vhost-user "$SYS_TMP/vm1.sock$(port_opts vm1)" --vhost-user "$SYS_TMP/vm2.sock$(port_opts vm2)"
  else
    # The reference back-end: DPDK's vhost library (net_vhost) in a testpmd forwarding
    # between the two sockets (queue q to queue q), on the switch's core.
    tp_start S --lcores 0@1,1@1 --main-lcore 0 --no-pci --single-file-segments \
      --iova-mode=va --file-prefix "$(sys_prefix S)" -m 512 \
      --vdev "net_vhost0,iface=$SYS_TMP/vm1.sock,queues=$queues" \
      --vdev "net_vhost1,iface=$SYS_TMP/vm2.sock,queues=$queues" \
      -- --forward-mode=io --no-flush-rx --disable-link-check --rxq="$queues" --txq="$queues" \
      --total-num-mbufs=16384
    tp_wait_ready S
    tp_cmd S "start"
  fi

  # Ports start only after the row's set-up commands (--disable-device-start), e.g.
  # RX scatter on the virtio-user port alone (net_pcap has no scatter offload, so
  # testpmd's --enable-scatter, which applies to every port, cannot be used).
  start_frontend() { # NAME SOCK MAC PCAP-DEVARGS
    # shellcheck disable=SC2086 # R_EAL and R_APP are word lists
    tp_start "$1" --lcores 0@0,1@0 --main-lcore 0 --no-pci --single-file-segments \
      --iova-mode=va --file-prefix "$(sys_prefix "$1")" -m 256 \
      --log-level=pmd.net.virtio.init:debug --log-level=pmd.net.virtio.driver:info $R_EAL \
      --vdev "net_virtio_user0,path=$2,mac=$3${R_DEVARGS:+,$R_DEVARGS}" --vdev "$4" \
      -- --forward-mode=io --no-flush-rx --disable-device-start \
      --rxq="$queues" --txq="$queues" --total-num-mbufs=8192 $R_APP
  }
  # frontend_up NAME MAC: wait for the prompt, run the set-up, start the ports; fail
  # with testpmd's own words if it exits or a port does not start.
  frontend_up() {
    local name=$1 cmd why
    for ((i = 0; i < 600; i++)); do
      grep -q 'testpmd> ' "${TP_LOG[$name]}" && break
      if ! tp_alive "$name"; then
        why=$(grep -E '^(Fail|  Cause|EAL: Error)|failed|Invalid' "${TP_LOG[$name]}" | head -n 3 | paste -sd ' ' -)
        fail "testpmd $name exited during start-up: ${why:-see its log}"
      fi
      sleep 0.1
    done
    ((i < 600)) || fail "testpmd $name: no prompt after 60 s"
    IFS=';' read -r -a cmds <<<"$R_SETUP"
    [[ $name != A || -z $R_SETUP_A ]] || IFS=';' read -r -a cmds <<<"${R_SETUP:+$R_SETUP;}$R_SETUP_A"
    [[ $name != B || -z $R_SETUP_B ]] || IFS=';' read -r -a cmds <<<"${R_SETUP:+$R_SETUP;}$R_SETUP_B"
    for cmd in "${cmds[@]}"; do tp_cmd "$name" "$(trim "$cmd")"; done
    tp_cmd "$name" "port start all"
    tp_cmd "$name" "show port info 0"
    tp_read_stats "$name" 2 # a barrier: testpmd runs its commands in order
    if grep -qE 'Start ports failed|Fail to (configure|start)' "${TP_LOG[$name]}"; then
      why=$(grep -E 'failed|Fail|[Ee]rror' "${TP_LOG[$name]}" | grep -v 'ignore' | head -n 3 | paste -sd ' ' -)
      fail "testpmd $name: a port did not start: $why"
    fi
    grep -q "Port 0: ${2^^}" "${TP_LOG[$name]}" || fail "testpmd $name: port 0 is not the virtio-user port"
  }
  start_frontend A "$SYS_TMP/vm1.sock" "$MAC_A" "$a_pcap"
  start_frontend B "$SYS_TMP/vm2.sock" "$MAC_B" "$b_pcap"
  frontend_up A "$MAC_A"
  frontend_up B "$MAC_B"
  if [[ $R_TRAFFIC != none ]]; then
    # A's csum engine took the offloads (testpmd prints its csum configuration after
    # each "csum set", and refuses an offload the port does not have).
    local why
    why=$(grep -E 'not supported by port|Please stop port|Error: TSO|Bad arguments|Unknown parameter' "${TP_LOG[A]}" | head -n 3 | paste -sd ' ' -) || true
    [[ -z $why ]] || bad "testpmd A refused an offload setting: $why"
    for t in UDP TCP; do
      check "testpmd A: $t checksum offload" "$(grep -oE "^$t checksum offload is (hw|sw)" "${TP_LOG[A]}" | tail -n1)" "$t checksum offload is hw"
    done
    if [[ $R_TRAFFIC == tso=* || $R_TRAFFIC == tso-pass=* ]]; then
      check "testpmd A: TSO segment size" "$(grep -oE 'TSO segment size for non-tunneled packets is [0-9]+' "${TP_LOG[A]}" | tail -n1)" \
        "TSO segment size for non-tunneled packets is ${R_TRAFFIC#*=}"
    fi
  fi
  local mtu
  for t in A B; do
    mtu=$(grep -oE '^MTU: [0-9]+' "${TP_LOG[$t]}" | tail -n1) || true
    log "testpmd $t: virtio-user port ${mtu:-MTU unknown}"
    if [[ $R_NAME =~ (^|,)mtu=([0-9]+) ]]; then check "testpmd $t virtio-user MTU" "${mtu#MTU: }" "${BASH_REMATCH[2]}"; fi
  done

  # sw_ports: the switch's view of vm1 and vm2, one python run: "state1 rx1 tx1 rxb1
  # txb1 drops1 perr1 broken1 features1 mtu_exceeded1 mtu1 mtu_source1 state2 rx2 ..."
  # (features, MTU and source "-" if not reported).
  sw_ports() {
    local json
    if [[ $BACKEND != vuswitchd ]]; then
      tp_read_stats S 2
      echo "ready ${TP_RX[0]} ${TP_TX[0]} ${TP_RXB[0]} ${TP_TXB[0]} 0 0 0 - 0 - -" \
        "ready ${TP_RX[1]} ${TP_TX[1]} ${TP_RXB[1]} ${TP_TXB[1]} 0 0 0 - 0 - -"
      return
    fi
    json=$(vusw_ctl --json show ports) || return 1
    printf '%s\n' "$json" >"$SYS_TMP/show_ports.json"
    "$PYTHON" -c '
import json, sys
ports = {p["name"]: p for p in json.load(sys.stdin)["ports"]}
out = []
for n in ("vm1", "vm2"):
    p = ports[n]
    out += [p["state"], p["rx_packets"], p["tx_packets"], p["rx_bytes"], p["tx_bytes"],
            sum(p["drops"].values()), sum(p.get("protocol_errors", {}).values()),
            p.get("broken_queues", 0), p.get("features_bits", "-"), p["drops"].get("mtu_exceeded", 0),
            p.get("mtu", "-"), p.get("mtu_source", "-")]
print(*out)' <<<"$json"
  }
  both_ready() { local s; s=$(sw_ports) && [[ $s == "ready "*" ready "* ]]; }
  WAIT_FOR_POLL_S=0.2 wait_for 10 "switch ports vm1 and vm2 ready" both_ready

  # ---- negotiated features and the PMD's burst functions
  local feat
  declare -A tfeat
  for t in A B; do
    tfeat[$t]=$(grep -o 'features after negotiate = [0-9a-fA-F]*' "${TP_LOG[$t]}" | tail -n1) || true
    tfeat[$t]=${tfeat[$t]##* }
    [[ -n ${tfeat[$t]} ]] || fail "testpmd $t logged no negotiated features (pmd.net.virtio.init:debug)"
    log "testpmd $t: features 0x${tfeat[$t]}; $(grep -o 'virtio: using [^.]* path' "${TP_LOG[$t]}" | sort -u | paste -sd ';' -)"
  done
  # Offload bits: CSUM 0, GUEST_CSUM 1, GUEST_TSO4/6 7/8, GUEST_ECN 9, HOST_TSO4/6 11/12,
  # HOST_ECN 13. A asks for what its row's traffic needs (csum: CSUM; tso: CSUM,
  # HOST_TSO4/6), B for none, or with tso-pass for GUEST_CSUM and GUEST_TSO4/6 (DPDK's
  # virtio PMD knows no ECN: neither side may have an ECN bit).
  local offl=$(((1 << 0) | (1 << 1) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 11) | (1 << 12) | (1 << 13)))
  local want_a=0 want_b=0 feat_a feat_b
  case $R_TRAFFIC in
    csum) want_a=$((1 << 0)) ;;
    tso=*) want_a=$(((1 << 0) | (1 << 11) | (1 << 12))) ;;
    tso-pass=*) want_a=$(((1 << 0) | (1 << 11) | (1 << 12))) want_b=$(((1 << 1) | (1 << 7) | (1 << 8))) ;;
  esac
  feat_a=$((16#${tfeat[A]})) feat_b=$((16#${tfeat[B]}))
  check "A and B negotiated the same features (offloads aside)" \
    "$(printf '%#x' $((feat_a & ~offl)))" "$(printf '%#x' $((feat_b & ~offl)))"
  check "A's offload features (CSUM, HOST_TSO4/6 as the row asks; no GUEST_CSUM/TSO)" \
    "$(printf '%#x' $((feat_a & offl)))" "$(printf '%#x' "$want_a")"
  check "B's offload features (GUEST_CSUM, GUEST_TSO4/6 with tso-pass; else none)" \
    "$(printf '%#x' $((feat_b & offl)))" "$(printf '%#x' "$want_b")"
  feat=$feat_a
  has() { # BIT NAME WANT(0/1)
    local got=$(((feat >> $1) & 1))
    if ((got == $3 && got)); then log "ok: $2 negotiated"
    elif ((got == $3)); then log "ok: $2 not negotiated"
    elif (($3)); then bad "$2 not negotiated (features 0x${tfeat[A]}, devargs '$R_DEVARGS')"
    else bad "$2 negotiated though not requested (features 0x${tfeat[A]}, devargs '$R_DEVARGS')"
    fi
  }
  # Only what the row asks for explicitly: a default (in_order=1, mrg_rxbuf=1) is an
  # offer the back-end may decline, e.g. IN_ORDER with packed rings. packed_vq=0 is the
  # default, but a back-end cannot force a ring layout on a driver that did not ask.
  has 34 VIRTIO_F_RING_PACKED "$(devarg packed_vq 0)"
  [[ -z $(devarg in_order '') ]] || has 35 VIRTIO_F_IN_ORDER "$(devarg in_order '')"
  [[ -z $(devarg mrg_rxbuf '') ]] || has 15 VIRTIO_NET_F_MRG_RXBUF "$(devarg mrg_rxbuf '')"
  has 32 VIRTIO_F_VERSION_1 1
  ((queues > 1)) && has 22 VIRTIO_NET_F_MQ 1
  # DPDK's packed-ring vector path is AVX-512 only (virtio_rxtx_packed_avx.c); on a CPU
  # without it the PMD rightly takes the scalar path, and the row still runs its traffic.
  if [[ $R_EXPECT == *"packed ring vectorized"* ]] && ! grep -qw avx512f /proc/cpuinfo; then
    log "note: this CPU has no AVX-512; the packed vectorized path cannot be chosen (traffic still checked)"
  elif [[ -n $R_EXPECT ]]; then
    for t in A B; do
      if grep -qE "$R_EXPECT" "${TP_LOG[$t]}"; then log "ok: testpmd $t log has '$R_EXPECT'"
      else bad "testpmd $t log lacks '$R_EXPECT' (the PMD chose another path)"; fi
    done
  fi

  # ---- traffic, in rounds
  local sent=0 want=0 end a_tx_now
  tp_cmd B "start"
  for ((r = 0; r < rounds; r++)); do
    for ((q = 0; q < queues; q++)); do ln -sfn "$d/r${r}_q$q.pcap" "$d/in_q$q.pcap"; done
    tp_cmd A "stop"
    tp_cmd A "port stop 1"
    tp_cmd A "port start 1"
    tp_cmd A "start"
    sent=${round_sent[r]} want=${round_want[r]}
    end=$((SECONDS + SETTLE_TIMEOUT))
    while :; do
      tp_read_stats A 2
      a_tx_now=${TP_TX[0]}
      tp_read_stats B 2
      [[ $a_tx_now == "$sent" && ${TP_RX[0]} == "$want" ]] && break
      if ((SECONDS >= end)); then
        bad "round $r: after ${SETTLE_TIMEOUT}s A sent $a_tx_now of $sent frames and B received ${TP_RX[0]} of $want"
        break 2
      fi
      tp_nap 0.02
    done
  done
  tp_cmd A "stop"
  tp_nap 0.3
  tp_cmd B "stop"
  if ((drop_frames > 0)); then # the last drops may still be on their way when B has all it gets
    all_dropped() { local s; s=($(sw_ports)) && ((s[21] >= drop_frames)); }
    WAIT_FOR_POLL_S=0.2 wait_for 10 "$drop_frames mtu_exceeded drops on switch port vm2" all_dropped
  fi

  # ---- counts
  local a_rx a_tx a_txb b_rx b_tx b_rxb bp_tx bp_txb sw
  tp_read_stats A 2
  a_rx=${TP_RX[0]} a_tx=${TP_TX[0]} a_txb=${TP_TXB[0]}
  tp_read_stats B 2
  b_rx=${TP_RX[0]} b_tx=${TP_TX[0]} b_rxb=${TP_RXB[0]} bp_tx=${TP_TX[1]} bp_txb=${TP_TXB[1]}
  sw=$(sw_ports) || fail "vuswitchctl --json show ports failed or unparsable: $(cat "$SYS_TMP/show_ports.json")"
  local s1_rx s1_tx s1_rxb s1_dr s1_pe s1_bq s1_f s1_mtu s1_src s2_rx s2_tx s2_txb s2_dr s2_pe s2_bq s2_f s2_me s2_mtu s2_src
  read -r _ s1_rx s1_tx s1_rxb _ s1_dr s1_pe s1_bq s1_f _ s1_mtu s1_src \
    _ s2_rx s2_tx _ s2_txb s2_dr s2_pe s2_bq s2_f s2_me s2_mtu s2_src <<<"$sw"
  log "A: virtio tx $a_tx ($a_txb B) rx $a_rx | switch vm1 rx $s1_rx ($s1_rxb B) vm2 tx $s2_tx ($s2_txb B) | B: virtio rx $b_rx ($b_rxb B) tx $b_tx, pcap tx $bp_tx ($bp_txb B)"
  # Without offloads B gets what A sent; with them what pcap_compare.py expects
  # (want_frames/want_bytes: segments; the same frames for checksums).
  check "A sent every frame" "$a_tx" "$R_FRAMES"
  check "A tx == switch vm1 rx" "$a_tx" "$s1_rx"
  [[ $R_TRAFFIC != none ]] || check "switch vm1 rx == switch vm2 tx + vm2 mtu_exceeded" "$s1_rx" "$((s2_tx + s2_me))"
  check "switch vm2 tx == frames expected at B" "$s2_tx" "$want_frames"
  check "switch vm2 tx == B rx" "$s2_tx" "$b_rx"
  check "B rx == B pcap tx" "$b_rx" "$bp_tx"
  check "bytes: generated == A tx" "$sent_bytes" "$a_txb"
  check "bytes: A tx == switch vm1 rx" "$a_txb" "$s1_rxb"
  [[ $R_TRAFFIC != none ]] || check "bytes: switch vm1 rx == switch vm2 tx + dropped" "$s1_rxb" "$((s2_txb + drop_bytes))"
  check "bytes: switch vm2 tx == expected at B" "$s2_txb" "$want_bytes"
  check "bytes: switch vm2 tx == B rx" "$s2_txb" "$b_rxb"
  check "bytes: B rx == B pcap tx" "$b_rxb" "$bp_txb"
  check "nothing towards A (A rx, switch vm1 tx, vm2 rx, B tx)" "$a_rx $s1_tx $s2_rx $b_tx" "0 0 0 0"
  check "switch vm2 mtu_exceeded drops (frames longer than MTU ${vm2_mtu% *} + 14)" "$s2_me" "$drop_frames"
  check "switch drops, mtu_exceeded aside" "$((s1_dr + s2_dr - s2_me))" 0
  if [[ $BACKEND == vuswitchd ]]; then
    check "switch vm1 and vm2 MTU and its source" "$s1_mtu $s1_src $s2_mtu $s2_src" "$(port_mtu vm1) $vm2_mtu"
  fi
  check "switch protocol errors" "$((s1_pe + s2_pe))" 0
  check "switch broken queues" "$((s1_bq + s2_bq))" 0
  if [[ $R_NAME == *pmds=2* ]]; then
    # Each guest's queue pairs are polled by both PMD cores (pairs are placed one by one).
    local cores
    cores=$("$PYTHON" -c '
import json, sys
ports = {p["name"]: p for p in json.load(sys.stdin)["ports"]}
print(" ".join(",".join(sorted({str(q["pmd"]) for q in ports[n]["queues"]})) for n in ("vm1", "vm2")))' \
      <"$SYS_TMP/show_ports.json")
    check "PMD cores polling vm1's and vm2's queue pairs" "$cores" "0,1 0,1"
  fi
  if [[ $s1_f == - || $s2_f == - ]]; then
    log "note: vuswitchctl reports no negotiated features; only the front-end's view was checked"
  else
    # The switch sees what the front-end sent in SET_FEATURES: testpmd's negotiated set
    # less what virtio-user keeps to itself (CTRL_VQ, ...), plus PROTOCOL_FEATURES. The ring and buffer features
    # must agree exactly; nothing may be on at the switch that testpmd did not negotiate.
    local key=$(((1 << 15) | (1 << 22) | (1 << 28) | (1 << 29) | (1 << 34) | (1 << 35)))
    local vhost_only=$((1 << 30))  # PROTOCOL_FEATURES: vhost-user's own bit, not in testpmd's set
    check "switch vm1/vm2 features within testpmd A's/B's" \
      "$((s1_f & ~feat_a & ~vhost_only)) $((s2_f & ~feat_b & ~vhost_only))" "0 0"
    check "switch vm1/vm2 MRG_RXBUF/MQ/INDIRECT/EVENT_IDX/PACKED/IN_ORDER == testpmd's" \
      "$(((s1_f ^ feat_a) & key)) $(((s2_f ^ feat_b) & key))" "0 0"
    check "switch vm1/vm2 offload features == testpmd A's/B's" \
      "$(((s1_f ^ feat_a) & offl)) $(((s2_f ^ feat_b) & offl))" "0 0"
  fi
  if [[ $BACKEND == vuswitchd ]]; then
    # By name too, as vuswitchctl shows them: A's (vm1) offloads on, B's (vm2) off, and
    # no frame dropped for a virtio-net header that did not fit (bad_offload).
    local names1 names2 bad_offload
    read -r names1 names2 bad_offload < <("$PYTHON" -c '
import json, sys
ports = {p["name"]: p for p in json.load(sys.stdin)["ports"]}
print(",".join(ports["vm1"]["features"]) or "-", ",".join(ports["vm2"]["features"]) or "-",
      sum(p["drops"].get("bad_offload", 0) for p in ports.values()))' <"$SYS_TMP/show_ports.json")
    log "switch vm1 features: $names1"
    log "switch vm2 features: $names2"
    local n want_names=() want_b_names=()
    case $R_TRAFFIC in
      csum) want_names=(CSUM) ;;
      tso=*) want_names=(CSUM HOST_TSO4 HOST_TSO6) ;;
      tso-pass=*) want_names=(CSUM HOST_TSO4 HOST_TSO6) want_b_names=(GUEST_CSUM GUEST_TSO4 GUEST_TSO6) ;;
    esac
    for n in "${want_names[@]}"; do
      if [[ ,$names1, == *",$n,"* ]]; then log "ok: switch vm1 (A) negotiated $n"
      else bad "switch vm1 (A) did not negotiate $n: $names1"; fi
    done
    for n in GUEST_CSUM GUEST_TSO4 GUEST_TSO6 GUEST_ECN; do
      if [[ " ${want_b_names[*]} " == *" $n "* ]]; then
        if [[ ,$names2, == *",$n,"* ]]; then log "ok: switch vm2 (B) negotiated $n"
        else bad "switch vm2 (B) did not negotiate $n: $names2"; fi
      elif [[ ,$names2, != *",$n,"* ]]; then log "ok: switch vm2 (B) did not negotiate $n"
      else bad "switch vm2 (B) negotiated $n: $names2"; fi
    done
    check "switch bad_offload drops" "$bad_offload" 0
  fi
  if ((queues > 1)); then
    tp_cmd B "show port xstats 0"
    tp_nap 0.3
    log "B per-queue RX: $(grep -oE 'rx_q[0-9]+_good_packets: [0-9]+' "${TP_LOG[B]}" | tail -n "$queues" | paste -sd ' ' -)"
  fi

  # ---- payload: quit testpmd (closes B's pcap files), then compare
  tp_quit A
  tp_quit B
  local outs=()
  for ((q = 0; q < queues; q++)); do outs+=("$SYS_TMP/out_q$q.pcap"); done
  if "$PYTHON" "$COMPARE" compare --sent "$d/expected.pcap" --min-queues "$((want_frames == 0 ? 0 : queues > 1 ? 2 : 1))" "${outs[@]}" \
    >"$SYS_TMP/compare.out" 2>&1; then
    sed "s/^/[$SYS_NAME]   /" "$SYS_TMP/compare.out"
    if [[ $R_TRAFFIC == tso-pass=* ]]; then
      # Byte-identical to the model already says so; this says it in numbers: B got
      # frames larger than one segment, i.e. not cut on the way.
      local largest
      largest=$(sed -nE 's/^largest frame received: ([0-9]+) B.*/\1/p' "$SYS_TMP/compare.out")
      if ((${largest:-0} > mss + hdr_max)); then log "ok: B received unsegmented TSO frames (largest $largest B, MSS $mss)"
      else bad "B's largest frame is ${largest:-?} B: no TSO frame reached it whole (MSS $mss)"; fi
    fi
  else
    sed "s/^/[$SYS_NAME]   /" "$SYS_TMP/compare.out"
    bad "payload: $(grep -m1 '^ERROR' "$SYS_TMP/compare.out" || tail -n1 "$SYS_TMP/compare.out")"
  fi

  local rc=0
  if [[ $BACKEND == vuswitchd ]]; then vusw_stop || rc=$?; else tp_quit S; fi
  check "vuswitchd exit code on SIGTERM" "$rc" 0
  ((errors == 0)) || fail "$errors check(s) failed"
  log "PASS"
}

if [[ -n ${VUSW_MATRIX_ONE:-} ]]; then
  run_one
  exit 0
fi

# ================================================================ all variants
sys_init virtio_matrix
child=
# A variant still running when we are stopped gets time for its own clean-up (its
# testpmds and vuswitchd) before lib.sh's clean-up of ours.
matrix_cleanup() {
  local rc=$?
  set +e # (exit) below must not end the trap under set -e
  [[ -n $child ]] && stop_pid "$child" 40
  (exit "$rc")
  sys_cleanup
}
trap matrix_cleanup EXIT
sys_require_hugepages 800
[[ $BACKEND != vuswitchd ]] || sys_require_daemon
[[ $BACKEND == vuswitchd || $BACKEND == testpmd-vhost ]] || fail "BACKEND=$BACKEND: vuswitchd or testpmd-vhost"
ls /usr/lib/*/dpdk/pmds-*/librte_net_pcap.so* >/dev/null 2>&1 \
  || skip "DPDK's net_pcap PMD is not installed (Debian package librte-net-pcap23; deploy/setup.sh)"
if [[ -n ${VARIANTS:-} ]]; then
  read -r -a names <<<"$VARIANTS"
else
  mapfile -t names < <(all_names)
fi
for n in "${names[@]}"; do row "$n" || fail "unknown variant '$n' (rows: $(all_names | paste -sd ' ' -))"; done

res_name=() res_rc=() res_secs=() res_note=()
for n in "${names[@]}"; do
  printf '\n[%s] ======== variant %s\n' "$SYS_NAME" "$n"
  start=$SECONDS
  result=$SYS_TMP/result.$((${#res_name[@]}))
  : >"$result"
  VUSW_MATRIX_ONE=$n VUSW_MATRIX_RESULT=$result "$0" &
  child=$!
  rc=0
  wait "$child" || rc=$?
  child=
  res_name+=("$n") res_rc+=("$rc") res_secs+=($((SECONDS - start)))
  res_note+=("$(head -n1 "$result")")
done

printf '\n[%s] summary\n' "$SYS_NAME"
failed=0
for i in "${!res_name[@]}"; do
  case ${res_rc[$i]} in 0) v=PASS ;; 77) v=SKIP ;; *) v=FAIL; failed=$((failed + 1)) ;; esac
  printf '  %-26s %-4s %4ss  %s\n' "${res_name[$i]}" "$v" "${res_secs[$i]}" "${res_note[$i]}"
done
((failed == 0)) || fail "$failed of ${#res_name[@]} variant(s) failed"
log "PASS: ${#res_name[@]} variant(s)"
