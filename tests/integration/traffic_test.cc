// Frame integrity and exact counters: two fake guests exchange thousands of
// 64 B and 1500 B frames in both directions; every byte is compared and the
// rx/tx packet and byte counters must equal exactly what was sent, in the ctl
// JSON and on /metrics. Counter bytes are Ethernet frame bytes (no virtio-net
// header).
#include <doctest/doctest.h>

#include "fixture.h"

namespace vusw::it {
namespace {

using std::chrono::milliseconds;
constexpr uint32_t kFramesPerSize = 2500;  // x2 sizes = 5000 frames per direction

struct Case {
  const char* name;
  bool mrg;
  uint32_t rx_buf_len;
  TxLayout layout;
  bool ack_all = true;  // false: QEMU 7.2's exact NEED_REPLY flags
  bool version1 = true;  // false: legacy device, 10-byte virtio-net header
};

void check_port_counters(const Daemon& d, const std::string& name, uint64_t pkts, uint64_t bytes) {
  check_exact_counters(d, name, {pkts, bytes, pkts, bytes});
  CHECK(json_u64(d.port(name), "mem_regions") == 1);
  auto m = d.scrape();
  REQUIRE(m);
  std::map<std::string, std::string> l{{"port", name}};
  CHECK(m->sum("vusw_port_mem_regions", l) == 1);
  CHECK(m->sum("vusw_vhost_messages_total", {{"port", name}, {"type", "ADD_MEM_REG"}}) == 1);
  CHECK(m->sum("vusw_vhost_messages_total", {{"port", name}, {"type", "SET_VRING_KICK"}}) == 2);
}

// One PMD polls both ports: it moved exactly the frames the guests sent, and its loop
// turns are accounted (vuswitchctl show pmd and /metrics).
void check_pmd(const Daemon& d, uint64_t frames) {
  auto j = d.ctl({{"cmd", "show_pmd"}});
  REQUIRE(j);
  INFO("show_pmd: " << j->dump());
  REQUIRE((*j)["pmds"].size() == 1);
  const nlohmann::json& p = (*j)["pmds"][0];
  CHECK(json_u64(p, "packets") == frames);
  const uint64_t turns = json_u64(p, "iterations");
  CHECK(turns > 0);
  CHECK(json_u64(p, "busy_cycles") > 0);
  CHECK(json_u64(p, "tsc_hz") > 0);
  CHECK(json_u64(p, "longest_iteration_cycles") > 0);
  CHECK(json_u64(p, "iterations_over_1ms") < turns);

  auto m = d.scrape();
  REQUIRE(m);
  const std::map<std::string, std::string> l{{"pmd", "0"}};
  const double counted = m->sum("vusw_pmd_iteration_seconds_count", l);
  CHECK(counted >= double(turns));  // scraped after show_pmd; the loop keeps turning
  CHECK(m->sum("vusw_pmd_iteration_seconds_bucket", {{"pmd", "0"}, {"le", "+Inf"}}) == counted);
  CHECK(m->sum("vusw_pmd_iteration_seconds_sum", l) > 0);
  CHECK(m->sum("vusw_pmd_longest_iteration_seconds", l) > 0);
}

}  // namespace

TEST_CASE("frames cross the switch intact and are counted exactly") {
  Case c{};
  SUBCASE("MRG_RXBUF, 2 KiB RX buffers, single TX descriptor, QEMU's flags") {
    c = {"mrg-single", true, 2048, TxLayout::Single, false};
  }
  SUBCASE("MRG_RXBUF, 256 B RX buffers (frames span), chained TX") { c = {"mrg-span-chained", true, 256, TxLayout::Chained}; }
  SUBCASE("no MRG_RXBUF, indirect TX") { c = {"nomrg-indirect", false, 2048, TxLayout::Indirect}; }
  SUBCASE("MRG_RXBUF, 1 KiB RX buffers, indirect TX") { c = {"mrg-1k-indirect", true, 1024, TxLayout::Indirect}; }
  SUBCASE("legacy device (no VERSION_1): 10-byte header, single TX") {
    c = {"legacy-single", false, 2048, TxLayout::Single, true, false};
  }
  SUBCASE("legacy device, chained TX") { c = {"legacy-chained", false, 2048, TxLayout::Chained, true, false}; }
  INFO("case " << std::string(c.name));

  DaemonConfig cfg;
  cfg.servers = {"a", "b"};
  Daemon d(cfg);
  FrontendOptions opt;
  opt.mrg_rxbuf = c.mrg;
  opt.rx_buf_len = c.rx_buf_len;
  opt.ack_all = c.ack_all;
  opt.version1 = c.version1;
  auto a = attach(d, "a", opt);
  auto b = attach(d, "b", opt);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(((a->features() & feat::kMrgRxbuf) != 0) == c.mrg);
  CHECK(a->hdr_len() == (c.version1 || c.mrg ? 12u : 10u));

  PumpResult r = pump({Flow{a.get(), b.get(), kMacA, kMacB, 64, c.layout, kFramesPerSize},
                       Flow{a.get(), b.get(), kMacA, kMacB, 1500, c.layout, kFramesPerSize},
                       Flow{b.get(), a.get(), kMacB, kMacA, 64, c.layout, kFramesPerSize},
                       Flow{b.get(), a.get(), kMacB, kMacA, 1500, c.layout, kFramesPerSize}});
  INFO(r.summary());
  CHECK(r.completed);
  CHECK(r.stray == 0);
  for (const Flow& f : r.flows) CHECK(f.corrupt == 0);
  CHECK(a->rx_errors() == 0);
  CHECK(b->rx_errors() == 0);
  CHECK(a->anomalies().empty());

  const uint64_t pkts = 2 * kFramesPerSize;
  const uint64_t bytes = kFramesPerSize * (64 + 1500);
  check_port_counters(d, "a", pkts, bytes);
  check_port_counters(d, "b", pkts, bytes);
  check_pmd(d, 2 * pkts);
  finish(d);
}

// DPDK's virtio-user negotiates VIRTIO_F_IN_ORDER by default. Frames >= 1024 B are
// lent zero-copy and return when their mbuf is freed, after the 64 B frames copied
// behind them: with IN_ORDER those must still reach the used ring in posting order.
TEST_CASE("VIRTIO_F_IN_ORDER: buffers are used in the order they were posted, lent ones included") {
  for (bool in_order : {false, true}) {
    CAPTURE(in_order);
    DaemonConfig cfg;
    cfg.servers = {"a", "b"};
    Daemon d(cfg);
    FrontendOptions opt;
    opt.in_order = in_order;
    auto a = attach(d, "a", opt);
    auto b = attach(d, "b", opt);
    REQUIRE(a);
    REQUIRE(b);
    CHECK(((a->features() & feat::kInOrder) != 0) == in_order);

    PumpResult r = pump({Flow{a.get(), b.get(), kMacA, kMacB, 64, TxLayout::Single, kFramesPerSize},
                         Flow{a.get(), b.get(), kMacA, kMacB, 1500, TxLayout::Single, kFramesPerSize},
                         Flow{b.get(), a.get(), kMacB, kMacA, 1500, TxLayout::Chained, kFramesPerSize},
                         Flow{b.get(), a.get(), kMacB, kMacA, 64, TxLayout::Chained, kFramesPerSize}});
    INFO(r.summary());
    CHECK(r.completed);
    for (const Flow& f : r.flows) CHECK(f.corrupt == 0);
    const uint64_t overtaken = a->tx().out_of_order() + b->tx().out_of_order();
    MESSAGE("in_order " << in_order << ": " << overtaken << " TX buffers came back before an older one");
    if (in_order) {
      CHECK(overtaken == 0);
      CHECK(a->rx().out_of_order() + b->rx().out_of_order() == 0);
    }
    const uint64_t pkts = 2 * kFramesPerSize;
    const uint64_t bytes = kFramesPerSize * (64 + 1500);
    check_port_counters(d, "a", pkts, bytes);
    check_port_counters(d, "b", pkts, bytes);
    // a's 1500 B frames sit in one descriptor after their header: all of them were lent.
    CHECK(json_u64(d.port("a"), "rx_zero_copy") == kFramesPerSize);
    auto m = d.scrape();
    REQUIRE(m);
    CHECK(m->sum("vusw_port_rx_zero_copy_packets_total", {{"port", "a"}}) == double(kFramesPerSize));

    // One TX burst in a known order, lent 1500 B frames each followed by a copied 64 B
    // one, posted while the ring is stopped so the switch takes it in one poll. Without
    // IN_ORDER the copies come back first (the control: the check can see reordering,
    // whatever the timing); with it, never.
    const uint64_t before = a->tx().out_of_order();
    b->fill_rx();
    REQUIRE(a->get_vring_base(kTxRing));
    constexpr uint32_t kOneBurst = 8;
    for (uint32_t i = 0; i < kOneBurst; ++i)
      REQUIRE(a->send_frame(make_frame(kMacB, kMacA, i, i % 2 == 0 ? 1500 : 64), TxLayout::Single));
    REQUIRE(a->start_ring(kTxRing));
    a->kick(kTxRing);
    CHECK(b->wait_rx(kOneBurst, std::chrono::milliseconds(3000)).size() == kOneBurst);
    size_t returned = 0;
    CHECK(wait_until([&] { return (returned += a->reclaim_tx()) >= kOneBurst; }, std::chrono::milliseconds(3000)));
    const uint64_t burst_overtaken = a->tx().out_of_order() - before;
    MESSAGE("in_order " << in_order << ": one mixed burst, " << burst_overtaken << " buffers overtaken");
    if (in_order)
      CHECK(burst_overtaken == 0);
    else
      CHECK(burst_overtaken > 0);
    finish(d);
  }
}

TEST_CASE("learned MACs are forgotten after --mac-age without frames; traffic learns them again") {
  DaemonConfig cfg;
  cfg.servers = {"a", "b"};
  cfg.extra_args = {"--mac-age", "2"};
  Daemon d(cfg);
  auto a = attach(d, "a");
  auto b = attach(d, "b");
  REQUIRE(a);
  REQUIRE(b);
  auto fdb_size = [&] { return d.ctl({{"cmd", "show_fdb"}}).value()["fdb"].size(); };
  REQUIRE(learned_pair(*a, kMacA, *b, kMacB));
  CHECK(fdb_size() == 2);
  CHECK(d.ctl({{"cmd", "show_config"}}).value()["config"]["mac_age"] == 2);
  // Quiet for longer than 2 s (the clock ticks each second): both go, counted as aged.
  CHECK(wait_until([&] { return fdb_size() == 0; }, milliseconds(6000)));
  CHECK(d.scrape()->sum("vusw_fdb_aged_total") >= 2);
  CHECK(learned_pair(*a, kMacA, *b, kMacB));
  CHECK(fdb_size() == 2);
  finish(d);
}

}  // namespace vusw::it
