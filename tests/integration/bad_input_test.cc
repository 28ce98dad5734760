// A broken or malicious front-end on port x: each case checks a clear outcome
// (connection closed for framing violations, REPLY_ACK failure otherwise), that
// it was counted in protocol_errors, that no fd leaked, and that ports a <-> b
// keep switching. Spec: vhost-user.rst "Message types"; contract.md.
#include <doctest/doctest.h>

#include "fixture.h"

namespace vusw::it {
namespace {

using std::chrono::milliseconds;
constexpr uint64_t kGpa = 0x100000000;
constexpr uint64_t kSmall = 64 * 1024;

// After the bad message: counted, daemon alive, a <-> b switching, fds back.
void expect_contained(Bench& bench, uint64_t errors_before, size_t fds_before) {
  CHECK_MESSAGE(bench.error_counted("x", errors_before), "no protocol error counted on x");
  CHECK(bench.d.alive());
  CHECK(bench.healthy());
  CHECK_MESSAGE(wait_until([&] { return bench.d.fd_count() <= fds_before; }, milliseconds(3000)),
                "daemon fds " << bench.d.fd_count() << " > " << fds_before);
}

}  // namespace

TEST_CASE("framing violations close that connection only") {
  Bench bench;
  auto fe = handshaken(bench.d, "x");
  REQUIRE(fe);
  size_t fds = bench.d.fd_count();
  uint64_t errors = bench.errors("x");

  SUBCASE("truncated header, then close") {
    MsgHeader h{uint32_t(Req::GetFeatures), kVersion1, 0};
    REQUIRE(fe->conn().send_raw(bytes_of(h).first(6)));
    fe->conn().close();
  }
  SUBCASE("payload size larger than any message") {
    MsgHeader h{uint32_t(Req::SetMemTable), kVersion1, 1u << 20};
    REQUIRE(fe->conn().send_raw(bytes_of(h)));
    CHECK(fe->conn().wait_closed(milliseconds(2000)));
  }
  SUBCASE("version 0 in flags") {
    REQUIRE(fe->conn().send(uint32_t(Req::GetFeatures), 0x0, {}));
    CHECK(fe->conn().wait_closed(milliseconds(2000)));
  }
  SUBCASE("version 2 in flags") {
    REQUIRE(fe->conn().send(uint32_t(Req::GetFeatures), 0x2, {}));
    CHECK(fe->conn().wait_closed(milliseconds(2000)));
  }
  expect_contained(bench, errors, fds);
  // The port takes a new front-end afterwards.
  fe.reset();
  auto again = attach(bench.d, "x");
  REQUIRE(again);
  CHECK(pair_switches(*again, kMacX, *bench.a, kMacA));
  finish(bench.d);
}

TEST_CASE("semantic errors get a REPLY_ACK failure and the connection stays") {
  Bench bench;
  auto fe = handshaken(bench.d, "x");
  REQUIRE(fe);
  REQUIRE(fe->reply_ack());
  size_t fds = bench.d.fd_count();
  uint64_t errors = bench.errors("x");

  SUBCASE("unknown request code") {
    CHECK(fe->request(static_cast<Req>(999), {}).failed());
  }
  SUBCASE("SET_VRING_KICK with 3 fds") {
    auto e1 = make_eventfd(), e2 = make_eventfd(), e3 = make_eventfd();
    uint64_t idx = kTxRing;
    CHECK(fe->request(Req::SetVringKick, bytes_of(idx), std::array{e1.get(), e2.get(), e3.get()}).failed());
  }
  SUBCASE("SET_VRING_NUM payload of 4 bytes") {
    uint64_t junk = 0;
    CHECK(fe->request(Req::SetVringNum, bytes_of(junk).first(4)).failed());
  }
  SUBCASE("vring index 200") {
    CHECK(fe->set_vring_num(200, 256).failed());
  }
  SUBCASE("SET_VRING_CALL index 200 with an fd") {
    auto e = make_eventfd();
    CHECK(fe->set_vring_fd(Req::SetVringCall, 200, e.get()).failed());
  }
  SUBCASE("ring size not a power of two") {
    CHECK(fe->set_vring_num(kTxRing, 100).failed());
  }
  SUBCASE("ring size above 32768") {
    CHECK(fe->set_vring_num(kTxRing, 65536).failed());
  }
  SUBCASE("ring size 0") {
    CHECK(fe->set_vring_num(kTxRing, 0).failed());
  }
  expect_contained(bench, errors, fds);
  CHECK(fe->sync());
  CHECK(fe->anomalies().empty());
  finish(bench.d);
}

TEST_CASE("bad memory regions are rejected without side effects") {
  Bench bench;
  auto fe = handshaken(bench.d, "x");
  REQUIRE(fe);
  MemRegion base(kGpa, kSmall), other(kGpa + 4 * kSmall, kSmall);
  REQUIRE(fe->add_mem_reg(base).ok());
  size_t fds = bench.d.fd_count();
  uint64_t errors = bench.errors("x");
  MemRegionDesc d = other.desc();

  SUBCASE("size 0") { d.memory_size = 0; }
  SUBCASE("mmap_offset + size beyond the file") { d.mmap_offset = kSmall / 2; }
  SUBCASE("size larger than the file") { d.memory_size = 4 * kSmall; }
  SUBCASE("gpa + size overflows") { d.guest_phys_addr = ~0ull - 4095; }
  SUBCASE("uva + size overflows") { d.userspace_addr = ~0ull - 4095; }
  SUBCASE("mmap_offset + size overflows") { d.mmap_offset = ~0ull - 4095; }
  SUBCASE("GPA overlaps an existing region") { d.guest_phys_addr = kGpa + kSmall / 2; }
  SUBCASE("UVA overlaps an existing region") { d.userspace_addr = base.uva() + 4096; }

  CHECK(fe->add_mem_reg_raw(d, std::array{other.fd()}).failed());
  CHECK(bench.regions("x") == 1);
  expect_contained(bench, errors, fds);
  CHECK(fe->sync());
  finish(bench.d);
}

TEST_CASE("SET_MEM_TABLE with a bad region is rejected") {
  Bench bench;
  auto fe = handshaken(bench.d, "x");
  REQUIRE(fe);
  MemRegion r1(kGpa, kSmall), r2(kGpa + 4 * kSmall, kSmall);
  size_t fds = bench.d.fd_count();
  uint64_t errors = bench.errors("x");
  MemTableMsg m{};
  m.nregions = 2;
  m.regions[0] = r1.desc();
  m.regions[1] = r2.desc();
  std::vector<int> fd_list{r1.fd(), r2.fd()};

  SUBCASE("overlapping GPAs") { m.regions[1].guest_phys_addr = kGpa + 4096; }
  SUBCASE("fewer fds than regions") { fd_list.pop_back(); }
  SUBCASE("more than 8 regions") { m.nregions = 9; }

  size_t len = offsetof(MemTableMsg, regions) + 2 * sizeof(MemRegionDesc);
  CHECK(fe->request(Req::SetMemTable, bytes_of(m).first(len), fd_list).failed());
  CHECK(bench.regions("x") == 0);
  expect_contained(bench, errors, fds);
  finish(bench.d);
}

TEST_CASE("ring addresses outside guest memory break only that ring") {
  Bench bench;
  auto fe = handshaken(bench.d, "x");
  REQUIRE(fe);
  REQUIRE(fe->send_memory().ok());
  uint64_t errors = bench.errors("x");
  uint64_t faults = bench.guest_faults("x");
  VringAddr addr = fe->tx().vring_addr(kTxRing);
  SUBCASE("descriptor table") { addr.desc_user_addr = 0x10000; }
  SUBCASE("avail ring") { addr.avail_user_addr = fe->main_region().uva() + fe->main_region().size(); }
  SUBCASE("used ring straddles the region end") {
    addr.used_user_addr = fe->main_region().uva() + fe->main_region().size() - 8;
  }

  REQUIRE(fe->set_vring_num(kTxRing, fe->tx().size()).ok());
  Ack ack = fe->set_vring_addr(addr);
  // Either refused right away, or accepted and the ring breaks when it starts.
  if (!ack.failed()) {
    REQUIRE(fe->set_vring_fd(Req::SetVringKick, kTxRing, fe->kick_fd(kTxRing)).ok());
    fe->kick(kTxRing);
  }
  bool counted = wait_until([&] { return bench.errors("x") > errors || bench.guest_faults("x") > faults; },
                            milliseconds(2000));
  CHECK_MESSAGE(counted, "bad ring address neither refused nor counted");
  CHECK(bench.d.alive());
  CHECK(bench.healthy());
  finish(bench.d);
}

}  // namespace vusw::it
