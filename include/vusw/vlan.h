// Per-port settings and the 802.1Q VLAN rules of the switch.
//
// Every port is an access port of one VLAN (default: VLAN 0, the untagged default
// VLAN) or a trunk. Inside the switch a frame belongs to exactly one VLAN, decided on
// ingress (ingress_vlan); it is learned and looked up under (MAC, VLAN) and flooded only
// to ports that carry that VLAN (PortConfig::carries); on egress it leaves untagged or
// tagged (egress_tagged). The functions here are pure so the rules are unit-tested
// without DPDK; dataplane/vlan.cc applies them to mbufs.
//
// VLAN ids: 1..4094 are VLANs (IEEE 802.1Q-2018 §9.6: 0 means "priority tag only",
// 4095 is reserved). Internally VLAN 0 is the default VLAN: untagged frames of access
// ports with no vlan= and of trunks whose native VLAN is 0.
#pragma once

#include <array>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>

#include "vusw/counters.h"

struct rte_mbuf;
struct rte_mempool;

namespace vusw {

inline constexpr uint16_t kVlanIdMax = 4094;
inline constexpr uint16_t kVlanTpid = 0x8100;  // 802.1Q C-tag
inline constexpr uint16_t kVidMask = 0x0fff;   // TCI: PCP(3) DEI(1) VID(12)

// A set of VLAN ids (0..4095) as a 4096-bit bitmap: one bit test per frame.
class VlanSet {
public:
    // 1..4094: what a trunk carries unless trunks= says otherwise.
    static VlanSet all_vlans();
    void add(uint16_t vid) { bits_[vid >> 6 & 63] |= uint64_t{1} << (vid & 63); }
    bool contains(uint16_t vid) const { return (bits_[vid >> 6 & 63] >> (vid & 63)) & 1; }
    bool empty() const;
    bool operator==(const VlanSet&) const = default;
    // "10,20,100-110"; "all" for all_vlans(); "" when empty.
    std::string to_string() const;

private:
    std::array<uint64_t, 64> bits_{};
};

enum class VlanMode : uint8_t { access, trunk };
std::string_view vlan_mode_name(VlanMode m);

// A port's settings, given on its command-line flag (`PATH|mtu=9000|vlan=10`) and set
// once when the port is created, before any PMD core runs; constant afterwards.
struct PortConfig {
    static constexpr uint16_t kMinMtu = 68, kMaxMtu = 9000, kDefaultMtu = 1500;

    uint16_t mtu = kDefaultMtu;         // largest L3 payload the port takes or gives
    bool mtu_given = false;             // mtu= was given: a front-end may not exceed it (mtu.h)
    VlanMode vlan_mode = VlanMode::access;
    uint16_t vlan = 0;                  // access: the port's VLAN; trunk: its native (untagged) VLAN
    VlanSet trunks = VlanSet::all_vlans();  // trunk: the VLANs it carries tagged

    // An access port of the default VLAN: a switch of only such ports does no VLAN work.
    bool vlan_plain() const { return vlan_mode == VlanMode::access && vlan == 0; }
    bool carries(uint16_t v) const { return v == vlan || (vlan_mode == VlanMode::trunk && trunks.contains(v)); }
    bool operator==(const PortConfig&) const = default;
};

// The VLAN of a frame received on port `p`, given its 802.1Q TCI (nullopt: untagged),
// or why it is dropped:
//  - access port: untagged frames belong to its VLAN; tagged frames (even priority
//    tagged, VID 0) are dropped (vlan_tagged_on_access);
//  - trunk: untagged and priority-tagged frames belong to its native VLAN, tagged
//    frames to their VID if the trunk carries it (else vlan_not_allowed; VID 4095 too).
constexpr std::expected<uint16_t, Drop> ingress_vlan(const PortConfig& p, std::optional<uint16_t> tci)
{
    if (!tci)
        return p.vlan;
    if (p.vlan_mode == VlanMode::access)
        return std::unexpected(Drop::vlan_tagged_on_access);
    const uint16_t vid = *tci & kVidMask;
    if (vid == 0 || vid == p.vlan)
        return p.vlan;
    if (vid > kVlanIdMax || !p.trunks.contains(vid))
        return std::unexpected(Drop::vlan_not_allowed);
    return vid;
}

// Whether a frame of VLAN `v` leaves port `p` tagged (with VID v): on trunks, except
// in the native VLAN. Access ports send untagged. Only for ports that carry `v`.
constexpr bool egress_tagged(const PortConfig& p, uint16_t v)
{
    return p.vlan_mode == VlanMode::trunk && v != p.vlan;
}

// How a frame arrived, as the switch classified it.
struct FrameVlan {
    uint16_t vlan = 0;         // the VLAN it belongs to (ingress_vlan)
    uint16_t tci = 0;          // its tag as received; 0 if untagged
    bool tag_in_data = false;  // the tag is in the frame bytes (not stripped into the mbuf by a NIC)
};

// What a frame must become to leave a port: sent as it is, or a variant without a tag
// or with the tag egress_tci() gives.
enum class EgressForm : uint8_t { as_is, untagged, tagged };

// The TCI a frame of VLAN `v` is sent with when tagged: the received priority bits
// (PCP, DEI) are kept, the VID replaced.
constexpr uint16_t egress_tci(uint16_t tci_in, uint16_t v)
{
    return uint16_t((tci_in & ~kVidMask) | (v & kVidMask));
}

// The form a frame `f` must take to leave port `p` (which carries f.vlan). A tagged
// frame already carrying the right VID goes as it is, priority bits included.
constexpr EgressForm egress_form(const PortConfig& p, const FrameVlan& f)
{
    if (!egress_tagged(p, f.vlan))
        return f.tag_in_data ? EgressForm::untagged : EgressForm::as_is;
    return f.tag_in_data && (f.tci & kVidMask) == f.vlan ? EgressForm::as_is : EgressForm::tagged;
}

// ---- Header rewriting on frame bytes (the in-place forms; dataplane/vlan.cc)
//
// Untagged: dst(6) src(6) type(2) ...   Tagged: dst(6) src(6) 0x8100 TCI(2) type(2) ...

// Writes the tagged header of an untagged frame that starts at `frame`, into the 4
// bytes before it: moves the addresses to frame - 4 and puts TPID and TCI after them.
// The tagged frame then starts at frame - 4.
void write_tag_before(unsigned char* frame, uint16_t tci);
// Removes the tag of a tagged frame at `frame` by moving the addresses 4 bytes on; the
// untagged frame then starts at frame + 4.
void strip_tag_in_place(unsigned char* frame);
// Replaces the TCI of a tagged frame.
void set_tci(unsigned char* frame, uint16_t tci);

// ---- PMD: the frame in the form an egress port needs
//
// `m` holds a frame whose first segment starts with its addresses and, if `tagged_in`,
// its 802.1Q tag (at least 16 bytes then; 12 otherwise). Returns the frame with the tag
// replaced by `tci_out` (nullopt: no tag), or nullptr if no mbuf was left.
//  - own: the caller hands its reference to `m` over, and nobody else uses m's
//    metadata (other holders of the buffer are indirect clones or nothing). An own,
//    direct, unshared mbuf is rewritten in place (rte_vlan_insert-like, no allocation).
//  - otherwise, and for frames whose bytes must not be written (shared by a flood,
//    lent zero-copy guest buffers: external buffers), a new head mbuf gets the new
//    header and the first bytes after it (the whole frame if short), and the rest
//    follows as `m` itself (own) or an indirect clone of it, past the old header.
// The frame's offload requests (offload.h) travel with it, l2_len following the tag.
// On failure an own `m` is still the caller's to free.
rte_mbuf* vlan_reform(rte_mbuf* m, bool own, bool tagged_in, std::optional<uint16_t> tci_out, rte_mempool* pool);

}  // namespace vusw
