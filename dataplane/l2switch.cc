// Learning, lookup, VLANs and per-destination batching.
#include "vusw/l2switch.h"

#include <rte_ether.h>
#include <rte_mbuf.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "vusw/mtu.h"

namespace vusw {
namespace {

// The VID of a tagged frame, 0 if untagged: the FDB key of a VLAN-transparent switch.
uint16_t tag_vid(const rte_ether_hdr* eth, uint32_t len)
{
    if (eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN) || len < sizeof(rte_ether_hdr) + sizeof(rte_vlan_hdr))
        return 0;
    const auto* tag = reinterpret_cast<const rte_vlan_hdr*>(eth + 1);
    return rte_be_to_cpu_16(tag->vlan_tci) & kVidMask;
}

std::optional<uint16_t> tci_for(EgressForm form, const FrameVlan& f)
{
    return form == EgressForm::tagged ? std::optional(egress_tci(f.tci, f.vlan)) : std::nullopt;
}

}  // namespace

L2Switch::L2Switch(Fdb& fdb, Reclaimer& reclaimer) : fdb_(fdb), reclaimer_(reclaimer)
{
    for (CoreScratch& s : scratch_) {
        s.out.resize(kMaxPorts);
        s.touched.reserve(kMaxPorts);
        s.members.reserve(kMaxPorts);
    }
    publish(std::make_shared<PortTable>());
}

void L2Switch::publish(std::shared_ptr<PortTable> next)
{
    next->vlan_aware = false;
    for (const Port* p : next->members)
        next->vlan_aware |= !p->config().vlan_plain();
    table_.publish(std::move(next), reclaimer_);
}

Status L2Switch::add_port(Port& port)
{
    const auto free = std::find(used_ids_.begin(), used_ids_.end(), false);
    if (free == used_ids_.end())
        return fail("too_many_ports", fmt::format("cannot add port {}: the switch has {} ports (counting removed ones "
                                                  "whose buffers are still out); delete one first",
                                                  port.name(), kMaxPorts));
    *free = true;
    port.set_id(uint16_t(free - used_ids_.begin()));
    auto next = std::make_shared<PortTable>(*table_.owned());
    next->by_id[port.id()] = &port;
    next->members.push_back(&port);
    publish(std::move(next));
    return {};
}

void L2Switch::remove_port(Port& port)
{
    auto next = std::make_shared<PortTable>(*table_.owned());
    next->by_id[port.id()] = nullptr;
    std::erase(next->members, &port);
    publish(std::move(next));
}

void L2Switch::enqueue(CoreScratch& s, uint16_t to, rte_mbuf* m)
{
    Outbox& o = s.out[to];
    if (o.count == 0)
        s.touched.push_back(to);
    o.pkts[o.count++] = m;
}

void L2Switch::flood(CoreScratch& s, const PortTable& t, Port& in, rte_mbuf* m)
{
    uint16_t copies = 0;
    for (Port* p : t.members)
        if (p != &in) {
            enqueue(s, p->id(), m);
            ++copies;
        }
    // Every segment: each destination frees its reference to the whole chain. (`in` may
    // be gone from the table already, while its core still polls it: it is being removed.)
    if (copies == 0)
        rte_pktmbuf_free(m);
    else
        rte_pktmbuf_refcnt_update(m, int16_t(copies - 1));
}

std::optional<FrameVlan> L2Switch::classify(PortCounters& in_counters, const Port& in, rte_mbuf* m)
{
    const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
    FrameVlan f;
    std::optional<uint16_t> tci;
    if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN)) {
        if (rte_pktmbuf_data_len(m) < sizeof(rte_ether_hdr) + sizeof(rte_vlan_hdr)) {
            in_counters.drop(Drop::runt);
            rte_pktmbuf_free(m);
            return std::nullopt;
        }
        tci = rte_be_to_cpu_16(reinterpret_cast<const rte_vlan_hdr*>(eth + 1)->vlan_tci);
        f.tag_in_data = true;
    } else if (m->ol_flags & RTE_MBUF_F_RX_VLAN_STRIPPED) {
        tci = m->vlan_tci;
    }
    const auto vlan = ingress_vlan(in.config(), tci);
    if (!vlan) {
        in_counters.drop(vlan.error());
        rte_pktmbuf_free(m);
        return std::nullopt;
    }
    f.vlan = *vlan;
    f.tci = tci.value_or(0);
    return f;
}

// Floods a frame to the other ports of its VLAN. Ports that take it as it is share `m`;
// the others share one variant per form (untagged, tagged), built once.
void L2Switch::flood_vlan(PmdContext& ctx, CoreScratch& s, const PortTable& t, Port& in, rte_mbuf* m,
                          const FrameVlan& f)
{
    std::array<uint16_t, 3> uses{};
    s.members.clear();
    for (Port* p : t.members) {
        if (p == &in || !p->config().carries(f.vlan))
            continue;
        const EgressForm form = egress_form(p->config(), f);
        s.members.emplace_back(p->id(), uint8_t(form));
        ++uses[std::size_t(form)];
    }
    if (s.members.empty()) {
        in.counters(ctx.slot).drop(Drop::no_destination);
        rte_pktmbuf_free(m);
        return;
    }
    std::array<rte_mbuf*, 3> frames{m, nullptr, nullptr};
    bool m_taken = false;  // a variant took over our reference to m
    for (const EgressForm form : {EgressForm::untagged, EgressForm::tagged}) {
        const uint16_t n = uses[std::size_t(form)];
        if (n == 0)
            continue;
        // The last variant built may take m over when no port gets m as it is.
        const bool own = uses[0] == 0 && !(form == EgressForm::untagged && uses[std::size_t(EgressForm::tagged)] > 0);
        rte_mbuf* v = vlan_reform(m, own, f.tag_in_data, tci_for(form, f), ctx.pool);
        if (v != nullptr && n > 1)
            rte_pktmbuf_refcnt_update(v, int16_t(n - 1));
        frames[std::size_t(form)] = v;
        m_taken |= own && v != nullptr;
    }
    if (uses[0] > 1)
        rte_pktmbuf_refcnt_update(m, int16_t(uses[0] - 1));
    else if (uses[0] == 0 && !m_taken)
        rte_pktmbuf_free(m);  // the variants hold their own references (clones) or copies
    for (const auto& [id, form] : s.members) {
        if (frames[form] == nullptr)
            t.by_id[id]->counters(ctx.slot).drop(Drop::no_mbuf);
        else
            enqueue(s, id, frames[form]);
    }
}

void L2Switch::unicast_vlan(PmdContext& ctx, CoreScratch& s, Port& to, rte_mbuf* m, const FrameVlan& f)
{
    const EgressForm form = egress_form(to.config(), f);
    if (form != EgressForm::as_is) {
        rte_mbuf* v = vlan_reform(m, true, f.tag_in_data, tci_for(form, f), ctx.pool);
        if (v == nullptr) {
            to.counters(ctx.slot).drop(Drop::no_mbuf);
            rte_pktmbuf_free(m);
            return;
        }
        m = v;
    }
    enqueue(s, to.id(), m);
}

template <bool kVlan>
void L2Switch::forward_burst(PmdContext& ctx, const PortTable& t, Port& in, rte_mbuf** pkts, uint16_t n)
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
        FrameVlan f;
        if constexpr (kVlan) {
            const std::optional<FrameVlan> c = classify(in_counters, in, m);
            if (!c)
                continue;
            f = *c;
        } else {  // VLAN-transparent: frames pass as they are, learned under their tag
            f.vlan = tag_vid(eth, rte_pktmbuf_data_len(m));
        }
        const uint16_t vlan = f.vlan;
        if (!rte_is_multicast_ether_addr(&eth->src_addr)) {
            const uint64_t src = mac_key(eth->src_addr.addr_bytes);
            if (src != learned_mac || vlan != learned_vlan) {
                fdb_.learn(src, vlan, in.id());
                learned_mac = src;
                learned_vlan = vlan;
            }
        }
        uint16_t to = Fdb::kUnknown;
        if (!rte_is_multicast_ether_addr(&eth->dst_addr)) {
            const uint64_t dst = mac_key(eth->dst_addr.addr_bytes);
            if (dst != looked_up_mac || vlan != looked_up_vlan) {
                looked_up_port = fdb_.lookup(dst, vlan);
                looked_up_mac = dst;
                looked_up_vlan = vlan;
            }
            to = looked_up_port;
        }
        if (to == in.id() || t.members.size() < 2) {
            in_counters.drop(Drop::no_destination);  // never echo a frame to where it came from
            rte_pktmbuf_free(m);
        } else if (to >= kMaxPorts || t.by_id[to] == nullptr ||
                   (kVlan && !t.by_id[to]->config().carries(vlan))) {  // unknown too
            if constexpr (kVlan)
                flood_vlan(ctx, s, t, in, m, f);
            else
                flood(s, t, in, m);
        } else if constexpr (kVlan) {
            unicast_vlan(ctx, s, *t.by_id[to], m, f);
        } else {
            enqueue(s, to, m);
        }
    }
    for (uint16_t id : s.touched) {
        Port& to = *t.by_id[id];
        // Frames longer than the destination's MTU allows are dropped here (mtu.h).
        if (const uint16_t n_ok = drop_over_mtu(to, ctx.slot, s.out[id].pkts.data(), s.out[id].count); n_ok > 0)
            to.send(ctx, s.out[id].pkts.data(), n_ok);
        s.out[id].count = 0;
    }
    s.touched.clear();
}

void L2Switch::forward(PmdContext& ctx, Port& in, rte_mbuf** pkts, uint16_t n)
{
    const PortTable& t = *table_.read();  // one snapshot per burst: ports come and go between bursts
    if (t.vlan_aware)
        forward_burst<true>(ctx, t, in, pkts, n);
    else
        forward_burst<false>(ctx, t, in, pkts, n);
}

}  // namespace vusw
