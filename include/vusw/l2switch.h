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
// decided whenever the set of ports changes; the per-burst loop is instantiated for each case.
//
// Ports come and go while the cores switch: the port table is a snapshot the control
// thread replaces (RCU, rcu.h) and each burst reads once. A removed port's id is free
// again only after release_id(), which the owner of the port calls once no core can
// hold the old table and its FDB entries are flushed (Daemon: retiring ports).
#pragma once

#include <array>
#include <optional>
#include <utility>
#include <vector>

#include "vusw/fdb.h"
#include "vusw/port.h"
#include "vusw/rcu.h"

namespace vusw {

// The ports frames can go to: one snapshot, replaced whole when a port comes or goes.
struct PortTable {
    std::array<Port*, kMaxPorts> by_id{};  // nullptr: no port (never was, or removed)
    std::vector<Port*> members;            // the ports, in the order they were added: flooding
    bool vlan_aware = false;               // some port is not an access port of VLAN 0
};

class L2Switch {
public:
    L2Switch(Fdb& fdb, Reclaimer& reclaimer);

    // Control: gives the port a free id (Port::id()) and publishes a table with it. Its
    // PortConfig must be set already. Fails when kMaxPorts ports exist (or still retire).
    Status add_port(Port& port);
    // Control: publishes a table without the port. Cores may still use the old table
    // until the next grace period; the id stays taken until release_id().
    void remove_port(Port& port);
    // Control: the removed port's id may be given to a new port.
    void release_id(uint16_t id) { used_ids_[id] = false; }
    const std::vector<Port*>& ports() const { return table_.owned()->members; }
    Fdb& fdb() { return fdb_; }
    // Some port is not an access port of VLAN 0: frames are classified, tagged and
    // untagged by the VLAN rules (decided whenever the ports change); else VLAN-transparent.
    bool vlan_aware() const { return table_.owned()->vlan_aware; }

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
    void forward_burst(PmdContext& ctx, const PortTable& t, Port& in, rte_mbuf** pkts, uint16_t n);
    void publish(std::shared_ptr<PortTable> next);
    // The VLAN of a frame received on `in`, or nullopt once it is counted and freed.
    std::optional<FrameVlan> classify(PortCounters& in_counters, const Port& in, rte_mbuf* m);
    void enqueue(CoreScratch& s, uint16_t to, rte_mbuf* m);
    void flood(CoreScratch& s, const PortTable& t, Port& in, rte_mbuf* m);
    void flood_vlan(PmdContext& ctx, CoreScratch& s, const PortTable& t, Port& in, rte_mbuf* m, const FrameVlan& f);
    void unicast_vlan(PmdContext& ctx, CoreScratch& s, Port& to, rte_mbuf* m, const FrameVlan& f);

    Fdb& fdb_;
    Reclaimer& reclaimer_;
    RcuPointer<PortTable> table_;
    std::array<bool, kMaxPorts> used_ids_{};  // control thread: taken (live or retiring)
    std::array<CoreScratch, kMaxPmds> scratch_;
};

}  // namespace vusw
