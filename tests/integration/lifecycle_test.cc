// Connection life cycle: no fd or mapping leaks over many guest connections,
// back-end-as-client mode (the daemon connects to a listening front-end and
// reconnects with backoff), and a clean SIGTERM shutdown.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "fixture.h"

namespace vusw::it {
namespace {

using std::chrono::milliseconds;

// One QEMU-like guest life: connect, negotiate, memory, rings, a few frames, close.
bool guest_cycle(Bench& bench, uint32_t i) {
  auto x = attach(bench.d, "x");
  if (!x) return false;
  MemRegion& extra = x->mem().add(0x100000000, 64 * 1024);
  bool ok = x->add_mem_reg(extra).ok();
  // Every tenth cycle also passes traffic so rings and buffers are really used.
  if (i % 10 == 0) ok &= pair_switches(*x, kMacX, *bench.a, kMacA, 4);
  return ok;
}

bool port_idle(const Daemon& d, const std::string& name) {
  return wait_until(
      [&] {
        std::string s = d.port(name).value("state", "");
        return s == "waiting" || s == "disconnected";
      },
      milliseconds(2000));
}

}  // namespace

TEST_CASE("100 guest connections leak no fds and no mappings") {
  Bench bench;
  REQUIRE(guest_cycle(bench, 0));  // warm-up: first-use allocations are not leaks
  REQUIRE(port_idle(bench.d, "x"));
  LeakBaseline baseline(bench.d);
  uint32_t failed = 0, not_idle = 0;
  for (uint32_t i = 1; i <= 100; ++i) {
    failed += guest_cycle(bench, i) ? 0 : 1;
    not_idle += port_idle(bench.d, "x") ? 0 : 1;
  }
  CHECK(failed == 0);
  CHECK(not_idle == 0);
  baseline.wait_back();
  baseline.check();
  CHECK(bench.healthy());
  finish(bench.d);
}

TEST_CASE("--vhost-user-client: the daemon connects to a listening front-end and reconnects") {
  DaemonConfig cfg;
  cfg.servers = {"a"};
  cfg.clients = {"c"};
  Daemon d(cfg);
  auto a = attach(d, "a");
  REQUIRE(a);
  auto listener = std::make_unique<VhostListener>(d.socket_path("c"));
  auto connect_once = [&] {
    auto conn = listener->accept(milliseconds(10000));
    REQUIRE_MESSAGE(conn, "daemon did not connect within 10 s:\n" << d.log_tail());
    auto c = std::make_unique<FakeFrontend>(std::move(*conn));
    REQUIRE(c->bring_up());
    CHECK(pair_switches(*c, kMacX, *a, kMacA));
    return c;
  };
  auto c = connect_once();
  CHECK(d.port("c").value("type", "") == "vhost-user");

  SUBCASE("front-end closes, keeps listening") {
    c.reset();
    c = connect_once();
  }
  SUBCASE("front-end closes and re-listens later (like a QEMU restart)") {
    c.reset();
    listener.reset();
    std::this_thread::sleep_for(milliseconds(500));
    listener = std::make_unique<VhostListener>(d.socket_path("c"));
    c = connect_once();
  }
  CHECK(d.port("c").value("state", "") != "waiting");
  finish(d);
}

TEST_CASE("SIGTERM stops cleanly and removes the sockets") {
  Bench bench;
  std::string ctl = bench.d.control_path();
  std::string xs = bench.d.socket_path("x");
  REQUIRE(std::filesystem::exists(ctl));
  REQUIRE(std::filesystem::exists(xs));
  // A guest connected at shutdown must not block it.
  finish(bench.d);
  CHECK_FALSE(std::filesystem::exists(ctl));
  CHECK_FALSE(std::filesystem::exists(xs));
  CHECK_FALSE(std::filesystem::exists(bench.d.socket_path("a")));
}

TEST_CASE("ctl JSON and /metrics describe the same ports") {
  Bench bench;
  auto j = bench.d.ctl({{"cmd", "show_ports"}});
  REQUIRE(j);
  auto m = bench.d.scrape();
  REQUIRE(m);
  REQUIRE((*j)["ports"].size() == 3);
  for (const auto& p : (*j)["ports"]) {
    std::string name = p.value("name", "");
    INFO("port " << name << ": " << p.dump());
    CHECK(p.value("type", "") == "vhost-user");
    CHECK(p.value("path", "") == bench.d.socket_path(name));
    for (const char* k : {"rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "mem_regions", "broken_queues"})
      CHECK(p.contains(k));
    for (const char* k : {"drops", "protocol_errors", "messages"}) CHECK(p[k].is_object());
    CHECK(m->has("vusw_port_rx_packets_total", {{"port", name}}));
    CHECK(m->sum("vusw_port_rx_packets_total", {{"port", name}}) == double(json_u64(p, "rx_packets")));
    CHECK(m->sum("vusw_port_tx_packets_total", {{"port", name}}) == double(json_u64(p, "tx_packets")));
  }
  CHECK(bench.port("a").value("state", "") == "ready");
  CHECK(bench.port("x").value("state", "") == "waiting");
  finish(bench.d);
}

}  // namespace vusw::it

namespace vusw::it {

// The first --lcores entry runs the control thread even when it is not the lowest:
// EAL must be told (--main-lcore), else it would make lcore 0 the main one and the
// PMD meant for it could not launch.
TEST_CASE("--lcores 1,0: the control thread on lcore 1, the PMD on lcore 0") {
  DaemonConfig cfg;
  cfg.servers = {"a", "b"};
  cfg.lcores = "1,0";
  Daemon d(cfg);
  auto j = d.ctl({{"cmd", "show_pmd"}});
  REQUIRE(j);
  INFO("show_pmd: " << j->dump());
  REQUIRE((*j)["pmds"].size() == 1);
  CHECK(json_u64((*j)["pmds"][0], "lcore") == 0);
  auto a = attach(d, "a");
  auto b = attach(d, "b");
  REQUIRE(a);
  REQUIRE(b);
  CHECK(pair_switches(*a, kMacA, *b, kMacB));
  finish(d);
}

}  // namespace vusw::it
