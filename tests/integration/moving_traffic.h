// Traffic between two fake guests while one of them keeps moving its packet
// buffers to new memory regions, the way a guest does across memory hotplug:
// QEMU sends ADD_MEM_REG for the new region, the guest starts placing TX and RX
// buffers there, and only once no buffer of the old region is in use any more
// does QEMU send REM_MEM_REG for it. The rings stay in the main region.
//
// Two threads: the traffic thread (run()) owns both guests' rings and buffers;
// the control thread (relayout(), stop()) owns the moving guest's socket and
// its extra regions. They meet through a few atomics only.
//
// Buffers of the moving side live in the current region at one 2 KiB slot per
// descriptor (TX descriptors first, then RX descriptors); before the first
// region they use the rings' own slots in the main region. The other side
// always uses its rings' slots. Used by hotplug_proof_test.cc and by
// perf/hotplug_bench.cc.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "traffic.h"

namespace vusw::it {

struct MovingTrafficOptions {
  // Frame sizes (without the virtio-net header), used round-robin by sequence number.
  std::vector<size_t> sizes = {60, 128, 511, 512, 777, 1024, 1514};
  // Odd sequence numbers go out as header + frame in two descriptors, even ones in one.
  bool mix_layouts = true;
  // Byte-compare every frame (else only addresses, length and sequence number).
  bool verify = true;
  // RX buffers each guest keeps posted; frames in flight per direction (must stay
  // below rx_posted so the switch never runs out of RX buffers and never drops).
  uint32_t rx_posted = 64;
  uint32_t window = 32;
  // Set VRING_AVAIL_F_NO_INTERRUPT on both guests' rings (a polling guest).
  bool no_interrupt = false;
  // Idle iterations yield the CPU (the test shares core 0 with the daemon's control thread).
  bool yield_when_idle = true;
  // Back the moved-into regions with 2 MiB hugetlbfs pages (as production guests do)
  // instead of 4 KiB shmem pages.
  bool hugepage_regions = false;
  uint64_t region_gpa = 0x200000000;  // regions alternate between this and the next slot
  std::chrono::milliseconds stall = std::chrono::milliseconds(3000);
  std::chrono::milliseconds drain_timeout = std::chrono::milliseconds(5000);
};

class MovingTraffic {
 public:
  // `mover` moves its buffers; both guests are brought up and have learned each
  // other's MAC (pair_switches) before.
  MovingTraffic(FakeFrontend& mover, const Mac& mover_mac, FakeFrontend& peer, const Mac& peer_mac,
                MovingTrafficOptions opt = {});
  ~MovingTraffic();

  // ---- traffic thread ----
  // Sends both ways until stop(), then until every frame sent has arrived or
  // nothing moved for opt.stall.
  void run();

  // ---- control thread ----
  // One re-layout: ADD_MEM_REG a new region, wait until the traffic thread has
  // TX and RX buffers in it and none left in the previous extra region, then
  // REM_MEM_REG that one. False with error() set on any failure.
  bool relayout();
  // Last step: buffers back into the main region, REM_MEM_REG the extra region.
  bool back_to_main();
  void stop() { stop_.store(true, std::memory_order_release); }
  const std::string& error() const { return error_; }
  // Time spent in the two memory messages of each relayout() (ack round trips).
  double mem_msg_seconds() const { return mem_msg_seconds_; }
  int generations() const { return next_gen_; }

  // ---- results (read after run() returned; delivered() at any time) ----
  uint64_t delivered() const { return delivered_.load(std::memory_order_relaxed); }
  struct Direction {
    uint64_t sent = 0, received = 0, corrupt = 0, rx_errors = 0;
    std::string first_corrupt;
    std::vector<int> sent_gen = std::vector<int>(4096, -1);  // buffer generation by seq (diagnostics)
  };
  const Direction& to_peer() const { return dir_[0]; }  // mover -> peer
  const Direction& to_mover() const { return dir_[1]; }  // peer -> mover
  bool stalled() const { return stalled_; }
  std::string summary() const;

 private:
  struct Side;
  struct Place {
    std::byte* host;
    uint64_t gpa;
    int gen;  // -1: the ring's own slot in the main region
  };
  Place tx_place(Side& s, uint16_t desc) const;
  Place rx_place(Side& s, uint16_t desc) const;
  // Posts one chain with buffers of generation `gen` and accounts for it: the
  // head's generation in `head_gen`, one more buffer in use and one more in
  // `posted` for that generation (none for -1). nullopt if the ring is full.
  std::optional<uint16_t> post(DriverRing& ring, std::span<const Seg> segs, int gen, std::vector<int>& head_gen,
                               std::vector<uint32_t>& posted);
  bool send_some(Side& s, Side& to, Direction& d);
  bool receive_some(Side& s, Side& from, Direction& d);
  bool reclaim_tx(Side& s);
  void refill_rx(Side& s);
  void follow_control();
  bool wait_retired(int gen);
  uint64_t region_gpa(int gen) const;
  uint64_t region_size() const;

  MovingTrafficOptions opt_;
  std::unique_ptr<Side> mover_, peer_;
  Direction dir_[2];
  std::vector<std::vector<std::byte>> templates_;  // per size, for !verify
  bool stalled_ = false;
  std::atomic<uint64_t> delivered_{0};
  std::atomic<bool> stop_{false};

  // Control -> traffic: the generation to place new buffers in (-1 = main region)
  // and where its region is. Traffic -> control: every generation below
  // `retired_` has no buffer in use and the current one has TX and RX buffers.
  std::atomic<int> current_{-1};
  std::atomic<std::byte*> host_[2] = {nullptr, nullptr};
  std::atomic<int> retired_{-1};
  int seen_ = -1;  // traffic thread's copy of current_
  std::vector<uint32_t> in_use_, posted_tx_, posted_rx_;  // by generation (traffic thread)

  // Control thread.
  int next_gen_ = 0;
  std::unique_ptr<MemRegion> region_;   // the current extra region (ADD_MEM_REG acked)
  std::unique_ptr<MemRegion> pending_;  // the one being moved into
  std::string error_;
  double mem_msg_seconds_ = 0;
};

}  // namespace vusw::it
