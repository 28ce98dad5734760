// A hostile guest on port x writes bad descriptors into its own rings. The
// back-end must bound every walk (design.md "Dataplane": chain length <= ring
// size, no nested indirect, indirect length multiple of 16, no length
// overflow, whole-range translation): the queue is marked broken or the frame
// dropped, counted, and ports a <-> b keep switching.
#include <doctest/doctest.h>

#include <cstring>

#include "fixture.h"

namespace vusw::it {
namespace {

using std::chrono::milliseconds;

// Space for a hand-made indirect table: the second KiB of descriptor d's slot.
VringDesc* indirect_table(SplitRing& ring, uint16_t d) {
  return reinterpret_cast<VringDesc*>(ring.slot(d) + 1024);
}

}  // namespace

TEST_CASE("hostile TX descriptors break only that queue") {
  Bench bench;
  auto x = attach(bench.d, "x");
  REQUIRE(x);
  REQUIRE(pair_switches(*x, kMacX, *bench.a, kMacA));
  uint64_t faults = bench.guest_faults("x");
  SplitRing& tx = x->tx();
  // Descriptors 200..203 are free: pair_switches reclaimed everything it posted.
  REQUIRE(tx.num_free() == tx.size());
  const uint16_t d0 = 200, d1 = 201;
  const uint64_t s0 = tx.slot_gpa(d0);
  std::memcpy(tx.slot(d0), make_frame(kMacA, kMacX, 0, 64).data(), 64);

  SUBCASE("looping chain") {
    tx.desc(d0) = {s0, 64, kDescFNext, d1};
    tx.desc(d1) = {s0, 64, kDescFNext, d0};
  }
  SUBCASE("self loop") { tx.desc(d0) = {s0, 64, kDescFNext, d0}; }
  SUBCASE("next index out of range") { tx.desc(d0) = {s0, 64, kDescFNext, 60000}; }
  SUBCASE("address outside guest memory") { tx.desc(d0) = {0x7fff00000000, 64, 0, 0}; }
  SUBCASE("buffer straddles the region end") {
    const MemRegion& r = x->main_region();
    tx.desc(d0) = {r.gpa() + r.size() - 16, 64, 0, 0};
  }
  SUBCASE("zero-length descriptor") { tx.desc(d0) = {s0, 0, 0, 0}; }
  SUBCASE("addr + len wraps") { tx.desc(d0) = {~0ull - 63, 4096, 0, 0}; }
  SUBCASE("len close to 4 GiB") { tx.desc(d0) = {s0, 0xffffffffu, 0, 0}; }
  SUBCASE("indirect table length not a multiple of 16") {
    VringDesc* t = indirect_table(tx, d0);
    t[0] = {s0, 64, 0, 0};
    tx.desc(d0) = {s0 + 1024, 24, kDescFIndirect, 0};
  }
  SUBCASE("nested indirect") {
    VringDesc* t = indirect_table(tx, d0);
    t[0] = {s0 + 1024, 16, kDescFIndirect, 0};
    tx.desc(d0) = {s0 + 1024, 16, kDescFIndirect, 0};
  }
  SUBCASE("indirect table loops") {
    VringDesc* t = indirect_table(tx, d0);
    t[0] = {s0, 64, kDescFNext, 1};
    t[1] = {s0, 64, kDescFNext, 0};
    tx.desc(d0) = {s0 + 1024, 32, kDescFIndirect, 0};
  }
  SUBCASE("indirect table outside guest memory") {
    tx.desc(d0) = {0x7fff00000000, 32, kDescFIndirect, 0};
  }

  tx.publish_raw(d0);
  x->kick(kTxRing);
  CHECK_MESSAGE(wait_until([&] { return bench.guest_faults("x") > faults; }, milliseconds(2000)),
                "no broken queue or drop counted on x");
  CHECK(bench.d.alive());
  CHECK(bench.healthy());
  finish(bench.d);
}

TEST_CASE("avail index jumping more than the ring size ahead breaks the queue") {
  Bench bench;
  auto x = attach(bench.d, "x");
  REQUIRE(x);
  REQUIRE(pair_switches(*x, kMacX, *bench.a, kMacA));
  uint64_t faults = bench.guest_faults("x");
  auto jump = [](SplitRing& ring) {
    ring.set_avail_idx_raw(static_cast<uint16_t>(ring.avail_idx() + ring.size() + 5));
  };
  SUBCASE("TX ring") {
    jump(x->tx());
    x->kick(kTxRing);
  }
  SUBCASE("RX ring") {
    jump(x->rx());
    x->kick(kRxRing);
    // Traffic towards x makes the back-end take RX buffers.
    for (uint32_t i = 0; i < 4; ++i) bench.a->send_frame(make_frame(kMacX, kMacA, i, 64), TxLayout::Single);
    bench.a->kick(kTxRing);
  }
  CHECK_MESSAGE(wait_until([&] { return bench.guest_faults("x") > faults; }, milliseconds(2000)),
                "no broken queue or drop counted on x");
  CHECK(bench.d.alive());
  CHECK(bench.healthy());
  finish(bench.d);
}

TEST_CASE("hostile RX buffers break only that queue") {
  Bench bench;
  auto x = attach(bench.d, "x");
  REQUIRE(x);
  REQUIRE(pair_switches(*x, kMacX, *bench.a, kMacA));
  uint64_t faults = bench.guest_faults("x");
  SplitRing& rx = x->rx();
  // Every RX descriptor is posted, so rewriting them all changes what the
  // device finds next (a guest racing the device could do the same).
  SUBCASE("RX buffer outside guest memory") {
    for (uint16_t i = 0; i < rx.size(); ++i) rx.desc(i) = {0x7fff00000000, 2048, kDescFWrite, 0};
  }
  SUBCASE("RX buffer not writable") {
    for (uint16_t i = 0; i < rx.size(); ++i) rx.desc(i).flags = 0;
  }
  SUBCASE("RX chain loops") {
    for (uint16_t i = 0; i < rx.size(); ++i)
      rx.desc(i) = {rx.slot_gpa(i), 16, uint16_t(kDescFWrite | kDescFNext), i};
  }
  for (uint32_t i = 0; i < 4; ++i) bench.a->send_frame(make_frame(kMacX, kMacA, i, 64), TxLayout::Single);
  bench.a->kick(kTxRing);
  CHECK_MESSAGE(wait_until([&] { return bench.guest_faults("x") > faults; }, milliseconds(2000)),
                "no broken queue or drop counted on x");
  CHECK(x->poll_rx().empty());
  CHECK(bench.d.alive());
  CHECK(bench.healthy());
  finish(bench.d);
}

}  // namespace vusw::it
