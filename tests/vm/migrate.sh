#!/usr/bin/env bash
# VM test: live migration of a guest attached to vuswitchd (issue 10), real QEMU 7.2 (TCG).
#
#   tests/vm/migrate.sh
#   MIGRATE_ROUNDS=1 MIGRATE_POSTCOPY=0 MIGRATE_CONTROL=0 tests/vm/migrate.sh   (quicker)
#
# One vuswitchd with three server sockets: vm1a, vm1b, vm2. Guest 1 boots on vm1a, guest
# 2 on vm2. A migration round starts a destination QEMU for guest 1 on the free port
# (vm1b, then vm1a, ...: same machine, same memfd RAM backend, same kernel command line,
# -incoming defer) and migrates guest 1 over QMP (vmctl.py migrate: migrate-incoming
# unix:..., migrate, query-migrate until completed) while guest 2 sends it, at the rate
# TCG allows, a TCP stream (vusw-stream: a 4 MiB pseudo-random block sent over and over
# by nc, every 4 MiB md5-checked by guest 1 as it arrives), numbered UDP datagrams
# (iperf3 -u, MIGRATE_UDP_RATE) and pings every 10 ms (vusw-flood). Then:
#   - guest 1 runs on the destination (QMP status running, its agent answers there) and
#     answers guest 2's pings;
#   - the switch moved guest 1's MAC to the destination port by itself (SEND_RARP from
#     the destination QEMU; nobody touches the FDB) and guest 2's stream goes on to it;
#   - the stream is complete and intact: guest 1 received as many 4 MiB blocks as guest 2
#     sent, each whole and with the block's md5; no datagram arrived out of order (an old
#     one delivered again = a stale receive buffer: TCP would drop such a segment as a
#     duplicate and resend it); guest 1's kernel logged no virtio error;
#   - while the migration ran the switch logged dirty pages for the source port
#     (`show ports` dirty_log: enabled, pages > 0, missed 0).
# Measured and printed: QEMU's downtime (query-migrate), the pings lost across the
# switch-over (echo requests guest 2's kernel sent minus replies it got: counted below
# the ping socket, which overflows when a TCG guest stalls), the stream's rate.
#
# Rounds: MIGRATE_ROUNDS (3) precopy migrations back and forth (vm1a -> vm1b -> vm1a ->
# vm1b), then one postcopy round (postcopy-ram on both QEMUs, migrate-start-postcopy as
# soon as the migration is active). The postcopy round is skipped, with the reason
# printed, when the destination port did not negotiate the PAGEFAULT protocol feature
# (QEMU refuses postcopy with such a back-end) or QEMU refuses postcopy-ram.
# Memory check and control run (MIGRATE_CONTROL=1): the stream alone cannot show a
# switch that does not log: under a saturating stream the guest itself rewrites (page
# allocation, skb set-up) nearly every page the switch filled before QEMU's last copy,
# and TCP drops whatever stale segment is left (measured: a control run's stream and
# datagrams came through intact). So two more rounds migrate under the pings only (small
# frames the guest copies out without writing the buffer) to a destination started with
# -S, and compare guest 1's memory on the paused destination with the source's final
# memory page by page (QMP pmemsave) before letting it run:
#   memcheck  the switch as it is: no page may differ;
#   control   vuswitchd restarted with --debug-no-dirty-log (logging negotiated, the
#             bitmap never written), the guests reconnect: pages must differ (measured:
#             ~10, the receive buffers the switch filled after QEMU copied them). If none
#             does, the test cannot tell a switch that logs from one that does not: FAIL.
# Downtime and lost pings of these two rounds include the pause for the comparison.
#
# Last lines: "NOTE: migrate: 3 of 3 precopy OK, downtime 194/141/121 ms, lost 25/19/18
# pings; postcopy ...; memory check: 0 pages differ; control ..." and PASS/FAIL.
# Environment: MIGRATE_ROUNDS (3), MIGRATE_POSTCOPY (1), MIGRATE_CONTROL (1),
# MIGRATE_UDP_RATE (20M), BOOT_TIMEOUT (150), MIGRATE_TIMEOUT (120 s per migration),
# FLOOD_INTERVAL (0.01), MIGRATE_LOSS_LIMIT_MS (1000: more pings lost than this many ms of
# them fails the round; not in the memcheck and control rounds), plus lib.sh's (VUSW_BUILD, VM_KEEP_LOGS, ...). A run takes
# ~3 minutes on 2 cores.
# Exit: 0 pass, 1 fail, 77 skip (not root / no QEMU).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ROUNDS=${MIGRATE_ROUNDS:-3}
POSTCOPY=${MIGRATE_POSTCOPY:-1}
CONTROL=${MIGRATE_CONTROL:-1}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-150}
MIGRATE_TIMEOUT=${MIGRATE_TIMEOUT:-120}
FLOOD_INTERVAL=${FLOOD_INTERVAL:-0.01}
LOSS_LIMIT_MS=${MIGRATE_LOSS_LIMIT_MS:-1000}  # pings lost x interval above it: guest 1 stalled
FLOOD_RUN=200                 # pings per back-to-back run: stopping waits for at most one
STREAM_END_WAIT=30            # seconds for the stream to end once the sender is told to stop
UDP_RATE=${MIGRATE_UDP_RATE:-20M}  # the numbered datagrams next to the stream (iperf3 -u)
UDP_TIME=20                   # seconds they run: from before the migration to after it
BLOCK=$((4 << 20))            # vusw-stream's block
MAC1=52:54:00:00:02:01
MAC2=52:54:00:00:02:02
IP1=10.10.2.1
IP2=10.10.2.2

vm_init migrate

FAILS=()
bad() { log "FAIL: $*"; FAILS+=("$*"); }

# json_get FILE KEY[.KEY...]: one value of a JSON file ("" if missing or not JSON).
json_get() {
  "$PY" -c '
import json, sys
try:
    v = json.load(open(sys.argv[1]))
except ValueError:
    v = {}
for k in sys.argv[2].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("" if v is None else v)' "$1" "$2"
}

# dirty_seen PORT BASE SNAP...: "enabled=0|1 pages=N size=N missed=N": whether any
# snapshot showed PORT's dirty log on, and the growth since BASE of the pages marked and
# of those it could not mark (outside the log; the port's counters add up over its
# sessions), and the largest log.
dirty_seen() {
  local port=$1
  shift
  "$PY" -c '
import json, sys
on, pages, size, missed = 0, 0, 0, 0
for f in sys.argv[2:]:
    for p in json.load(open(f))["ports"]:
        d = p.get("dirty_log") or {}
        if p["name"] == sys.argv[1]:
            on |= bool(d.get("enabled"))
            pages = max(pages, d.get("pages") or 0)
            size = max(size, d.get("size") or 0)
            missed = max(missed, d.get("missed") or 0)
    if f == sys.argv[2]:
        on, size, pages0, missed0 = 0, 0, pages, missed
print(f"enabled={int(on)} pages={pages - pages0} size={size} missed={missed - missed0}")' "$port" "$@"
}

port_is() { [[ -z $(snap_check "$(vusw_snap state)" "$1.state=$2") ]]; }
fdb_on() { [[ $(vusw_fdb_port "$MAC1") == "$1" ]]; }
# grown SNAP-BASE PORT.FIELD N: the field grew by N or more since SNAP-BASE.
grown() { [[ -z $(snap_check "$(vusw_snap now)" --since "$1" "$2>=$3") ]]; }

# until_true SECS CMD...: poll CMD every 0.2 s; true as soon as it succeeds, false after SECS.
until_true() {
  local end=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < end)) || return 1
    sleep 0.2
  done
}

# icmp_delta BEFORE AFTER FIELD: growth of one vusw-icmp counter (a missing one reads 0).
icmp_delta() {
  local a b
  a=$(marker_field " $1" "$3") b=$(marker_field " $2" "$3")
  echo $((${b:-0} - ${a:-0}))
}

# kernel_complaints GUEST: guest kernel log lines about virtio or worse.
kernel_complaints() {
  vm_exec "$1" -t 20 -- "dmesg | grep -iE 'virtio|virtqueue|oops|bug:|call trace|general protection|segfault' || true"
}

# ---------------------------------------------------------------- one migration round

CUR=g1-0 CUR_PORT=vm1a   # the QEMU guest 1 runs in, and its port
ROUND=0
DOWNTIMES=() LOSSES=()
# The round in progress (set by migrate_round and its steps): KIND, SRC/SRC_PORT (where
# guest 1 runs), DST/DST_PORT (the destination QEMU and its port), the stream's TCP port
# and block md5, the guest state before the switch-over (ICMP counters, kernel complaint
# count) and the results: R_MIGRATED (completed, running on DST), R_INTACT (every check
# of the stream and the guest passed), R_WHY (why not), R_INFO (what to print).
BULK=1 KIND='' SRC='' SRC_PORT='' DST='' DST_PORT='' STREAM_PORT=0 MD5='' T_STREAM=0
ICMP1='' ICMP2='' COMPLAINTS=0 MIG='' DOWNTIME='' LOST='' MEMDIFF=''
R_MIGRATED=0 R_INTACT=0 R_WHY=() R_INFO=''

# why TEXT: a reason the round is not intact (a failure, except in the control run).
why() { log "round $ROUND: $*"; R_WHY+=("$*"); }

# round_destination: a QEMU for guest 1 on the free port, waiting with -incoming defer.
# 77 (and the QEMU stopped again) for a postcopy round the switch cannot take.
round_destination() {
  local paused=
  [[ $KIND == memcheck || $KIND == control ]] && paused=-S
  VM_INCOMING=defer VM_GUEST_NAME=g1 VM_QEMU_ARGS=$paused vm_start "$DST" "$MAC1" "$IP1/24" "path=$VM_TMP/$DST_PORT.sock,reconnect=1"
  vm_wait_qmp "$DST"
  until_true 30 port_is "$DST_PORT" connected || fail "round $ROUND: destination QEMU $DST did not connect to $DST_PORT"
  local snap
  snap=$(vusw_snap "r$ROUND-dst")
  log "switch $DST_PORT (destination, before the migration): $("$PY" "$VMCTL" ports-vhost "$snap" "$DST_PORT")"
  [[ $KIND == postcopy ]] || return 0
  # QEMU enables postcopy-ram on a destination only if its vhost-user back-end
  # negotiated PAGEFAULT (vhost_user_postcopy_notifier, POSTCOPY_NOTIFY_PROBE).
  if ! "$PY" -c 'import json, sys
p = [p for p in json.load(open(sys.argv[1]))["ports"] if p["name"] == sys.argv[2]][0]
sys.exit("PAGEFAULT" not in (p.get("protocol_features") or []))' "$snap" "$DST_PORT"; then
    R_INFO="the switch did not negotiate protocol feature PAGEFAULT (bit 8) on $DST_PORT: QEMU refuses postcopy with such a back-end"
    log "round $ROUND: SKIP postcopy: $R_INFO"
    vm_stop "$DST"
    return 77
  fi
}

# round_traffic: guest 2 streams to guest 1 (flowing before it returns) and pings it
# every FLOOD_INTERVAL; the guests' counters before the switch-over.
round_traffic() {
  local out base
  COMPLAINTS=$(kernel_complaints "$SRC" | wc -l) || fail "guest 1's agent does not answer on $SRC"
  base=$(vusw_snap "r$ROUND-base")
  if ((!BULK)); then
    ICMP1=$(vm_exec "$SRC" -- vusw-icmp) || fail "guest 1's agent does not answer on $SRC"
    ICMP2=$(vm_exec g2 -- vusw-icmp) || fail "guest 2's agent does not answer"
    log "traffic: $(vm_exec g2 -- vusw-flood start "$IP1" "$FLOOD_INTERVAL" "$FLOOD_RUN")"
    sleep 3
    return 0
  fi
  out=$(vm_exec "$SRC" -- vusw-stream recv "$STREAM_PORT") || why "stream receiver did not start: $out"
  out=$(vm_exec g2 -- vusw-stream send "$IP1" "$STREAM_PORT") || why "stream sender did not start: $out"
  MD5=$(marker_field "$out" block_md5)
  T_STREAM=$SECONDS
  if ! until_true 60 grown "$base" "$SRC_PORT.tx_bytes" $((2 * BLOCK)); then
    why "the stream does not flow to guest 1 before the migration (8 MiB in 60 s)"
    vusw_summary | grep -E '^  vm' || true
  fi
  round_udp_start
  ICMP1=$(vm_exec "$SRC" -- vusw-icmp) || fail "guest 1's agent does not answer on $SRC"
  ICMP2=$(vm_exec g2 -- vusw-icmp) || fail "guest 2's agent does not answer"
  log "traffic: $(vm_exec g2 -- vusw-flood start "$IP1" "$FLOOD_INTERVAL" "$FLOOD_RUN")"
  sleep 1
}

# round_udp_start: numbered UDP datagrams guest 2 -> guest 1 for UDP_TIME s (iperf3 -u;
# the server in guest 1 logs what it got). TCP hides stale memory: a receive buffer that
# reaches the destination with an old segment in it is dropped as a duplicate and the
# data sent again. A datagram is delivered as it is: an old one arriving again after the
# switch-over is memory the switch wrote without marking it (iperf3 counts it
# out-of-order; one flow through an L2 switch is never reordered).
round_udp_start() {
  local port=$((5100 + ROUND)) out
  out=$(vm_exec "$SRC" -- "rm -f /tmp/udp.log; iperf3 -s -1 -p $port -D --logfile /tmp/udp.log && sleep 0.5 && netstat -ltn | grep -q ':$port '") \
    || why "iperf3 server did not start in guest 1: $out"
  vm_exec g2 -- "rm -f /tmp/udp.done; ( iperf3 -c $IP1 -p $port -u -b $UDP_RATE -l 1200 -t $UDP_TIME >/tmp/udp.out 2>&1; touch /tmp/udp.done ) </dev/null >/dev/null 2>&1 &" >/dev/null
}

# round_udp: the datagrams' verdict (after round_udp_start's UDP_TIME): none out of order.
round_udp() {
  local client server ooo receiver
  client=$(vm_exec g2 -t $((UDP_TIME + 40)) -- "i=0; while [ ! -e /tmp/udp.done ] && [ \$i -lt $(((UDP_TIME + 30) * 10)) ]; do sleep 0.1; i=\$((i + 1)); done; grep -E 'receiver|error' /tmp/udp.out") || true
  server=$(vm_exec "$DST" -t 20 -- "cat /tmp/udp.log") || true
  receiver=$(grep -a receiver <<<"$server" | tail -n 1 | tr -s ' ') || true
  ooo=$(grep -ao '[0-9]* datagrams received out-of-order' <<<"$server" | tail -n 1 | cut -d' ' -f1) || true
  log "datagrams (guest 1's iperf3 server): ${receiver:-none}; out of order: ${ooo:-0} (client: $(tr -s ' \n' ' ' <<<"$client"))"
  if [[ -z $receiver ]]; then
    why "no datagram result from guest 1's iperf3 server: $(tail -n 4 <<<"$server" | tr '\n' ' ') (client: $(tr '\n' ' ' <<<"$client"))"
  elif ((${ooo:-0} > 0)); then
    why "$ooo datagrams arrived out of order in guest 1: old datagrams delivered again, stale receive buffers"
  fi
  R_INFO+=", datagrams $(grep -o '[0-9]*/[0-9]* ([^)]*)' <<<"$receiver" || echo '?') lost, ${ooo:-0} out of order"
}

# round_migrate: migrate SRC -> DST (vmctl.py migrate) while snapshotting the switch;
# checks the source port's dirty log. 77 if QEMU refused postcopy, 1 if it failed or the
# guest did not come up on DST (R_MIGRATED=1 if SRC completed: the switch-over happened).
round_migrate() {
  local args=() snaps=() pid i=0 rc=0 dirty statuses
  MIG=$VM_TMP/r$ROUND-migrate.json
  [[ $KIND == postcopy ]] && args=(--postcopy)
  [[ $KIND == memcheck || $KIND == control ]] && args=(--paused)
  log "migrate $SRC -> $DST${args:+ (${args[0]#--})}"
  vm_migrate "$SRC" "$DST" --timeout "$MIGRATE_TIMEOUT" "${args[@]}" >"$MIG" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    i=$((i + 1))
    snaps+=("$(vusw_snap "r$ROUND-mig-$i")")
    sleep 0.2
  done
  wait "$pid" || rc=$?
  snaps+=("$(vusw_snap "r$ROUND-mig-end")")
  log "migration ($rc): $(cat "$MIG")"
  dirty=$(dirty_seen "$SRC_PORT" "$VM_TMP/ports-r$ROUND-base.json" "${snaps[@]}")
  log "switch $SRC_PORT (source) dirty log during the migration: $dirty (${#snaps[@]} snapshots)"
  if ((rc == 3)) && [[ $KIND == postcopy ]]; then
    R_INFO="QEMU refused postcopy-ram: $(json_get "$MIG" error) ($(grep -m1 -i postcopy "$VM_TMP/$DST.qemu.log" || true))"
    log "round $ROUND: SKIP postcopy: $R_INFO"
    vm_exec g2 -t 30 -- vusw-flood stop >/dev/null || true
    vm_exec g2 -t 30 -- vusw-stream stop 20 >/dev/null || true
    vm_stop "$DST"
    return 77
  fi
  [[ $(json_get "$MIG" status) == completed ]] && R_MIGRATED=1
  if ((rc != 0)); then
    log "QEMU $SRC says: $(tail -n 3 "$VM_TMP/$SRC.qemu.log" | tr '\n' ' ')"
    log "QEMU $DST says: $(tail -n 3 "$VM_TMP/$DST.qemu.log" | tr '\n' ' ')"
    if ((R_MIGRATED)); then
      why "guest 1 did not come up on $DST ($(json_get "$MIG" error); QEMU $DST: $(grep -v 'terminating on signal' "$VM_TMP/$DST.qemu.log" | tail -n 2 | tr '\n' ' '))"
    else
      why "migration failed: $(json_get "$MIG" status): $(json_get "$MIG" error)"
    fi
    return 1
  fi
  DOWNTIME=$(json_get "$MIG" downtime_ms)
  statuses=$(json_get "$MIG" statuses)
  [[ $KIND != postcopy || $statuses == *postcopy-active* ]] \
    || why "the migration completed without entering postcopy (statuses $statuses)"
  [[ $KIND == control ]] && return 0
  [[ $dirty == enabled=1* ]] || why "the switch never showed dirty logging on for $SRC_PORT during the migration ($dirty)"
  # (Postcopy switches over as soon as it can: its precopy phase may be too short for a mark.)
  [[ $dirty != *" pages=0 "* || $KIND == postcopy ]] || why "the switch marked no dirty page for $SRC_PORT while guest 1 received the stream ($dirty)"
  [[ $dirty == *" missed=0" ]] || why "the switch wrote pages of $SRC_PORT's guest it could not mark in the log ($dirty)"
}

# round_memcompare: DST (started with -S) holds guest 1 paused after the migration: its
# memory must equal the paused source's, page for page (pmemsave both). Every page the
# switch wrote after QEMU last copied it and did not mark in the log differs. Then DST
# runs the guest (QMP cont).
round_memcompare() {
  local size=$((256 << 20)) out g n
  for g in src dst; do
    [[ $g == src ]] && n=$SRC || n=$DST
    vm_qmp "$n" pmemsave "{\"val\": 0, \"size\": $size, \"filename\": \"$VM_TMP/mem-$g.bin\"}" >/dev/null \
      || fail "round $ROUND: pmemsave on $n failed"
  done
  out=$("$PY" "$VMCTL" mem-compare "$VM_TMP/mem-src.bin" "$VM_TMP/mem-dst.bin")
  rm -f "$VM_TMP/mem-src.bin" "$VM_TMP/mem-dst.bin"
  MEMDIFF=$(marker_field " $out" differ)
  log "guest 1's memory, source (final) vs destination (as migrated): $out"
  ((MEMDIFF == 0)) || why "$MEMDIFF pages of guest 1's memory differ between the source and the destination ($out): the switch wrote them unlogged"
  vm_qmp "$DST" cont >/dev/null || fail "round $ROUND: QMP cont on $DST failed"
  R_INFO="paused for the memory comparison: $MEMDIFF pages differ"
}

# round_follow: after the switch-over the FDB has guest 1's MAC on DST_PORT by itself,
# guest 2's stream reaches it there, it answers pings; the pings lost across the
# switch-over (guest kernels' ICMP counters: below ping's socket, which overflows when a
# TCG guest stalls).
round_follow() {
  local t0=$SECONDS fdb base flood icmp1 icmp2 out req rep got_req sent_rep
  if until_true 10 fdb_on "$DST_PORT"; then
    log "FDB: $MAC1 on $DST_PORT $((SECONDS - t0))s after the switch-over (SEND_RARP on $DST_PORT: $(snap_get "$(vusw_snap "r$ROUND-rarp")" "$DST_PORT.messages.SEND_RARP"))"
  else
    fdb=$(vusw_fdb_port "$MAC1")
    why "the switch did not move $MAC1 to $DST_PORT within 10 s (FDB: ${fdb:-none})"
  fi
  base=$(vusw_snap "r$ROUND-after")
  if ((BULK)) && ! until_true 30 grown "$base" "$DST_PORT.tx_bytes" $((2 * BLOCK)); then
    why "guest 2's stream does not reach guest 1 on $DST_PORT after the switch-over (8 MiB in 30 s)"
    round_diagnose "$base"
  fi
  flood=$(vm_exec g2 -t 60 -- vusw-flood stop) || why "guest 2's ping flood did not stop: $flood"
  icmp1=$(vm_exec "$DST" -t 20 -- vusw-icmp) || why "guest 1's agent does not answer on $DST: $icmp1"
  icmp2=$(vm_exec g2 -- vusw-icmp) || fail "guest 2's agent does not answer"
  out=$(vm_exec g2 -t 30 -- "ping -q -c 5 -i 0.1 -W 3 $IP1") || true
  [[ $out == *" 5 packets received"* ]] || why "guest 1 on $DST does not answer guest 2's pings: $(tail -n 2 <<<"$out" | tr '\n' ' ')"
  req=$(icmp_delta "$ICMP2" "$icmp2" OutEchos) rep=$(icmp_delta "$ICMP2" "$icmp2" InEchoReps)
  got_req=$(icmp_delta "$ICMP1" "$icmp1" InEchos) sent_rep=$(icmp_delta "$ICMP1" "$icmp1" OutEchoReps)
  LOST=$((req - rep))
  # The switch-over costs the downtime and the FDB update, a few hundred ms; more is a
  # guest that stopped receiving on the destination.
  # (Not when the destination was kept paused for the memory comparison.)
  if ((BULK)) && awk -v n="$LOST" -v i="$FLOOD_INTERVAL" -v l="$LOSS_LIMIT_MS" 'BEGIN { exit !(n * i * 1000 > l) }'; then
    why "$LOST pings lost across the switch-over: guest 1 received nothing for ~$(awk -v n="$LOST" -v i="$FLOOD_INTERVAL" 'BEGIN { printf "%.1f", n * i }') s (limit ${LOSS_LIMIT_MS} ms)"
  fi
  log "pings across the switch-over: $flood; kernels: guest 2 sent $req requests, guest 1 got $got_req and sent $sent_rep replies, guest 2 got $rep: $LOST lost ($((req - got_req)) requests, $((sent_rep - rep)) replies)"
  R_INFO="downtime ${DOWNTIME:-?} ms, lost $LOST of $req pings${R_INFO:+ ($R_INFO)}"
}

# round_diagnose BASE: why guest 1 gets nothing: the switch's view of its port since BASE,
# the guest's interrupts and virtio-net queue counters.
round_diagnose() {
  local snap
  snap=$(vusw_snap "r$ROUND-diag")
  log "diagnosis: switch $DST_PORT: $("$PY" "$VMCTL" ports-vhost "$snap" "$DST_PORT"); since the switch-over: delivered $(($(snap_get "$snap" "$DST_PORT.tx_packets") - $(snap_get "$1" "$DST_PORT.tx_packets"))) frames, drops $(($(snap_get "$snap" "$DST_PORT.drops") - $(snap_get "$1" "$DST_PORT.drops"))) (no_rx_buffer $(($(snap_get "$snap" "$DST_PORT.drops.no_rx_buffer") - $(snap_get "$1" "$DST_PORT.drops.no_rx_buffer"))))"
  log "diagnosis: guest 1 interrupts and queues (twice, 2 s apart): $(vm_exec "$DST" -t 20 -- "for i in 1 2; do grep -E 'virtio|ttyS' /proc/interrupts | tr -s ' '; ethtool -S eth0 | grep -E 'rx_queue_0_(packets|kicks|xdp)|tx_queue_0_(packets|kicks)' | tr -s ' \n' ' '; echo; sleep 2; done" 2>&1 | tr '\n' '|')"
}

# round_stream: stop the stream; guest 1 must have every block guest 2 sent, whole and
# with the block's md5, and its kernel no new complaint.
round_stream() {
  local sent recv blocks got good secs complaints
  sent=$(vm_exec g2 -t $((STREAM_END_WAIT + 20)) -- vusw-stream stop "$STREAM_END_WAIT") || why "the stream sender did not stop: $sent"
  recv=$(vm_exec "$DST" -t $((STREAM_END_WAIT + 20)) -- vusw-stream result "$MD5" "$STREAM_END_WAIT") || why "no stream result from guest 1: $recv"
  secs=$((SECONDS - T_STREAM))
  blocks=$(marker_field "$sent" blocks) got=$(marker_field "$recv" blocks) good=$(marker_field "$recv" good)
  log "stream: $sent"
  log "stream: $recv (${secs}s, $(awk -v b="${blocks:-0}" -v s="$secs" -v k=$((BLOCK >> 20)) 'BEGIN { printf "%.1f", s ? b * k / s : 0 }') MiB/s)"
  [[ $(marker_field "$sent" 'done') == 1 ]] || why "the stream sender did not finish (a stalled connection)"
  [[ $(marker_field "$recv" 'done') == 1 ]] || why "the stream did not end at guest 1 (stalled or broken)"
  if [[ -z $blocks || $blocks == 0 ]]; then
    why "no block was sent"
  elif [[ $got != "$blocks" || $good != "$blocks" ]]; then
    why "stream not intact: guest 2 sent $blocks blocks, guest 1 got ${got:-?}, ${good:-0} intact ($(marker_field "$recv" bad) corrupted or short, the first #$(marker_field "$recv" first_bad))"
  fi
  complaints=$(kernel_complaints "$DST") || true
  if [[ -n $complaints ]] && (($(wc -l <<<"$complaints") > COMPLAINTS)); then
    why "guest 1's kernel complained: $(tail -n 3 <<<"$complaints" | tr '\n' '|')"
  fi
  R_INFO+=", stream ${blocks:-0} blocks ($(((${blocks:-0} * BLOCK) >> 20)) MiB)"
}

# migrate_round precopy|postcopy|control: migrate guest 1 from CUR to a new QEMU on the
# other port under the stream and the pings; 77 when postcopy is not available.
migrate_round() {
  KIND=$1 SRC=$CUR SRC_PORT=$CUR_PORT DST_PORT=vm1b BULK=1
  [[ $KIND == memcheck || $KIND == control ]] && BULK=0
  ROUND=$((ROUND + 1))
  DST=g1-$ROUND STREAM_PORT=$((5000 + ROUND))
  [[ $SRC_PORT == vm1b ]] && DST_PORT=vm1a
  R_MIGRATED=0 R_INTACT=0 R_WHY=() R_INFO='' DOWNTIME='' LOST='' MEMDIFF=''
  printf '\n'
  log "==== round $ROUND ($KIND): $SRC on $SRC_PORT -> $DST on $DST_PORT"
  round_destination || return $?
  round_traffic
  local rc=0
  round_migrate || rc=$?
  ((rc != 77)) || return 77
  if ((rc != 0)); then
    log "==== round $ROUND ($KIND): NOT intact: ${R_WHY[0]}"
    return 0
  fi
  [[ $KIND == memcheck || $KIND == control ]] && round_memcompare
  round_follow
  if ((BULK)); then
    round_stream
    round_udp
  fi
  vm_stop "$SRC"
  CUR=$DST CUR_PORT=$DST_PORT
  vusw_summary "$(vusw_snap "r$ROUND-end")" | grep -E '^  vm' || true
  ((${#R_WHY[@]} == 0)) && R_INTACT=1
  DOWNTIMES+=("${DOWNTIME:-?}") LOSSES+=("$LOST")
  log "==== round $ROUND ($KIND): $( ((R_INTACT)) && echo intact || echo "NOT intact: ${R_WHY[0]}"); $R_INFO"
}

# ---------------------------------------------------------------- main

PORTS=(--vhost-user "$VM_TMP/vm1a.sock" --vhost-user "$VM_TMP/vm1b.sock" --vhost-user "$VM_TMP/vm2.sock")
vusw_start "${PORTS[@]}"
VM_GUEST_NAME=g1 vm_start g1-0 "$MAC1" "$IP1/24" "path=$VM_TMP/vm1a.sock,reconnect=1"
vm_start g2 "$MAC2" "$IP2/24" "path=$VM_TMP/vm2.sock,reconnect=1"
vm_ready g1-0 "$BOOT_TIMEOUT"
vm_ready g2 "$BOOT_TIMEOUT"
vm_ping_until g2 "$IP1" || fail "guest 2 cannot reach guest 1 before any migration"
log "switch vm1a: $("$PY" "$VMCTL" ports-vhost "$(vusw_snap boot)" vm1a)"

PRE_OK=0 POST_NOTE='' CONTROL_NOTE=''
for ((r = 1; r <= ROUNDS; r++)); do
  migrate_round precopy
  if ((!R_INTACT)); then
    bad "precopy round $ROUND: $(printf '%s; ' "${R_WHY[@]}")"
    break
  fi
  PRE_OK=$((PRE_OK + 1))
done

if ((POSTCOPY)) && ((${#FAILS[@]} == 0)); then
  rc=0
  migrate_round postcopy || rc=$?
  if ((rc == 77)); then
    POST_NOTE="postcopy SKIP (${R_INFO%%:*})"
  elif ((R_INTACT)); then
    POST_NOTE="postcopy OK, downtime ${DOWNTIME:-?} ms, lost $LOST pings"
  else
    bad "postcopy round $ROUND: $(printf '%s; ' "${R_WHY[@]}")"
    POST_NOTE="postcopy FAILED: ${R_WHY[0]}"
  fi
fi

MEM_NOTE=''
if ((CONTROL)) && ((${#FAILS[@]} == 0)); then
  # The same round with the destination paused after the migration, so that its memory
  # can be compared with the source's: with logging no page may differ ...
  migrate_round memcheck
  if ((R_INTACT)); then
    MEM_NOTE="memory check: 0 pages differ"
  else
    bad "memory check round $ROUND: $(printf '%s; ' "${R_WHY[@]}")"
  fi
fi

if ((CONTROL)) && ((${#FAILS[@]} == 0)); then
  # ... and without it (vuswitchd negotiates logging but never marks a page) pages must
  # differ: proof that the checks above can fail.
  printf '\n'
  log "==== control run: vuswitchd --debug-no-dirty-log (logging negotiated, no page marked)"
  if ! grep -qa 'debug-no-dirty-log' "$VUSWITCHD"; then
    bad "control run: $VUSWITCHD has no --debug-no-dirty-log flag"
  else
    vusw_stop
    vusw_start "${PORTS[@]}" --debug-no-dirty-log
    if ! until_true 60 port_is "$CUR_PORT" ready || ! until_true 60 port_is vm2 ready; then
      fail "control run: the guests did not reconnect to the restarted vuswitchd"
    fi
    vm_ping_until g2 "$IP1" || fail "control run: guest 2 cannot reach guest 1 after the restart"
    migrate_round control
    if ((!R_MIGRATED)); then
      bad "control run: the migration itself failed ($(printf '%s; ' "${R_WHY[@]}")): that shows nothing about logging"
    elif ((R_INTACT)); then
      bad "control run: guest 1 came through intact although the switch marked no dirty page: the test cannot detect a switch that does not log"
    else
      CONTROL_NOTE="control (--debug-no-dirty-log): ${MEMDIFF:-?} pages stale at the destination, as expected"
      [[ ${MEMDIFF:-0} == 0 ]] && CONTROL_NOTE="control (--debug-no-dirty-log): broken as expected (${R_WHY[0]})"
      log "control run: not intact, as it must be without logging: $(printf '%s; ' "${R_WHY[@]}")"
    fi
  fi
fi

for n in "${!VM_PID[@]}"; do
  if [[ -n ${VM_PID[$n]} ]]; then vm_stop "$n"; fi
done
vusw_stop

join() { local IFS=/; echo "$*"; }
note="migrate: $PRE_OK of $ROUNDS precopy OK, downtime $(join "${DOWNTIMES[@]:0:ROUNDS}") ms, lost $(join "${LOSSES[@]:0:ROUNDS}") pings"
[[ -n $POST_NOTE ]] && note+="; $POST_NOTE"
[[ -n $MEM_NOTE ]] && note+="; $MEM_NOTE"
[[ -n $CONTROL_NOTE ]] && note+="; $CONTROL_NOTE"
printf '\n'
log "NOTE: $note"
if ((${#FAILS[@]})); then
  log "FAIL: ${FAILS[0]} (${#FAILS[@]} failures; total ${SECONDS}s)"
  exit 1
fi
log "PASS (total ${SECONDS}s)"
