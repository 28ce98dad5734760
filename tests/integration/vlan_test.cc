// VLANs through the real daemon: ports given `|vlan=N` and `|vlan-mode=trunk|trunks=...`
// on their --vhost-user flag, fake guests as the front-ends. Access ports of one VLAN
// reach each other and nobody else (unicast, broadcast, unknown unicast); trunks see
// 802.1Q-tagged frames with the right VID, byte for byte, and their tagged frames reach
// access ports untagged. Every drop is counted with its reason, every counter exact.
// Frames of 64 B are copied out of the guests, those of 1500 B lent zero copy, so both
// the in-place and the new-head tagging paths run.
#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <set>
#include <thread>
#include <tuple>

#include "fixture.h"

namespace vusw::it {
namespace {

using Frame = std::vector<std::byte>;
using Frames = std::vector<Frame>;
constexpr Mac kBroadcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
constexpr uint32_t kPer = 8;  // frames per size and step
constexpr size_t kSizes[] = {64, 1500};
const Millis kWait{3000};

// Server sockets in a directory of the test's own: their paths (with options) go on
// the daemon's command line before the daemon makes its run directory.
struct SocketDir {
  std::string dir;
  SocketDir() {
    char tmpl[] = "/tmp/vusw-vlan-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
  }
  ~SocketDir() { std::filesystem::remove_all(dir); }
  std::string path(const std::string& port) const { return dir + "/" + port + ".sock"; }
};

std::unique_ptr<FakeFrontend> guest(const std::string& path) {
  auto fe = FakeFrontend::connect(path);
  REQUIRE_MESSAGE(fe, "nothing listens on " << path);
  REQUIRE_MESSAGE(fe->bring_up(), "bring-up on " << path << " failed");
  return fe;
}

// `f` with an 802.1Q tag (TPID 0x8100, PCP 0) after its addresses.
Frame tagged(Frame f, uint16_t vid) {
  const std::byte tag[] = {std::byte{0x81}, std::byte{0x00}, std::byte(vid >> 8), std::byte(vid & 0xff)};
  f.insert(f.begin() + 12, std::begin(tag), std::end(tag));
  return f;
}

// kPer frames of each size from `src` to `dst`, numbered from `seq`.
Frames frames(const Mac& dst, const Mac& src, uint32_t seq) {
  Frames out;
  for (size_t len : kSizes)
    for (uint32_t i = 0; i < kPer; ++i) out.push_back(make_frame(dst, src, seq++, len));
  return out;
}

Frames tag_all(const Frames& in, uint16_t vid) {
  Frames out;
  for (const Frame& f : in) out.push_back(tagged(f, vid));
  return out;
}

uint64_t bytes_of(const Frames& fs) {
  uint64_t n = 0;
  for (const Frame& f : fs) n += f.size();
  return n;
}

void send(FakeFrontend& fe, const Frames& fs) {
  for (const Frame& f : fs) REQUIRE(fe.send_frame(f, TxLayout::Single));
  fe.kick(kTxRing);
}

// `fe` receives exactly `want`, in order and byte for byte.
void expect_rx(FakeFrontend& fe, const Frames& want, const char* who) {
  INFO("receiver " << who);
  Frames got = fe.wait_rx(want.size(), kWait);
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    CAPTURE(i);
    CHECK(got[i].size() == want[i].size());
    CHECK(got[i] == want[i]);
  }
}

// Nothing arrived at any of `fes` (called once the daemon counted the step's frames).
void expect_nothing(std::initializer_list<std::pair<FakeFrontend*, const char*>> fes) {
  std::this_thread::sleep_for(Millis(100));
  for (auto [fe, who] : fes) {
    INFO("receiver " << who);
    CHECK(fe->poll_rx().empty());
  }
}

uint64_t drops(const Daemon& d, const std::string& port, const std::string& reason) {
  nlohmann::json p = d.port(port);
  return p.contains("drops") && p["drops"].contains(reason) ? p["drops"][reason].get<uint64_t>() : 0;
}

// Waits until `port` dropped `n` frames for `reason`.
void expect_drops(const Daemon& d, const std::string& port, const std::string& reason, uint64_t n) {
  wait_until([&] { return drops(d, port, reason) >= n; }, kWait);
  INFO("port " << port << ": " << d.port(port).dump());
  CHECK(drops(d, port, reason) == n);
}

struct Counts {
  uint64_t rx_pkts = 0, rx_bytes = 0, tx_pkts = 0, tx_bytes = 0, drops = 0;
};

void expect_counts(const Daemon& d, const std::string& name, const Counts& c) {
  wait_until([&] { return json_u64(d.port(name), "tx_packets") >= c.tx_pkts; }, kWait);
  nlohmann::json p = d.port(name);
  INFO("port " << name << ": " << p.dump());
  CHECK(json_u64(p, "rx_packets") == c.rx_pkts);
  CHECK(json_u64(p, "rx_bytes") == c.rx_bytes);
  CHECK(json_u64(p, "tx_packets") == c.tx_pkts);
  CHECK(json_u64(p, "tx_bytes") == c.tx_bytes);
  CHECK(json_sum(p, "drops") == c.drops);
  CHECK(json_sum(p, "protocol_errors") == 0);
  CHECK(json_u64(p, "broken_queues") == 0);
}

}  // namespace

TEST_CASE("access VLANs: guests of VLAN 10 reach each other, a guest of VLAN 20 reaches nobody") {
  SocketDir dir;
  DaemonConfig cfg;
  cfg.extra_args = {"--vhost-user", dir.path("a") + "|vlan=10", "--vhost-user", dir.path("b") + "|vlan=10",
                    "--vhost-user", dir.path("c") + "|vlan=20|mtu=9000"};
  Daemon d(cfg);
  auto a = guest(dir.path("a")), b = guest(dir.path("b")), c = guest(dir.path("c"));
  const Mac kMacC = mac(0x0c);

  nlohmann::json pa = d.port("a"), pc = d.port("c");
  CHECK(pa["vlan_mode"] == "access");
  CHECK(pa["vlan"] == 10);
  CHECK(pa["trunks"].is_null());
  CHECK(pa["mtu"] == 1500);
  CHECK(pc["vlan"] == 20);
  CHECK(pc["mtu"] == 9000);

  // c alone in VLAN 20: its broadcasts and its frames for a's and b's MACs have nowhere to go.
  const Frames c_bcast = frames(kBroadcast, kMacC, 0), c_to_a = frames(kMacA, kMacC, 100), c_to_b = frames(kMacB, kMacC, 200);
  send(*c, c_bcast);
  send(*c, c_to_a);
  send(*c, c_to_b);
  expect_drops(d, "c", "no_destination", 3 * c_bcast.size());
  expect_nothing({{a.get(), "a"}, {b.get(), "b"}});

  // a <-> b in VLAN 10, then a's broadcasts reach b only.
  PumpResult r = exchange(*a, kMacA, *b, kMacB, 16);
  INFO(r.summary());
  CHECK(r.completed);
  CHECK(r.stray == 0);
  CHECK(r.flows[0].corrupt + r.flows[1].corrupt == 0);
  const Frames a_bcast = frames(kBroadcast, kMacA, 300);
  send(*a, a_bcast);
  expect_rx(*b, a_bcast, "b");
  // Once a learned a's MAC in VLAN 10, c's frames for it still go nowhere: VLAN 20 has no a.
  send(*c, c_to_a);
  expect_drops(d, "c", "no_destination", 4 * c_bcast.size());
  expect_nothing({{a.get(), "a"}, {b.get(), "b"}, {c.get(), "c"}});

  // A tagged frame on an access port is dropped.
  send(*c, {tagged(make_frame(kMacA, kMacC, 400, 64), 10), tagged(make_frame(kBroadcast, kMacC, 401, 64), 20)});
  expect_drops(d, "c", "vlan_tagged_on_access", 2);
  expect_nothing({{a.get(), "a"}, {b.get(), "b"}});

  const uint64_t pair_bytes = 16 * 128;
  expect_counts(d, "a", {16 + a_bcast.size(), pair_bytes + bytes_of(a_bcast), 16, pair_bytes, 0});
  expect_counts(d, "b", {16, pair_bytes, 16 + a_bcast.size(), pair_bytes + bytes_of(a_bcast), 0});
  expect_counts(d, "c", {4 * c_bcast.size() + 2, 4 * bytes_of(c_bcast) + 2 * 68, 0, 0, 4 * c_bcast.size() + 2});

  auto fdb = d.ctl({{"cmd", "show_fdb"}});
  REQUIRE(fdb);
  INFO("fdb: " << fdb->dump());
  std::set<std::tuple<std::string, unsigned, std::string>> entries;
  for (const auto& e : (*fdb)["fdb"]) entries.emplace(e["mac"], e["vlan"], e["port"]);
  CHECK(entries == std::set<std::tuple<std::string, unsigned, std::string>>{
                       {"02000000000a", 10, "a"}, {"02000000000b", 10, "b"}, {"02000000000c", 20, "c"}});
  finish(d);
}

TEST_CASE("trunks: tagged with the frame's VLAN, untagged in the native VLAN; their tagged frames reach access ports untagged") {
  SocketDir dir;
  DaemonConfig cfg;
  cfg.extra_args = {"--vhost-user", dir.path("a") + "|vlan=10",
                    "--vhost-user", dir.path("b") + "|vlan=20",
                    "--vhost-user", dir.path("u"),
                    "--vhost-user", dir.path("t1") + "|vlan-mode=trunk|trunks=10,20,30",
                    "--vhost-user", dir.path("t2") + "|vlan-mode=trunk|vlan=20"};
  Daemon d(cfg);
  auto a = guest(dir.path("a")), b = guest(dir.path("b")), u = guest(dir.path("u"));
  auto t1 = guest(dir.path("t1")), t2 = guest(dir.path("t2"));
  const Mac kMacU = mac(0x0e), kMacT1 = mac(0x71), kMacT2 = mac(0x72);

  CHECK(d.port("t1")["vlan_mode"] == "trunk");
  CHECK(d.port("t1")["trunks"] == "10,20,30");
  CHECK(d.port("t1")["vlan"] == 0);
  CHECK(d.port("t2")["trunks"] == "all");
  CHECK(d.port("t2")["vlan"] == 20);
  CHECK(d.port("u")["vlan_mode"] == "access");

  // VLAN 10 from a: both trunks get it tagged 10 (one variant shared by two ports).
  const Frames a_bcast = frames(kBroadcast, kMacA, 0);
  send(*a, a_bcast);
  expect_rx(*t1, tag_all(a_bcast, 10), "t1");
  expect_rx(*t2, tag_all(a_bcast, 10), "t2");
  expect_nothing({{b.get(), "b"}, {u.get(), "u"}});

  // VLAN 20 from b, for a MAC nobody knows: t1 tagged 20, t2 untagged (its native VLAN).
  const Frames b_unknown = frames(kMacT1, kMacB, 100);
  send(*b, b_unknown);
  expect_rx(*t1, tag_all(b_unknown, 20), "t1");
  expect_rx(*t2, b_unknown, "t2");
  expect_nothing({{a.get(), "a"}, {u.get(), "u"}});

  // t1's tagged frames go to the learned MACs untagged; t2's untagged ones are VLAN 20.
  const Frames t1_to_a = frames(kMacA, kMacT1, 200), t1_to_b = frames(kMacB, kMacT1, 300), t2_to_b = frames(kMacB, kMacT2, 400);
  send(*t1, tag_all(t1_to_a, 10));
  expect_rx(*a, t1_to_a, "a");
  send(*t1, tag_all(t1_to_b, 20));
  expect_rx(*b, t1_to_b, "b");
  send(*t2, t2_to_b);
  expect_rx(*b, t2_to_b, "b");

  // Priority bits survive; a priority-only tag (VID 0) on t2 is its native VLAN 20.
  Frame prio = tagged(make_frame(kMacT1, kMacT2, 500, 1500), 0);
  prio[14] = std::byte{0xa0};  // PCP 5, VID 0
  Frame prio_to_t1 = prio;
  prio_to_t1[15] = std::byte{20};  // VID replaced, PCP kept
  send(*t2, {prio});
  expect_rx(*t1, {prio_to_t1}, "t1");

  // VLAN 30: only the trunks carry it; t2 gets t1's frame as it is. VLAN 40: t1 refuses it.
  const Frames t1_30 = tag_all(frames(kBroadcast, kMacT1, 600), 30), t1_40 = tag_all(frames(kBroadcast, kMacT1, 700), 40);
  send(*t1, t1_30);
  expect_rx(*t2, t1_30, "t2");
  send(*t1, t1_40);
  expect_drops(d, "t1", "vlan_not_allowed", t1_40.size());

  // Untagged on t1 is VLAN 0: u, nobody else (t2's native VLAN is 20).
  const Frames t1_untagged = frames(kBroadcast, kMacT1, 800);
  send(*t1, t1_untagged);
  expect_rx(*u, t1_untagged, "u");
  expect_nothing({{a.get(), "a"}, {b.get(), "b"}, {t2.get(), "t2"}});

  // u's frames for t1 (learned in VLAN 0) arrive untagged; its tagged frames are dropped.
  const Frames u_to_t1 = frames(kMacT1, kMacU, 900);
  send(*u, u_to_t1);
  expect_rx(*t1, u_to_t1, "t1");
  send(*u, {tagged(make_frame(kMacT1, kMacU, 1000, 64), 10)});
  expect_drops(d, "u", "vlan_tagged_on_access", 1);
  expect_nothing({{a.get(), "a"}, {b.get(), "b"}, {t1.get(), "t1"}, {t2.get(), "t2"}});

  const uint64_t n = a_bcast.size(), per = bytes_of(a_bcast);  // every step: n frames of `per` bytes untagged
  const uint64_t tag = 4 * n;                                  // what the tags add to n frames
  expect_counts(d, "a", {n, per, n, per, 0});
  expect_counts(d, "b", {n, per, 2 * n, 2 * per, 0});
  expect_counts(d, "u", {n + 1, per + 68, n, per, 1});
  expect_counts(d, "t1", {5 * n, 5 * per + 4 * tag, 3 * n + 1, 3 * per + 2 * tag + prio_to_t1.size(), n});
  expect_counts(d, "t2", {n + 1, per + prio.size(), 3 * n, 3 * per + 2 * tag, 0});
  // The 1500 B frames were lent (guest memory, never written): tagged through a new head.
  CHECK(json_u64(d.port("a"), "rx_zero_copy") == kPer);
  CHECK(json_u64(d.port("t1"), "rx_zero_copy") == 5 * kPer);
  finish(d);
}

TEST_CASE("with no VLAN options the switch is VLAN-transparent: tagged frames pass as they are") {
  Bench bench(std::vector<std::string>{});
  CHECK(bench.d.log().find("VLANs: no port has VLAN options: VLAN-transparent") != std::string::npos);
  const Frames tagged_frames = {tagged(make_frame(kBroadcast, kMacA, 0, 64), 10),
                                tagged(make_frame(kMacB, kMacA, 1, 1500), 0), tagged(make_frame(kMacB, kMacA, 2, 200), 4095)};
  send(*bench.a, tagged_frames);
  expect_rx(*bench.b, tagged_frames, "b");
  CHECK(json_sum(bench.d.port("a"), "drops") == 0);
  CHECK(bench.d.port("a")["vlan"] == 0);
  CHECK(bench.d.port("a")["vlan_mode"] == "access");
  CHECK(bench.healthy());
  finish(bench.d);
}

}  // namespace vusw::it
