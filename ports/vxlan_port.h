// A VXLAN tunnel port (RFC 7348, IPv4 underlay): to the switch one port like any other;
// underneath, an ethdev NIC (the underlay, no switch port of its own) that carries its
// frames to remote VTEPs in UDP.
//
// Receive: the underlay's frames are classified (vxlan.h). VXLAN to our IP and VNI from
// one of the remote= VTEPs is decapsulated and switched as received on this port, the
// tunnel remembering which VTEP each inner source MAC came from; ARP requests for local=
// are answered, ARP from a next hop (a remote, or the gateway) teaches its MAC;
// everything else is dropped and counted by reason on this port.
// Transmit: a frame to an inner MAC learned from a VTEP goes to that VTEP; broadcast,
// multicast and unknown unicast go to every remote (head-end replication). Each remote's
// frames go to its next hop's MAC: its own, or with local=IP/PREFIX,gateway=IP the
// gateway's when it is outside local's subnet (vxlan.h: next_hops). A next hop whose MAC
// is not known yet gets an ARP request (at most one a second) and the frame is dropped as
// no_neighbour; the tunnel asks for every unknown next hop as soon as it is polled, so
// this is the first second's traffic at most. Frames from an off-link remote come with the
// gateway's source MAC: the remote is known by its outer source IP alone.
//
// With a VNI map (vni=N:VID, vxlan.h) the port is a trunk of the mapped VLANs: a frame
// decapsulated from VNI N enters the switch in VLAN VID (in vlan_tci, as from a NIC that
// strips tags; a tagged inner frame is dropped as vlan_tagged_on_access, it would pick
// its own VLAN); a frame of VLAN VID leaves untagged in VNI N, one of a VLAN without a VNI
// (the native VLAN 0) is dropped as vxlan_no_vni. Inner MACs are learned per VLAN. Every
// remote carries every VNI: broadcast in VLAN VID goes to all remotes in VNI N.
//
// The port has one queue; its owner core runs both directions, so the neighbour table
// and the inner-MAC map have one writer. One tunnel per underlay NIC.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ports/ethdev_port.h"
#include "vusw/fdb.h"
#include "vusw/port.h"
#include "vusw/vxlan.h"

namespace vusw {

inline constexpr std::size_t kMaxVxlanRemotes = 32;

// What --vxlan says (control/vxlan_config.h parses it). IPv4 addresses in host order.
struct VxlanSettings {
    uint32_t local_ip = 0;           // local=
    std::optional<uint8_t> prefix;   // local=IP/PREFIX: its subnet; nullopt: every remote on-link
    uint32_t gateway = 0;            // gateway=: the next hop to remotes outside the subnet; 0: none
    std::vector<uint32_t> remotes;   // remote=, 1..kMaxVxlanRemotes
    uint32_t vni = 0;                // vni=N: the one VNI (unused with a map)
    std::vector<VniVlan> vni_map;    // vni=N:VID...: the VNIs and their VLANs; empty: one VNI
    uint16_t dst_port = kVxlanDefaultPort;  // dstport=
    std::string underlay;            // underlay=: the --nic port's name
    bool operator==(const VxlanSettings&) const = default;
};

// Counts of the tunnel's own work (the frames themselves are the port's rx/tx counters:
// rx = decapsulated, tx = encapsulated, one per remote a frame went to).
struct VxlanCounters {
    Counter arp_requests_sent;   // asking for a remote VTEP's MAC
    Counter arp_replies_sent;    // answering for local=
    Counter arp_received;        // ARP packets taken (to our MAC or broadcast); a remote's teach its MAC
    Counter neighbours_learned;  // a remote's MAC learned, or changed
    std::array<Counter, kMaxVxlanRemotes> encapsulated;  // by remote: frames sent to it
    std::array<Counter, kMaxVxlanRemotes> decapsulated;  // by remote: frames received from it
};

// By segment of a VNI map (vxlan.h): frames into and out of its VNI.
struct VniCounters {
    Counter encapsulated;
    Counter decapsulated;
};

struct VxlanTotals {
    uint64_t arp_requests_sent = 0, arp_replies_sent = 0, arp_received = 0, neighbours_learned = 0;
    std::array<uint64_t, kMaxVxlanRemotes> encapsulated{}, decapsulated{};  // by remote
    // By VNI (VxlanPort::vnis()): with one VNI, the sums over the remotes.
    std::vector<uint64_t> vni_encapsulated, vni_decapsulated;
};

class VxlanPort final : public Port {
public:
    // The tunnel `name` over `underlay` (opened by the caller, now the tunnel's alone).
    static Result<std::unique_ptr<VxlanPort>> open(std::string name, VxlanSettings settings,
                                                   std::unique_ptr<EthdevPort> underlay);

    uint16_t receive(PmdContext& ctx, uint16_t q, rte_mbuf** pkts, uint16_t max) override;
    void transmit(PmdContext& ctx, uint16_t q, rte_mbuf** pkts, uint16_t n) override;
    std::string state() const override { return underlay_->state(); }

    // Control: what the tunnel was given, its underlay, its counters.
    const VxlanSettings& settings() const { return settings_; }
    const EthdevPort& underlay() const { return *underlay_; }
    const MacAddr& local_mac() const { return vtep_.mac; }
    // Control: the VNIs it carries with their VLANs in the switch: the map's, or the one
    // VNI in VLAN 0 (the port's own VLAN options apply then).
    std::vector<VniVlan> vnis() const;
    VxlanTotals vxlan_totals() const;
    // Control: the MAC frames to remote i go to (its next hop's) as last learned, or
    // nullopt while unknown.
    std::optional<MacAddr> neighbour(std::size_t i) const;
    // Control: remote i's next hop: its own IP when on-link, else the gateway's.
    uint32_t next_hop(std::size_t i) const { return hops_.neighbours[hops_.of_remote[i]]; }
    // Control: by remote, the inner MACs learned behind it (where frames to them go).
    std::array<std::size_t, kMaxVxlanRemotes> inner_macs_by_remote() const;
    // Control, as the switch's FDB (Daemon::tick): the clock inner MACs are learned with,
    // and forgetting those not seen for max_age_s (a MAC gone quiet is flooded to every
    // remote again, and the map does not fill up with MACs long gone).
    void tick_inner_macs(uint32_t now_s) noexcept { inner_macs_.tick(now_s); }
    std::size_t age_inner_macs(uint32_t max_age_s) noexcept { return inner_macs_.age(max_age_s); }

private:
    struct Neighbour {  // a next hop on the underlay's segment (hops_.neighbours)
        std::atomic<uint64_t> mac{0};  // kKnown | the MAC; 0 = unknown (the owner core writes it)
        uint64_t next_arp_tsc = 0;     // owner core: no ARP request before this
    };
    static constexpr uint64_t kKnown = 1ull << 63;
    static constexpr uint16_t kStage = 2 * kBurst;  // encapsulated frames gathered for one underlay burst

    VxlanPort(std::string name, VxlanSettings settings, std::unique_ptr<EthdevPort> underlay, const MacAddr& mac);
    // Receive side, per underlay frame; each consumes m or keeps it (true: switch it).
    bool take_vxlan(PmdContext& ctx, rte_mbuf* m, const UnderlayVerdict& v);
    // With a map: the decapsulated frame of `segment` enters its VLAN (false: dropped).
    bool enter_vlan(PmdContext& ctx, rte_mbuf* m, uint16_t segment);
    void take_arp(PmdContext& ctx, rte_mbuf* m);
    void drop(PmdContext& ctx, rte_mbuf* m, Drop why);
    // The index of remote VTEP `ip` / of next hop `ip`, or -1.
    int remote_index(uint32_t ip) const;
    int neighbour_index(uint32_t ip) const;
    void learn_neighbour(PmdContext& ctx, std::size_t n, const MacAddr& mac);
    // ARP requests for the next hops whose MAC is unknown (each at most once a second).
    void ask_neighbours(PmdContext& ctx);
    void send_arp_request(PmdContext& ctx, std::size_t n);
    // Transmit side, with a map: the frame without its tag and the segment of its VLAN,
    // or nullptr when it was dropped.
    rte_mbuf* leave_vlan(PmdContext& ctx, rte_mbuf* m, uint16_t& segment);
    // One inner frame (no offload requests left) to its remote or all, in the VNI of
    // `segment` (the map's; 0 with one VNI).
    void encap_frame(PmdContext& ctx, rte_mbuf* m, uint16_t segment);
    void encap_to(PmdContext& ctx, std::size_t r, rte_mbuf* m, uint16_t src_port, uint16_t segment);
    void send_staged(PmdContext& ctx);  // the frames gathered for the underlay

    VxlanSettings settings_;
    std::unique_ptr<EthdevPort> underlay_;
    std::optional<VniMap> map_;  // vni=N:VID...; nullopt: the one vni=N
    VtepConfig vtep_;
    bool ip_cksum_by_nic_;
    NextHops hops_;                // resolved at open: by remote, its next hop
    std::array<Neighbour, kMaxVxlanRemotes> neighbours_;  // by hops_.neighbours' index (never more than remotes)
    unsigned unknown_neighbours_;  // owner core: next hops whose MAC is unknown
    Fdb inner_macs_;               // inner source MAC -> remote index, learned on decapsulation
    std::array<VxlanCounters, kMaxPmds + 1> vx_counters_;
    std::array<std::vector<VniCounters>, kMaxPmds + 1> vni_counters_;  // by core, then segment; with a map
    std::array<rte_mbuf*, kStage> staged_{};  // owner core
    uint16_t n_staged_ = 0;
};

// "10.99.0.1".
std::string ipv4_text(uint32_t ip);

}  // namespace vusw
