// VXLAN encapsulation and decapsulation (RFC 7348) over IPv4.
#include "vusw/vxlan.h"

#include <rte_ip.h>
#include <rte_mbuf.h>

#include <algorithm>
#include <cstring>

namespace vusw {
namespace {

constexpr uint32_t kEth = 14, kIp = 20, kUdp = 8, kVxlan = 8;
constexpr uint16_t kTypeIpv4 = 0x0800, kTypeArp = 0x0806;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kVxlanFlagI = 0x08;  // RFC 7348 §5: the VNI is valid
constexpr uint16_t kIpDontFragment = 0x4000, kIpFragmentMask = 0x3fff;  // MF + offset
constexpr uint8_t kTtl = 64;

uint16_t load16(std::span<const std::byte> b, std::size_t at)
{
    return uint16_t(uint16_t(b[at]) << 8 | uint16_t(b[at + 1]));
}

uint32_t load32(std::span<const std::byte> b, std::size_t at)
{
    return uint32_t(load16(b, at)) << 16 | load16(b, at + 2);
}

void store16(std::byte* p, uint16_t v)
{
    p[0] = std::byte(v >> 8);
    p[1] = std::byte(v);
}

void store32(std::byte* p, uint32_t v)
{
    store16(p, uint16_t(v >> 16));
    store16(p + 2, uint16_t(v));
}

MacAddr load_mac(std::span<const std::byte> b, std::size_t at)
{
    MacAddr mac;
    std::memcpy(mac.data(), b.data() + at, mac.size());
    return mac;
}

bool mac_is(std::span<const std::byte> b, std::size_t at, const MacAddr& mac)
{
    return std::memcmp(b.data() + at, mac.data(), mac.size()) == 0;
}

void write_eth(std::byte* p, const MacAddr& dst, const MacAddr& src, uint16_t type)
{
    std::memcpy(p, dst.data(), 6);
    std::memcpy(p + 6, src.data(), 6);
    store16(p + 12, type);
}

UnderlayVerdict refuse(Drop why)
{
    return UnderlayVerdict{UnderlayKind::drop, why};
}

// The segment of `vni` on this tunnel (0: its only VNI), or VniMap::kNone.
int segment_of(const VtepConfig& vtep, uint32_t vni)
{
    if (vtep.map == nullptr)  // one VNI: one compare, as before maps existed
        return vni == vtep.vni ? 0 : VniMap::kNone;
    return vtep.map->of_vni(vni);
}

// The checks after the Ethernet header of an IPv4 frame to our MAC.
UnderlayVerdict classify_ipv4(std::span<const std::byte> b, uint32_t frame_len, const VtepConfig& vtep)
{
    if (b.size() < kEth + kIp)
        return refuse(Drop::vxlan_bad_header);
    const uint8_t ver_ihl = uint8_t(b[kEth]);
    const uint32_t ihl = (ver_ihl & 0xfu) * 4;
    const uint32_t total = load16(b, kEth + 2);
    if ((ver_ihl >> 4) != 4 || ihl < kIp || b.size() < kEth + ihl || total < ihl || kEth + total > frame_len)
        return refuse(Drop::vxlan_bad_header);
    if (load32(b, kEth + 16) != vtep.ip || uint8_t(b[kEth + 9]) != kProtoUdp)
        return refuse(Drop::underlay_other);
    if ((load16(b, kEth + 6) & kIpFragmentMask) != 0)
        return refuse(Drop::vxlan_fragment);
    if (rte_raw_cksum(b.data() + kEth, ihl) != 0xffff)
        return refuse(Drop::vxlan_bad_checksum);
    const std::size_t udp = kEth + ihl;
    if (b.size() < udp + kUdp)
        return refuse(Drop::vxlan_bad_header);
    if (load16(b, udp + 2) != vtep.port)
        return refuse(Drop::underlay_other);
    const uint32_t udp_len = load16(b, udp + 4);
    if (udp_len != total - ihl || udp_len < kUdp + kVxlan + kEth || b.size() < udp + kUdp + kVxlan)
        return refuse(Drop::vxlan_bad_header);
    const std::size_t vx = udp + kUdp;
    if ((uint8_t(b[vx]) & kVxlanFlagI) == 0)
        return refuse(Drop::vxlan_bad_flags);
    const int segment = segment_of(vtep, load32(b, vx + 4) >> 8);
    if (segment == VniMap::kNone)
        return refuse(Drop::vxlan_unknown_vni);
    return UnderlayVerdict{UnderlayKind::vxlan, Drop::underlay_other, uint16_t(vx + kVxlan),
                           udp_len - kUdp - kVxlan, load32(b, kEth + 12), uint16_t(segment)};
}

}  // namespace

VniMap::VniMap(std::span<const VniVlan> pairs) : pairs_(pairs.begin(), pairs.end())
{
    for (std::size_t i = 0; i < pairs_.size(); ++i) {
        by_vni_.emplace_back(pairs_[i].vni, uint16_t(i));
        by_vlan_[pairs_[i].vlan & kVidMask] = uint16_t(i + 1);
    }
    std::sort(by_vni_.begin(), by_vni_.end());
}

int VniMap::of_vni(uint32_t vni) const
{
    const auto it = std::lower_bound(by_vni_.begin(), by_vni_.end(), std::pair<uint32_t, uint16_t>(vni, 0));
    return it != by_vni_.end() && it->first == vni ? int(it->second) : kNone;
}

NextHops next_hops(std::span<const uint32_t> remotes, uint32_t local, std::optional<uint8_t> prefix,
                   uint32_t gateway)
{
    NextHops h;
    const auto index_of = [&h](uint32_t ip) {  // the neighbour `ip`, added if new
        const auto it = std::find(h.neighbours.begin(), h.neighbours.end(), ip);
        if (it != h.neighbours.end())
            return uint8_t(it - h.neighbours.begin());
        h.neighbours.push_back(ip);
        return uint8_t(h.neighbours.size() - 1);
    };
    for (const uint32_t r : remotes)
        h.of_remote.push_back(index_of(!prefix || gateway == 0 || on_link(local, *prefix, r) ? r : gateway));
    return h;
}

void write_outer_header(std::span<std::byte, kVxlanOverhead> out, const VxlanOuter& o, uint16_t src_port,
                        uint32_t inner_len, bool ip_cksum_by_nic)
{
    std::byte* p = out.data();
    write_eth(p, o.dst_mac, o.src_mac, kTypeIpv4);
    std::byte* ip = p + kEth;
    ip[0] = std::byte(0x45);  // version 4, no options
    ip[1] = std::byte(0);
    store16(ip + 2, uint16_t(kIp + kUdp + kVxlan + inner_len));
    store16(ip + 4, 0);  // id: no fragments (DF)
    store16(ip + 6, kIpDontFragment);
    ip[8] = std::byte(kTtl);
    ip[9] = std::byte(kProtoUdp);
    store16(ip + 10, 0);
    store32(ip + 12, o.src_ip);
    store32(ip + 16, o.dst_ip);
    if (!ip_cksum_by_nic) {  // summed in memory order: stored as it comes, not byte-swapped
        const uint16_t sum = uint16_t(~rte_raw_cksum(ip, kIp));
        std::memcpy(ip + 10, &sum, sizeof(sum));
    }
    std::byte* udp = ip + kIp;
    store16(udp, src_port);
    store16(udp + 2, o.dst_port);
    store16(udp + 4, uint16_t(kUdp + kVxlan + inner_len));
    store16(udp + 6, 0);  // no UDP checksum: legal for VXLAN over IPv4 (RFC 7348 §5)
    std::byte* vx = udp + kUdp;
    store32(vx, uint32_t(kVxlanFlagI) << 24);
    store32(vx + 4, (o.vni & kVxlanMaxVni) << 8);
}

UnderlayVerdict classify_underlay(std::span<const std::byte> head, uint32_t frame_len, const VtepConfig& vtep)
{
    if (head.size() < kEth || frame_len < kEth)
        return refuse(Drop::runt);
    const uint16_t type = load16(head, 12);
    const bool to_us = mac_is(head, 0, vtep.mac);
    if (type == kTypeArp)
        return to_us || mac_is(head, 0, kBroadcastMac) ? UnderlayVerdict{UnderlayKind::arp} : refuse(Drop::underlay_other);
    if (type != kTypeIpv4 || !to_us)
        return refuse(Drop::underlay_other);
    return classify_ipv4(head, frame_len, vtep);
}

std::optional<ArpPacket> parse_arp(std::span<const std::byte> f)
{
    // htype 1 (Ethernet), ptype IPv4, hlen 6, plen 4.
    if (f.size() < kArpFrameLen || load16(f, 12) != kTypeArp || load16(f, 14) != 1 || load16(f, 16) != kTypeIpv4 ||
        uint8_t(f[18]) != 6 || uint8_t(f[19]) != 4)
        return std::nullopt;
    return ArpPacket{load16(f, 20), load_mac(f, 22), load32(f, 28), load_mac(f, 32), load32(f, 38)};
}

void write_arp(std::span<std::byte, kArpFrameLen> out, const MacAddr& eth_dst, const ArpPacket& a)
{
    std::byte* p = out.data();
    write_eth(p, eth_dst, a.sender_mac, kTypeArp);
    store16(p + 14, 1);
    store16(p + 16, kTypeIpv4);
    p[18] = std::byte(6);
    p[19] = std::byte(4);
    store16(p + 20, a.op);
    std::memcpy(p + 22, a.sender_mac.data(), 6);
    store32(p + 28, a.sender_ip);
    std::memcpy(p + 32, a.target_mac.data(), 6);
    store32(p + 38, a.target_ip);
}

rte_mbuf* vxlan_encap(rte_mbuf* m, const VxlanOuter& o, uint16_t src_port, rte_mempool* pool, bool ip_cksum_by_nic)
{
    const uint32_t inner_len = rte_pktmbuf_pkt_len(m);
    rte_mbuf* head = m;
    const bool in_place = RTE_MBUF_DIRECT(m) && rte_mbuf_refcnt_read(m) == 1 && rte_pktmbuf_headroom(m) >= kVxlanOverhead;
    if (!in_place) {
        head = rte_pktmbuf_alloc(pool);
        if (head == nullptr)
            return nullptr;
    }
    auto* hdr = reinterpret_cast<std::byte*>(rte_pktmbuf_prepend(head, kVxlanOverhead));
    write_outer_header(std::span<std::byte, kVxlanOverhead>(hdr, kVxlanOverhead), o, src_port, inner_len,
                       ip_cksum_by_nic);
    if (!in_place && rte_pktmbuf_chain(head, m) != 0) {  // too many segments for one frame
        rte_pktmbuf_free(head);
        return nullptr;
    }
    head->ol_flags = ip_cksum_by_nic ? RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM : 0;
    head->l2_len = kEth;
    head->l3_len = kIp;
    return head;
}

bool vxlan_decap(rte_mbuf* m, const UnderlayVerdict& v)
{
    const uint32_t pad = rte_pktmbuf_pkt_len(m) - v.outer_len - v.inner_len;  // bytes after the IPv4 packet
    if (rte_pktmbuf_data_len(m) < v.outer_len || pad > UINT16_MAX || rte_pktmbuf_trim(m, uint16_t(pad)) != 0)
        return false;  // trim: only within the last segment, as padding is
    rte_pktmbuf_adj(m, v.outer_len);
    m->ol_flags = 0;
    m->packet_type = 0;
    m->vlan_tci = 0;
    return true;
}

}  // namespace vusw
