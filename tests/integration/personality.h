// Driver personalities: the ways real virtio-net drivers differ, so the fake
// front-end can play more than the two drivers vuswitch was tuned on (DPDK
// virtio-user with IN_ORDER, QEMU 7.2 Linux guests). A personality is a
// feature set (what FrontendOptions negotiates), a notification style (kicks;
// reading used entries only after the call eventfd fired, or polling) and a
// traffic style (burst sizes, TX buffers kept in flight, RX buffer layout,
// pauses between bursts).
//
// PersonalityPump drives two attached front-ends with their personalities
// against each other, single-threaded, in flows of numbered frames of mixed
// sizes: every frame is byte-compared and every flow must arrive complete, in
// order, without duplicates. It never lets more frames travel towards a guest
// than its posted RX buffers hold, so the switch has no reason to drop any.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "fake_frontend.h"
#include "traffic.h"

namespace vusw::it {

enum class RxBuffers { Single2K, Chain4x512, Mergeable1K };

struct Personality {
  // Feature set.
  bool packed = false;
  bool event_idx = false;
  bool in_order = false;
  bool mrg_rxbuf = true;
  bool indirect = true;
  bool version1 = true;   // false: legacy device (split ring, no IN_ORDER)
  uint16_t queue_pairs = 1;
  // Notification style.
  Kicks kicks = Kicks::Always;
  bool interrupts = false;  // reclaim only after the ring's call eventfd fired; else poll, interrupts off
  // Traffic style.
  uint16_t burst = 32;        // frames per burst at most (each burst picks 1..burst)
  uint16_t tx_in_flight = 256;  // TX buffers outstanding per queue at most
  RxBuffers rx = RxBuffers::Single2K;
  bool pauses = false;        // sleeps 0..2 ms between some bursts

  FrontendOptions options() const;
  // Frames one RX queue of this driver holds at once (worst case: 1514 B frames).
  uint32_t rx_capacity() const;
  // One line, e.g. "packed evidx !inorder mrg ... kicks=asked irq burst=16 inflight=8 rx=4x512 pauses".
  std::string describe() const;
};

// `n` personalities in which each value of each dimension appears about equally
// often (each column a shuffled balanced list), then repaired by swaps so every
// one is valid: legacy drivers use split rings without IN_ORDER, 1 KiB RX buffers
// need MRG_RXBUF.
std::vector<Personality> sample_personalities(std::mt19937_64& rng, size_t n);
// How often each value of each dimension appears in `ps` ("packed 0:12 1:12, ...").
std::string coverage(const std::vector<Personality>& ps);

// One guest of a pump: its front-end, personality and flows (one per source MAC).
struct PumpSide {
  FakeFrontend* fe;
  Personality p;
  std::vector<Mac> macs;  // its flows' source MACs; flow k goes out on TX queue k % queue_pairs
};

struct SideResult {
  uint64_t sent = 0, sent_bytes = 0;          // frames and Ethernet bytes this side sent
  uint64_t received = 0, received_bytes = 0;  // ... and received intact, in order
  uint64_t corrupt = 0, reordered = 0, stray = 0;
  uint64_t kicks = 0, calls = 0;
  uint64_t lost_calls = 0;  // interrupt-driven: used entries pending, no call, nothing moving
  uint32_t rx_queues = 0;   // bit q: frames arrived on RX queue q
  std::string summary() const;
};

struct PersonalityRun {
  bool completed = false;  // every flow of both sides delivered `frames`
  SideResult side[2];
  std::string summary() const { return "a: " + side[0].summary() + "; b: " + side[1].summary(); }
};

// Sends `frames` frames each way (spread over each side's flows), sizes 60..1514,
// TX layouts single/chained/indirect at random; stops when done or when nothing
// moved for `stall`.
PersonalityRun pump_personalities(PumpSide a, PumpSide b, uint32_t frames, std::mt19937_64& rng,
                                  std::chrono::milliseconds stall = std::chrono::milliseconds(3000));

}  // namespace vusw::it
