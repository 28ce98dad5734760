// A broken or malicious front-end on port x: each case checks a clear outcome
// (connection closed for framing violations, REPLY_ACK failure otherwise), that
// it was counted in protocol_errors, that no fd leaked, and that ports a <-> b
// keep switching. Spec: vhost-user.rst "Message types"; contract.md.
// Cases run one after another against one daemon (each on a fresh connection
// where the case may spoil it): a daemon start costs seconds.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <functional>

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

// ADD_MEM_REG of `d` with `fd` on port x (which has one region) fails, is counted and
// changes nothing; the connection stays usable.
void expect_region_refused(Bench& bench, FakeFrontend& fe, const MemRegionDesc& d, int fd) {
  const size_t fds = bench.d.fd_count();
  const uint64_t errors = bench.errors("x");
  CHECK(fe.add_mem_reg_raw(d, std::array{fd}).failed());
  CHECK(bench.regions("x") == 1);
  expect_contained(bench, errors, fds);
  CHECK(fe.sync());
}

struct FramingCase {
  const char* name;
  std::function<void(VhostConn&)> send;
};

void send_header(VhostConn& c, MsgHeader h, size_t len = sizeof(MsgHeader)) {
  REQUIRE(c.send_raw(bytes_of(h).first(len)));
}

const FramingCase kFraming[] = {
    {"truncated header, then close",
     [](VhostConn& c) {
       send_header(c, {uint32_t(Req::GetFeatures), kVersion1, 0}, 6);
       c.close();
     }},
    {"payload size larger than any message",
     [](VhostConn& c) { send_header(c, {uint32_t(Req::SetMemTable), kVersion1, 1u << 20}); }},
    {"version 0 in flags", [](VhostConn& c) { send_header(c, {uint32_t(Req::GetFeatures), 0x0, 0}); }},
    {"version 2 in flags", [](VhostConn& c) { send_header(c, {uint32_t(Req::GetFeatures), 0x2, 0}); }},
};

}  // namespace

TEST_CASE("framing violations close that connection only") {
  Bench bench;
  for (const FramingCase& c : kFraming) {
    CAPTURE(c.name);
    auto fe = handshaken(bench.d, "x");
    REQUIRE(fe);
    size_t fds = bench.d.fd_count();
    uint64_t errors = bench.errors("x");
    c.send(fe->conn());
    if (fe->conn().fd() >= 0) CHECK(fe->conn().wait_closed(milliseconds(2000)));
    expect_contained(bench, errors, fds);
    fe.reset();
    // The port takes a new front-end afterwards.
    CHECK(wait_until([&] { return bench.port("x").value("state", "") == "waiting"; }, milliseconds(2000)));
    auto again = attach(bench.d, "x");
    REQUIRE(again);
    CHECK(pair_switches(*again, kMacX, *bench.a, kMacA));
  }
  finish(bench.d);
}

TEST_CASE("semantic errors get a REPLY_ACK failure and the connection stays") {
  Bench bench;
  auto fe = handshaken(bench.d, "x");
  REQUIRE(fe);
  REQUIRE(fe->reply_ack());
  auto e1 = make_eventfd(), e2 = make_eventfd(), e3 = make_eventfd();
  const uint64_t tx = kTxRing, junk = 0;
  const std::pair<const char*, std::function<Ack()>> cases[] = {
      {"unknown request code", [&] { return fe->request(static_cast<Req>(999), {}); }},
      {"SET_VRING_KICK with 3 fds",
       [&] { return fe->request(Req::SetVringKick, bytes_of(tx), std::array{e1.get(), e2.get(), e3.get()}); }},
      {"SET_VRING_CALL with the no-fd flag and an fd",
       [&] {
         uint64_t v = kTxRing | kVringNoFd;
         return fe->request(Req::SetVringCall, bytes_of(v), std::array{e1.get()});
       }},
      {"SET_OWNER with an fd",
       [&] { return fe->request(Req::SetOwner, {}, std::array{e1.get()}); }},
      {"SET_VRING_NUM payload of 4 bytes", [&] { return fe->request(Req::SetVringNum, bytes_of(junk).first(4)); }},
      {"vring index 200", [&] { return fe->set_vring_num(200, 256); }},
      {"SET_VRING_CALL index 200 with an fd", [&] { return fe->set_vring_fd(Req::SetVringCall, 200, e1.get()); }},
      {"ring size not a power of two", [&] { return fe->set_vring_num(kTxRing, 100); }},
      {"ring size above 32768", [&] { return fe->set_vring_num(kTxRing, 65536); }},
  };
  for (const auto& [name, send] : cases) {
    CAPTURE(name);
    size_t fds = bench.d.fd_count();
    uint64_t errors = bench.errors("x");
    CHECK(send().failed());
    expect_contained(bench, errors, fds);
    CHECK(fe->sync());
  }
  CHECK(fe->anomalies().empty());
  // Every case was counted once, and /metrics agrees with the ctl JSON.
  uint64_t total = bench.errors("x");
  CHECK(total == std::size(cases));
  auto m = bench.d.scrape();
  REQUIRE(m);
  CHECK(m->sum("vusw_vhost_protocol_errors_total", {{"port", "x"}}) == double(total));
  finish(bench.d);
}

TEST_CASE("bad memory regions are rejected without side effects") {
  Bench bench;
  auto fe = handshaken(bench.d, "x");
  REQUIRE(fe);
  MemRegion base(kGpa, kSmall), other(kGpa + 4 * kSmall, kSmall);
  REQUIRE(fe->add_mem_reg(base).ok());
  const std::pair<const char*, std::function<void(MemRegionDesc&)>> cases[] = {
      {"size 0", [](MemRegionDesc& d) { d.memory_size = 0; }},
      {"mmap_offset + size beyond the file", [](MemRegionDesc& d) { d.mmap_offset = kSmall / 2; }},
      {"size larger than the file", [](MemRegionDesc& d) { d.memory_size = 2 * kSmall; }},
      {"gpa + size overflows", [](MemRegionDesc& d) { d.guest_phys_addr = ~0ull - 4095; }},
      {"uva + size overflows", [](MemRegionDesc& d) { d.userspace_addr = ~0ull - 4095; }},
      {"mmap_offset + size overflows", [](MemRegionDesc& d) { d.mmap_offset = ~0ull - 4095; }},
      {"GPA overlaps an existing region", [](MemRegionDesc& d) { d.guest_phys_addr = kGpa + kSmall / 2; }},
      {"UVA overlaps an existing region", [&](MemRegionDesc& d) { d.userspace_addr = base.uva() + 4096; }},
  };
  for (const auto& [name, spoil] : cases) {
    CAPTURE(name);
    MemRegionDesc d = other.desc();
    spoil(d);
    expect_region_refused(bench, *fe, d, other.fd());
  }
  finish(bench.d);
}

TEST_CASE("a region whose fd cannot be mapped is refused with the reason; the port stays usable") {
  Bench bench;
  auto fe = handshaken(bench.d, "x");
  REQUIRE(fe);
  MemRegion base(kGpa, kSmall), other(kGpa + 4 * kSmall, kSmall);
  REQUIRE(fe->add_mem_reg(base).ok());
  int pipe_fds[2];
  REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
  UniqueFd pipe_read(pipe_fds[0]), pipe_write(pipe_fds[1]);
  // The region's own memfd opened read-only: a shared writable mapping of it is refused.
  UniqueFd read_only(::open(("/proc/self/fd/" + std::to_string(other.fd())).c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(read_only);
  UniqueFd event = make_eventfd();
  const std::pair<const char*, int> cases[] = {
      {"an eventfd", event.get()}, {"a pipe", pipe_read.get()}, {"a read-only memfd", read_only.get()}};
  for (const auto& [name, fd] : cases) {
    CAPTURE(name);
    expect_region_refused(bench, *fe, other.desc(), fd);
  }
  // The same region with its real fd is taken, and the port's guest works.
  CHECK(fe->add_mem_reg(other).ok());
  CHECK(bench.regions("x") == 2);
  const nlohmann::json last = bench.port("x")["last_errors"];
  INFO(last.dump());
  CHECK(last.dump().find("mmap") != std::string::npos);
  finish(bench.d);
}

TEST_CASE("SET_MEM_TABLE with a bad region is rejected") {
  Bench bench;
  auto fe = handshaken(bench.d, "x");
  REQUIRE(fe);
  MemRegion r1(kGpa, kSmall), r2(kGpa + 4 * kSmall, kSmall);
  const std::pair<const char*, std::function<void(MemTableMsg&, std::vector<int>&)>> cases[] = {
      {"overlapping GPAs", [](MemTableMsg& m, std::vector<int>&) { m.regions[1].guest_phys_addr = kGpa + 4096; }},
      {"fewer fds than regions", [](MemTableMsg&, std::vector<int>& fds) { fds.pop_back(); }},
      {"more fds than regions", [&](MemTableMsg&, std::vector<int>& fds) { fds.push_back(r1.fd()); }},
      {"nregions 9", [](MemTableMsg& m, std::vector<int>&) { m.nregions = 9; }},
  };
  for (const auto& [name, spoil] : cases) {
    CAPTURE(name);
    size_t fds = bench.d.fd_count();
    uint64_t errors = bench.errors("x");
    MemTableMsg m{};
    m.nregions = 2;
    m.regions[0] = r1.desc();
    m.regions[1] = r2.desc();
    std::vector<int> fd_list{r1.fd(), r2.fd()};
    spoil(m, fd_list);
    size_t len = offsetof(MemTableMsg, regions) + 2 * sizeof(MemRegionDesc);
    CHECK(fe->request(Req::SetMemTable, bytes_of(m).first(len), fd_list).failed());
    CHECK(bench.regions("x") == 0);
    expect_contained(bench, errors, fds);
  }
  finish(bench.d);
}

TEST_CASE("ring addresses outside guest memory break only that ring") {
  Bench bench;
  const std::pair<const char*, std::function<void(VringAddr&, const MemRegion&)>> cases[] = {
      {"descriptor table", [](VringAddr& a, const MemRegion&) { a.desc_user_addr = 0x10000; }},
      {"avail ring", [](VringAddr& a, const MemRegion& r) { a.avail_user_addr = r.uva() + r.size(); }},
      {"used ring straddles the region end",
       [](VringAddr& a, const MemRegion& r) { a.used_user_addr = r.uva() + r.size() - 8; }},
  };
  for (const auto& [name, spoil] : cases) {
    CAPTURE(name);
    auto fe = handshaken(bench.d, "x");
    REQUIRE(fe);
    REQUIRE(fe->send_memory().ok());
    uint64_t errors = bench.errors("x");
    uint64_t faults = bench.guest_faults("x");
    VringAddr addr = fe->tx().vring_addr(kTxRing);
    spoil(addr, fe->main_region());
    REQUIRE(fe->set_vring_num(kTxRing, fe->tx().size()).ok());
    // Either refused right away, or accepted and the ring breaks when it starts.
    if (!fe->set_vring_addr(addr).failed()) {
      REQUIRE(fe->set_vring_fd(Req::SetVringKick, kTxRing, fe->kick_fd(kTxRing)).ok());
      fe->kick(kTxRing);
    }
    bool counted = wait_until(
        [&] { return bench.errors("x") > errors || bench.guest_faults("x") > faults; }, milliseconds(2000));
    CHECK_MESSAGE(counted, "bad ring address neither refused nor counted");
    CHECK(bench.d.alive());
    CHECK(bench.healthy());
    fe.reset();
    CHECK(wait_until([&] { return bench.port("x").value("state", "") == "waiting"; }, milliseconds(2000)));
  }
  finish(bench.d);
}

}  // namespace vusw::it
