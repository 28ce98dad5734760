// Per-port MTU through the real daemon (the rule in include/vusw/mtu.h): the operator's
// mtu= when given, else the front-end's VHOST_USER_NET_SET_MTU while it is connected,
// else 1500. A NET_SET_MTU above mtu= is refused (error reply, counted, logged) and the
// port keeps working; one at or below it is the port's MTU until the front-end goes.
// Frames longer than the destination's MTU + 14 are dropped as mtu_exceeded, counted
// exactly; a TSO frame is judged by its segment size, not its length.
#include <doctest/doctest.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <thread>

#include "fixture.h"

namespace vusw::it {
namespace {

using Frame = std::vector<std::byte>;
using Frames = std::vector<Frame>;
const Millis kWait{3000};
constexpr uint32_t kPer = 8;  // frames per size and step

// Server sockets in a directory of the test's own, so their paths (with port options)
// can go on the daemon's command line.
struct SocketDir {
  std::string dir;
  SocketDir() {
    char tmpl[] = "/tmp/vusw-mtu-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
  }
  ~SocketDir() { std::filesystem::remove_all(dir); }
  std::string path(const std::string& port) const { return dir + "/" + port + ".sock"; }
};

std::unique_ptr<FakeFrontend> guest(const std::string& path, FrontendOptions opt = {}) {
  auto fe = FakeFrontend::connect(path, opt);
  REQUIRE_MESSAGE(fe, "nothing listens on " << path);
  REQUIRE_MESSAGE(fe->bring_up(), "bring-up on " << path << " failed");
  return fe;
}

// kPer frames of each length in `lens`, interleaved, from `src` to `dst`, numbered from `seq`.
Frames frames(const Mac& dst, const Mac& src, uint32_t seq, std::initializer_list<size_t> lens) {
  Frames out;
  for (uint32_t i = 0; i < kPer; ++i)
    for (size_t len : lens) out.push_back(make_frame(dst, src, seq++, len));
  return out;
}

Frames longer_than(const Frames& fs, size_t limit, bool longer) {
  Frames out;
  for (const Frame& f : fs)
    if ((f.size() > limit) == longer) out.push_back(f);
  return out;
}

void send(FakeFrontend& fe, const Frames& fs) {
  for (const Frame& f : fs) REQUIRE(fe.send_frame(f, TxLayout::Single));
  fe.kick(kTxRing);
}

uint64_t drops(const Daemon& d, const std::string& port, const std::string& reason = "mtu_exceeded") {
  nlohmann::json p = d.port(port);
  return p.contains("drops") && p["drops"].contains(reason) ? p["drops"][reason].get<uint64_t>() : 0;
}

uint64_t protocol_errors(const Daemon& d, const std::string& port, const std::string& reason) {
  nlohmann::json p = d.port(port);
  return p.contains("protocol_errors") && p["protocol_errors"].contains(reason) ? p["protocol_errors"][reason].get<uint64_t>()
                                                                                : 0;
}

// `to` receives exactly the frames of `sent` no longer than `max_frame`, in order and
// byte for byte; the others are dropped at port `port` as mtu_exceeded (`before` earlier).
void expect_mtu_applied(const Daemon& d, FakeFrontend& to, const std::string& port, const Frames& sent,
                        size_t max_frame, uint64_t before) {
  INFO("port " << port << ", largest frame " << max_frame);
  const Frames pass = longer_than(sent, max_frame, false), drop = longer_than(sent, max_frame, true);
  const Frames got = to.wait_rx(pass.size(), kWait);
  CHECK(got == pass);
  wait_until([&] { return drops(d, port) >= before + drop.size(); }, kWait);
  std::this_thread::sleep_for(Millis(50));
  CHECK(drops(d, port) == before + drop.size());
  CHECK(to.poll_rx().empty());
}

void expect_mtu(const Daemon& d, const std::string& port, unsigned mtu, const std::string& source) {
  nlohmann::json p = d.port(port);
  INFO("port " << port << ": " << p.dump());
  CHECK(p["mtu"] == mtu);
  CHECK(p["mtu_source"] == source);
}

// Waits until the daemon shows `port` with MTU `mtu` (a disconnect is seen asynchronously).
void wait_mtu(const Daemon& d, const std::string& port, unsigned mtu, const std::string& source) {
  wait_until([&] { return d.port(port)["mtu"] == mtu && d.port(port)["mtu_source"] == source; }, kWait);
  expect_mtu(d, port, mtu, source);
}

// A TCP/IPv4 frame of `len` bytes (54 bytes of headers) and the virtio-net header asking
// for its segmentation into `gso_size`-byte payloads, as a Linux guest with TSO sends it.
Frame tcp_frame(const Mac& dst, const Mac& src, size_t len) {
  Frame f(len);
  auto put = [&](size_t at, std::initializer_list<uint8_t> bytes) {
    for (uint8_t b : bytes) f[at++] = std::byte{b};
  };
  std::memcpy(f.data(), dst.data(), 6);
  std::memcpy(f.data() + 6, src.data(), 6);
  const size_t ip_len = len - 14;
  put(12, {0x08, 0x00, 0x45, 0, uint8_t(ip_len >> 8), uint8_t(ip_len), 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2});
  put(34, {0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0});
  for (size_t i = 54; i < len; ++i) f[i] = std::byte(i * 13);
  return f;
}

VirtioNetHdr tso_header(uint16_t gso_size) {
  VirtioNetHdr h{};
  h.flags = kHdrNeedsCsum;
  h.gso_type = kGsoTcpv4;
  h.hdr_len = 54;
  h.gso_size = gso_size;
  h.csum_start = 34;
  h.csum_offset = 16;
  return h;
}

}  // namespace

TEST_CASE("NET_SET_MTU above the port's mtu= is refused: error reply, counted, logged; the port keeps its MTU and works") {
  SocketDir dir;
  DaemonConfig cfg;
  cfg.extra_args = {"--vhost-user", dir.path("a") + "|mtu=1500", "--vhost-user", dir.path("b")};
  Daemon d(cfg);
  auto a = guest(dir.path("a")), b = guest(dir.path("b"));
  expect_mtu(d, "a", 1500, "config");

  // QEMU then does not start the device: "9000Bytes MTU not supported by the backend".
  CHECK(a->net_set_mtu(9000).failed());
  CHECK(protocol_errors(d, "a", "mtu_above_port_mtu") == 1);
  CHECK(d.log().find("port a: NET_SET_MTU 9000 refused: above the port's mtu=1500; lower the front-end's MTU (QEMU "
                     "host_mtu=) to at most 1500, or raise the port's mtu=") != std::string::npos);
  CHECK(a->net_set_mtu(65535).failed());  // beyond any MTU the switch takes
  CHECK(protocol_errors(d, "a", "bad_mtu") == 1);
  expect_mtu(d, "a", 1500, "config");
  CHECK(d.port("a")["frontend_mtu"].is_null());

  CHECK(pair_switches(*a, kMacA, *b, kMacB));
  const Frames sent = frames(kMacA, kMacB, 100, {1514, 1515});
  send(*b, sent);
  expect_mtu_applied(d, *a, "a", sent, 1514, 0);
  CHECK(drops(d, "b") == 0);  // counted where the frames could not go
  finish(d);
}

TEST_CASE("NET_SET_MTU at or below mtu= is the port's MTU while its front-end is connected; mtu= comes back after") {
  SocketDir dir;
  DaemonConfig cfg;
  cfg.extra_args = {"--vhost-user", dir.path("a") + "|mtu=1500", "--vhost-user", dir.path("b")};
  Daemon d(cfg);
  auto a = guest(dir.path("a")), b = guest(dir.path("b"));
  CHECK(a->net_set_mtu(1500).ok());  // equal: accepted
  CHECK(a->net_set_mtu(1000).ok());
  expect_mtu(d, "a", 1000, "front-end");
  CHECK(d.port("a")["frontend_mtu"] == 1000);
  CHECK(json_sum(d.port("a"), "protocol_errors") == 0);
  CHECK(pair_switches(*a, kMacA, *b, kMacB));

  const Frames to_a = frames(kMacA, kMacB, 100, {1014, 1015, 60});
  send(*b, to_a);
  expect_mtu_applied(d, *a, "a", to_a, 1014, 0);
  // Per destination: a's own frames go to b, whose MTU is the default 1500.
  const Frames to_b = frames(kMacB, kMacA, 200, {1514, 1515});
  send(*a, to_b);
  expect_mtu_applied(d, *b, "b", to_b, 1514, 0);
  CHECK(json_u64(d.port("a"), "tx_packets") == 16 + 2 * kPer);

  a.reset();  // the front-end goes: its MTU with it
  wait_mtu(d, "a", 1500, "config");
  a = guest(dir.path("a"));  // a new front-end that sets no MTU
  CHECK(d.port("a")["frontend_mtu"].is_null());
  const Frames again = frames(kMacA, kMacB, 300, {1015, 1514, 1515});
  send(*b, again);
  expect_mtu_applied(d, *a, "a", again, 1514, kPer);
  finish(d);
}

TEST_CASE("without mtu= the MTU is 1500, or the front-end's NET_SET_MTU (up to 9000) while it is connected") {
  DaemonConfig cfg;
  cfg.servers = {"a", "b"};
  Daemon d(cfg);
  auto a = attach(d, "a"), b = attach(d, "b");
  REQUIRE(a);
  REQUIRE(b);
  expect_mtu(d, "a", 1500, "default");
  CHECK(pair_switches(*a, kMacA, *b, kMacB));
  const Frames sent = frames(kMacA, kMacB, 100, {1514, 1515, 1984});
  send(*b, sent);
  expect_mtu_applied(d, *a, "a", sent, 1514, 0);

  CHECK(a->net_set_mtu(9000).ok());  // QEMU host_mtu=9000 with no mtu= on the port
  expect_mtu(d, "a", 9000, "front-end");
  const Frames jumbo = frames(kMacA, kMacB, 200, {1515, 1984});
  send(*b, jumbo);
  expect_mtu_applied(d, *a, "a", jumbo, 9014, 2 * kPer);

  CHECK(a->net_set_mtu(9001).failed());
  expect_mtu(d, "a", 9000, "front-end");  // a refused MTU changes nothing
  a.reset();
  wait_mtu(d, "a", 1500, "default");
  CHECK(d.log().find("port a: MTU 1500 again (default): its front-end is gone") != std::string::npos);
  auto m = d.scrape();
  REQUIRE(m);
  CHECK(m->sum("vusw_port_drops_total", {{"port", "a"}, {"reason", "mtu_exceeded"}}) == 2 * kPer);
  finish(d);
}

TEST_CASE("a TSO frame longer than the MTU passes VM to VM when its segments fit; too large segments are dropped") {
  DaemonConfig cfg;
  cfg.servers = {"a", "b"};
  Daemon d(cfg);
  FrontendOptions opt;
  opt.offloads = feat::kCsum | feat::kHostTso4 | feat::kGuestCsum | feat::kGuestTso4;
  auto a = attach(d, "a", opt), b = attach(d, "b", opt);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(pair_switches(*a, kMacA, *b, kMacB));

  // 1900 bytes to an MTU-1500 guest that takes TSO: segments of 54 + 1400 bytes fit.
  const Frame big = tcp_frame(kMacB, kMacA, 1900);
  REQUIRE(a->send_frame_hdr(big, tso_header(1400)));
  a->kick(kTxRing);
  Frames got = b->wait_rx(1, kWait);
  REQUIRE(got.size() == 1);
  CHECK(got[0] == big);

  // MTU 1000: a segment may be 1014 bytes with its headers, 54 + 960.
  CHECK(b->net_set_mtu(1000).ok());
  REQUIRE(a->send_frame_hdr(tcp_frame(kMacB, kMacA, 1900), tso_header(961)));
  REQUIRE(a->send_frame_hdr(big, tso_header(960)));
  REQUIRE(a->send_frame(big, TxLayout::Single));  // no segmentation asked: 1900 bytes is too long
  a->kick(kTxRing);
  got = b->wait_rx(1, kWait);
  REQUIRE(got.size() == 1);
  CHECK(got[0] == big);
  wait_until([&] { return drops(d, "b") >= 2; }, kWait);
  std::this_thread::sleep_for(Millis(50));
  CHECK(drops(d, "b") == 2);
  CHECK(b->poll_rx().empty());
  CHECK(json_sum(d.port("a"), "drops") == 0);
  finish(d);
}

}  // namespace vusw::it
