// The L2 learning switch: decides where each received frame goes.
//
// Learns (source MAC, VLAN) -> ingress port, forwards known unicast to its port, floods
// broadcast, multicast and unknown unicast to every port but the ingress one (shared
// mbufs by reference count, no copy), and never echoes a frame to its ingress port.
#pragma once

#include <array>
#include <vector>

#include "vusw/fdb.h"
#include "vusw/port.h"

namespace vusw {

class L2Switch {
public:
    explicit L2Switch(Fdb& fdb) : fdb_(fdb) {}

    // Start-up only: the ports frames can go to, indexed by Port::id().
    void add_port(Port& port);
    const std::vector<Port*>& ports() const { return ports_; }
    Fdb& fdb() { return fdb_; }

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
    };

    void flood(CoreScratch& s, Port& in, rte_mbuf* m);
    void send(PmdContext& ctx, Port& to, rte_mbuf** pkts, uint16_t n);

    Fdb& fdb_;
    std::vector<Port*> ports_;
    std::array<CoreScratch, kMaxPmds> scratch_;
};

}  // namespace vusw
