// Offloads between guests, through the real daemon: a sender's virtio-net header asking
// for TCP segmentation with the ECN bit, or for UDP segmentation (USO), is accepted only
// as negotiated; the frame reaches a guest that negotiated the matching GUEST_* features
// whole, with its header translated, and a guest that negotiated none of them as
// segments made in software, each compared byte for byte with this file's own model
// (IP lengths, ids and header checksums, TCP sequence numbers and flags, UDP lengths, full
// L4 checksums). Neither QEMU 7.2 nor DPDK 22.11's virtio PMD negotiates USO, so this
// fake front-end is what proves it.
#include <doctest/doctest.h>

#include <algorithm>

#include "fixture.h"

namespace vusw::it {
namespace {

using Bytes = std::vector<std::byte>;
const Millis kWait{3000};
const Mac kMacNobody = mac(0x77);  // never learned: frames to it are flooded to every other port
constexpr uint8_t kTcp = 6, kUdp = 17;
constexpr uint8_t kFin = 0x01, kPsh = 0x08, kAck = 0x10, kCwr = 0x80;
constexpr uint16_t kIpId = 0x4321;
constexpr uint32_t kSeq = 7000000;

// ---- frames and the checksum model (RFC 1071, RFC 768/793 pseudo-headers) ----

uint8_t u8(const Bytes& b, size_t at) { return std::to_integer<uint8_t>(b[at]); }
void put16(Bytes& b, size_t at, uint16_t v) {
  b[at] = std::byte(v >> 8);
  b[at + 1] = std::byte(v & 0xff);
}
void put32(Bytes& b, size_t at, uint32_t v) {
  put16(b, at, uint16_t(v >> 16));
  put16(b, at + 2, uint16_t(v));
}

uint32_t sum16(const Bytes& b, size_t from, size_t to, uint32_t acc = 0) {
  for (size_t i = from; i < to; i += 2) acc += uint32_t(u8(b, i)) << 8 | (i + 1 < to ? u8(b, i + 1) : 0);
  return acc;
}
uint16_t fold(uint32_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return uint16_t(acc);
}

struct Layout {
  bool v6;
  uint8_t proto;
  size_t l4() const { return v6 ? 54 : 34; }
  size_t l4_header() const { return proto == kTcp ? 20 : 8; }
  size_t headers() const { return l4() + l4_header(); }
};

// Sum of the pseudo-header of the L4 segment that ends where `b` ends.
uint32_t pseudo(const Bytes& b, Layout l) {
  const uint32_t len = uint32_t(b.size() - l.l4());
  return (l.v6 ? sum16(b, 22, 54) : sum16(b, 26, 34)) + l.proto + len;
}

// Sets every length of `b` from its size and the IPv4 header checksum.
void fix_lengths(Bytes& b, Layout l) {
  const size_t l4_bytes = b.size() - l.l4();
  if (l.v6) {
    put16(b, 18, uint16_t(l4_bytes));
  } else {
    put16(b, 16, uint16_t(20 + l4_bytes));
    put16(b, 24, 0);
    put16(b, 24, uint16_t(~fold(sum16(b, 14, 34))));
  }
  if (l.proto == kUdp) put16(b, l.l4() + 4, uint16_t(l4_bytes));
}

// The complete L4 checksum (UDP's 0 sent as 0xffff).
void full_checksum(Bytes& b, Layout l) {
  const size_t field = l.l4() + (l.proto == kTcp ? 16 : 6);
  put16(b, field, 0);
  uint16_t sum = uint16_t(~fold(sum16(b, l.l4(), b.size(), pseudo(b, l))));
  if (sum == 0 && l.proto == kUdp) sum = 0xffff;
  put16(b, field, sum);
}

// What a guest asking for a partial checksum puts in the field: the pseudo-header sum
// (with the whole frame's length, as Linux does).
void partial_checksum(Bytes& b, Layout l) {
  put16(b, l.l4() + (l.proto == kTcp ? 16 : 6), fold(pseudo(b, l)));
}

// Ethernet + IPv4/IPv6 + TCP (flags given) or UDP + a position-dependent payload.
Bytes ip_frame(const Mac& dst, const Mac& src, Layout l, size_t payload, uint8_t tcp_flags) {
  Bytes b(l.headers() + payload);
  std::memcpy(b.data(), dst.data(), 6);
  std::memcpy(b.data() + 6, src.data(), 6);
  put16(b, 12, l.v6 ? 0x86dd : 0x0800);
  if (l.v6) {
    b[14] = std::byte{0x60};
    b[20] = std::byte{l.proto};
    b[21] = std::byte{64};
    for (size_t i = 0; i < 16; ++i) b[22 + i] = std::byte(0x20 + i), b[38 + i] = std::byte(0x40 + i);
  } else {
    b[14] = std::byte{0x45};
    put16(b, 18, kIpId);
    b[22] = std::byte{64};
    b[23] = std::byte{l.proto};
    put32(b, 26, 0x0a000001);
    put32(b, 30, 0x0a000002);
  }
  put16(b, l.l4(), 40000);
  put16(b, l.l4() + 2, 5201);
  if (l.proto == kTcp) {
    put32(b, l.l4() + 4, kSeq);
    b[l.l4() + 12] = std::byte{5 << 4};
    b[l.l4() + 13] = std::byte{tcp_flags};
  }
  for (size_t i = 0; i < payload; ++i) b[l.headers() + i] = std::byte((i * 13 + 5) & 0xff);
  fix_lengths(b, l);
  return b;
}

// The segments of `whole` (mss payload bytes each) as a receiver that takes no offload
// must see them: own lengths, consecutive IPv4 ids, TCP sequence numbers, FIN/PSH on the
// last segment only, CWR on the first only (Linux's tcp_gso_segment), full checksums.
std::vector<Bytes> model_segments(const Bytes& whole, Layout l, size_t mss) {
  std::vector<Bytes> out;
  const size_t payload = whole.size() - l.headers();
  for (size_t off = 0, i = 0; off < payload; off += mss, ++i) {
    const size_t take = std::min(mss, payload - off);
    Bytes s(whole.begin(), whole.begin() + std::ptrdiff_t(l.headers()));
    s.insert(s.end(), whole.begin() + std::ptrdiff_t(l.headers() + off),
             whole.begin() + std::ptrdiff_t(l.headers() + off + take));
    if (!l.v6) put16(s, 18, uint16_t(kIpId + i));
    if (l.proto == kTcp) {
      put32(s, l.l4() + 4, uint32_t(kSeq + off));
      uint8_t flags = u8(s, l.l4() + 13);
      if (off + take < payload) flags &= uint8_t(~(kFin | kPsh));
      if (i != 0) flags &= uint8_t(~kCwr);
      s[l.l4() + 13] = std::byte{flags};
    }
    fix_lengths(s, l);
    full_checksum(s, l);
    out.push_back(std::move(s));
  }
  return out;
}

VirtioNetHdr gso_header(Layout l, uint8_t gso_type, uint16_t gso_size) {
  VirtioNetHdr h{};
  h.flags = kHdrNeedsCsum;
  h.gso_type = gso_type;
  h.gso_size = gso_size;
  h.hdr_len = uint16_t(l.headers());
  h.csum_start = uint16_t(l.l4());
  h.csum_offset = l.proto == kTcp ? 16 : 6;
  return h;
}

uint64_t drops(const Daemon& d, const std::string& port, const std::string& reason) {
  nlohmann::json p = d.port(port);
  return p.contains("drops") && p["drops"].contains(reason) ? p["drops"][reason].get<uint64_t>() : 0;
}

bool has_feature(const Daemon& d, const std::string& port, const std::string& name) {
  const nlohmann::json f = d.port(port)["features"];
  return std::find(f.begin(), f.end(), name) != f.end();
}

// A sender "a" (checksum, TCP and UDP segmentation, ECN), a receiver "b" that takes them
// all, a receiver "c" that takes none, spare ports for front-ends with other features.
struct Guests {
  Guests() : d(config()) {
    FrontendOptions sender;
    sender.offloads = feat::kCsum | feat::kHostTso4 | feat::kHostTso6 | feat::kHostEcn | feat::kHostUso;
    FrontendOptions taker;
    taker.offloads = feat::kGuestCsum | feat::kGuestTso4 | feat::kGuestTso6 | feat::kGuestEcn | feat::kGuestUso4 |
                     feat::kGuestUso6;
    a = attach(d, "a", sender);
    b = attach(d, "b", taker);
    c = attach(d, "c");
    REQUIRE_MESSAGE((a && b && c), d.log_tail());
    REQUIRE((a->features() & sender.offloads) == sender.offloads);
    REQUIRE((b->features() & taker.offloads) == taker.offloads);
  }
  static DaemonConfig config() {
    DaemonConfig cfg;
    cfg.servers = {"a", "b", "c", "x", "y"};
    return cfg;
  }
  Daemon d;
  std::unique_ptr<FakeFrontend> a, b, c;
};

void send_one(FakeFrontend& fe, const VirtioNetHdr& h, const Bytes& frame) {
  fe.set_tx_header(h);
  REQUIRE(fe.send_frame(frame, TxLayout::Single));
  fe.kick(kTxRing);
}

// `fe` receives exactly `want`, byte for byte, each with a header without requests.
void expect_segments(FakeFrontend& fe, const std::vector<Bytes>& want) {
  fe.clear_rx_headers();
  const std::vector<Bytes> got = fe.wait_rx(want.size(), kWait);
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    CAPTURE(i);
    CHECK(got[i] == want[i]);
    CHECK(fe.rx_headers()[i].flags == 0);
    CHECK(fe.rx_headers()[i].gso_type == 0);
  }
}

// `fe` receives `whole` unsegmented, its header asking for `gso_type` / `gso_size`.
void expect_whole(FakeFrontend& fe, const Bytes& whole, Layout l, uint8_t gso_type, uint16_t gso_size) {
  fe.clear_rx_headers();
  const std::vector<Bytes> got = fe.wait_rx(1, kWait);
  REQUIRE(got.size() == 1);
  CHECK(got[0] == whole);
  const VirtioNetHdr h = fe.rx_headers().at(0);
  CHECK(h.flags == kHdrNeedsCsum);
  CHECK(h.gso_type == gso_type);
  CHECK(h.gso_size == gso_size);
  CHECK(h.hdr_len == l.headers());
  CHECK(h.csum_start == l.l4());
  CHECK(h.csum_offset == (l.proto == kTcp ? 16 : 6));
}

}  // namespace

TEST_CASE("USO: whole to a GUEST_USO guest, whole UDP datagrams made in software for the others") {
  Guests g;
  CHECK(has_feature(g.d, "a", "HOST_USO"));  // bits above 32 survive the whole way
  CHECK(has_feature(g.d, "b", "GUEST_USO4"));
  CHECK(has_feature(g.d, "b", "GUEST_USO6"));
  for (const bool v6 : {false, true}) {
    CAPTURE(v6);
    const Layout l{v6, kUdp};
    constexpr uint16_t kSize = 500;
    Bytes frame = ip_frame(kMacNobody, kMacA, l, v6 ? 1800 : 1900, 0);
    partial_checksum(frame, l);
    send_one(*g.a, gso_header(l, kGsoUdpL4, kSize), frame);
    expect_whole(*g.b, frame, l, kGsoUdpL4, kSize);
    expect_segments(*g.c, model_segments(frame, l, kSize));
  }
  CHECK(json_sum(g.d.port("a"), "drops") == 0);
  CHECK(json_sum(g.d.port("c"), "drops") == 0);
  finish(g.d);
}

TEST_CASE("ECN: the header's ECN bit only with HOST_ECN; a frame with CWR whole only to a GUEST_ECN guest") {
  Guests g;
  const Layout l{false, kTcp};
  constexpr uint16_t kMss = 600;
  Bytes frame = ip_frame(kMacNobody, kMacA, l, 1800, kAck | kPsh | kCwr);
  partial_checksum(frame, l);
  const VirtioNetHdr ecn = gso_header(l, kGsoTcpv4 | kGsoEcn, kMss);

  SUBCASE("negotiated: the ECN guest takes it whole, the other gets segments with CWR on the first") {
    send_one(*g.a, ecn, frame);
    expect_whole(*g.b, frame, l, kGsoTcpv4 | kGsoEcn, kMss);
    expect_segments(*g.c, model_segments(frame, l, kMss));
    CHECK(json_sum(g.d.port("a"), "drops") == 0);
  }
  SUBCASE("not negotiated: the ECN bit is a bad_offload drop, the same frame without it passes") {
    FrontendOptions tso_only;
    tso_only.offloads = feat::kCsum | feat::kHostTso4;
    auto x = attach(g.d, "x", tso_only);
    REQUIRE(x);
    REQUIRE((x->features() & feat::kHostEcn) == 0);
    Bytes from_x = ip_frame(kMacNobody, mac(0x0c), l, 1800, kAck | kPsh | kCwr);
    partial_checksum(from_x, l);
    send_one(*x, ecn, from_x);
    CHECK(wait_until([&] { return drops(g.d, "x", "bad_offload") == 1; }, kWait));
    send_one(*x, gso_header(l, kGsoTcpv4, kMss), from_x);
    // CWR set: the ECN guest is told so in its header; the others never are.
    expect_whole(*g.b, from_x, l, kGsoTcpv4 | kGsoEcn, kMss);
    expect_segments(*g.c, model_segments(from_x, l, kMss));
    expect_segments(*g.a, model_segments(from_x, l, kMss));  // a negotiated no GUEST_* feature
    CHECK(drops(g.d, "x", "bad_offload") == 1);
  }
  finish(g.d);
}

TEST_CASE("ECN and USO features without what they require are refused at SET_FEATURES") {
  Guests g;
  for (const uint64_t orphan : {feat::kGuestEcn | feat::kGuestCsum, feat::kHostEcn | feat::kCsum, feat::kHostUso,
                                feat::kGuestUso4 | feat::kGuestTso4}) {
    CAPTURE(orphan);
    const uint64_t before = json_sum(g.d.port("y"), "protocol_errors");
    FrontendOptions opt;
    opt.offloads = orphan;
    auto y = FakeFrontend::connect(g.d.socket_path("y"), opt);
    REQUIRE(y);
    CHECK_FALSE(y->handshake());
    CHECK(wait_until([&] { return json_sum(g.d.port("y"), "protocol_errors") > before; }, kWait));
    const nlohmann::json errors = g.d.port("y")["protocol_errors"];
    CHECK(errors.contains("feature_dependency"));
  }
  finish(g.d);
}

}  // namespace vusw::it
