// The soak (perf/soak.sh --minutes N; two minutes of it in tests/run.sh): byte-checked
// two-way traffic of mixed sizes through two pairs of guests on two PMD cores while,
// at random, one guest moves its buffers to new memory regions (ADD_MEM_REG /
// REM_MEM_REG), ports are pinned to other PMD cores and rebalanced, a guest of the
// second pair (in a VLAN of its own) disconnects and a new front-end takes its place, and a port is added,
// switches a few frames and is deleted with its guest connected. At the end: every
// frame sent arrived once, intact and in order, the first pair's counters are exact,
// no drops anywhere, and the daemon's fds and mappings are back at their baseline;
// RSS and DPDK memory are printed (and RSS must not have grown). Runs only when
// VUSW_SOAK_SECONDS is set; VUSW_SOAK_SEED replays a schedule.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <random>
#include <thread>

#include "fixture.h"

namespace vusw::it {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

const Mac kMacC = mac(0x0c);
const Mac kMacD = mac(0x0d);
const Mac kMacZ = mac(0x3a);  // each added port's guest, in VLAN 20
const Mac kMacY = mac(0x3b);  // its peer

// What the soak did, for the closing message.
struct Tally {
  int relayouts = 0, pins = 0, rebalances = 0, reconnects = 0, port_cycles = 0;
  uint64_t second_pair_frames = 0;
};

// The second pair (c, d): its traffic is stopped, checked and restarted around each
// reconnection of d.
class SecondPair {
 public:
  SecondPair(const Daemon& d, std::unique_ptr<FakeFrontend> c, std::unique_ptr<FakeFrontend> dd)
      : d_(d), c_(std::move(c)), dd_(std::move(dd)) { start(); }
  ~SecondPair() { stop(); }

  void stop() {
    if (!traffic_) return;
    const MovingTraffic& t = traffic_->finish();
    check_lossless(t);
    frames_ += t.to_peer().sent + t.to_mover().sent;
    traffic_.reset();
  }
  // d's front-end leaves and a new one connects to the same port.
  void reconnect() {
    stop();
    dd_->conn().close();
    dd_.reset();
    dd_ = attach(d_, "d");
    REQUIRE(dd_);
    start();
  }
  uint64_t frames() const { return frames_; }

 private:
  void start() {
    REQUIRE(pair_switches(*c_, kMacC, *dd_, kMacD, 4));
    std::this_thread::sleep_for(milliseconds(20));
    c_->poll_rx();
    dd_->poll_rx();
    traffic_ = std::make_unique<Background>(*c_, kMacC, *dd_, kMacD);
  }

  const Daemon& d_;
  std::unique_ptr<FakeFrontend> c_, dd_;
  std::unique_ptr<Background> traffic_;
  uint64_t frames_ = 0;
};

// A port added in VLAN 20, a new guest on it exchanging a few frames with y, deleted
// with the guest still connected.
void port_cycle(const Daemon& d, FakeFrontend& y) {
  const auto added = ctl(d, {{"cmd", "add_port"}, {"type", "vhost-user"}, {"target", d.socket_path("z")}, {"vlan", 20}});
  REQUIRE_MESSAGE(!added.contains("error"), added.dump());
  auto z = attach(d, "z");
  REQUIRE(z);
  REQUIRE(pair_switches(*z, kMacZ, y, kMacY, 4));
  REQUIRE(ctl(d, {{"cmd", "del_port"}, {"port", "z"}})["removed"] == true);
}

}  // namespace

TEST_CASE("soak: traffic through memory re-layouts, queue moves, reconnections and port add/del" *
          doctest::skip(env_long("VUSW_SOAK_SECONDS", 0) <= 0)) {
  const auto seconds = std::chrono::seconds(env_long("VUSW_SOAK_SECONDS", 0));
  const unsigned seed = static_cast<unsigned>(env_long("VUSW_SOAK_SEED", std::random_device{}()));
  MESSAGE("soak: " << seconds.count() << " s, VUSW_SOAK_SEED=" << seed);
  std::mt19937 rng(seed);

  DaemonConfig cfg;
  cfg.servers = {"a", "b"};
  cfg.lcores = "0@0,1@1,2@1";  // two PMD cores (sharing CPU 1: correctness, not speed)
  cfg.extra_args = {"--rebalance-interval", "0"};
  Daemon d(cfg);
  auto a = attach(d, "a");
  auto b = attach(d, "b");
  REQUIRE(a);
  REQUIRE(b);
  // Each pair in a VLAN of its own: the learning floods of one never reach another's
  // guests, whose traffic checks every frame they get.
  for (const auto& [port, vlan] : {std::pair{"c", 30}, std::pair{"d", 30}, std::pair{"y", 20}}) {
    const auto r = ctl(d, {{"cmd", "add_port"}, {"type", "vhost-user"}, {"target", d.socket_path(port)}, {"vlan", vlan}});
    REQUIRE_MESSAGE(!r.contains("error"), r.dump());
  }
  auto y = attach(d, "y");
  REQUIRE(y);
  std::this_thread::sleep_for(milliseconds(300));  // the FDB clock's first tick (see hotplug_proof_test)
  REQUIRE(pair_switches(*a, kMacA, *b, kMacB));
  port_cycle(d, *y);  // first-use allocations before the baselines
  std::this_thread::sleep_for(milliseconds(100));
  a->poll_rx();
  b->poll_rx();
  ResourceBaseline resources(d);
  const nlohmann::json a0 = d.port("a"), b0 = d.port("b");

  Tally tally;
  MovingTraffic first(*a, kMacA, *b, kMacB);
  std::thread first_thread([&] { first.run(); });
  bool relayout_ok = true;
  {
    SecondPair second(d, attach(d, "c"), attach(d, "d"));
    const auto start = Clock::now(), end = start + seconds;
    auto next_report = start + std::chrono::minutes(1);
    while (Clock::now() < end && relayout_ok) {
      if (Clock::now() >= next_report) {  // progress for long runs
        next_report += std::chrono::minutes(1);
        MESSAGE("soak: " << std::chrono::duration_cast<std::chrono::minutes>(Clock::now() - start).count() << "/"
                         << std::chrono::duration_cast<std::chrono::minutes>(seconds).count() << " min, "
                         << first.delivered() << " frames a<->b so far, RSS " << rss_kib(d) / 1024 << " MiB");
      }
      switch (std::uniform_int_distribution<int>(0, 9)(rng)) {
        case 0: case 1: case 2: case 3:
          relayout_ok = first.relayout();
          ++tally.relayouts;
          break;
        case 4: case 5: {
          static const char* const kPorts[] = {"a", "b", "c", "d"};
          const auto r = ctl(d, {{"cmd", "pin"}, {"port", kPorts[rng() % 4]}, {"pmd", rng() % 2}});
          CHECK_MESSAGE(!r.contains("error"), r.dump());
          ++tally.pins;
          break;
        }
        case 6:
          CHECK_FALSE(ctl(d, {{"cmd", "rebalance"}}).contains("error"));
          ++tally.rebalances;
          break;
        case 7:
          second.reconnect();
          ++tally.reconnects;
          break;
        default:
          port_cycle(d, *y);
          ++tally.port_cycles;
      }
      std::this_thread::sleep_for(milliseconds(std::uniform_int_distribution<int>(10, 200)(rng)));
    }
    second.stop();
    tally.second_pair_frames = second.frames();
  }
  const bool home = relayout_ok && first.back_to_main();
  first.stop();
  first_thread.join();

  INFO(first.summary());
  REQUIRE_MESSAGE(relayout_ok, "re-layout failed: " << first.error() << "\n" << d.log_tail());
  CHECK(home);
  check_lossless(first);
  const uint64_t ab = first.to_peer().sent, ba = first.to_mover().sent;
  auto counters_exact = [&] {
    const nlohmann::json a1 = d.port("a"), b1 = d.port("b");
    auto delta = [](const nlohmann::json& now, const nlohmann::json& then, const char* key) {
      return json_u64(now, key) - json_u64(then, key);
    };
    return delta(a1, a0, "rx_packets") == ab && delta(a1, a0, "tx_packets") == ba &&
           delta(b1, b0, "rx_packets") == ba && delta(b1, b0, "tx_packets") == ab;
  };
  CHECK_MESSAGE(wait_until(counters_exact, milliseconds(3000)), d.port("a").dump() << "\n" << d.port("b").dump());
  for (const char* port : {"a", "b", "c", "d", "y"}) {
    CAPTURE(port);
    CHECK(json_sum(d.port(port), "drops") == 0);
  }
  resources.wait_back();
  MESSAGE("soak: " << ab + ba << " frames a<->b, " << tally.second_pair_frames << " c<->d; " << tally.relayouts
                   << " re-layouts, " << tally.pins << " pins, " << tally.rebalances << " rebalances, "
                   << tally.reconnects << " reconnections, " << tally.port_cycles << " port add/del; "
                   << resources.report());
  resources.check();
  finish(d);
}

}  // namespace vusw::it
