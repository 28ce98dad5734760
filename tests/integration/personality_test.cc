// Driver personalities against one running daemon: two guests on ports a and b,
// each reconnecting with a new personality (personality.h) per combination, send
// a few thousand frames each way. Every frame arrives intact, in order per flow
// (a flow stays on one queue), nothing is lost or duplicated, an IN_ORDER device
// returns buffers in order, an interrupt-driven driver is never left without the
// call it waits for, and the daemon's counters (control socket and /metrics) agree
// exactly with what the guests sent and received.
//
// The cartesian product is far too large; a seeded PRNG samples it so that each
// value of each dimension appears several times, picks the pairing and every
// burst. VUSW_PERSONALITY_SEED reproduces a run; VUSW_PERSONALITY_COMBOS and
// VUSW_PERSONALITY_FRAMES change its size.
#include <doctest/doctest.h>

#include <cstdlib>
#include <random>

#include "fixture.h"
#include "personality.h"

namespace vusw::it {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

uint64_t env_u64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 0) : fallback;
}

// Two flows per queue pair, each from its own MAC (flows hash to RX queues by MAC).
std::vector<Mac> macs_of(uint8_t base, const Personality& p) {
  std::vector<Mac> m;
  for (uint8_t k = 0; k < 2 * p.queue_pairs; ++k) m.push_back(mac(static_cast<uint8_t>(base + k)));
  return m;
}

bool waiting(const Daemon& d, const std::string& port) {
  return wait_until([&] { return d.port(port).value("state", "") == "waiting"; }, milliseconds(3000));
}

// Buffers an IN_ORDER device returned out of order, or ids it never handed out, on every ring.
uint64_t ring_violations(FakeFrontend& fe) {
  uint64_t n = 0;
  for (uint32_t i = 0; i < fe.num_rings(); ++i)
    n += fe.ring(i).bogus_used() + ((fe.features() & feat::kInOrder) ? fe.ring(i).out_of_order() : 0);
  return n;
}

void check_run(const PersonalityRun& run, FakeFrontend& fa, FakeFrontend& fb, uint32_t frames) {
  INFO(run.summary());
  CHECK(run.completed);
  for (const SideResult& s : run.side) {
    CHECK(s.sent == frames);
    CHECK(s.received == frames);
    CHECK(s.corrupt == 0);
    CHECK(s.reordered == 0);
    CHECK(s.stray == 0);
    CHECK(s.lost_calls == 0);
  }
  CHECK(fa.rx_errors() == 0);
  CHECK(fb.rx_errors() == 0);
  CHECK(ring_violations(fa) == 0);
  CHECK(ring_violations(fb) == 0);
}

}  // namespace

TEST_CASE("driver personalities: every feature set, notification and traffic style switches intact frames, exact counters") {
  const uint64_t seed = env_u64("VUSW_PERSONALITY_SEED", std::random_device{}());
  const auto combos = static_cast<size_t>(env_u64("VUSW_PERSONALITY_COMBOS", 16));
  const auto frames = static_cast<uint32_t>(env_u64("VUSW_PERSONALITY_FRAMES", 2000));
  INFO("reproduce with VUSW_PERSONALITY_SEED=" << seed);
  std::mt19937_64 rng(seed);
  const std::vector<Personality> ps = sample_personalities(rng, 2 * combos);

  DaemonConfig cfg;
  cfg.servers = {"a", "b"};
  Daemon d(cfg);
  PortCounts ca, cb;  // the daemon's port counters keep counting across reconnections
  const auto start = Clock::now();
  for (size_t i = 0; i < combos; ++i) {
    const Personality& pa = ps[2 * i];
    const Personality& pb = ps[2 * i + 1];
    INFO("combination " << i << "\n  a: " << pa.describe() << "\n  b: " << pb.describe());
    REQUIRE(waiting(d, "a"));
    REQUIRE(waiting(d, "b"));
    auto fa = attach(d, "a", pa.options());
    auto fb = attach(d, "b", pb.options());
    REQUIRE_MESSAGE(fa, d.log_tail());
    REQUIRE_MESSAGE(fb, d.log_tail());

    const PersonalityRun run =
        pump_personalities({fa.get(), pa, macs_of(0x10, pa)}, {fb.get(), pb, macs_of(0x20, pb)}, frames, rng);
    check_run(run, *fa, *fb, frames);
    ca.rx_pkts += run.side[0].sent;
    ca.rx_bytes += run.side[0].sent_bytes;
    ca.tx_pkts += run.side[0].received;
    ca.tx_bytes += run.side[0].received_bytes;
    cb.rx_pkts += run.side[1].sent;
    cb.rx_bytes += run.side[1].sent_bytes;
    cb.tx_pkts += run.side[1].received;
    cb.tx_bytes += run.side[1].received_bytes;
    check_exact_counters(d, "a", ca);
    check_exact_counters(d, "b", cb);
    if (!run.completed) MESSAGE(d.log_tail());
  }
  const auto secs = std::chrono::duration<double>(Clock::now() - start).count();
  MESSAGE("driver personalities: " << combos << " combinations (" << ps.size() << " personalities), " << frames
                                   << " frames each way per combination, " << ca.rx_pkts + cb.rx_pkts
                                   << " frames compared, " << secs << " s, seed " << seed);
  MESSAGE("coverage: " << coverage(ps));
  finish(d);
}

}  // namespace vusw::it
