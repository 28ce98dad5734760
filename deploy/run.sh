#!/usr/bin/env bash
# Set up the host, build vuswitch and run vuswitchd in the foreground. As root:
#
#   deploy/run.sh              embedded default: RUN_DIR=/run/vuswitch, two vhost-user
#                              server sockets vhost0.sock and vhost1.sock, no NIC
#   deploy/run.sh ARGS...      any vuswitchd flags instead (see vuswitchd --help)
#
# Stop it with Ctrl-C (SIGINT) or SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/setup.sh
if [[ ! -f build/build.ninja ]]; then
  echo "[run] meson setup build"
  meson setup build --buildtype=debugoptimized
fi
echo "[run] ninja -C build"
ninja -C build

RUN_DIR=/run/vuswitch
mkdir -p "$RUN_DIR"
cat <<MSG

[run] starting vuswitchd; once it logs "vuswitchd: ready" attach guests
      (socket paths below are the embedded default's; adjust them if you passed flags):

  QEMU guest on vhost0 (guest RAM must be a shared memfd; add your disk/kernel options):
    qemu-system-x86_64 -m 1G -object memory-backend-memfd,id=mem,size=1G,share=on -numa node,memdev=mem -chardev socket,id=c0,path=$RUN_DIR/vhost0.sock -netdev vhost-user,id=n0,chardev=c0 -device virtio-net-pci,netdev=n0
  (second guest: path=$RUN_DIR/vhost1.sock and its own mac=... on -device;
   under TCG add vectors=0 to -device virtio-net-pci, see README)

  DPDK testpmd as a virtio-user guest on vhost1 (runs on core 0; the switch polls on core 1):
    dpdk-testpmd --lcores 0@0,1@0 --no-pci --single-file-segments --iova-mode=va --file-prefix guest1 -m 512 --vdev net_virtio_user0,path=$RUN_DIR/vhost1.sock,mac=02:00:00:00:00:02 -- -i

  Ports and counters:   build/control/vuswitchctl show ports
  Prometheus metrics:   curl -s http://127.0.0.1:9750/metrics

MSG
exec build/control/vuswitchd "$@"
