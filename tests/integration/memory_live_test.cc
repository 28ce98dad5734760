// Live guest-memory changes (design.md "Guest memory"): regions added and
// removed while traffic flows, buffers in hot-added regions and across two
// GPA-adjacent regions, rings whose region is removed, ring stop/restart with
// GET_VRING_BASE, and the used-buffer notification a guest without polling
// depends on.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "fixture.h"

namespace vusw::it {
namespace {

using std::chrono::milliseconds;
constexpr uint64_t kGpa = 0x100000000;
constexpr uint64_t kSmall = 64 * 1024;

// One frame from x lands at a intact (with seq `seq`), within a second.
bool arrives_at_a(FakeFrontend& a, uint32_t seq) {
  auto got = a.wait_rx(1, milliseconds(1000));
  uint32_t s = ~0u;
  return got.size() == 1 && check_frame(got[0], kMacA, kMacX, s) && s == seq;
}

uint64_t counter(const Daemon& d, const std::string& port, const char* key) {
  return json_u64(d.port(port), key);
}

}  // namespace

TEST_CASE("TX buffers in hot-added regions, also spanning two adjacent regions") {
  Bench bench;
  auto x = attach(bench.d, "x");
  REQUIRE(x);
  REQUIRE(pair_switches(*x, kMacX, *bench.a, kMacA));
  MemRegion& r1 = x->mem().add(kGpa, kSmall);
  MemRegion& r2 = x->mem().add(kGpa + kSmall, kSmall);
  REQUIRE(x->add_mem_reg(r1).ok());
  REQUIRE(x->add_mem_reg(r2).ok());
  const std::pair<const char*, uint64_t> places[] = {
      {"first added region", kGpa + 100},
      {"second added region", kGpa + kSmall + 100},
      {"spanning both", kGpa + kSmall - 700},
  };
  uint32_t seq = 0;
  for (const auto& [name, gpa] : places) {
    CAPTURE(name);
    REQUIRE(x->send_frame_at(make_frame(kMacA, kMacX, seq, 1500), gpa));
    x->kick(kTxRing);
    CHECK(arrives_at_a(*bench.a, seq++));
  }
  // After REM_MEM_REG the same address is no longer guest memory for the daemon.
  uint64_t faults = bench.guest_faults("x");
  REQUIRE(x->rem_mem_reg(r2).ok());
  REQUIRE(x->send_frame_at(make_frame(kMacA, kMacX, seq, 1500), kGpa + kSmall + 100));
  x->kick(kTxRing);
  CHECK(bench.a->wait_rx(1, milliseconds(500)).empty());
  CHECK(wait_until([&] { return bench.guest_faults("x") > faults; }, milliseconds(2000)));
  CHECK(bench.healthy());
  finish(bench.d);
}

TEST_CASE("adding and removing regions under traffic loses nothing") {
  Bench bench;
  auto x = attach(bench.d, "x");
  REQUIRE(x);
  REQUIRE(pair_switches(*x, kMacX, *bench.a, kMacA));
  uint64_t x_rx = counter(bench.d, "x", "rx_packets"), x_tx = counter(bench.d, "x", "tx_packets");
  uint64_t x_drops = json_sum(bench.port("x"), "drops");  // flood copies before x came up

  // The churn thread owns the socket; the main thread owns the rings.
  std::atomic<bool> done{false};
  std::atomic<uint32_t> cycles{0}, failures{0};
  std::thread churn([&] {
    for (uint64_t i = 0; !done; ++i) {
      MemRegion r(kGpa + (i % 8) * kSmall, kSmall);
      failures += x->add_mem_reg(r).ok() ? 0 : 1;
      failures += x->rem_mem_reg(r).ok() ? 0 : 1;
      ++cycles;
    }
  });
  // Rounds of traffic until the churn has done at least 20 cycles under it (how many
  // fit in one round depends on the relative speed of the switch and the churn).
  constexpr uint32_t kN = 3000;
  uint32_t rounds = 0;
  do {
    PumpResult r = pump({Flow{x.get(), bench.a.get(), kMacX, kMacA, 1200, TxLayout::Chained, kN},
                         Flow{bench.a.get(), x.get(), kMacA, kMacX, 1200, TxLayout::Single, kN}});
    ++rounds;
    INFO(r.summary() << "; round " << rounds << "; memory cycles " << cycles.load());
    REQUIRE(r.completed);
    CHECK(r.flows[0].corrupt == 0);
    CHECK(r.flows[1].corrupt == 0);
  } while (cycles < 20 && rounds < 50);
  done = true;
  churn.join();
  CHECK(cycles >= 20);
  CHECK(failures == 0);
  CHECK(x->anomalies().empty());
  CHECK(bench.regions("x") == 1);
  CHECK(wait_until([&] { return counter(bench.d, "x", "rx_packets") == x_rx + rounds * kN; }, milliseconds(2000)));
  CHECK(counter(bench.d, "x", "tx_packets") == x_tx + rounds * kN);
  CHECK(json_sum(bench.port("x"), "drops") == x_drops);
  finish(bench.d);
}

TEST_CASE("removing the region that holds the rings breaks them until new addresses come") {
  Bench bench;
  auto x = attach(bench.d, "x");
  REQUIRE(x);
  REQUIRE(pair_switches(*x, kMacX, *bench.a, kMacA));
  uint64_t faults = bench.guest_faults("x");

  // Legal request: the daemon must stop using those rings, never touch the unmapped memory.
  CHECK(x->rem_mem_reg(x->main_region()).ok());
  CHECK(bench.regions("x") == 0);
  REQUIRE(x->send_frame(make_frame(kMacA, kMacX, 0, 64), TxLayout::Single));
  x->kick(kTxRing);
  CHECK(bench.a->wait_rx(1, milliseconds(500)).empty());
  CHECK(wait_until([&] { return bench.guest_faults("x") > faults; }, milliseconds(2000)));
  CHECK(bench.d.alive());
  CHECK(bench.healthy());

  // QEMU's way back: memory first, then the rings again (the pending frame goes out).
  REQUIRE(x->add_mem_reg(x->main_region()).ok());
  CHECK(x->start_ring(kRxRing));
  CHECK(x->start_ring(kTxRing));
  x->kick(kTxRing);
  CHECK(arrives_at_a(*bench.a, 0));
  CHECK(pair_switches(*x, kMacX, *bench.a, kMacA));
  finish(bench.d);
}

TEST_CASE("GET_VRING_BASE stops a ring; SET_VRING_* restarts it where it stopped") {
  Bench bench;
  auto x = attach(bench.d, "x");
  REQUIRE(x);
  REQUIRE(pair_switches(*x, kMacX, *bench.a, kMacA, 10));
  auto base = x->get_vring_base(kTxRing);
  REQUIRE(base);
  CHECK(base->index == kTxRing);
  CHECK(base->num == x->split(kTxRing).avail_idx());  // 10 frames: all consumed
  CHECK(x->split(kTxRing).avail_idx() == 10);

  REQUIRE(x->send_frame(make_frame(kMacA, kMacX, 0, 64), TxLayout::Single));
  x->kick(kTxRing);
  CHECK_MESSAGE(bench.a->wait_rx(1, milliseconds(500)).empty(), "a stopped ring was still processed");
  CHECK(x->start_ring(kTxRing));
  x->kick(kTxRing);
  CHECK(arrives_at_a(*bench.a, 0));
  CHECK(bench.healthy());
  finish(bench.d);
}

TEST_CASE("frames delivered to a guest signal its call eventfd") {
  Bench bench;
  while (bench.b->wait_call(kRxRing, milliseconds(0))) {
  }
  REQUIRE(bench.a->send_frame(make_frame(kMacB, kMacA, 0, 64), TxLayout::Single));
  bench.a->kick(kTxRing);
  CHECK(bench.b->wait_call(kRxRing, milliseconds(1000)));
  CHECK(bench.b->poll_rx().size() == 1);
  CHECK(bench.healthy());
  finish(bench.d);
}

}  // namespace vusw::it
