#!/usr/bin/env bash
# vuswitch host setup: Debian packages + 2 MiB hugepages.
#
# Idempotent: every step checks first and only acts when something is missing.
# Prints each step. Needs root. Tunables (environment):
#   VUSW_HUGEPAGES   number of 2 MiB pages to reserve (default 1024 = 2 GiB)
#   VUSW_SKIP_APT=1  do not touch packages (only check hugepages)
set -euo pipefail

HUGEPAGES_WANTED=${VUSW_HUGEPAGES:-1024}
HUGE_SYSFS=/sys/kernel/mm/hugepages/hugepages-2048kB
HUGE_MNT=/dev/hugepages

# Everything the build, the daemon, the tests and the benchmarks use.
PACKAGES=(
  # build
  g++ meson ninja-build pkg-config
  libdpdk-dev libboost-dev libboost-program-options-dev prometheus-cpp-dev doctest-dev nlohmann-json3-dev libfmt-dev
  libsystemd-dev
  # fuzzing: clang 14 cannot compile libstdc++ 12's std::expected; clang 16 can
  clang-16 libclang-rt-16-dev
  # runtime: DPDK (dpdk-dev ships dpdk-testpmd; the PMDs the tests load explicitly)
  dpdk dpdk-dev librte-net-virtio23 librte-net-vhost23 librte-net-af-packet23 librte-net-tap23
  librte-net-null23 librte-mempool-ring23
  # tests and scripts
  iproute2 curl python3 procps util-linux coreutils file gzip
  qemu-system-x86 busybox-static cpio
  # tests/system/prometheus.sh and tests/system/monitoring_config.sh: a real Prometheus
  # server scraping vuswitchd, promtool for the deploy/prometheus config and alert rules
  # (run privately; the prometheus system service is never started), systemd-analyze
  prometheus systemd
  # tests/system/cni.sh and k8s_manifests.sh: deploy/k8s's YAML
  python3-yaml
  # tests/vm: tools copied with their libraries into the guest initramfs
  ethtool iperf3
  # tests/system/vxlan.sh: ping across the tunnel
  iputils-ping
  # perf/run.sh: OVS-DPDK reference (run privately, never as the system service), the
  # NIC -> guest traffic source (net_pcap infinite_rx), the plot
  openvswitch-switch-dpdk librte-net-pcap23 python3-matplotlib
)

step() { printf '[setup] %s\n' "$*"; }
die()  { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

if [[ $(id -u) -ne 0 ]]; then
  die "must run as root (installs packages, reserves hugepages, mounts hugetlbfs); try: sudo $0"
fi

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
      missing+=("$p")
    fi
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    step "packages: all ${#PACKAGES[@]} present"
    return
  fi
  step "packages: missing ${missing[*]}"
  command -v apt-get >/dev/null || die "apt-get not found: this script targets Debian 12"
  export DEBIAN_FRONTEND=noninteractive
  step "apt-get update"
  apt-get update -q
  step "apt-get install ${missing[*]}"
  # Package scripts must not start system services (openvswitch-switch would start
  # ovsdb-server and ovs-vswitchd in /run/openvswitch): a temporary policy-rc.d denies
  # them, unless the host already has its own policy.
  local policy=/usr/sbin/policy-rc.d temp_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && temp_policy=1
  fi
  local rc=0
  apt-get install -y -q "${missing[@]}" || rc=$?
  ((temp_policy)) && rm -f "$policy"
  ((rc == 0)) || die "apt-get install failed (exit $rc)"
}

reserve_hugepages() {
  [[ -d $HUGE_SYSFS ]] || die "kernel has no 2 MiB hugepage support ($HUGE_SYSFS missing)"
  local have
  have=$(<"$HUGE_SYSFS/nr_hugepages")
  if (( have >= HUGEPAGES_WANTED )); then
    step "hugepages: $have x 2 MiB reserved (wanted $HUGEPAGES_WANTED)"
    return
  fi
  step "hugepages: $have reserved, asking the kernel for $HUGEPAGES_WANTED x 2 MiB"
  # Compacting first makes large contiguous pages easier to find on a busy host.
  echo 1 >/proc/sys/vm/compact_memory 2>/dev/null || true
  echo "$HUGEPAGES_WANTED" >"$HUGE_SYSFS/nr_hugepages" \
    || die "cannot write $HUGE_SYSFS/nr_hugepages (container without privileges?)"
  have=$(<"$HUGE_SYSFS/nr_hugepages")
  if (( have == 0 )); then
    die "kernel granted 0 hugepages (not enough free contiguous memory, or hugepages disabled); DPDK needs them — free memory or boot with hugepages=$HUGEPAGES_WANTED"
  fi
  if (( have < HUGEPAGES_WANTED )); then
    step "hugepages: WARNING kernel granted only $have of $HUGEPAGES_WANTED pages ($((have * 2)) MiB); continuing"
  else
    step "hugepages: kernel granted $have x 2 MiB"
  fi
}

mount_hugetlbfs() {
  if findmnt -n -t hugetlbfs "$HUGE_MNT" >/dev/null 2>&1; then
    step "hugetlbfs: already mounted at $HUGE_MNT"
    return
  fi
  step "hugetlbfs: mounting at $HUGE_MNT"
  mkdir -p "$HUGE_MNT"
  mount -t hugetlbfs -o pagesize=2M nodev "$HUGE_MNT" || die "mount -t hugetlbfs $HUGE_MNT failed"
}

if [[ ${VUSW_SKIP_APT:-0} == 1 ]]; then
  step "packages: skipped (VUSW_SKIP_APT=1)"
else
  install_packages
fi
reserve_hugepages
mount_hugetlbfs
step "done: $(grep -E '^HugePages_(Total|Free)' /proc/meminfo | tr -s ' ' | paste -sd' ')"
