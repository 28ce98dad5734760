// VXLAN headers (vxlan.h) as bytes: the outer header a tunnel writes is RFC 7348's, field
// by field, with a valid IPv4 checksum; what it writes, classify_underlay() accepts; every
// refusal has its reason; ARP packets parse and are written back as they were read; a VNI
// map (vni=N:VID) finds its pairs both ways and classify_underlay() takes its VNIs only.
#include "vusw/vxlan.h"

#include <cstring>
#include <vector>

#include <doctest/doctest.h>

using namespace vusw;

namespace {

const VtepConfig kLocal{{0x02, 0, 0, 0, 0, 0x01}, 0x0a630001, 4789, 42};  // 10.99.0.1
const VxlanOuter kToLocal{{0x02, 0, 0, 0, 0, 0x02}, {0x02, 0, 0, 0, 0, 0x01}, 0x0a630002, 0x0a630001, 4789, 42};

unsigned at(const std::vector<std::byte>& f, std::size_t i)
{
    return unsigned(f[i]);
}

unsigned be16(const std::vector<std::byte>& f, std::size_t i)
{
    return at(f, i) << 8 | at(f, i + 1);
}

// The ones' complement sum of an IPv4 header with its checksum: 0xffff when it is right.
unsigned ip_sum(const std::vector<std::byte>& f, std::size_t off, std::size_t len = 20)
{
    uint32_t sum = 0;
    for (std::size_t i = 0; i < len; i += 2)
        sum += be16(f, off + i);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return sum;
}

// An encapsulated frame: the outer header `o` writes, then an inner frame of `inner` bytes.
std::vector<std::byte> encapsulated(const VxlanOuter& o = kToLocal, uint32_t inner = 64, uint16_t sport = 50000)
{
    std::vector<std::byte> f(kVxlanOverhead + inner, std::byte(0x5a));
    write_outer_header(std::span<std::byte, kVxlanOverhead>(f.data(), kVxlanOverhead), o, sport, inner, false);
    return f;
}

UnderlayVerdict classify(const std::vector<std::byte>& f)
{
    return classify_underlay(f, uint32_t(f.size()), kLocal);
}

Drop refused(const std::vector<std::byte>& f)
{
    const UnderlayVerdict v = classify(f);
    REQUIRE(v.kind == UnderlayKind::drop);
    return v.reason;
}

// Recomputes the outer IPv4 checksum after a test changed the header.
void fix_ip_sum(std::vector<std::byte>& f)
{
    f[24] = f[25] = std::byte(0);
    const unsigned sum = ~ip_sum(f, 14, (at(f, 14) & 0xf) * 4u) & 0xffff;
    f[24] = std::byte(sum >> 8);
    f[25] = std::byte(sum);
}

}  // namespace

TEST_CASE("the outer header is RFC 7348's: Ethernet, IPv4 with DF and checksum, UDP without checksum, VXLAN I flag and VNI")
{
    const VxlanOuter o{{0x02, 0, 0, 0, 0, 0xaa}, {0x02, 0, 0, 0, 0, 0xbb}, 0x0a630001, 0x0a630002, 4789, 0x123456};
    const auto f = encapsulated(o, 100, 0xc123);
    CHECK(at(f, 0) == 0x02);
    CHECK(at(f, 5) == 0xbb);  // dst MAC: the remote's
    CHECK(at(f, 11) == 0xaa);
    CHECK(be16(f, 12) == 0x0800);
    CHECK(at(f, 14) == 0x45);
    CHECK(be16(f, 16) == 20 + 8 + 8 + 100);  // total length
    CHECK(be16(f, 20) == 0x4000);            // DF, no fragment
    CHECK(at(f, 22) == 64);
    CHECK(at(f, 23) == 17);
    CHECK(ip_sum(f, 14) == 0xffff);
    CHECK(be16(f, 26) == 0x0a63);
    CHECK(be16(f, 28) == 0x0001);
    CHECK(be16(f, 32) == 0x0002);
    CHECK(be16(f, 34) == 0xc123);  // UDP source port
    CHECK(be16(f, 36) == 4789);
    CHECK(be16(f, 38) == 8 + 8 + 100);
    CHECK(be16(f, 40) == 0);  // UDP checksum 0
    CHECK(at(f, 42) == 0x08);  // I flag
    CHECK(at(f, 43) == 0);
    CHECK(be16(f, 46) == 0x1234);
    CHECK(at(f, 48) == 0x56);  // VNI, then a reserved byte
    CHECK(at(f, 49) == 0);
    CHECK(at(f, 50) == 0x5a);  // the inner frame follows untouched
}

TEST_CASE("with the NIC computing the IPv4 checksum the field is left 0")
{
    std::vector<std::byte> f(kVxlanOverhead);
    write_outer_header(std::span<std::byte, kVxlanOverhead>(f.data(), kVxlanOverhead), kToLocal, 50000, 60, true);
    CHECK(be16(f, 24) == 0);
}

TEST_CASE("UDP source ports from the flow hash lie in 49152..65535 and use the hash's low 14 bits")
{
    CHECK(vxlan_source_port(0) == 49152);
    CHECK(vxlan_source_port(0xffffffff) == 65535);
    CHECK(vxlan_source_port(0x12345) == (0xc000 | 0x2345));
    CHECK(vxlan_source_port(1) != vxlan_source_port(2));
}

TEST_CASE("a frame the tunnel's peer wrote is accepted: inner offset and length, sending VTEP")
{
    const auto f = encapsulated(kToLocal, 98);
    const UnderlayVerdict v = classify(f);
    REQUIRE(v.kind == UnderlayKind::vxlan);
    CHECK(v.outer_len == 50);
    CHECK(v.inner_len == 98);
    CHECK(v.src_ip == 0x0a630002);
    // Padding after the IPv4 packet is not part of the inner frame.
    auto padded = f;
    padded.resize(f.size() + 6);
    const UnderlayVerdict p = classify(padded);
    REQUIRE(p.kind == UnderlayKind::vxlan);
    CHECK(p.inner_len == 98);
}

TEST_CASE("IPv4 options move the inner frame")
{
    auto f = encapsulated(kToLocal, 64);
    f.insert(f.begin() + 34, 4, std::byte(1));  // one 4-byte option run of NOPs
    f[14] = std::byte(0x46);
    f[16] = std::byte(0);
    f[17] = std::byte(20 + 4 + 8 + 8 + 64);
    fix_ip_sum(f);
    const UnderlayVerdict v = classify(f);
    REQUIRE(v.kind == UnderlayKind::vxlan);
    CHECK(v.outer_len == 54);
    CHECK(v.inner_len == 64);
}

TEST_CASE("every refusal of an underlay frame has its reason")
{
    const auto good = encapsulated();
    auto f = good;
    f.resize(13);
    CHECK(refused(f) == Drop::runt);

    f = good;
    f[5] = std::byte(0x77);  // another host's MAC
    CHECK(refused(f) == Drop::underlay_other);
    std::memset(f.data(), 0xff, 6);  // IPv4 to broadcast
    CHECK(refused(f) == Drop::underlay_other);

    f = good;
    f[13] = std::byte(0xdd);  // IPv6
    CHECK(refused(f) == Drop::underlay_other);

    f = good;
    f[14] = std::byte(0x44);  // IHL 4
    CHECK(refused(f) == Drop::vxlan_bad_header);
    f = good;
    f[14] = std::byte(0x65);  // version 6
    CHECK(refused(f) == Drop::vxlan_bad_header);
    f = good;
    f.resize(40);  // total length beyond the frame
    CHECK(refused(f) == Drop::vxlan_bad_header);

    f = good;
    f[33] = std::byte(9);  // to 10.99.0.9, not local=
    fix_ip_sum(f);
    CHECK(refused(f) == Drop::underlay_other);
    f = good;
    f[23] = std::byte(6);  // TCP
    fix_ip_sum(f);
    CHECK(refused(f) == Drop::underlay_other);

    f = good;
    f[20] = std::byte(0x20);  // more fragments
    fix_ip_sum(f);
    CHECK(refused(f) == Drop::vxlan_fragment);
    f = good;
    f[21] = std::byte(0x10);  // a fragment offset
    fix_ip_sum(f);
    CHECK(refused(f) == Drop::vxlan_fragment);

    f = good;
    f[24] = std::byte(unsigned(f[24]) ^ 1);
    CHECK(refused(f) == Drop::vxlan_bad_checksum);

    f = good;
    f[37] = std::byte(0x16);  // UDP to 4790: not ours
    CHECK(refused(f) == Drop::underlay_other);
    f = good;
    f[39] = std::byte(unsigned(f[39]) + 1);  // UDP length disagrees with IPv4's
    CHECK(refused(f) == Drop::vxlan_bad_header);

    f = good;
    f[42] = std::byte(0);  // no I flag
    CHECK(refused(f) == Drop::vxlan_bad_flags);
    f = good;
    f[48] = std::byte(43);  // VNI 43
    CHECK(refused(f) == Drop::vxlan_unknown_vni);
}

TEST_CASE("an inner frame shorter than an Ethernet header is a bad header")
{
    const auto f = encapsulated(kToLocal, 13);
    CHECK(refused(f) == Drop::vxlan_bad_header);
}

TEST_CASE("ARP to our MAC or broadcast goes to the ARP handling; a reply written is parsed back the same")
{
    const ArpPacket req{kArpRequest, {0x02, 0, 0, 0, 0, 0x02}, 0x0a630002, {}, 0x0a630001};
    std::vector<std::byte> f(kArpFrameLen);
    write_arp(std::span<std::byte, kArpFrameLen>(f.data(), kArpFrameLen), kBroadcastMac, req);
    CHECK(classify(f).kind == UnderlayKind::arp);
    const auto parsed = parse_arp(f);
    REQUIRE(parsed);
    CHECK(parsed->op == kArpRequest);
    CHECK(parsed->sender_mac == req.sender_mac);
    CHECK(parsed->sender_ip == req.sender_ip);
    CHECK(parsed->target_ip == req.target_ip);
    CHECK(be16(f, 20) == 1);

    f[0] = std::byte(0x02);  // to another unicast MAC
    f[5] = std::byte(0x09);
    CHECK(refused(f) == Drop::underlay_other);

    f.resize(41);
    CHECK_FALSE(parse_arp(f));
    f.resize(kArpFrameLen);
    f[19] = std::byte(16);  // an IPv6-sized protocol address
    CHECK_FALSE(parse_arp(f));
}

TEST_CASE("a VNI map finds each pair by VNI and by VLAN; nothing else is found")
{
    const std::vector<VniVlan> pairs{{5001, 20}, {5000, 10}, {7, 4094}, {16777215, 1}};
    const VniMap map(pairs);
    REQUIRE(map.size() == 4);
    for (std::size_t i = 0; i < pairs.size(); ++i) {
        CHECK(map.of_vni(pairs[i].vni) == int(i));  // segments in the order given, VNIs sorted inside
        CHECK(map.of_vlan(pairs[i].vlan) == int(i));
        CHECK(map[i] == pairs[i]);
    }
    for (const uint32_t vni : {0u, 6u, 8u, 4999u, 5002u, 16777214u})
        CHECK(map.of_vni(vni) == VniMap::kNone);
    for (const uint16_t vlan : {0, 2, 11, 4093, 4095})
        CHECK(map.of_vlan(vlan) == VniMap::kNone);
}

TEST_CASE("with a VNI map, a frame of any mapped VNI is accepted with its segment; other VNIs are refused")
{
    const std::vector<VniVlan> pairs{{5000, 10}, {5001, 20}};
    const VniMap map(pairs);
    VtepConfig vtep = kLocal;
    vtep.map = &map;
    for (const auto& [vni, segment] : {std::pair{5000u, 0}, std::pair{5001u, 1}}) {
        VxlanOuter o = kToLocal;
        o.vni = vni;
        const auto f = encapsulated(o);
        const UnderlayVerdict v = classify_underlay(f, uint32_t(f.size()), vtep);
        CHECK(v.kind == UnderlayKind::vxlan);
        CHECK(v.segment == segment);
        CHECK(v.outer_len == 50);
    }
    for (const uint32_t vni : {42u, 4999u, 5002u}) {  // 42: vtep.vni, unused with a map
        VxlanOuter o = kToLocal;
        o.vni = vni;
        const auto f = encapsulated(o);
        const UnderlayVerdict v = classify_underlay(f, uint32_t(f.size()), vtep);
        CHECK(v.kind == UnderlayKind::drop);
        CHECK(v.reason == Drop::vxlan_unknown_vni);
    }
    CHECK(classify(encapsulated()).segment == 0);  // one VNI: segment 0
}

TEST_CASE("next hops: on-link remotes are their own, off-link ones share the gateway; no prefix: all on-link")
{
    constexpr uint32_t local = 0x0a610101, near = 0x0a610102, far1 = 0x0a610202, far2 = 0x0a610302, gw = 0x0a6101fe;
    CHECK(subnet_mask(24) == 0xffffff00);
    CHECK(subnet_mask(0) == 0);
    CHECK(subnet_mask(32) == 0xffffffff);
    CHECK(on_link(local, 24, near));
    CHECK_FALSE(on_link(local, 24, far1));
    CHECK(on_link(local, 16, far1));
    CHECK(on_link(local, 0, 0xc0000207));

    const std::vector<uint32_t> remotes{far1, near, far2};
    const NextHops h = next_hops(remotes, local, 24, gw);
    CHECK(h.neighbours == std::vector<uint32_t>{gw, near});  // one neighbour for both off-link remotes
    CHECK(h.of_remote == std::vector<uint8_t>{0, 1, 0});

    const NextHops flat = next_hops(remotes, local, std::nullopt, 0);
    CHECK(flat.neighbours == remotes);
    CHECK(flat.of_remote == std::vector<uint8_t>{0, 1, 2});
    const NextHops wide = next_hops(remotes, local, 8, gw);  // every remote inside: the gateway is not asked for
    CHECK(wide.neighbours == remotes);

    // A router that is also a VTEP: one neighbour, whether reached as a remote or as the gateway.
    const std::vector<uint32_t> with_router{gw, far1};
    const NextHops shared = next_hops(with_router, local, 24, gw);
    CHECK(shared.neighbours == std::vector<uint32_t>{gw});
    CHECK(shared.of_remote == std::vector<uint8_t>{0, 0});
}
