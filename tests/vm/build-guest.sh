#!/usr/bin/env bash
# Build the minimal guest the VM tests boot: a Debian 12 kernel and a busybox initramfs.
#
#   tests/vm/build-guest.sh [OUTDIR]        (default: build/vm-guest)
#
# Produces OUTDIR/vmlinuz, OUTDIR/initrd.gz and OUTDIR/guest.env (KERNEL=, INITRD=,
# KVER=, PKG= lines the tests source). Nothing is installed on the host: the kernel
# package is fetched with `apt-get download` and unpacked with `dpkg -x`.
#
# Kernel: linux-image-cloud-amd64 (flavour overridable with VUSW_GUEST_FLAVOUR=amd64).
# The cloud flavour is enough and a third the size: its config (checked below, at
# build time) has MEMORY_HOTPLUG, MEMORY_HOTREMOVE and ACPI_HOTPLUG_MEMORY built in,
# the 8250 serial console built in, and virtio, virtio_ring, virtio_pci (+ its
# modern/legacy helpers), virtio_net and its failover/net_failover dependencies as
# modules. The module list is closed over the "depends=" field of each .ko (the
# package has no modules.dep: depmod runs only at install time).
#
# Guest /init (busybox sh) reads its settings from the kernel command line:
#   vusw_ip=ADDR/LEN      address for eth0 (required for networking)
#   vusw_name=NAME        name printed in the markers
#   vusw_ping=PEER:COUNT[:INTERVAL]  ping PEER COUNT times at boot and print
#                         "VUSW-PING-RESULT name=.. sent=.. received=.. loss=..%"
#   vusw_online=online|online_movable|online_kernel  online every offline memory
#                         block at boot (hot-added memory is offline by default)
#   vusw_poweroff=1       power off after the boot-time ping
# Markers on the console (ttyS0): "VUSW-GUEST-READY name=.. ip=..", "VUSW-PING-RESULT ..".
#
# Agent: if a second serial port exists (ttyS1, e.g. QEMU `-serial chardev:X` with a unix
# socket chardev) the guest runs a tiny command agent on it: each line "ID COMMAND" is
# run by sh; the reply is the output followed by "@@END ID RC". tests/vm/vmctl.py
# speaks it (`vmctl.py guest SOCK -- COMMAND`).
#
# Tools: besides busybox, Debian's ethtool and iperf3 with their shared libraries
# (GUEST_BINARIES below).
#
# Idempotent: the kernel package is downloaded once; the initramfs is rebuilt only when
# this script, busybox, the copied binaries/libraries or the package changed (a hash is
# kept in guest.env).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-$ROOT/build/vm-guest}
FLAVOUR=${VUSW_GUEST_FLAVOUR:-cloud-amd64}
BUSYBOX=${BUSYBOX:-/bin/busybox}
# Host binaries copied into the guest with their shared libraries (found with ldd) and the
# dynamic loader: ethtool (queue counts, per-queue counters) and iperf3 (TCP throughput),
# both from Debian packages (deploy/setup.sh installs them). Their contents are part of the
# cache key, so a changed list or an upgraded package rebuilds the initramfs.
GUEST_BINARIES=(/usr/sbin/ethtool /usr/bin/iperf3)
# Load order matters for insmod (no modprobe without modules.dep); dependencies first.
MODULES=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net)
# Config options the tests rely on; checked against the package's config file.
NEED_BUILTIN=(CONFIG_MEMORY_HOTPLUG CONFIG_MEMORY_HOTREMOVE CONFIG_ACPI_HOTPLUG_MEMORY CONFIG_SERIAL_8250_CONSOLE
  CONFIG_BLK_DEV_INITRD CONFIG_RD_GZIP CONFIG_DEVTMPFS CONFIG_INET CONFIG_PCI CONFIG_ACPI CONFIG_NUMA)
NEED_BUILTIN_OR_MODULE=(CONFIG_VIRTIO CONFIG_VIRTIO_PCI CONFIG_VIRTIO_NET CONFIG_NET_FAILOVER CONFIG_FAILOVER)

say() { printf '[build-guest] %s\n' "$*"; }
die() { printf '[build-guest] ERROR: %s\n' "$*" >&2; exit 1; }

require_tools() {
  local t missing=()
  for t in apt-get apt-cache dpkg cpio gzip ldd; do command -v "$t" >/dev/null || missing+=("$t"); done
  [[ -x $BUSYBOX ]] || missing+=("busybox-static ($BUSYBOX)")
  for t in "${GUEST_BINARIES[@]}"; do [[ -x $t ]] || missing+=("$t (Debian package $(basename "$t"))"); done
  ((${#missing[@]} == 0)) || die "missing: ${missing[*]} (Debian packages: apt dpkg cpio gzip libc-bin busybox-static ethtool iperf3; deploy/setup.sh)"
  # The initramfs has no libc: a dynamically linked busybox would not start.
  local banner
  banner=$("$BUSYBOX" --help 2>&1 || true)
  [[ $banner == BusyBox* ]] || die "$BUSYBOX is not busybox"
  if command -v file >/dev/null && [[ $(file -L "$BUSYBOX") == *'dynamically linked'* ]]; then
    die "$BUSYBOX is dynamically linked; install busybox-static"
  fi
}

# The versioned package behind the linux-image-FLAVOUR meta package, e.g.
# linux-image-6.1.0-56-cloud-amd64. Refreshes the apt lists once if they lack it.
resolve_package() {
  local pkg
  pkg=$(apt-cache depends "linux-image-$FLAVOUR" 2>/dev/null | awk '/Depends: linux-image-6\.1/ {print $2; exit}')
  if [[ -z $pkg ]]; then
    say "linux-image-$FLAVOUR not in the apt lists; running apt-get update" >&2
    apt-get update -q >/dev/null || die "apt-get update failed"
    pkg=$(apt-cache depends "linux-image-$FLAVOUR" 2>/dev/null | awk '/Depends: linux-image-6\.1/ {print $2; exit}')
  fi
  [[ -n $pkg ]] || die "cannot resolve linux-image-$FLAVOUR to a linux-image-6.1.* package"
  printf '%s\n' "$pkg"
}

# download PKG: apt-get download into OUT/dl (once), print the .deb path.
download() {
  local pkg=$1 deb
  mkdir -p "$OUT/dl"
  deb=$(ls "$OUT/dl/${pkg}_"*.deb 2>/dev/null | head -1 || true)
  if [[ -z $deb ]]; then
    say "apt-get download $pkg" >&2
    # _apt cannot write into a root-owned directory; the download then runs as root
    # (apt prints a warning about that, which is harmless here).
    (cd "$OUT/dl" && apt-get download -q "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) \
      || die "apt-get download $pkg failed"
    deb=$(ls "$OUT/dl/${pkg}_"*.deb 2>/dev/null | head -1 || true)
    [[ -n $deb ]] || die "apt-get download $pkg produced no .deb"
    # A newer kernel replaced an older one in the archive: drop the old package.
    find "$OUT/dl" -name 'linux-image-*.deb' ! -name "${deb##*/}" -delete
  else
    say "cached: ${deb##*/}" >&2
  fi
  printf '%s\n' "$deb"
}

check_config() { # CONFIG-FILE
  local cfg=$1 o v bad=()
  for o in "${NEED_BUILTIN[@]}"; do
    grep -q "^$o=y" "$cfg" || bad+=("$o (need =y)")
  done
  for o in "${NEED_BUILTIN_OR_MODULE[@]}"; do
    v=$(sed -n "s/^$o=//p" "$cfg")
    [[ $v == y || $v == m ]] || bad+=("$o (need y or m)")
  done
  ((${#bad[@]} == 0)) || die "kernel config ${cfg##*/} lacks: ${bad[*]}"
  say "kernel config ok: memory hotplug/hotremove + ACPI memory hotplug built in; virtio_net=$(sed -n 's/^CONFIG_VIRTIO_NET=//p' "$cfg") virtio_pci=$(sed -n 's/^CONFIG_VIRTIO_PCI=//p' "$cfg")"
}

# copy_modules KROOT DEST: copy MODULES (those built as modules), checking that every
# dependency named in a module's depends= field is loaded before it.
copy_modules() {
  local kroot=$1 dest=$2 m ko dep loaded=" " order=()
  local cfgsym
  for m in "${MODULES[@]}"; do
    ko=$(find "$kroot/kernel" -name "$m.ko" -print -quit)
    if [[ -z $ko ]]; then
      if grep -q "/$m.ko$" "$kroot/modules.builtin"; then continue; fi
      die "module $m neither a .ko nor built in"
    fi
    for dep in $(grep -a -o 'depends=[a-z0-9_,-]*' "$ko" | head -1 | cut -d= -f2 | tr ',' ' '); do
      [[ $loaded == *" $dep "* ]] || die "module order: $m needs $dep first (fix MODULES)"
    done
    cp "$ko" "$dest/$m.ko"
    loaded+="$m "
    order+=("$m")
  done
  printf '%s\n' "${order[@]}" >"$dest/order"
  say "modules: ${order[*]}"
}

# guest_files: every host file the initramfs gets besides busybox: GUEST_BINARIES and
# the shared objects ldd resolves for them (absolute paths, symlinks as ldd names them).
guest_files() {
  local b
  for b in "${GUEST_BINARIES[@]}"; do
    printf '%s\n' "$b"
    ldd "$b" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
  done | sort -u
}

# copy_binaries DEST: GUEST_BINARIES into DEST/bin, their libraries (and the loader) at
# the same paths as on the host (dereferenced), so the Debian loader's built-in search
# path (/lib/x86_64-linux-gnu) finds them without an ld.so.cache.
copy_binaries() {
  local dest=$1 f n=0
  while IFS= read -r f; do
    if [[ " ${GUEST_BINARIES[*]} " == *" $f "* ]]; then
      cp -L "$f" "$dest/bin/${f##*/}"
    else
      mkdir -p "$dest$(dirname "$f")"
      cp -L "$f" "$dest$f"
      n=$((n + 1))
    fi
  done < <(guest_files)
  say "binaries: ${GUEST_BINARIES[*]##*/} + $n libraries ($(guest_files | xargs du -cLk | tail -1 | cut -f1) KiB)"
}

write_init() { # DEST
  cat >"$1" <<'EOF'
#!/bin/busybox sh
# vuswitch test guest: load virtio-net, configure eth0 from the kernel command line,
# optionally ping a peer and online hot-added memory, run the command agent on ttyS1.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /tmp /run
exec </dev/console >/dev/console 2>&1

param() { tr ' ' '\n' </proc/cmdline | sed -n "s/^vusw_$1=//p" | tail -1; }
NAME=$(param name); NAME=${NAME:-guest}
IP=$(param ip)
say() { echo "VUSW-$*"; }

# Hot-added memory blocks come up offline; online them with the given policy.
online_all() { # online|online_movable|online_kernel
  local b n=0
  for b in /sys/devices/system/memory/memory*; do
    [ "$(cat $b/state)" = offline ] || continue
    echo "$1" >$b/state 2>/dev/null && n=$((n + 1))
  done
  echo "onlined $n blocks as $1"
}

for m in $(cat /lib/modules/order); do
  insmod /lib/modules/$m.ko || say "ERROR insmod $m failed"
done
# The device shows up asynchronously after the driver loaded.
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
ip link set lo up
if [ -e /sys/class/net/eth0 ]; then
  ip link set eth0 up
  [ -n "$IP" ] && ip addr add "$IP" dev eth0
  MAC=$(cat /sys/class/net/eth0/address)
else
  say "ERROR no eth0"
fi
POL=$(param online)
[ -n "$POL" ] && online_all "$POL"

# Command agent on the second serial port: "ID COMMAND" lines in, output + "@@END ID RC" out.
agent() {
  stty -F /dev/ttyS1 115200 raw -echo 2>/dev/null
  while IFS= read -r line; do
    id=${line%% *}; cmd=${line#* }
    [ -n "$id" ] || continue
    ( eval "$cmd" ) </dev/null >/tmp/agent.out 2>&1
    rc=$?
    cat /tmp/agent.out
    echo "@@END $id $rc"
  done </dev/ttyS1 >/dev/ttyS1 2>&1
}
# ttyS1 exists as a device node whether or not QEMU has a second UART; a real one
# answers with a known UART type.
if grep -q '^1: uart:16550A' /proc/tty/driver/serial 2>/dev/null; then
  agent &
  AGENT=on
else
  AGENT=off
fi
say "GUEST-READY name=$NAME ip=$IP mac=$MAC agent=$AGENT mem_total_kb=$(sed -n 's/^MemTotal: *\([0-9]*\).*/\1/p' /proc/meminfo)"

PING=$(param ping)
if [ -n "$PING" ]; then
  PEER=${PING%%:*}; REST=${PING#*:}; COUNT=${REST%%:*}; INTERVAL=1
  [ "$REST" != "$COUNT" ] && INTERVAL=${REST#*:}
  # The first reply may wait for the peer to finish booting: retry single pings first
  # (up to ~120 s), then run the measured ping.
  i=0
  until ping -c 1 -W 2 "$PEER" >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -ge 60 ] && break
  done
  say "PING-START name=$NAME peer=$PEER count=$COUNT interval=$INTERVAL warmup_tries=$i"
  ping -c "$COUNT" -i "$INTERVAL" -W 5 "$PEER" >/tmp/ping.out 2>&1
  cat /tmp/ping.out
  S=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' /tmp/ping.out)
  R=$(sed -n 's/.* \([0-9]*\) packets received.*/\1/p' /tmp/ping.out)
  L=$(sed -n 's/.* \([0-9]*\)% packet loss.*/\1/p' /tmp/ping.out)
  say "PING-RESULT name=$NAME sent=${S:-0} received=${R:-0} loss=${L:-100}%"
  [ "$(param poweroff)" = 1 ] && poweroff -f
fi
while :; do sleep 3600; done
EOF
  chmod 755 "$1"
}

# Helper commands for the tests (run through the agent): /bin/vusw-online, /bin/vusw-flood,
# /bin/vusw-zones, /bin/vusw-icmp, /bin/vusw-stream. Busybox sh/awk only.
write_helpers() { # BINDIR
  cat >"$1/vusw-online" <<'EOF'
#!/bin/sh
# vusw-online POLICY [TIMEOUT_S]: wait until hot-added memory blocks appear (offline),
# online them with POLICY (online|online_kernel|online_movable), print block, zone.
pol=$1; t=${2:-60}; i=0; n=0
while :; do
  for b in /sys/devices/system/memory/memory*; do
    [ "$(cat $b/state)" = offline ] || continue
    if echo "$pol" >$b/state; then
      echo "${b##*/} phys_index=$(cat $b/phys_index) state=$(cat $b/state) zone=$(cat $b/valid_zones)"
      n=$((n + 1))
    else
      echo "${b##*/}: $pol failed"; exit 1
    fi
  done
  [ $n -gt 0 ] && exit 0
  i=$((i + 1)); [ $i -ge $((t * 5)) ] && { echo "no offline memory block after ${t}s"; exit 1; }
  sleep 0.2
done
EOF
  cat >"$1/vusw-flood" <<'EOF'
#!/bin/sh
# vusw-flood start PEER INTERVAL SEGMENT | stop | status
# Pings PEER every INTERVAL s in back-to-back runs of SEGMENT pings until stopped; each run
# completes (late replies are still counted), so stopping loses nothing in flight.
# Prints "FLOOD runs=N sent=N received=N max_rtt_ms=X sock_drops=N" (sums over completed
# runs). sock_drops: replies the kernel dropped at ping's raw socket (its receive buffer
# was full), sampled from /proc/net/raw while each run lasts (a lower bound: drops in a
# run's last quarter second are missed); ping's is the only raw socket.
sum() {
  awk '/packets transmitted/ { s += $1; r += $4; n++ }
       /round-trip/ { split($4, a, "/"); if (a[3] + 0 > m) m = a[3] + 0 }
       /^sock_drops / { d += $2 }
       END { printf "FLOOD runs=%d sent=%d received=%d max_rtt_ms=%s sock_drops=%d\n", n, s, r, m + 0, d }' /tmp/flood.out
}
case $1 in
start)
  rm -f /tmp/flood.stop /tmp/flood.done /tmp/flood.out
  ( while [ ! -e /tmp/flood.stop ]; do
      ping -q -c "$4" -i "$3" -W 5 "$2" >/tmp/flood.run 2>&1 &
      p=$! d=0
      while kill -0 $p 2>/dev/null; do
        x=$(awk 'NR > 1 { s += $NF } END { print s + 0 }' /proc/net/raw)
        [ "$x" -gt "$d" ] && d=$x
        sleep 0.25
      done
      wait $p
      cat /tmp/flood.run
      echo "sock_drops $d"
    done >/tmp/flood.out 2>&1
    touch /tmp/flood.done ) &
  echo "flood started: $2 every $3 s, runs of $4" ;;
stop)
  touch /tmp/flood.stop
  i=0
  while [ ! -e /tmp/flood.done ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
  [ -e /tmp/flood.done ] || { echo "flood did not stop"; exit 1; }
  sum ;;
status) sum ;;
esac
EOF
  cat >"$1/vusw-zones" <<'EOF'
#!/bin/sh
# vusw-zones: pages per zone: "zone NAME present=N managed=N free=N used=N" (4 KiB pages).
awk '/^Node/ { z = $4 } $1 == "pages" && $2 == "free" { f[z] = $3 }
     $1 == "present" { p[z] = $2 } $1 == "managed" { m[z] = $2 }
     END { for (z in p) if (p[z] > 0) printf "zone %s present=%d managed=%d free=%d used=%d\n", z, p[z], m[z], f[z], m[z] - f[z] }' /proc/zoneinfo
EOF
  cat >"$1/vusw-icmp" <<'EOF'
#!/bin/sh
# vusw-icmp: the kernel's ICMP echo counters (counted below any socket, so a ping socket
# that overflows while the guest stalls does not hide or fake network loss).
awk '$1 == "Icmp:" && $2 ~ /^[A-Za-z]/ { for (i = 2; i <= NF; i++) h[i] = $i; next }
     $1 == "Icmp:" { for (i = 2; i <= NF; i++) v[h[i]] = $i }
     END { printf "OutEchos=%d InEchoReps=%d InEchos=%d OutEchoReps=%d\n", v["OutEchos"], v["InEchoReps"], v["InEchos"], v["OutEchoReps"] }' /proc/net/snmp
EOF
  cat >"$1/vusw-stream" <<'EOF'
#!/bin/sh
# vusw-stream: a TCP stream of known content whose every byte is checked on arrival.
# The sender sends one 4 MiB pseudo-random block (/dev/urandom, made once per boot) over
# and over, whole blocks only, until stopped; the receiver cuts the stream into 4 MiB
# blocks as it arrives and keeps each block's md5 and record count (dd: "64+0" = whole).
# A block with a foreign md5 is corrupted; a short last block or no end is a broken stream.
#   send PEER PORT   connect to PEER:PORT and stream; prints "STREAM-SEND block_md5=M"
#   recv PORT        listen on PORT (returns once listening) and check the stream
#   stop [SECS]      sender: finish the block in flight, close (waits up to SECS, 60);
#                    prints "STREAM-SENT blocks=N md5=M done=1|0"
#   result MD5 [SECS]  receiver: wait up to SECS (60) for the end of the stream; prints
#                    "STREAM-RECEIVED blocks=N good=N bad=N partial=N first_bad=I done=1|0"
# Both ends run under `nc -e` (the socket is the loop's stdin or stdout, no copy through
# nc). Busybox nc ends a connection when its own stdin ends, so it never reads a pipe here.
BLK=/tmp/stream.blk
case $1 in
send)
  [ -s $BLK ] || dd if=/dev/urandom of=$BLK bs=65536 count=64 2>/dev/null
  m=$(md5sum <$BLK)
  echo "${m%% *}" >/tmp/stream.md5
  rm -f /tmp/stream.stop /tmp/stream.sent
  echo 0 >/tmp/stream.n
  ( nc "$2" "$3" -e vusw-stream tx-loop; echo "rc=$?" >/tmp/stream.sent ) </dev/null >/dev/null 2>&1 &
  echo "STREAM-SEND peer=$2 port=$3 block_md5=${m%% *}" ;;
tx-loop)
  n=0
  while [ ! -e /tmp/stream.stop ]; do
    cat $BLK || exit 1
    n=$((n + 1)); echo $n >/tmp/stream.n
  done ;;
recv)
  rm -f /tmp/stream.rx /tmp/stream.done
  ( nc -l -p "$2" -e vusw-stream rx-loop; touch /tmp/stream.done ) </dev/null >/dev/null 2>&1 &
  i=0
  until netstat -ltn 2>/dev/null | grep -q ":$2 "; do
    i=$((i + 1)); [ $i -lt 50 ] || { echo "nothing listens on port $2"; exit 1; }
    sleep 0.1
  done
  echo "STREAM-RECV port=$2" ;;
rx-loop)
  while :; do
    m=$(dd bs=65536 count=64 iflag=fullblock 2>/tmp/stream.dd | md5sum)
    r=$(head -n 1 /tmp/stream.dd)
    [ "${r%% *}" = 0+0 ] && break
    echo "${m%% *} ${r%% *}"
  done >/tmp/stream.rx 2>&1 ;;
stop)
  touch /tmp/stream.stop
  i=0
  while [ ! -e /tmp/stream.sent ] && [ $i -lt $((${2:-60} * 10)) ]; do sleep 0.1; i=$((i + 1)); done
  d=0; [ -e /tmp/stream.sent ] && d=1
  echo "STREAM-SENT blocks=$(cat /tmp/stream.n) md5=$(cat /tmp/stream.md5) done=$d $(cat /tmp/stream.sent 2>/dev/null)" ;;
result)
  i=0
  while [ ! -e /tmp/stream.done ] && [ $i -lt $((${3:-60} * 10)) ]; do sleep 0.1; i=$((i + 1)); done
  d=0; [ -e /tmp/stream.done ] && d=1
  touch /tmp/stream.rx
  awk -v want="$2" -v d=$d '{ n++ } $1 == want && $2 == "64+0" { g++; next } $2 != "64+0" { p++ } !f { f = n }
    END { printf "STREAM-RECEIVED blocks=%d good=%d bad=%d partial=%d first_bad=%d done=%d\n", n, g, n - g, p, f, d }' /tmp/stream.rx ;;
*) echo "usage: vusw-stream send PEER PORT | recv PORT | stop [SECS] | result MD5 [SECS]"; exit 2 ;;
esac
EOF
  chmod 755 "$1/vusw-online" "$1/vusw-flood" "$1/vusw-zones" "$1/vusw-icmp" "$1/vusw-stream"
}

main() {
  require_tools
  mkdir -p "$OUT"
  OUT=$(cd "$OUT" && pwd)
  local pkg deb self_hash want kroot kver stage
  pkg=$(resolve_package)
  deb=$(download "$pkg")
  self_hash=$(guest_files | xargs cat "$0" "$BUSYBOX" | sha256sum | cut -c1-16)
  want="PKG=${deb##*/} HASH=$self_hash"
  if [[ -f $OUT/guest.env && -f $OUT/vmlinuz && -f $OUT/initrd.gz ]] \
    && grep -qx "# $want" "$OUT/guest.env"; then
    say "up to date: $OUT (${deb##*/})"
    return 0
  fi

  say "unpacking ${deb##*/} (dpkg -x)"
  rm -rf "$OUT/pkg"
  dpkg -x "$deb" "$OUT/pkg"
  kroot=$(ls -d "$OUT"/pkg/lib/modules/*/ | head -1)
  kroot=${kroot%/}
  kver=${kroot##*/}
  check_config "$OUT/pkg/boot/config-$kver"

  say "building initramfs (busybox $("$BUSYBOX" --help 2>&1 | awk 'NR == 1 {print $2}'))"
  stage=$OUT/initramfs
  rm -rf "$stage"
  mkdir -p "$stage"/{bin,dev,proc,sys,tmp,run,lib/modules}
  cp "$BUSYBOX" "$stage/bin/busybox"
  ln -s busybox "$stage/bin/sh"
  copy_modules "$kroot" "$stage/lib/modules"
  write_init "$stage/init"
  write_helpers "$stage/bin"
  copy_binaries "$stage"
  # The kernel opens /dev/console before /init runs; without the node init has no stdio.
  mknod -m 600 "$stage/dev/console" c 5 1 2>/dev/null || true
  (cd "$stage" && find . -print0 | sort -z | cpio --null -o -H newc --quiet) | gzip -9 >"$OUT/initrd.gz.tmp"
  mv "$OUT/initrd.gz.tmp" "$OUT/initrd.gz"
  cp "$OUT/pkg/boot/vmlinuz-$kver" "$OUT/vmlinuz"
  rm -rf "$OUT/pkg" "$stage"
  {
    echo "# $want"
    echo "KERNEL=$OUT/vmlinuz"
    echo "INITRD=$OUT/initrd.gz"
    echo "KVER=$kver"
    echo "PKG=${deb##*/}"
  } >"$OUT/guest.env"
  say "done: $OUT/vmlinuz ($(du -h "$OUT/vmlinuz" | cut -f1)), $OUT/initrd.gz ($(du -h "$OUT/initrd.gz" | cut -f1)), kernel $kver"
}

main "$@"
