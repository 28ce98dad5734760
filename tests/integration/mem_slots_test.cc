// vhost-user memory-slot rules (spec: ADD_MEM_REG / REM_MEM_REG /
// GET_MAX_MEM_SLOTS / SET_MEM_TABLE; design.md "vhost-user memory slot rules").
#include <doctest/doctest.h>

#include <functional>

#include "fixture.h"

namespace vusw::it {
namespace {

using std::chrono::milliseconds;
constexpr uint64_t kGpa = 0x100000000;  // clear of the fake guest's ring region
constexpr uint64_t kSmall = 64 * 1024;

bool fds_back_to(const Daemon& d, size_t n) {
  return wait_until([&] { return d.fd_count() == n; }, milliseconds(3000));
}

bool maps_back_to(const Daemon& d, size_t n) {
  return wait_until([&] { return d.maps_count() == n; }, milliseconds(3000));
}

}  // namespace

TEST_CASE("ADD_MEM_REG needs exactly one fd; extra fds are closed") {
  Bench bench;
  auto fe = handshaken(bench.d, "x");
  REQUIRE(fe);
  REQUIRE(fe->reply_ack());
  REQUIRE(fe->max_mem_slots() > 0);
  MemRegion r(kGpa, kSmall), other(kGpa + kSmall, kSmall);
  size_t fds = bench.d.fd_count();
  uint64_t errors = bench.errors("x");

  SUBCASE("zero fds") { CHECK(fe->add_mem_reg_raw(r.desc(), {}).failed()); }
  SUBCASE("two fds") { CHECK(fe->add_mem_reg_raw(r.desc(), std::array{r.fd(), other.fd()}).failed()); }

  CHECK(bench.errors("x") == errors + 1);
  CHECK(bench.regions("x") == 0);
  CHECK_MESSAGE(fds_back_to(bench.d, fds), "daemon fds " << bench.d.fd_count() << " != " << fds);
  // The connection survives and the correct message still works.
  CHECK(fe->sync());
  CHECK(fe->add_mem_reg(r).ok());
  CHECK(bench.regions("x") == 1);
  CHECK(fe->anomalies().empty());
  CHECK(bench.healthy());
  finish(bench.d);
}

TEST_CASE("ADD_MEM_REG replies only through REPLY_ACK") {
  Bench bench;
  MemRegion r(kGpa, kSmall);

  SUBCASE("no NEED_REPLY: no reply at all") {
    auto fe = handshaken(bench.d, "x");
    REQUIRE(fe);
    REQUIRE(fe->add_mem_reg_raw(r.desc(), std::array{r.fd()}, false).status == AckStatus::NotRequested);
    CHECK(fe->conn().recv(milliseconds(300)).status == RecvStatus::Timeout);
    CHECK(fe->sync());  // the next reply is GET_FEATURES', not a stray ack
    CHECK(bench.regions("x") == 1);
  }
  SUBCASE("NEED_REPLY with REPLY_ACK: exactly one u64 ack = 0") {
    auto fe = handshaken(bench.d, "x");
    REQUIRE(fe);
    Ack ack = fe->add_mem_reg(r);
    CHECK(ack.status == AckStatus::Acked);
    CHECK(ack.value == 0);
    CHECK(fe->conn().recv(milliseconds(300)).status == RecvStatus::Timeout);
    CHECK(fe->anomalies().empty());
  }
  SUBCASE("NEED_REPLY without REPLY_ACK negotiated: no reply") {
    FrontendOptions opt;
    opt.reply_ack = false;
    auto fe = handshaken(bench.d, "x", opt);
    REQUIRE(fe);
    REQUIRE_FALSE(fe->reply_ack());
    MemRegMsg m{0, r.desc()};
    REQUIRE(fe->conn().send(uint32_t(Req::AddMemReg), kVersion1 | kFlagNeedReply, bytes_of(m),
                            std::array{r.fd()}));
    CHECK(fe->conn().recv(milliseconds(300)).status == RecvStatus::Timeout);
    CHECK(fe->sync());
    CHECK(bench.regions("x") == 1);
  }
  CHECK(bench.healthy());
  finish(bench.d);
}

TEST_CASE("REM_MEM_REG accepts one fd (closed) or none") {
  Bench bench;
  auto fe = handshaken(bench.d, "x");
  REQUIRE(fe);
  size_t fds = bench.d.fd_count();
  size_t maps = bench.d.maps_count();
  MemRegion r(kGpa, kSmall);
  REQUIRE(fe->add_mem_reg(r).ok());
  REQUIRE(bench.regions("x") == 1);
  // The daemon maps the region: proves the maps count below can see a leak.
  CHECK(bench.d.maps_count() > maps);

  SUBCASE("with one fd (QEMU 5.1-7.0)") {
    MemRegion extra(kGpa + kSmall, kSmall);
    CHECK(fe->rem_mem_reg_raw(r.desc(), std::array{extra.fd()}).ok());
  }
  SUBCASE("with no fd (QEMU 7.2)") { CHECK(fe->rem_mem_reg_raw(r.desc(), {}).ok()); }

  CHECK(bench.regions("x") == 0);
  CHECK_MESSAGE(fds_back_to(bench.d, fds), "daemon fds " << bench.d.fd_count() << " != " << fds);
  CHECK_MESSAGE(maps_back_to(bench.d, maps), "daemon maps " << bench.d.maps_count() << " != " << maps);
  CHECK(fe->sync());
  CHECK(bench.healthy());
  finish(bench.d);
}

// QEMU 7.2 with queues=N runs each queue pair as a vhost device of its own on one
// connection: each sends ADD_MEM_REG for the same regions, and REM_MEM_REG when they go.
TEST_CASE("a region added once per queue pair is mapped once and goes with its last removal") {
  Bench bench;
  auto fe = handshaken(bench.d, "x");
  REQUIRE(fe);
  REQUIRE(fe->reply_ack());
  size_t fds = bench.d.fd_count();
  size_t maps = bench.d.maps_count();
  uint64_t errors = bench.errors("x");
  MemRegion r(kGpa, kSmall);
  REQUIRE(fe->add_mem_reg(r).ok());
  const size_t fds_with_region = bench.d.fd_count(), maps_with_region = bench.d.maps_count();
  CHECK(maps_with_region > maps);
  for (int pair = 1; pair < 4; ++pair) REQUIRE(fe->add_mem_reg(r).ok());
  CHECK(bench.regions("x") == 1);
  CHECK(bench.d.maps_count() == maps_with_region);  // mapped once
  CHECK(fds_back_to(bench.d, fds_with_region));       // the repeats' fds closed
  for (int pair = 0; pair < 3; ++pair) {
    REQUIRE(fe->rem_mem_reg(r).ok());
    CHECK(bench.regions("x") == 1);  // still in use by the other devices
  }
  REQUIRE(fe->rem_mem_reg(r).ok());
  CHECK(bench.regions("x") == 0);
  CHECK(bench.errors("x") == errors);
  CHECK(fe->rem_mem_reg(r).failed());  // one removal too many: an error, nothing removed
  CHECK(bench.errors("x") == errors + 1);
  // A region overlapping without being identical is still refused.
  REQUIRE(fe->add_mem_reg(r).ok());
  MemRegion shifted(kGpa + 4096, kSmall);
  CHECK(fe->add_mem_reg(shifted).failed());
  CHECK(bench.regions("x") == 1);
  REQUIRE(fe->rem_mem_reg(r).ok());
  CHECK_MESSAGE(fds_back_to(bench.d, fds), "daemon fds " << bench.d.fd_count() << " != " << fds);
  CHECK_MESSAGE(maps_back_to(bench.d, maps), "daemon maps " << bench.d.maps_count() << " != " << maps);
  CHECK(fe->sync());
  CHECK(bench.healthy());
  finish(bench.d);
}

TEST_CASE("REM_MEM_REG must match gpa, uva and size; a partial match removes nothing") {
  Bench bench;
  // Port a's rings live in its main region: removing it by mistake stops a <-> b.
  MemRegionDesc good = bench.a->main_region().desc();
  const std::pair<const char*, std::function<void(MemRegionDesc&)>> cases[] = {
      {"wrong gpa", [](MemRegionDesc& d) { d.guest_phys_addr += 4096; }},
      {"wrong uva", [](MemRegionDesc& d) { d.userspace_addr += 4096; }},
      {"wrong size", [](MemRegionDesc& d) { d.memory_size -= 4096; }},
      {"unknown region", [](MemRegionDesc& d) { d = {kGpa, kSmall, 0x10000, 0}; }},
  };
  for (const auto& [name, spoil] : cases) {
    CAPTURE(name);
    MemRegionDesc bad = good;
    spoil(bad);
    uint64_t errors = bench.errors("a");
    CHECK(bench.a->rem_mem_reg_raw(bad, {}).failed());
    CHECK(bench.errors("a") == errors + 1);
    CHECK(bench.regions("a") == 1);
    CHECK(bench.a->sync());
    CHECK(bench.healthy());
  }
  finish(bench.d);
}

TEST_CASE("GET_MAX_MEM_SLOTS >= 509; the limit is enforced cleanly") {
  Bench bench;
  auto fe = handshaken(bench.d, "x");
  REQUIRE(fe);
  uint64_t slots = fe->max_mem_slots();
  CHECK(slots >= 509);
  REQUIRE(slots <= 4096);  // keeps the test quick; more is allowed but not tried here
  std::vector<std::unique_ptr<MemRegion>> rs;
  for (uint64_t i = 0; i <= slots; ++i) rs.push_back(std::make_unique<MemRegion>(kGpa + i * kSmall, 4096));
  uint64_t accepted = 0;
  for (uint64_t i = 0; i < slots; ++i) accepted += fe->add_mem_reg(*rs[i]).ok() ? 1 : 0;
  CHECK(accepted == slots);
  CHECK(bench.regions("x") == slots);

  uint64_t errors = bench.errors("x");
  CHECK(fe->add_mem_reg(*rs[slots]).failed());
  CHECK(bench.errors("x") == errors + 1);
  CHECK(bench.regions("x") == slots);
  // A freed slot can be used again.
  CHECK(fe->rem_mem_reg(*rs[0]).ok());
  CHECK(fe->add_mem_reg(*rs[slots]).ok());
  CHECK(bench.regions("x") == slots);
  CHECK(fe->sync());
  CHECK(bench.healthy());
  finish(bench.d);
}

TEST_CASE("SET_MEM_TABLE replaces every region") {
  Bench bench;
  auto x = attach(bench.d, "x");
  REQUIRE(x);
  REQUIRE(pair_switches(*x, kMacX, *bench.a, kMacA));
  MemRegion& r1 = x->mem().add(kGpa, kSmall);
  MemRegion& r2 = x->mem().add(kGpa + kSmall, kSmall);
  REQUIRE(x->add_mem_reg(r1).ok());
  REQUIRE(x->add_mem_reg(r2).ok());
  REQUIRE(bench.regions("x") == 3);

  // Only r2 stays: the ring region and r1 are gone, so x's rings are unusable.
  const MemRegion* table[] = {&r2};
  uint64_t faults = bench.guest_faults("x");
  CHECK(x->set_mem_table(table).ok());
  CHECK(bench.regions("x") == 1);
  CHECK_FALSE(pair_switches(*x, kMacX, *bench.a, kMacA, 4));
  CHECK(bench.guest_faults("x") > faults);
  CHECK(bench.d.alive());
  CHECK(bench.healthy());
  finish(bench.d);
}

TEST_CASE("a front-end without CONFIGURE_MEM_SLOTS works with SET_MEM_TABLE only") {
  Bench bench;
  FrontendOptions opt;
  opt.mem_slots = false;
  auto x = attach(bench.d, "x", opt);
  REQUIRE(x);
  CHECK((x->protocol_features() & pfeat::kConfigureMemSlots) == 0);
  CHECK(bench.regions("x") == 1);
  CHECK(pair_switches(*x, kMacX, *bench.a, kMacA));

  // Hot-add the QEMU way: a whole new table, rings not touched (qemu-7.2-notes.md).
  MemRegion& extra = x->mem().add(kGpa, kSmall);
  const MemRegion* table[] = {&x->main_region(), &extra};
  CHECK(x->set_mem_table(table).ok());
  CHECK(bench.regions("x") == 2);
  CHECK(pair_switches(*x, kMacX, *bench.a, kMacA));
  nlohmann::json p = bench.port("x");
  CHECK(p["messages"].value("SET_MEM_TABLE", 0) == 2);
  CHECK(p["messages"].value("ADD_MEM_REG", 0) == 0);
  CHECK(bench.healthy());
  finish(bench.d);
}

}  // namespace vusw::it

namespace vusw::it {
namespace {

// 1500 B frames from a to b (lent when a's memory is registered for DMA); returns how
// many of them a's port lent.
uint64_t lent_of_burst(Bench& bench, uint32_t frames) {
  const uint64_t before = json_u64(bench.port("a"), "rx_zero_copy");
  PumpResult r = pump({Flow{bench.a.get(), bench.b.get(), kMacA, kMacB, 1500, TxLayout::Single, frames}});
  INFO(r.summary());
  CHECK(r.completed);
  for (const Flow& f : r.flows) CHECK(f.corrupt == 0);
  return json_u64(bench.port("a"), "rx_zero_copy") - before;
}

uint64_t dma_regions(const Bench& bench, const std::string& port) {
  return json_u64(bench.port(port), "mem_regions_dma");
}

}  // namespace

// Zero copy needs guest memory registered with DPDK (rte_extmem_register). DPDK has 128
// memory lists in all: regions past that stay unregistered, their port copies instead of
// lending, and unregistering on removal gives the lists back.
TEST_CASE("guest memory is registered for DMA; without it a port copies; removal unregisters") {
  Bench bench;
  LeakBaseline leaks(bench.d);
  const uint64_t base_regions = bench.regions("a");
  REQUIRE(base_regions >= 1);
  CHECK(dma_regions(bench, "a") == base_regions);
  auto m = bench.d.scrape();
  REQUIRE(m);
  CHECK(m->sum("vusw_port_mem_regions_dma", {{"port", "a"}}) == double(base_regions));
  constexpr uint32_t kFrames = 500;
  CHECK(lent_of_burst(bench, kFrames) == kFrames);
  {  // 2 MiB hugetlb pages: mapped at a huge-page boundary, registered, unregistered
    MemRegion huge(kGpa - (4 << 20), 2 << 20, true);
    REQUIRE(bench.a->add_mem_reg(huge).ok());
    CHECK(dma_regions(bench, "a") == base_regions + 1);
    CHECK(lent_of_burst(bench, kFrames) == kFrames);
    REQUIRE(bench.a->rem_mem_reg(huge).ok());
    CHECK(dma_regions(bench, "a") == base_regions);
  }

  // More regions than DPDK has memory lists.
  constexpr uint64_t kExtra = 150;
  std::vector<std::unique_ptr<MemRegion>> extra;
  for (uint64_t i = 0; i < kExtra; ++i) {
    extra.push_back(std::make_unique<MemRegion>(kGpa + i * kSmall, 4096));
    REQUIRE(bench.a->add_mem_reg(*extra.back()).ok());
  }
  CHECK(bench.regions("a") == base_regions + kExtra);
  const uint64_t registered = dma_regions(bench, "a");
  MESSAGE(registered << " of " << base_regions + kExtra << " regions registered for DMA");
  CHECK(registered > base_regions);
  CHECK(registered < base_regions + kExtra);
  CHECK(bench.d.log().find("cannot register it for DMA") != std::string::npos);
  CHECK(lent_of_burst(bench, kFrames) == 0);  // still switched, by copying
  CHECK(dma_regions(bench, "b") == bench.regions("b"));

  // Removing them gives the lists back: every region registers again.
  for (const auto& r : extra) REQUIRE(bench.a->rem_mem_reg(*r).ok());
  CHECK(dma_regions(bench, "a") == base_regions);
  CHECK(lent_of_burst(bench, kFrames) == kFrames);
  leaks.wait_back();  // unmapped, so unregistered (after the grace period)
  leaks.check();
  for (uint64_t i = 0; i < 20; ++i) REQUIRE(bench.a->add_mem_reg(*extra[i]).ok());
  CHECK(dma_regions(bench, "a") == base_regions + 20);
  CHECK(lent_of_burst(bench, kFrames) == kFrames);
  for (uint64_t i = 0; i < 20; ++i) REQUIRE(bench.a->rem_mem_reg(*extra[i]).ok());
  leaks.wait_back();
  leaks.check();
  CHECK(bench.healthy());
  finish(bench.d);
}

}  // namespace vusw::it
