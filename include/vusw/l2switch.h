// The L2 learning switch: decides where each received frame goes.
//
// Learns (source MAC, VLAN) -> ingress port, forwards known unicast to its port, floods
// broadcast, multicast and unknown unicast to every other port of the frame's VLAN
// (shared mbufs by reference count, no copy), and never echoes a frame to its ingress
// port. VLAN rules (vlan.h): a frame's VLAN comes from its ingress port and tag; it
// leaves access ports untagged and trunks tagged (but in their native VLAN).
//
// When every port is an access port of VLAN 0 (no VLAN option anywhere, the default),
// the switch is VLAN-transparent as it always was: frames pass as they are, tagged or
// not, learned under (MAC, VID of their tag or 0), and no VLAN work is done. That is
// decided once, when the ports are added; the per-burst loop is instantiated for each case.
#pragma once

#include <array>
#include <optional>
#include <utility>
#include <vector>

#include "vusw/fdb.h"
#include "vusw/port.h"

namespace vusw {

class L2Switch {
public:
    explicit L2Switch(Fdb& fdb) : fdb_(fdb) {}

    // Start-up only: the ports frames can go to, indexed by Port::id(). Their
    // PortConfig must be set already.
    void add_port(Port& port);
    const std::vector<Port*>& ports() const { return ports_; }
    Fdb& fdb() { return fdb_; }
    // Some port is not an access port of VLAN 0: frames are classified, tagged and
    // untagged by the VLAN rules (fixed once the ports are added); else VLAN-transparent.
    bool vlan_aware() const { return vlan_aware_; }

    // PMD: switches a burst received on `in` and transmits it.
    void forward(PmdContext& ctx, Port& in, rte_mbuf** pkts, uint16_t n);

private:
    struct Outbox {
        uint16_t count = 0;
        std::array<rte_mbuf*, kBurst> pkts;
    };
    // Per-core, cache-aligned outboxes: one per destination port.
    struct alignas(64) CoreScratch {
        std::vector<Outbox> out;
        std::vector<uint16_t> touched;
        std::vector<std::pair<uint16_t, uint8_t>> members;  // VLAN flood: port, form (see flood_vlan)
    };
    template <bool kVlan>
    void forward_burst(PmdContext& ctx, Port& in, rte_mbuf** pkts, uint16_t n);
    // The VLAN of a frame received on `in`, or nullopt once it is counted and freed.
    std::optional<FrameVlan> classify(PortCounters& in_counters, const Port& in, rte_mbuf* m);
    void enqueue(CoreScratch& s, uint16_t to, rte_mbuf* m);
    void flood(CoreScratch& s, Port& in, rte_mbuf* m);
    void flood_vlan(PmdContext& ctx, CoreScratch& s, Port& in, rte_mbuf* m, const FrameVlan& f);
    void unicast_vlan(PmdContext& ctx, CoreScratch& s, Port& to, rte_mbuf* m, const FrameVlan& f);

    Fdb& fdb_;
    std::vector<Port*> ports_;
    bool vlan_aware_ = false;
    std::array<CoreScratch, kMaxPmds> scratch_;
};

}  // namespace vusw
