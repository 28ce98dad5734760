// Packed virtqueues (virtio 1.2, 2.8) through the switch: two fake guests, one
// or both on packed rings, exchange thousands of mixed-size frames (64..1514 B,
// the zero-copy threshold on both sides, RX buffers small enough that frames
// span several) in all three TX layouts, with MRG_RXBUF, IN_ORDER and
// EVENT_IDX on and off and a ring size that is not a power of two. Every byte
// is compared, rings wrap many times, and the port counters must be exact.
// Then the vring base round trip: a packed ring stopped with GET_VRING_BASE
// after its wrap counter flipped restarts from the reported base with nothing
// lost or duplicated.
#include <doctest/doctest.h>

#include "fixture.h"

namespace vusw::it {
namespace {

using std::chrono::milliseconds;
constexpr uint32_t kFramesPerFlow = 450;  // x 7 sizes = 3150 frames per direction
// 1023/1024: either side of the default --zero-copy-min; 1514 the largest frame the
// ports' default MTU of 1500 lets through.
constexpr size_t kSizes[] = {64, 200, 777, 1023, 1024, 1500, 1514};
constexpr TxLayout kLayouts[] = {TxLayout::Single, TxLayout::Chained, TxLayout::Indirect};

FrontendOptions guest(bool packed, uint16_t ring_size, bool mrg, uint32_t rx_buf_len, bool in_order = false,
                      bool event_idx = false) {
  FrontendOptions o;
  o.packed = packed;
  o.ring_size = ring_size;
  o.mrg_rxbuf = mrg;
  o.rx_buf_len = rx_buf_len;
  o.in_order = in_order;
  o.event_idx = event_idx;
  return o;
}

struct Case {
  const char* name;
  FrontendOptions a, b;
};

// One flow per size from `from` to `to`, layouts in turn; windows sized so that
// all flows together never need more RX buffers than `to` has posted.
void add_flows(std::vector<Flow>& flows, FakeFrontend& from, const Mac& src, FakeFrontend& to, const Mac& dst,
               uint32_t count) {
  const uint32_t buf = to.options().rx_buf_len;
  for (size_t i = 0; i < std::size(kSizes); ++i) {
    Flow f{&from, &to, src, dst, kSizes[i], kLayouts[i % std::size(kLayouts)], count};
    const auto per_frame = static_cast<uint32_t>((kSizes[i] + kNetHdrLen + buf - 1) / buf);
    f.window = std::max<uint32_t>(1, to.rx().size() / per_frame / static_cast<uint32_t>(std::size(kSizes)));
    flows.push_back(f);
  }
}

PortCounts counts_of(const std::vector<Flow>& flows, const FakeFrontend* port) {
  PortCounts c;
  for (const Flow& f : flows) {
    if (f.from == port) {
      c.rx_pkts += f.count;
      c.rx_bytes += f.count * f.len;
    }
    if (f.to == port) {
      c.tx_pkts += f.count;
      c.tx_bytes += f.count * f.len;
    }
  }
  return c;
}

void check_intact(const PumpResult& r, FakeFrontend& a, FakeFrontend& b) {
  INFO(r.summary());
  CHECK(r.completed);
  CHECK(r.stray == 0);
  for (const Flow& f : r.flows) CHECK(f.corrupt == 0);
  for (FakeFrontend* g : {&a, &b}) {
    CHECK(g->rx_errors() == 0);
    CHECK(g->anomalies().empty());
    CHECK(g->rx().bogus_used() + g->tx().bogus_used() == 0);
    // IN_ORDER: used in posting order, lent buffers included.
    if (g->features() & feat::kInOrder) CHECK(g->rx().out_of_order() + g->tx().out_of_order() == 0);
  }
}

}  // namespace

TEST_CASE("packed rings: mixed frames cross the switch intact and are counted exactly") {
  Case c{};
  SUBCASE("packed both, MRG_RXBUF, 2 KiB buffers, 256 descriptors") {
    c = {"packed-mrg", guest(true, 256, true, 2048), guest(true, 256, true, 2048)};
  }
  SUBCASE("packed both, 250 descriptors, 256 B RX buffers (frames span), EVENT_IDX") {
    c = {"packed-250-span-eventidx", guest(true, 250, true, 256, false, true), guest(true, 250, true, 256, false, true)};
  }
  SUBCASE("packed both, no MRG_RXBUF, IN_ORDER, 250 descriptors") {
    c = {"packed-250-nomrg-inorder", guest(true, 250, false, 2048, true), guest(true, 250, false, 2048, true)};
  }
  SUBCASE("packed both, 1 KiB RX buffers, IN_ORDER and EVENT_IDX, 64 descriptors") {
    c = {"packed-64-inorder-eventidx", guest(true, 64, true, 1024, true, true), guest(true, 64, true, 1024, true, true)};
  }
  SUBCASE("a split, b packed") {
    c = {"split-packed", guest(false, 256, true, 2048, true), guest(true, 250, true, 512, false, true)};
  }
  SUBCASE("a packed without MRG_RXBUF, b split with 512 B buffers") {
    c = {"packed-split", guest(true, 250, false, 2048, false, true), guest(false, 128, true, 512, true)};
  }
  if (c.name == nullptr) return;  // a run that entered no subcase (-sc filters)
  INFO("case " << std::string(c.name));

  DaemonConfig cfg;
  cfg.servers = {"a", "b"};
  Daemon d(cfg);
  auto a = attach(d, "a", c.a);
  REQUIRE_MESSAGE(a, "a did not come up:\n" << d.log_tail());
  auto b = attach(d, "b", c.b);
  REQUIRE_MESSAGE(b, "b did not come up:\n" << d.log_tail());
  for (auto* g : {a.get(), b.get()}) {
    const FrontendOptions& o = g->options();
    CHECK(((g->features() & feat::kRingPacked) != 0) == o.packed);
    CHECK(((g->features() & feat::kMrgRxbuf) != 0) == o.mrg_rxbuf);
    CHECK(((g->features() & feat::kInOrder) != 0) == o.in_order);
    CHECK(((g->features() & feat::kEventIdx) != 0) == o.event_idx);
  }

  std::vector<Flow> flows;
  add_flows(flows, *a, kMacA, *b, kMacB, kFramesPerFlow);
  add_flows(flows, *b, kMacB, *a, kMacA, kFramesPerFlow);
  PumpResult r = pump(flows);
  check_intact(r, *a, *b);
  check_exact_counters(d, "a", counts_of(flows, a.get()));
  check_exact_counters(d, "b", counts_of(flows, b.get()));
  // Frames of >= 1024 B in one descriptor after their header were lent, not copied.
  uint64_t lent = json_u64(d.port("a"), "rx_zero_copy") + json_u64(d.port("b"), "rx_zero_copy");
  MESSAGE(std::string(c.name) << ": " << lent << " guest TX frames lent zero-copy");
  CHECK(lent > 0);
  finish(d);
}

// A packed ring stopped mid-traffic after its wrap counter flipped, then
// restarted from the base GET_VRING_BASE reported (QEMU's stop/start across a
// guest pause or migration): the device continues exactly where it stopped.
TEST_CASE("packed rings: GET_VRING_BASE / SET_VRING_BASE round trip after the wrap counter flipped") {
  constexpr uint16_t kRing = 250;
  constexpr uint32_t kFirst = 300;   // one lap and 50 descriptors: wrap counter 0, position 50
  constexpr uint32_t kStopped = 100;  // sent while a's TX ring is stopped
  DaemonConfig cfg;
  cfg.servers = {"a", "b"};
  Daemon d(cfg);
  auto a = attach(d, "a", guest(true, kRing, true, 2048));
  auto b = attach(d, "b", guest(true, kRing, true, 2048));
  REQUIRE(a);
  REQUIRE(b);
  REQUIRE(pair_switches(*a, kMacA, *b, kMacB, 1));  // learn both MACs: 1 frame each way

  // kFirst frames a -> b, one descriptor and one RX buffer each: lent and copied.
  std::vector<Flow> flows{Flow{a.get(), b.get(), kMacA, kMacB, 1200, TxLayout::Single, kFirst / 2},
                          Flow{a.get(), b.get(), kMacA, kMacB, 100, TxLayout::Single, kFirst / 2}};
  PumpResult r = pump(flows);
  check_intact(r, *a, *b);
  PackedRing& tx = a->packed(tx_ring(0));
  REQUIRE(wait_until([&] { a->reclaim_tx(); return tx.in_flight() == 0; }, milliseconds(3000)));
  const uint32_t tx_pos = (1 + kFirst) % kRing;  // + the pair_switches frame
  CHECK(tx.avail_pos() == tx_pos);
  CHECK(!tx.avail_wrap());

  // Stop a's TX and b's RX; both report position 51, wrap counter 0.
  auto tx_base = a->get_vring_base(tx_ring(0));
  auto rx_base = b->get_vring_base(rx_ring(0));
  REQUIRE(tx_base);
  REQUIRE(rx_base);
  CHECK((tx_base->num & 0xffff) == tx_pos);
  CHECK((rx_base->num & 0xffff) == tx_pos);
  // The used half is optional; if present it says the same (everything was returned).
  CHECK((tx_base->num >> 16 == 0 || tx_base->num >> 16 == tx_pos));
  CHECK((rx_base->num >> 16 == 0 || rx_base->num >> 16 == tx_pos));
  CHECK(tx.vring_base() == (tx_pos | tx_pos << 16));

  // Frames posted while a's TX ring is stopped stay where they are.
  for (uint32_t i = 0; i < kStopped; ++i)
    REQUIRE(a->send_frame(make_frame(kMacB, kMacA, i, 64 + i), TxLayout::Chained));
  a->kick(tx_ring(0));
  CHECK(b->wait_rx(1, milliseconds(200)).empty());

  REQUIRE(b->start_ring(rx_ring(0), rx_base->num));
  REQUIRE(a->start_ring(tx_ring(0), tx_base->num));
  a->kick(tx_ring(0));
  std::vector<std::vector<std::byte>> got = b->wait_rx(kStopped, milliseconds(3000));
  CHECK(got.size() == kStopped);
  for (uint32_t i = 0; i < got.size(); ++i) {
    uint32_t seq = ~0u;
    CHECK(check_frame(got[i], kMacB, kMacA, seq));
    CHECK(seq == i);
    CHECK(got[i].size() == 64 + i);
  }
  CHECK(b->wait_rx(1, milliseconds(200)).empty());  // nothing twice

  // Traffic continues both ways across more wraps.
  std::vector<Flow> more{Flow{a.get(), b.get(), kMacA, kMacB, 1500, TxLayout::Indirect, 600},
                         Flow{b.get(), a.get(), kMacB, kMacA, 60, TxLayout::Chained, 600}};
  r = pump(more);
  check_intact(r, *a, *b);
  uint64_t stopped_bytes = 0;
  for (uint32_t i = 0; i < kStopped; ++i) stopped_bytes += 64 + i;
  const uint64_t a_rx_pkts = 1 + kFirst + kStopped + 600;
  const uint64_t a_rx_bytes = 128 + kFirst / 2 * (1200 + 100) + stopped_bytes + 600 * 1500;
  check_exact_counters(d, "a", {a_rx_pkts, a_rx_bytes, 1 + 600, 128 + 600 * 60});
  check_exact_counters(d, "b", {1 + 600, 128 + 600 * 60, a_rx_pkts, a_rx_bytes});
  finish(d);
}

}  // namespace vusw::it
