// Multiqueue (VIRTIO_NET_F_MQ, vhost-user protocol feature MQ): a guest "m"
// with four queue pairs of the 16 the switch offers (the other rings are never
// set up) next to a single-queue guest "a". Traffic to m is spread over its RX
// queues by flow: every flow stays on one queue and in order, and the flows
// together use more than one queue. Frames m sends on any TX queue arrive. A
// pair disabled with SET_VRING_ENABLE 0 gets nothing until it is enabled again.
// Flows are told apart by their source MAC (non-IP frames hash on the Ethernet
// addresses and type).
#include <doctest/doctest.h>

#include <bit>
#include <bitset>

#include "fixture.h"

namespace vusw::it {
namespace {

using std::chrono::milliseconds;
constexpr uint16_t kPairs = 4;
constexpr uint32_t kFlows = 32;
constexpr uint32_t kPerFlow = 150;
const Mac kMacM = mac(0x4d);

// kFlows flows a -> m, each from its own source MAC, sizes across the zero-copy threshold.
std::vector<Flow> flows_to_m(FakeFrontend& a, FakeFrontend& m) {
  std::vector<Flow> flows;
  for (uint32_t i = 0; i < kFlows; ++i) {
    Flow f{&a, &m, mac(static_cast<uint8_t>(0x80 + i)), kMacM, 64 + (i * 97) % 1455, TxLayout::Single, kPerFlow};
    f.window = 4;  // 32 x 4 frames fit one RX queue even if every flow hashed to it
    flows.push_back(f);
  }
  return flows;
}

uint32_t queues_used(const PumpResult& r) {
  uint32_t all = 0;
  for (const Flow& f : r.flows) all |= f.rx_queues;
  return all;
}

void check_delivered(const PumpResult& r) {
  INFO(r.summary());
  CHECK(r.completed);
  CHECK(r.stray == 0);
  for (const Flow& f : r.flows) {
    CAPTURE(f.len);
    CHECK(f.corrupt == 0);  // sequence numbers in order, bytes intact
    CHECK(std::popcount(f.rx_queues) == 1);  // one flow, one queue
  }
}

uint64_t bytes_of(const std::vector<Flow>& flows) {
  uint64_t n = 0;
  for (const Flow& f : flows) n += uint64_t{f.count} * f.len;
  return n;
}

struct Setup {
  explicit Setup(bool packed) : d(config()) {
    FrontendOptions mo;
    mo.queue_pairs = kPairs;
    mo.packed = packed;
    mo.ring_size = packed ? 250 : 256;
    a = attach(d, "a");
    m = attach(d, "m", mo);
    REQUIRE_MESSAGE(a, d.log_tail());
    REQUIRE_MESSAGE(m, d.log_tail());
    CHECK((m->features() & feat::kMq) != 0);
    CHECK(m->queue_num() == 16);
    REQUIRE(pair_switches(*a, kMacA, *m, kMacM, 1));
  }
  static DaemonConfig config() {
    DaemonConfig cfg;
    cfg.servers = {"a", "m"};
    return cfg;
  }
  Daemon d;
  std::unique_ptr<FakeFrontend> a, m;
};

}  // namespace

TEST_CASE("multiqueue: flows to a 4-pair guest spread over its RX queues, each flow on one queue, in order") {
  bool packed = false;
  SUBCASE("split rings") { packed = false; }
  SUBCASE("packed rings") { packed = true; }
  CAPTURE(packed);
  Setup s(packed);
  std::vector<Flow> flows = flows_to_m(*s.a, *s.m);
  PumpResult r = pump(flows);
  check_delivered(r);
  const uint32_t used = queues_used(r);
  MESSAGE("RX queues used (bit q = queue q): " << std::bitset<kPairs>(used).to_string());
  CHECK(std::popcount(used) > 1);
  CHECK(used < (1u << kPairs));
  CHECK(s.m->rx_errors() == 0);

  // And m sends on every TX queue: all of it arrives at a.
  std::vector<Flow> back;
  for (uint16_t q = 0; q < kPairs; ++q) {
    Flow f{s.m.get(), s.a.get(), kMacM, kMacA, 100u + 300u * q, TxLayout::Chained, kPerFlow};
    f.tx_queue = q;
    back.push_back(f);
  }
  PumpResult rb = pump(back);
  INFO(rb.summary());
  CHECK(rb.completed);
  for (const Flow& f : rb.flows) CHECK(f.corrupt == 0);
  CHECK(s.a->rx_errors() == 0);

  const uint64_t to_m = kFlows * kPerFlow, to_m_bytes = bytes_of(flows);
  const uint64_t from_m = kPairs * kPerFlow, from_m_bytes = bytes_of(back);
  check_exact_counters(s.d, "m", {1 + from_m, 128 + from_m_bytes, 1 + to_m, 128 + to_m_bytes});
  check_exact_counters(s.d, "a", {1 + to_m, 128 + to_m_bytes, 1 + from_m, 128 + from_m_bytes});
  finish(s.d);
}

TEST_CASE("multiqueue: a pair disabled with SET_VRING_ENABLE 0 gets no traffic until enabled again") {
  bool packed = false;
  SUBCASE("split rings") { packed = false; }
  SUBCASE("packed rings") { packed = true; }
  CAPTURE(packed);
  Setup s(packed);
  constexpr uint16_t kOff = 1;
  REQUIRE(s.m->set_vring_enable(rx_ring(kOff), false).ok());
  REQUIRE(s.m->set_vring_enable(tx_ring(kOff), false).ok());
  REQUIRE(s.m->sync());
  PumpResult r = pump(flows_to_m(*s.a, *s.m));
  check_delivered(r);
  const uint32_t used = queues_used(r);
  MESSAGE("RX queues used with pair " << kOff << " disabled: " << std::bitset<kPairs>(used).to_string());
  CHECK((used & (1u << kOff)) == 0);
  CHECK(std::popcount(used) > 1);
  CHECK(json_sum(s.d.port("m"), "drops") == 0);

  REQUIRE(s.m->set_vring_enable(rx_ring(kOff), true).ok());
  REQUIRE(s.m->set_vring_enable(tx_ring(kOff), true).ok());
  REQUIRE(s.m->sync());
  s.m->kick(rx_ring(kOff));
  std::vector<Flow> again = flows_to_m(*s.a, *s.m);
  for (Flow& f : again) f.src[4] = 1;  // new flows, hashed afresh
  r = pump(again);
  check_delivered(r);
  MESSAGE("RX queues used with pair " << kOff << " enabled again: " << std::bitset<kPairs>(queues_used(r)).to_string());
  CHECK((queues_used(r) & (1u << kOff)) != 0);
  finish(s.d);
}

}  // namespace vusw::it
