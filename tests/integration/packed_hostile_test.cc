// A hostile guest on port x drives packed rings (virtio 1.2, 2.8) and writes
// bad descriptors, flags and ring addresses into them. For each case the switch
// must count the broken queue with the expected reason (show_ports "broken"),
// keep the daemon and a <-> b switching, and take the ring again once the
// front-end configures it afresh (GET_VRING_BASE, new zeroed ring, SET_VRING_*).
// Descriptors whose AVAIL/USED flags do not make them available in the
// driver's current lap are not a fault: the device must just not take them.
// All cases share one connection on x.
#include <doctest/doctest.h>

#include <cstring>
#include <functional>

#include "fixture.h"

namespace vusw::it {
namespace {

using std::chrono::milliseconds;
constexpr uint64_t kOutside = 0x7fff00000000;  // far from any fake guest region
constexpr uint16_t kRing = 250;

// What an attack gets: x's packed ring under attack, a slot holding header +
// a valid 64 B frame for a (gpa, length), and a second KiB in that slot free
// for an indirect table.
struct Target {
  FakeFrontend& x;
  PackedRing& ring;
  uint64_t frame_gpa;
  uint32_t frame_len;
  uint64_t table_gpa;
  PackedDesc* table;
};

using Attack = std::function<void(Target&)>;
struct Case {
  const char* name;
  uint32_t ring;                      // kTxRing or kRxRing
  std::vector<const char*> reasons;   // any of these counted; empty: no fault, nothing taken
  Attack attack;
  uint32_t warmup = 16;               // frames each way x <-> a first (260: the wrap counter is 0)
};

// The frame and table live in a free TX slot (TX has all free: nothing in flight).
Target target(FakeFrontend& x, uint32_t ring) {
  DriverRing& tx = x.tx();
  const uint16_t s = tx.peek_free(1).front();
  std::memset(tx.slot(s), 0, x.hdr_len());
  std::vector<std::byte> f = make_frame(kMacA, kMacX, 0, 64);
  std::memcpy(tx.slot(s) + x.hdr_len(), f.data(), f.size());
  return {x, x.packed(ring), tx.slot_gpa(s), x.hdr_len() + 64, tx.slot_gpa(s) + 1024,
          reinterpret_cast<PackedDesc*>(tx.slot(s) + 1024)};
}

// One TX chain published as given (flags get the current lap's AVAIL/USED bits).
Attack tx(std::function<std::vector<PackedDesc>(Target&)> build) {
  return [build](Target& t) {
    t.ring.publish_raw(build(t));
    t.x.kick(kTxRing);
  };
}

// Rewrites every RX descriptor (all are available after fill_rx), then a sends to x.
Attack rx(std::function<void(PackedDesc&)> spoil) {
  return [spoil](Target& t) {
    for (uint16_t i = 0; i < t.ring.size(); ++i) {
      PackedDesc d = t.ring.desc(i);
      spoil(d);
      t.ring.desc(i).addr = d.addr;
      t.ring.desc(i).len = d.len;
      t.ring.desc(i).id = d.id;
      t.ring.set_flags_raw(i, d.flags);
    }
  };
}

// A TX descriptor at the avail position with flags that do not make it available.
Attack not_available(std::function<uint16_t(bool wrap)> flags) {
  return [flags](Target& t) {
    const uint16_t p = t.ring.avail_pos();
    t.ring.desc(p) = {t.frame_gpa, t.frame_len, 0, t.ring.desc(p).flags};
    t.ring.set_flags_raw(p, flags(t.ring.avail_wrap()));
    t.x.kick(kTxRing);
  };
}

std::vector<Case> cases() {
  const uint16_t wr = kDescFWrite;
  std::vector<Case> c = {
      {"chain longer than the ring (every descriptor NEXT)", kTxRing, {"chain_loop", "partial_chain"},
       tx([](Target& t) { return std::vector<PackedDesc>(t.ring.size(), {t.frame_gpa, 16, 0, kDescFNext}); })},
      {"chain continues into a descriptor not made available", kTxRing, {"partial_chain"},
       tx([](Target& t) { return std::vector<PackedDesc>{{t.frame_gpa, t.frame_len, 0, kDescFNext}}; })},
      {"buffer id = ring size", kTxRing, {"bad_desc_index"},
       tx([](Target& t) { return std::vector<PackedDesc>{{t.frame_gpa, t.frame_len, kRing, 0}}; })},
      {"buffer id 0xffff", kTxRing, {"bad_desc_index"},
       tx([](Target& t) { return std::vector<PackedDesc>{{t.frame_gpa, t.frame_len, 0xffff, 0}}; })},
      {"buffer outside guest memory", kTxRing, {"desc_outside_memory"},
       tx([](Target&) { return std::vector<PackedDesc>{{kOutside, 76, 0, 0}}; })},
      {"buffer straddles the region end", kTxRing, {"desc_outside_memory"},
       tx([](Target& t) {
         const MemRegion& r = t.x.main_region();
         return std::vector<PackedDesc>{{r.gpa() + r.size() - 16, 76, 0, 0}};
       })},
      {"addr + len wraps", kTxRing, {"desc_outside_memory"},
       tx([](Target&) { return std::vector<PackedDesc>{{~0ull - 63, 4096, 0, 0}}; })},
      {"zero-length descriptor", kTxRing, {"zero_length_desc"},
       tx([](Target& t) { return std::vector<PackedDesc>{{t.frame_gpa, 0, 0, 0}}; })},
      {"device-writable buffer on TX", kTxRing, {"wrong_direction"},
       tx([=](Target& t) { return std::vector<PackedDesc>{{t.frame_gpa, t.frame_len, 0, wr}}; })},
      {"indirect table length not a multiple of 16", kTxRing, {"bad_indirect"},
       tx([](Target& t) {
         t.table[0] = {t.frame_gpa, t.frame_len, 0, 0};
         return std::vector<PackedDesc>{{t.table_gpa, 24, 0, kDescFIndirect}};
       })},
      {"indirect table length 0", kTxRing, {"bad_indirect"},
       tx([](Target& t) { return std::vector<PackedDesc>{{t.table_gpa, 0, 0, kDescFIndirect}}; })},
      {"indirect with NEXT", kTxRing, {"bad_indirect"},
       tx([](Target& t) {
         t.table[0] = {t.frame_gpa, t.frame_len, 0, 0};
         return std::vector<PackedDesc>{{t.table_gpa, 16, 0, kDescFIndirect | kDescFNext},
                                        {t.frame_gpa, t.frame_len, 0, 0}};
       })},
      {"nested indirect", kTxRing, {"nested_indirect"},
       tx([](Target& t) {
         t.table[0] = {t.table_gpa, 16, 0, kDescFIndirect};
         return std::vector<PackedDesc>{{t.table_gpa, 16, 0, kDescFIndirect}};
       })},
      {"indirect table outside guest memory", kTxRing, {"desc_outside_memory", "bad_indirect"},
       tx([](Target&) { return std::vector<PackedDesc>{{kOutside, 32, 0, kDescFIndirect}}; })},
      {"indirect table holds a zero-length buffer", kTxRing, {"zero_length_desc"},
       tx([](Target& t) {
         t.table[0] = {t.frame_gpa, 0, 0, 0};
         return std::vector<PackedDesc>{{t.table_gpa, 16, 0, kDescFIndirect}};
       })},
      {"RX buffers not device-writable", kRxRing, {"wrong_direction"},
       rx([](PackedDesc& d) { d.flags = static_cast<uint16_t>(d.flags & ~kDescFWrite); })},
      {"RX buffers outside guest memory", kRxRing, {"desc_outside_memory"},
       rx([](PackedDesc& d) { d.addr = kOutside; })},
      {"RX buffer ids out of range", kRxRing, {"bad_desc_index"}, rx([](PackedDesc& d) { d.id = kRing + 7; })},
  };
  // Wrap-counter games, in the first lap (driver wrap counter 1) and after it flipped.
  for (uint32_t warmup : {16u, 16u + kRing}) {
    c.push_back({"descriptor looks used (AVAIL == USED == driver wrap)", kTxRing, {},
                 not_available([](bool w) { return uint16_t(w ? kDescFAvail | kDescFUsed : 0); }), warmup});
    c.push_back({"AVAIL/USED inverted (available in the other lap)", kTxRing, {},
                 not_available([](bool w) { return PackedRing::avail_bits(!w); }), warmup});
    c.push_back({"AVAIL and USED both set", kTxRing, {}, not_available([](bool) { return uint16_t(kDescFAvail | kDescFUsed); }),
                 warmup});
    c.push_back({"AVAIL and USED both clear", kTxRing, {}, not_available([](bool) { return uint16_t(0); }), warmup});
  }
  return c;
}

uint64_t broken_with(const nlohmann::json& port, const std::vector<const char*>& reasons) {
  uint64_t n = 0;
  for (const char* r : reasons) n += broken(port, r);
  return n;
}

// The ring stays untouched: nothing reaches a and nothing is counted; then the
// same descriptor made available properly goes through exactly once.
void check_not_taken(Bench& bench, FakeFrontend& x, const nlohmann::json& before) {
  CHECK(bench.a->wait_rx(1, milliseconds(300)).empty());
  CHECK(json_u64(bench.port("x"), "broken_queues") == json_u64(before, "broken_queues"));
  CHECK(json_u64(bench.port("x"), "rx_packets") == json_u64(before, "rx_packets"));
  PackedRing& ring = x.packed(kTxRing);
  PackedDesc d = ring.desc(ring.avail_pos());
  d.flags = 0;
  ring.publish_raw(std::span(&d, 1));
  x.kick(kTxRing);
  CHECK(bench.a->wait_rx(2, milliseconds(1000)).size() == 1);
}

void run_case(Bench& bench, FakeFrontend& x, const Case& c) {
  REQUIRE(pair_switches(x, kMacX, *bench.a, kMacA, c.warmup));
  PackedRing& ring = x.packed(c.ring);
  REQUIRE(wait_until([&] { x.reclaim_tx(); return x.tx().in_flight() == 0; }, milliseconds(2000)));
  const nlohmann::json before = bench.port("x");
  Target t = target(x, c.ring);
  INFO("avail position " << ring.avail_pos() << ", driver wrap counter " << ring.avail_wrap());
  c.attack(t);
  if (c.ring == kRxRing)
    for (uint32_t i = 0; i < 4; ++i) REQUIRE(bench.a->send_frame(make_frame(kMacX, kMacA, i, 64), TxLayout::Single));
  bench.a->kick(kTxRing);
  if (c.reasons.empty()) {
    check_not_taken(bench, x, before);
  } else {
    CHECK_MESSAGE(wait_until([&] { return broken_with(bench.port("x"), c.reasons) > broken_with(before, c.reasons); },
                             milliseconds(2000)),
                  "x: " << bench.port("x").dump());
    CHECK(json_u64(bench.port("x"), "broken_queues") == json_u64(before, "broken_queues") + 1);
  }
  CHECK(bench.d.alive());
  CHECK(bench.healthy());
  // The front-end configures the ring again: it works again.
  REQUIRE(x.reset_ring(c.ring));
  CHECK(pair_switches(x, kMacX, *bench.a, kMacA));
}

}  // namespace

TEST_CASE("packed rings: hostile descriptors break only that queue, with the reason, until it is set up again") {
  Bench bench;
  FrontendOptions opt;
  opt.packed = true;
  opt.ring_size = kRing;
  auto x = attach(bench.d, "x", opt);
  REQUIRE_MESSAGE(x, bench.d.log_tail());
  for (const Case& c : cases()) {
    CAPTURE(std::string(c.name));
    CAPTURE(c.warmup);
    run_case(bench, *x, c);
  }
  MESSAGE("x broke with: " << bench.port("x")["broken"].dump());
  finish(bench.d);
}

TEST_CASE("packed rings: a ring outside guest memory breaks only that queue, until it is set up again") {
  Bench bench;
  FrontendOptions opt;
  opt.packed = true;
  opt.ring_size = kRing;
  auto x = attach(bench.d, "x", opt);
  REQUIRE_MESSAGE(x, bench.d.log_tail());
  REQUIRE(pair_switches(*x, kMacX, *bench.a, kMacA));
  const nlohmann::json before = bench.port("x");
  const MemRegion& r = x->main_region();
  VringAddr bad = x->ring(kTxRing).vring_addr(kTxRing);
  bad.desc_user_addr = r.uva() + r.size() - 64;  // 250 descriptors from 64 B before the end
  REQUIRE(x->get_vring_base(kTxRing));
  // Either refused right away, or accepted and the ring breaks when it starts.
  if (!x->set_vring_addr(bad).failed()) {
    REQUIRE(x->set_vring_fd(Req::SetVringKick, kTxRing, x->kick_fd(kTxRing)).ok());
    x->kick(kTxRing);
    CHECK_MESSAGE(wait_until([&] { return broken(bench.port("x"), "ring_outside_memory") > broken(before, "ring_outside_memory"); },
                             milliseconds(2000)),
                  "x: " << bench.port("x").dump());
  } else {
    CHECK(bench.errors("x") > json_sum(before, "protocol_errors"));
  }
  CHECK(bench.healthy());
  REQUIRE(x->reset_ring(kTxRing));
  CHECK(pair_switches(*x, kMacX, *bench.a, kMacA));
  finish(bench.d);
}

}  // namespace vusw::it
