// Queue pairs as the unit PMD cores poll (issue 9, like OVS's rx queue assignment): a
// 4-pair guest "m" next to a single-queue guest "a" on a switch with two PMD cores.
// m's pairs are placed one by one as it sets them up, over both cores; `show ports`
// and `show pmd` agree on where each pair is; traffic both ways stays exact and in
// order per flow; per-queue counters add up to the port's; pinning the port moves all
// of its pairs, and pairs moved one at a time while traffic flows lose, duplicate and
// reorder nothing. Both PMD lcores share CPU 1: this proves correctness, not speed.
#include <doctest/doctest.h>

#include <atomic>
#include <bit>
#include <set>
#include <thread>

#include "fixture.h"

namespace vusw::it {
namespace {

using std::chrono::milliseconds;
constexpr uint16_t kPairs = 4;
constexpr uint32_t kFlows = 16;
const Mac kMacM = mac(0x4d);

struct Setup {
  explicit Setup(std::vector<std::string> extra = {}) : d(config(std::move(extra))) {
    FrontendOptions mo;
    mo.queue_pairs = kPairs;
    a = attach(d, "a");
    m = attach(d, "m", mo);
    REQUIRE_MESSAGE(a, d.log_tail());
    REQUIRE_MESSAGE(m, d.log_tail());
    REQUIRE(pair_switches(*a, kMacA, *m, kMacM, 1));
  }
  static DaemonConfig config(std::vector<std::string> extra) {
    DaemonConfig cfg;
    cfg.servers = {"a", "m"};
    cfg.lcores = "0@0,1@1,2@1";  // control thread on CPU 0, both PMDs on CPU 1
    cfg.extra_args = {"--rebalance-interval", "0"};
    cfg.extra_args.insert(cfg.extra_args.end(), extra.begin(), extra.end());
    return cfg;
  }
  Daemon d;
  std::unique_ptr<FakeFrontend> a, m;
};

// a -> m: kFlows flows told apart by source MAC (spread over m's RX queues); m -> a:
// one flow per TX queue. Sizes across the zero-copy threshold.
std::vector<Flow> both_ways(FakeFrontend& a, FakeFrontend& m, uint32_t per_flow) {
  std::vector<Flow> flows;
  for (uint32_t i = 0; i < kFlows; ++i) {
    Flow f{&a, &m, mac(static_cast<uint8_t>(0x80 + i)), kMacM, 64 + (i * 193) % 1451, TxLayout::Single, per_flow};
    f.window = 4;
    flows.push_back(f);
  }
  for (uint16_t q = 0; q < kPairs; ++q) {
    Flow f{&m, &a, kMacM, kMacA, 100u + 400u * q, q % 2 ? TxLayout::Chained : TxLayout::Single, per_flow};
    f.tx_queue = q;
    f.window = 16;
    flows.push_back(f);
  }
  return flows;
}

bool delivered(const PumpResult& r) {
  bool ok = r.completed && r.stray == 0;
  for (const Flow& f : r.flows) ok &= f.corrupt == 0 && f.received == f.count && std::popcount(f.rx_queues) == 1;
  return ok;
}

// Pair -> PMD index as show ports gives it (-1: none).
std::vector<int> pair_pmds(const Daemon& d) {
  std::vector<int> out;
  const nlohmann::json m = d.port("m");
  for (const auto& q : m["queues"]) out.push_back(q["pmd"].is_number() ? q["pmd"].get<int>() : -1);
  return out;
}

}  // namespace

TEST_CASE("queue pairs are placed one by one over the PMD cores; show ports and show pmd agree; counters add up") {
  constexpr uint32_t kPerFlow = 300;
  Setup s;
  const std::vector<int> at = pair_pmds(s.d);
  INFO("show ports m: " << s.d.port("m").dump());
  REQUIRE(at.size() == kPairs);
  CHECK(std::set<int>(at.begin(), at.end()) == std::set<int>{0, 1});  // not all on one core

  // show pmd lists m under both cores, each with the pairs show ports puts there.
  auto j = s.d.ctl({{"cmd", "show_pmd"}});
  REQUIRE(j);
  INFO("show pmd: " << j->dump());
  std::vector<int> listed(kPairs, -1);
  for (const auto& pmd : (*j)["pmds"])
    for (const auto& port : pmd["ports"])
      if (port["name"] == "m")
        for (const auto& q : port["queues"]) listed.at(q.get<unsigned>()) = pmd["pmd"].get<int>();
  CHECK(listed == at);

  const nlohmann::json m0 = s.d.port("m");
  PumpResult r = pump(both_ways(*s.a, *s.m, kPerFlow));
  INFO(r.summary());
  CHECK(delivered(r));
  CHECK(s.m->rx_errors() == 0);
  CHECK(s.a->rx_errors() == 0);

  // Per-queue counters: every TX queue of m sent its flow; they add up to the port's.
  const uint64_t from_m = uint64_t{kPairs} * kPerFlow, to_m = uint64_t{kFlows} * kPerFlow;
  REQUIRE(wait_until([&] { return json_u64(s.d.port("m"), "tx_packets") - json_u64(m0, "tx_packets") == to_m; },
                     milliseconds(3000)));
  const nlohmann::json m1 = s.d.port("m");
  uint64_t rx = 0, tx = 0;
  for (std::size_t q = 0; q < kPairs; ++q) {
    const uint64_t q_rx = json_u64(m1["queues"][q], "rx_packets") - json_u64(m0["queues"][q], "rx_packets");
    CAPTURE(q);
    CHECK(q_rx == kPerFlow);
    rx += json_u64(m1["queues"][q], "rx_packets");
    tx += json_u64(m1["queues"][q], "tx_packets");
  }
  CHECK(rx == json_u64(m1, "rx_packets"));
  CHECK(tx == json_u64(m1, "tx_packets"));
  CHECK(json_u64(m1, "rx_packets") - json_u64(m0, "rx_packets") == from_m);
  auto metrics = s.d.scrape();  // the same per-queue counters on /metrics
  REQUIRE(metrics);
  for (std::size_t q = 0; q < kPairs; ++q) {
    CAPTURE(q);
    CHECK(metrics->sum("vusw_queue_rx_packets_total", {{"port", "m"}, {"queue", std::to_string(q)}}) ==
          json_u64(m1["queues"][q], "rx_packets"));
    CHECK(metrics->sum("vusw_queue_tx_packets_total", {{"port", "m"}, {"queue", std::to_string(q)}}) ==
          json_u64(m1["queues"][q], "tx_packets"));
  }
  CHECK(json_sum(m1, "drops") == 0);
  finish(s.d);
}

TEST_CASE("pinning a multiqueue port moves all its pairs; pairs moved while traffic flows lose nothing") {
  constexpr uint32_t kPerFlow = 400;
  constexpr int kSteps = 16;
  Setup s;
  const nlohmann::json a0 = s.d.port("a"), m0 = s.d.port("m");

  auto pinned = s.d.ctl({{"cmd", "pin"}, {"port", "m"}, {"pmd", 0}});
  REQUIRE(pinned);
  INFO("pin: " << pinned->dump());
  CHECK((*pinned)["moves"].size() == kPairs);  // one entry per pair, moved or already there
  CHECK(pair_pmds(s.d) == std::vector<int>(kPairs, 0));

  std::atomic<bool> done{false};
  int failures = 0;
  std::string failure;
  std::thread mover([&] {
    // Whole port pinned to one core, then the other; now and then unpinned and
    // rebalanced by load (which moves single pairs).
    for (int step = 0; step < kSteps; ++step) {
      auto r = s.d.ctl({{"cmd", "pin"}, {"port", "m"}, {"pmd", step % 2}});
      if (step % 4 == 3) {
        auto u = s.d.ctl({{"cmd", "pin"}, {"port", "m"}, {"pmd", nullptr}});
        r = s.d.ctl({{"cmd", "rebalance"}});
      }
      if (!r || r->contains("error")) {
        ++failures;
        failure = r ? r->dump() : "no reply";
      }
      std::this_thread::sleep_for(milliseconds(10));
    }
    done = true;
  });
  uint32_t rounds = 0;
  bool ok = true;
  while (ok && (!done.load() || rounds == 0)) {
    PumpResult r = pump(both_ways(*s.a, *s.m, kPerFlow));
    ++rounds;
    ok = delivered(r);
    if (!ok) MESSAGE(r.summary());
  }
  mover.join();
  CHECK(ok);
  CHECK_MESSAGE(failures == 0, failure);
  auto j = s.d.ctl({{"cmd", "show_pmd"}});
  REQUIRE(j);
  MESSAGE(rounds << " rounds; queue moves: " << json_u64(*j, "port_moves"));
  CHECK(json_u64(*j, "port_moves") >= kSteps);
  const uint64_t to_m = uint64_t{rounds} * kFlows * kPerFlow, from_m = uint64_t{rounds} * kPairs * kPerFlow;
  CHECK(wait_until([&] { return json_u64(s.d.port("m"), "tx_packets") - json_u64(m0, "tx_packets") == to_m; },
                   milliseconds(3000)));
  CHECK(json_u64(s.d.port("m"), "rx_packets") - json_u64(m0, "rx_packets") == from_m);
  CHECK(json_u64(s.d.port("a"), "tx_packets") - json_u64(a0, "tx_packets") == from_m);
  CHECK(json_sum(s.d.port("m"), "drops") == 0);
  CHECK(json_sum(s.d.port("a"), "drops") == 0);
  CHECK(pair_switches(*s.a, kMacA, *s.m, kMacM));
  finish(s.d);
}

}  // namespace vusw::it
