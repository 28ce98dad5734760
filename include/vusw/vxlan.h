// VXLAN (RFC 7348) over an IPv4 underlay: the outer headers a tunnel port puts in front
// of a switched frame, and the checks a frame from the underlay passes before its inner
// frame is switched.
//
// An encapsulated frame is outer Ethernet (14) + IPv4 without options (20) + UDP (8) +
// VXLAN (8) + the inner Ethernet frame: 50 bytes more, so a tunnel over a 1500-byte
// underlay carries inner frames of MTU 1450. The outer IPv4 header has DF set (RFC 7348
// §4.3: VTEPs must not fragment) and its checksum computed here unless the NIC does it;
// the UDP checksum is 0, which IPv4 VXLAN allows (§5); the UDP source port comes from the
// inner frame's flow hash, within 49152..65535 (§5), so ECMP in the underlay keeps each
// inner flow on one path.
//
// The byte-level functions (write_outer_header, classify_underlay, the ARP ones) are pure
// and need no DPDK EAL; the burst functions work on mbufs.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "vusw/counters.h"

struct rte_mbuf;
struct rte_mempool;

namespace vusw {

inline constexpr uint32_t kVxlanOverhead = 14 + 20 + 8 + 8;  // what a tunnel adds to a frame
inline constexpr uint16_t kVxlanDefaultPort = 4789;          // IANA's VXLAN UDP port
inline constexpr uint32_t kVxlanMaxVni = (1u << 24) - 1;
inline constexpr uint32_t kArpFrameLen = 42;                 // Ethernet + ARP for IPv4, no padding

using MacAddr = std::array<uint8_t, 6>;
inline constexpr MacAddr kBroadcastMac = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

// One tunnel's end of the underlay. IPv4 addresses in host byte order.
struct VtepConfig {
    MacAddr mac{};         // the underlay NIC's
    uint32_t ip = 0;       // local=
    uint16_t port = kVxlanDefaultPort;  // dstport=
    uint32_t vni = 0;      // vni=
};

// The outer headers towards one remote VTEP.
struct VxlanOuter {
    MacAddr src_mac{}, dst_mac{};
    uint32_t src_ip = 0, dst_ip = 0;
    uint16_t dst_port = kVxlanDefaultPort;
    uint32_t vni = 0;
};

// The UDP source port for an inner frame whose flow hash is `hash`: 49152..65535.
constexpr uint16_t vxlan_source_port(uint32_t hash) { return uint16_t(0xc000u | (hash & 0x3fffu)); }

// Writes the 50 outer header bytes for an inner frame of `inner_len` bytes. The IPv4
// header checksum is computed unless `ip_cksum_by_nic` (then it is left 0 for the NIC).
void write_outer_header(std::span<std::byte, kVxlanOverhead> out, const VxlanOuter& o, uint16_t src_port,
                        uint32_t inner_len, bool ip_cksum_by_nic);

// What a frame received on the underlay is, by its first bytes (`head`, at least the
// first segment) and its whole length.
enum class UnderlayKind : uint8_t { vxlan, arp, drop };
struct UnderlayVerdict {
    UnderlayKind kind = UnderlayKind::drop;
    Drop reason = Drop::underlay_other;  // kind == drop
    uint16_t outer_len = 0;              // vxlan: bytes in front of the inner frame
    uint32_t inner_len = 0;              // vxlan: the inner frame's length (outer padding excluded)
    uint32_t src_ip = 0;                 // vxlan: the sending VTEP
};
// The checks, in order: Ethernet length (runt); ARP (to our MAC or broadcast) goes to
// the ARP handling; IPv4 to our MAC, else underlay_other; version 4, IHL >= 5, total
// length within the frame (vxlan_bad_header); to our IP and UDP (underlay_other); not a
// fragment (vxlan_fragment); header checksum (vxlan_bad_checksum); UDP to our port
// (underlay_other); UDP length matching, room for VXLAN and an inner Ethernet header
// (vxlan_bad_header); the I flag (vxlan_bad_flags); our VNI (vxlan_unknown_vni).
UnderlayVerdict classify_underlay(std::span<const std::byte> head, uint32_t frame_len, const VtepConfig& vtep);

// An ARP packet for IPv4 over Ethernet (RFC 826), as far as a VTEP cares.
struct ArpPacket {
    uint16_t op = 0;           // 1 request, 2 reply
    MacAddr sender_mac{};
    uint32_t sender_ip = 0;
    MacAddr target_mac{};
    uint32_t target_ip = 0;
};
inline constexpr uint16_t kArpRequest = 1;
inline constexpr uint16_t kArpReply = 2;
// The ARP packet in an Ethernet frame, or nullopt if it is not one for IPv4 over Ethernet.
std::optional<ArpPacket> parse_arp(std::span<const std::byte> frame);
// Writes a 42-byte Ethernet + ARP frame: to `eth_dst`, from the sender's MAC.
void write_arp(std::span<std::byte, kArpFrameLen> out, const MacAddr& eth_dst, const ArpPacket& a);

// Mbufs. `m` gets the outer headers in front: in its headroom when it is ours alone
// (direct, unshared, 50 bytes of headroom), else in a new header mbuf from `pool` chained
// in front of it (frames lent from a guest, shared by a flood, or without headroom are
// never written). Returns the frame to send, or nullptr (nothing allocated; `m` left
// untouched) when the pool is empty. The frame must ask for no checksum or segmentation
// (resolve them first); with `ip_cksum_by_nic` it asks the NIC for the outer IPv4 one.
rte_mbuf* vxlan_encap(rte_mbuf* m, const VxlanOuter& o, uint16_t src_port, rte_mempool* pool, bool ip_cksum_by_nic);

// Strips the outer headers classify_underlay() measured: `m` becomes the inner frame,
// without outer padding, offload flags or an RSS hash (they were the outer frame's).
// False (m untouched) if they are not all in its first segment, or bytes after the outer
// IPv4 packet (padding) are not all in its last: the caller drops it (vxlan_bad_header).
bool vxlan_decap(rte_mbuf* m, const UnderlayVerdict& v);

}  // namespace vusw
