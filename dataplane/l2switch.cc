// Learning, lookup and per-destination batching.
#include "vusw/l2switch.h"

#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <cstring>

namespace vusw {
namespace {

// The address as a number, first byte most significant (as printed). Two loads
// combined in registers: one 6-byte memcpy into a uint64_t becomes two stack stores
// and an 8-byte reload that cannot be store-forwarded.
uint64_t mac_of(const rte_ether_addr& a)
{
    uint32_t high = 0;
    uint16_t low = 0;
    std::memcpy(&high, a.addr_bytes, sizeof(high));
    std::memcpy(&low, a.addr_bytes + sizeof(high), sizeof(low));
    return (uint64_t(rte_be_to_cpu_32(high)) << 16) | rte_be_to_cpu_16(low);
}

uint16_t vlan_of(const rte_ether_hdr* eth, uint32_t len)
{
    if (eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN) || len < sizeof(rte_ether_hdr) + sizeof(rte_vlan_hdr))
        return 0;
    const auto* tag = reinterpret_cast<const rte_vlan_hdr*>(eth + 1);
    return rte_be_to_cpu_16(tag->vlan_tci) & 0xfff;
}

}  // namespace

void L2Switch::add_port(Port& port)
{
    port.set_id(uint16_t(ports_.size()));
    ports_.push_back(&port);
    for (CoreScratch& s : scratch_) {
        s.out.resize(ports_.size());
        s.touched.reserve(ports_.size());
    }
}

void L2Switch::flood(CoreScratch& s, Port& in, rte_mbuf* m)
{
    const uint16_t copies = uint16_t(ports_.size() - 1);
    rte_mbuf_refcnt_update(m, int16_t(copies - 1));  // each destination frees its reference
    for (Port* p : ports_) {
        if (p == &in)
            continue;
        Outbox& o = s.out[p->id()];
        if (o.count == 0)
            s.touched.push_back(p->id());
        o.pkts[o.count++] = m;
    }
}

void L2Switch::forward(PmdContext& ctx, Port& in, rte_mbuf** pkts, uint16_t n)
{
    CoreScratch& s = scratch_[ctx.slot];
    PortCounters& in_counters = in.counters(ctx.slot);
    // A burst mostly repeats one source and few destinations: learn a source once per
    // burst, and reuse the last lookup while the destination stays the same.
    uint64_t learned_mac = ~0ull, looked_up_mac = ~0ull;
    uint16_t learned_vlan = 0, looked_up_vlan = 0, looked_up_port = Fdb::kUnknown;
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        if (rte_pktmbuf_data_len(m) < sizeof(rte_ether_hdr)) {
            in_counters.drop(Drop::runt);
            rte_pktmbuf_free(m);
            continue;
        }
        const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
        const uint16_t vlan = vlan_of(eth, rte_pktmbuf_data_len(m));
        if (!rte_is_multicast_ether_addr(&eth->src_addr)) {
            const uint64_t src = mac_of(eth->src_addr);
            if (src != learned_mac || vlan != learned_vlan) {
                fdb_.learn(src, vlan, in.id());
                learned_mac = src;
                learned_vlan = vlan;
            }
        }
        uint16_t to = Fdb::kUnknown;
        if (!rte_is_multicast_ether_addr(&eth->dst_addr)) {
            const uint64_t dst = mac_of(eth->dst_addr);
            if (dst != looked_up_mac || vlan != looked_up_vlan) {
                looked_up_port = fdb_.lookup(dst, vlan);
                looked_up_mac = dst;
                looked_up_vlan = vlan;
            }
            to = looked_up_port;
        }
        if (to == in.id() || ports_.size() < 2) {
            in_counters.drop(Drop::no_destination);  // never echo a frame to where it came from
            rte_pktmbuf_free(m);
        } else if (to == Fdb::kUnknown || to >= ports_.size()) {
            flood(s, in, m);
        } else {
            Outbox& o = s.out[to];
            if (o.count == 0)
                s.touched.push_back(to);
            o.pkts[o.count++] = m;
        }
    }
    for (uint16_t id : s.touched) {
        send(ctx, *ports_[id], s.out[id].pkts.data(), s.out[id].count);
        s.out[id].count = 0;
    }
    s.touched.clear();
}

void L2Switch::send(PmdContext& ctx, Port& to, rte_mbuf** pkts, uint16_t n)
{
    if (to.owner() == ctx.slot) {
        to.transmit(ctx, pkts, n);
        return;
    }
    // Another core owns the destination: hand the frames over (multi-producer ring).
    const unsigned sent = rte_ring_enqueue_burst(to.handoff(), reinterpret_cast<void**>(pkts), n, nullptr);
    if (sent < n) {
        to.counters(ctx.slot).drop(Drop::handoff_full, n - sent);
        rte_pktmbuf_free_bulk(pkts + sent, n - sent);
    }
}

}  // namespace vusw
