// A hostile guest on port x writes bad descriptors into its own rings. The
// back-end must bound every walk (design.md "Dataplane": chain length <= ring
// size, no nested indirect, indirect length multiple of 16, no length
// overflow, whole-range translation): the queue is marked broken or the frame
// dropped, counted, and ports a <-> b keep switching. Each case uses a fresh
// guest connection on x against one daemon.
#include <doctest/doctest.h>

#include <cstring>
#include <functional>

#include "fixture.h"

namespace vusw::it {
namespace {

using std::chrono::milliseconds;
constexpr uint64_t kOutside = 0x7fff00000000;  // far from any fake guest region

using Attack = std::function<void(FakeFrontend& x, FakeFrontend& a)>;
struct Case {
  const char* name;
  Attack attack;
};

// A fresh guest on x that has exchanged frames with a (so the switch knows its MAC).
std::unique_ptr<FakeFrontend> fresh_x(Bench& bench) {
  CHECK(wait_until([&] { return bench.port("x").value("state", "") == "waiting"; }, milliseconds(2000)));
  auto x = attach(bench.d, "x");
  REQUIRE(x);
  REQUIRE(pair_switches(*x, kMacX, *bench.a, kMacA));
  return x;
}

void run_cases(Bench& bench, std::span<const Case> cases) {
  for (const Case& c : cases) {
    CAPTURE(c.name);
    auto x = fresh_x(bench);
    uint64_t faults = bench.guest_faults("x");
    c.attack(*x, *bench.a);
    CHECK_MESSAGE(wait_until([&] { return bench.guest_faults("x") > faults; }, milliseconds(2000)),
                  "no broken queue or drop counted on x: " << bench.port("x").dump());
    CHECK(bench.d.alive());
    CHECK(bench.healthy());
  }
}

// Publishes a hand-made TX head d0 = 200 (free: pair_switches reclaimed all).
// `build` writes the descriptors; the slot of d0 holds a valid 64 B frame and
// its second KiB is room for an indirect table.
Attack tx_attack(std::function<void(SplitRing&, uint16_t d0, uint64_t s0, VringDesc* table)> build) {
  return [build](FakeFrontend& x, FakeFrontend&) {
    SplitRing& tx = x.split(kTxRing);
    // The switch publishes TX completions after it forwarded the burst, so the last
    // ones can trail the frames the peer already received: wait for them.
    REQUIRE(wait_until([&] { x.reclaim_tx(); return tx.num_free() == tx.size(); }, std::chrono::milliseconds(2000)));
    const uint16_t d0 = 200;
    std::memcpy(tx.slot(d0), make_frame(kMacA, kMacX, 0, 64).data(), 64);
    build(tx, d0, tx.slot_gpa(d0), reinterpret_cast<VringDesc*>(tx.slot(d0) + 1024));
    tx.publish_raw(d0);
    x.kick(kTxRing);
  };
}

// Sends a few frames from a to x so the back-end takes x's RX buffers.
void send_to_x(FakeFrontend& a) {
  for (uint32_t i = 0; i < 4; ++i) a.send_frame(make_frame(kMacX, kMacA, i, 64), TxLayout::Single);
  a.kick(kTxRing);
}

// Rewrites every RX descriptor: all are posted, so the device finds them next
// (a guest racing the device could do the same).
Attack rx_attack(std::function<void(SplitRing&, uint16_t i)> spoil) {
  return [spoil](FakeFrontend& x, FakeFrontend& a) {
    for (uint16_t i = 0; i < x.rx().size(); ++i) spoil(x.split(kRxRing), i);
    send_to_x(a);
  };
}

}  // namespace

TEST_CASE("hostile TX descriptors break only that queue") {
  Bench bench;
  const Case cases[] = {
      {"looping chain", tx_attack([](SplitRing& tx, uint16_t d0, uint64_t s0, VringDesc*) {
         tx.desc(d0) = {s0, 64, kDescFNext, uint16_t(d0 + 1)};
         tx.desc(d0 + 1) = {s0, 64, kDescFNext, d0};
       })},
      {"self loop", tx_attack([](SplitRing& tx, uint16_t d0, uint64_t s0, VringDesc*) {
         tx.desc(d0) = {s0, 64, kDescFNext, d0};
       })},
      {"next index out of range", tx_attack([](SplitRing& tx, uint16_t d0, uint64_t s0, VringDesc*) {
         tx.desc(d0) = {s0, 64, kDescFNext, 60000};
       })},
      {"address outside guest memory", tx_attack([](SplitRing& tx, uint16_t d0, uint64_t, VringDesc*) {
         tx.desc(d0) = {kOutside, 64, 0, 0};
       })},
      {"buffer straddles the region end",
       [](FakeFrontend& x, FakeFrontend& a) {
         const uint64_t end = x.main_region().gpa() + x.main_region().size();
         tx_attack([end](SplitRing& tx, uint16_t d0, uint64_t, VringDesc*) { tx.desc(d0) = {end - 16, 64, 0, 0}; })(x, a);
       }},
      {"zero-length descriptor", tx_attack([](SplitRing& tx, uint16_t d0, uint64_t s0, VringDesc*) {
         tx.desc(d0) = {s0, 0, 0, 0};
       })},
      {"addr + len wraps", tx_attack([](SplitRing& tx, uint16_t d0, uint64_t, VringDesc*) {
         tx.desc(d0) = {~0ull - 63, 4096, 0, 0};
       })},
      {"len close to 4 GiB", tx_attack([](SplitRing& tx, uint16_t d0, uint64_t s0, VringDesc*) {
         tx.desc(d0) = {s0, 0xffffffffu, 0, 0};
       })},
      {"indirect table length not a multiple of 16",
       tx_attack([](SplitRing& tx, uint16_t d0, uint64_t s0, VringDesc* t) {
         t[0] = {s0, 64, 0, 0};
         tx.desc(d0) = {s0 + 1024, 24, kDescFIndirect, 0};
       })},
      {"nested indirect", tx_attack([](SplitRing& tx, uint16_t d0, uint64_t s0, VringDesc* t) {
         t[0] = {s0 + 1024, 16, kDescFIndirect, 0};
         tx.desc(d0) = {s0 + 1024, 16, kDescFIndirect, 0};
       })},
      {"indirect table loops", tx_attack([](SplitRing& tx, uint16_t d0, uint64_t s0, VringDesc* t) {
         t[0] = {s0, 64, kDescFNext, 1};
         t[1] = {s0, 64, kDescFNext, 0};
         tx.desc(d0) = {s0 + 1024, 32, kDescFIndirect, 0};
       })},
      {"indirect table outside guest memory", tx_attack([](SplitRing& tx, uint16_t d0, uint64_t, VringDesc*) {
         tx.desc(d0) = {kOutside, 32, kDescFIndirect, 0};
       })},
  };
  run_cases(bench, cases);
  finish(bench.d);
}

TEST_CASE("hostile RX buffers and avail index jumps break only that queue") {
  Bench bench;
  auto jump = [](SplitRing& ring) {
    ring.set_avail_idx_raw(static_cast<uint16_t>(ring.avail_idx() + ring.size() + 5));
  };
  const Case cases[] = {
      {"RX buffer outside guest memory",
       rx_attack([](SplitRing& rx, uint16_t i) { rx.desc(i) = {kOutside, 2048, kDescFWrite, 0}; })},
      {"RX buffer not device-writable", rx_attack([](SplitRing& rx, uint16_t i) { rx.desc(i).flags = 0; })},
      {"RX chain loops", rx_attack([](SplitRing& rx, uint16_t i) {
         rx.desc(i) = {rx.slot_gpa(i), 16, uint16_t(kDescFWrite | kDescFNext), i};
       })},
      {"TX avail index jumps past the ring size",
       [&](FakeFrontend& x, FakeFrontend&) {
         jump(x.split(kTxRing));
         x.kick(kTxRing);
       }},
      {"RX avail index jumps past the ring size",
       [&](FakeFrontend& x, FakeFrontend& a) {
         jump(x.split(kRxRing));
         x.kick(kRxRing);
         send_to_x(a);
       }},
  };
  run_cases(bench, cases);
  finish(bench.d);
}

// The show_port state of ring `ring` of x's first queue pair ("broken (avail_idx_jump)", "enabled", ...).
std::string ring_state(const Daemon& d, uint32_t ring) {
  auto r = d.ctl({{"cmd", "show_port"}, {"port", "x"}});
  if (!r || !r->contains("port") || (*r)["port"]["queues"].empty()) return "no queue in " + (r ? r->dump() : "no reply");
  return (*r)["port"]["queues"][0][ring == kRxRing ? "rx" : "tx"].value("state", "?");
}

TEST_CASE("an avail index more than a ring ahead is counted as avail_idx_jump; the queue recovers when the front-end sets it up again") {
  Bench bench;
  for (uint32_t ring : {kTxRing, kRxRing}) {
    CAPTURE(ring);
    auto x = fresh_x(bench);
    const nlohmann::json before = bench.port("x");
    SplitRing& r = x->split(ring);
    r.set_avail_idx_raw(static_cast<uint16_t>(r.avail_idx() + r.size() + 1));  // one more than a ring ahead
    x->kick(ring);
    if (ring == kRxRing) send_to_x(*bench.a);
    CHECK_MESSAGE(wait_until([&] { return broken(bench.port("x"), "avail_idx_jump") == broken(before, "avail_idx_jump") + 1; },
                             milliseconds(2000)),
                  "x: " << bench.port("x").dump());
    CHECK(json_u64(bench.port("x"), "broken_queues") == json_u64(before, "broken_queues") + 1);
    CHECK(ring_state(bench.d, ring) == "broken (avail_idx_jump)");
    // Broken means stopped: x's frames do not get through (TX), frames for x are dropped (RX).
    if (ring == kTxRing) {
      REQUIRE(x->send_frame(make_frame(kMacA, kMacX, 0, 64), TxLayout::Single));
      x->kick(kTxRing);
      CHECK(bench.a->wait_rx(1, milliseconds(300)).empty());
    } else {
      CHECK(x->wait_rx(1, milliseconds(300)).empty());
    }
    CHECK(bench.healthy());

    // GET_VRING_BASE, a fresh ring, SET_VRING_* and a kick: traffic flows again both ways,
    // the fault is gone from the queue and counted once.
    REQUIRE(x->reset_ring(ring));
    CHECK(pair_switches(*x, kMacX, *bench.a, kMacA, 64));
    CHECK(ring_state(bench.d, ring) == "enabled");
    CHECK(broken(bench.port("x"), "avail_idx_jump") == broken(before, "avail_idx_jump") + 1);
    CHECK(x->rx_errors() == 0);
  }
  finish(bench.d);
}

}  // namespace vusw::it
