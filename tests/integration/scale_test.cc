// Scale of cycles (perf/scale.sh; skipped unless VUSW_SCALE is set: the default
// integration run covers the same paths at 100 connections and 1,000 re-layouts against
// the sanitized daemon): 1,000 guest lives (connect, negotiate, memory, rings,
// byte-checked frames both ways, disconnect) and 10,000 ADD_MEM_REG / REM_MEM_REG cycles
// on a guest whose traffic keeps flowing. Before and after each: the daemon's fds,
// mappings, RSS, DPDK heap and mbufs in use, printed and checked (ResourceBaseline).
// VUSW_SCALE_LIVES and VUSW_SCALE_MEM_CYCLES change the counts.
#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include "fixture.h"

namespace vusw::it {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr uint32_t kFramesPerLife = 8;

bool scale_run() { return env_long("VUSW_SCALE", 0) > 0; }

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// One guest life on port x: the whole bring-up, kFramesPerLife byte-checked frames
// each way with a, and the front-end gone.
bool guest_life(Bench& bench) {
  auto x = attach(bench.d, "x");
  return x && pair_switches(*x, kMacX, *bench.a, kMacA, kFramesPerLife);
}

bool port_idle(const Daemon& d, const std::string& name) {
  return wait_until(
      [&] {
        const std::string s = d.port(name).value("state", "");
        return s == "waiting" || s == "disconnected";
      },
      milliseconds(2000));
}

// One ADD_MEM_REG + REM_MEM_REG of a region no buffer uses (sizes 2, 4, 6 MiB in turn).
bool mem_cycle(FakeFrontend& x, uint32_t i) {
  const uint64_t gpa = 0x300000000;
  MemRegion& r = x.mem().add(gpa, (i % 3 + 1) * 2 * 1024 * 1024);
  const bool ok = x.add_mem_reg(r).ok() && x.rem_mem_reg(r).ok();
  x.mem().remove(gpa);
  return ok;
}

}  // namespace

TEST_CASE("scale: 1,000 guest lives: connect, negotiate, traffic, disconnect; nothing lost or leaked" *
          doctest::skip(!scale_run())) {
  const auto lives = static_cast<uint32_t>(env_long("VUSW_SCALE_LIVES", 1000));
  Bench bench;
  REQUIRE(guest_life(bench));  // warm-up: first-use allocations are not leaks
  REQUIRE(port_idle(bench.d, "x"));
  ResourceBaseline resources(bench.d);
  const nlohmann::json a0 = bench.port("a");
  uint32_t lost = 0, not_idle = 0;
  const auto t0 = Clock::now();
  for (uint32_t i = 1; i <= lives; ++i) {
    lost += guest_life(bench) ? 0 : 1;
    not_idle += port_idle(bench.d, "x") ? 0 : 1;
    if (i % 250 == 0) MESSAGE("scale: " << i << " lives in " << seconds_since(t0) << " s");
  }
  CHECK(lost == 0);
  CHECK(not_idle == 0);
  // Port a saw exactly the frames of every life, both ways.
  const nlohmann::json a1 = bench.port("a");
  CHECK(json_u64(a1, "rx_packets") - json_u64(a0, "rx_packets") == uint64_t(lives) * kFramesPerLife);
  CHECK(json_u64(a1, "tx_packets") - json_u64(a0, "tx_packets") == uint64_t(lives) * kFramesPerLife);
  CHECK(json_sum(a1, "drops") == 0);
  resources.wait_back();
  MESSAGE("scale: " << lives << " guest lives in " << seconds_since(t0) << " s; " << resources.report());
  resources.check();
  CHECK(bench.healthy());
  finish(bench.d);
}

TEST_CASE("scale: 10,000 ADD_MEM_REG/REM_MEM_REG cycles under traffic; nothing lost or leaked" *
          doctest::skip(!scale_run())) {
  const auto cycles = static_cast<uint32_t>(env_long("VUSW_SCALE_MEM_CYCLES", 10000));
  Bench bench({"x"});
  std::this_thread::sleep_for(milliseconds(300));  // the FDB clock's first tick
  auto x = attach(bench.d, "x");
  REQUIRE(x);
  REQUIRE(pair_switches(*x, kMacX, *bench.a, kMacA));
  REQUIRE(mem_cycle(*x, 0));  // warm-up
  std::this_thread::sleep_for(milliseconds(100));
  x->poll_rx();
  bench.a->poll_rx();
  ResourceBaseline resources(bench.d);
  const nlohmann::json x0 = bench.port("x"), a0 = bench.port("a");

  uint32_t failed = 0;
  const auto t0 = Clock::now();
  uint64_t xa = 0, ax = 0;
  {
    Background traffic(*x, kMacX, *bench.a, kMacA);
    for (uint32_t i = 1; i <= cycles && failed == 0; ++i) {
      failed += mem_cycle(*x, i) ? 0 : 1;
      if (i % 2500 == 0) MESSAGE("scale: " << i << " ADD/REM cycles in " << seconds_since(t0) << " s");
    }
    const MovingTraffic& t = traffic.finish();
    check_lossless(t);
    xa = t.to_peer().sent;
    ax = t.to_mover().sent;
    MESSAGE("scale: " << cycles << " ADD/REM cycles in " << seconds_since(t0) << " s; " << t.summary());
  }
  CHECK(failed == 0);
  CHECK(bench.regions("x") == 1);
  CHECK(bench.errors("x") == 0);
  // Exact counters: every frame of the traffic, once, on both ports.
  const nlohmann::json x1 = bench.port("x"), a1 = bench.port("a");
  CHECK(json_u64(x1, "rx_packets") - json_u64(x0, "rx_packets") == xa);
  CHECK(json_u64(a1, "tx_packets") - json_u64(a0, "tx_packets") == xa);
  CHECK(json_u64(a1, "rx_packets") - json_u64(a0, "rx_packets") == ax);
  CHECK(json_u64(x1, "tx_packets") - json_u64(x0, "tx_packets") == ax);
  INFO(x0.dump() << "\n" << x1.dump());
  CHECK(json_sum(x1, "drops") == json_sum(x0, "drops"));
  CHECK(json_sum(a1, "drops") == json_sum(a0, "drops"));
  resources.wait_back();
  MESSAGE("scale: " << resources.report());
  resources.check();
  finish(bench.d);
}

}  // namespace vusw::it
