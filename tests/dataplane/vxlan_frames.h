// Helpers of the tunnel tests over a net_ring underlay: the frames a remote VTEP puts on
// the wire (VXLAN, ARP) and what the tunnel put there, parsed back.
#pragma once

#include <rte_ring.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "mbuf_helpers.h"
#include "ports/ethdev_port.h"
#include "vusw/vxlan.h"

namespace vusw::test {

// A new net_ring device `dev` (net_ring_...) opened as an underlay, and its one ring
// ETH_RXTX0_<dev>: what the port sends lands there, what a test puts there it receives.
struct RingUnderlay {
    std::unique_ptr<EthdevPort> port;
    rte_ring* wire = nullptr;
};

inline RingUnderlay ring_underlay(const std::string& dev, rte_mempool* pool)
{
    auto port = EthdevPort::open(dev, "u", 1500, pool);
    REQUIRE_MESSAGE(port.has_value(), port.error().detail);
    rte_ring* wire = rte_ring_lookup(fmt::format("ETH_RXTX0_{}", dev).c_str());
    REQUIRE(wire != nullptr);
    return {std::move(*port), wire};
}

// An IPv4 frame from `src` to `dst`, 802.1Q-tagged with `vid` when vid >= 0.
inline Bytes inner_frame(const MacAddr& dst, const MacAddr& src, int vid = -1, std::size_t len = 100)
{
    Bytes f(len, 0x5a);
    std::memcpy(f.data(), dst.data(), 6);
    std::memcpy(f.data() + 6, src.data(), 6);
    f[12] = 0x08;
    f[13] = 0x00;
    if (vid >= 0)
        f.insert(f.begin() + 12, {0x81, 0x00, uint8_t(vid >> 8), uint8_t(vid)});
    return f;
}

// `f` in VNI o.vni with the outer headers `o` (from the remote to us).
inline rte_mbuf* vxlan_frame(rte_mempool* pool, const VxlanOuter& o, const Bytes& f)
{
    Bytes out(kVxlanOverhead);
    write_outer_header(std::span<std::byte, kVxlanOverhead>(reinterpret_cast<std::byte*>(out.data()), kVxlanOverhead),
                       o, 50000, uint32_t(f.size()), false);
    out.insert(out.end(), f.begin(), f.end());
    return mbuf_of(pool, out);
}

// `ip` at `mac` answers our (`local_ip` at `our_mac`) ARP request.
inline rte_mbuf* arp_reply_frame(rte_mempool* pool, uint32_t ip, const MacAddr& mac, uint32_t local_ip,
                                 const MacAddr& our_mac)
{
    Bytes f(kArpFrameLen);
    write_arp(std::span<std::byte, kArpFrameLen>(reinterpret_cast<std::byte*>(f.data()), kArpFrameLen), our_mac,
              ArpPacket{kArpReply, mac, ip, our_mac, local_ip});
    return mbuf_of(pool, f);
}

// A VXLAN frame the tunnel sent: its outer destination MAC and IP, VNI, inner frame.
struct SentVxlan {
    MacAddr dst_mac;
    uint32_t remote;
    uint32_t vni;
    Bytes inner;
};

// What the tunnel put on its underlay `wire` since the last call, taken off it.
struct Wire {
    std::vector<SentVxlan> vxlan;
    std::vector<ArpPacket> arp;
};

inline Wire take_wire(rte_ring* wire)
{
    Wire out;
    void* obj = nullptr;
    while (rte_ring_dequeue(wire, &obj) == 0) {
        auto* m = static_cast<rte_mbuf*>(obj);
        const Bytes b = bytes_of(m);
        rte_pktmbuf_free(m);
        const auto bytes = std::span(reinterpret_cast<const std::byte*>(b.data()), b.size());
        if (const auto arp = parse_arp(bytes)) {
            out.arp.push_back(*arp);
        } else if (b.size() >= kVxlanOverhead && b[12] == 0x08 && b[13] == 0x00) {
            SentVxlan s{{}, uint32_t(b[30]) << 24 | uint32_t(b[31]) << 16 | uint32_t(b[32]) << 8 | b[33],
                        uint32_t(b[46]) << 16 | uint32_t(b[47]) << 8 | b[48], Bytes(b.begin() + 50, b.end())};
            std::memcpy(s.dst_mac.data(), b.data(), 6);
            out.vxlan.push_back(std::move(s));
        }
    }
    return out;
}

}  // namespace vusw::test
