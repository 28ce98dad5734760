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
// A tunnel carries one VNI (vni=N), or several mapped to VLANs (vni=N:VID, repeated: the
// "vlan_tunnel" model of hardware VTEPs and Linux bridges): VNI N's frames belong to VLAN
// VID inside the switch, and VLAN VID's frames leave in VNI N, untagged on the wire.
//
// The byte-level functions (write_outer_header, classify_underlay, the ARP ones, VniMap)
// are pure and need no DPDK EAL; the burst functions work on mbufs.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "vusw/counters.h"
#include "vusw/vlan.h"

struct rte_mbuf;
struct rte_mempool;

namespace vusw {

inline constexpr uint32_t kVxlanOverhead = 14 + 20 + 8 + 8;  // what a tunnel adds to a frame
inline constexpr uint16_t kVxlanDefaultPort = 4789;          // IANA's VXLAN UDP port
inline constexpr uint32_t kVxlanMaxVni = (1u << 24) - 1;
inline constexpr uint32_t kArpFrameLen = 42;                 // Ethernet + ARP for IPv4, no padding

using MacAddr = std::array<uint8_t, 6>;
inline constexpr MacAddr kBroadcastMac = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

// One vni=N:VID of a tunnel: VNI `vni` is VLAN `vlan` (1..4094) in the switch.
struct VniVlan {
    uint32_t vni = 0;
    uint16_t vlan = 0;
    bool operator==(const VniVlan&) const = default;
};

// A tunnel's VNI <-> VLAN map, both ways: by VLAN one load (a table indexed by VID), by
// VNI a binary search of the sorted VNIs. A "segment" is a pair's index, in the order given.
class VniMap {
public:
    static constexpr int kNone = -1;
    // `pairs`: distinct VNIs and distinct VLANs 1..4094 (parse_vxlan checks both).
    explicit VniMap(std::span<const VniVlan> pairs);
    // The segment of VNI `vni` / of VLAN `vlan`, or kNone.
    int of_vni(uint32_t vni) const;
    int of_vlan(uint16_t vlan) const { return int(by_vlan_[vlan & kVidMask]) - 1; }
    const VniVlan& operator[](std::size_t segment) const { return pairs_[segment]; }
    std::size_t size() const { return pairs_.size(); }

private:
    std::vector<VniVlan> pairs_;                  // as given
    std::vector<std::pair<uint32_t, uint16_t>> by_vni_;  // (VNI, segment), sorted
    std::array<uint16_t, 4096> by_vlan_{};        // segment + 1 by VID; 0: none
};

// One tunnel's end of the underlay. IPv4 addresses in host byte order.
struct VtepConfig {
    MacAddr mac{};         // the underlay NIC's
    uint32_t ip = 0;       // local=
    uint16_t port = kVxlanDefaultPort;  // dstport=
    uint32_t vni = 0;      // vni=N: the one VNI, when map is null
    const VniMap* map = nullptr;  // vni=N:VID...: the VNIs taken (vni unused)
};

// The outer headers towards one remote VTEP.
struct VxlanOuter {
    MacAddr src_mac{}, dst_mac{};
    uint32_t src_ip = 0, dst_ip = 0;
    uint16_t dst_port = kVxlanDefaultPort;
    uint32_t vni = 0;
};

// The underlay's next hops (local=IP/PREFIX, gateway=IP): a remote VTEP inside local's
// subnet is reached directly (ARP for it), one outside through the gateway (ARP for the
// gateway; the outer IPv4 destination stays the remote's). Without a prefix every remote
// is on-link, as on one L2 segment.
constexpr uint32_t subnet_mask(unsigned prefix) { return prefix == 0 ? 0 : ~0u << (32 - prefix); }
constexpr bool on_link(uint32_t local, unsigned prefix, uint32_t ip)
{
    return ((local ^ ip) & subnet_mask(prefix)) == 0;
}
// The neighbours a tunnel ARPs for, and by remote the index of its next hop among them,
// resolved once at configuration time: the hot path does one index load per frame.
struct NextHops {
    std::vector<uint32_t> neighbours;  // distinct IPs, in the order the remotes first need them
    std::vector<uint8_t> of_remote;    // by remote: its next hop in neighbours
};
// `prefix`: nullopt = every remote on-link. An off-link remote needs a `gateway` (nonzero;
// parse_vxlan checks it): this does not check, it sends such a remote to the gateway.
NextHops next_hops(std::span<const uint32_t> remotes, uint32_t local, std::optional<uint8_t> prefix,
                   uint32_t gateway);

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
    uint16_t segment = 0;                // vxlan: its VNI's index in vtep.map (0 without a map)
};
// The checks, in order: Ethernet length (runt); ARP (to our MAC or broadcast) goes to
// the ARP handling; IPv4 to our MAC, else underlay_other; version 4, IHL >= 5, total
// length within the frame (vxlan_bad_header); to our IP and UDP (underlay_other); not a
// fragment (vxlan_fragment); header checksum (vxlan_bad_checksum); UDP to our port
// (underlay_other); UDP length matching, room for VXLAN and an inner Ethernet header
// (vxlan_bad_header); the I flag (vxlan_bad_flags); our VNI, or one of vtep.map's
// (vxlan_unknown_vni).
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
