// Port base: counters, queues and their hand-off rings.
#include "vusw/port.h"

#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <algorithm>

#include <fmt/format.h>

#include "vusw/ring.h"

namespace vusw {
namespace {
constexpr std::array<std::string_view, std::size_t(Drop::count_)> kDropNames = {
    "no_rx_buffer", "rx_buffer_small", "queue_not_ready", "queue_disabled", "too_many_segments",
    "oversize", "runt", "no_mbuf", "tx_full", "handoff_full", "no_destination",
    "bad_offload",
    "vlan_tagged_on_access", "vlan_not_allowed",
    "mtu_exceeded",
    "underlay_other", "vxlan_bad_header", "vxlan_fragment", "vxlan_bad_checksum", "vxlan_bad_flags",
    "vxlan_unknown_vni", "vxlan_unknown_remote", "no_neighbour", "vxlan_no_vni",
};
}  // namespace

std::string_view drop_name(Drop d)
{
    return kDropNames[std::size_t(d)];
}

Port::Port(std::string name, std::string_view kind, uint16_t queue_limit)
    : name_(std::move(name)), kind_(kind), queue_limit_(std::min(queue_limit, kMaxPortQueues))
{
}

Port::~Port()
{
    for (Queue& q : queues_)
        rte_ring_free(q.handoff);
}

Status Port::prepare_queue(uint16_t q)
{
    if (q >= queue_limit_)
        return fail("bad_queue", fmt::format("port {} has no queue {} (it has at most {})", name_, q, queue_limit_));
    if (queues_[q].handoff != nullptr)
        return {};
    static unsigned serial = 0;
    const std::string ring_name = "vusw_ho" + std::to_string(serial++);
    queues_[q].handoff = rte_ring_create(ring_name.c_str(), 1024, SOCKET_ID_ANY, RING_F_SC_DEQ);
    if (queues_[q].handoff == nullptr)
        return fail("no_memory", fmt::format("cannot create the hand-off ring of port {} queue {}: {}", name_, q,
                                             rte_strerror(rte_errno)));
    return {};
}

void Port::deliver(PmdContext& ctx, uint16_t q, rte_mbuf** pkts, uint16_t n)
{
    if (owner(q) == ctx.slot) {
        transmit(ctx, q, pkts, n);
        return;
    }
    // Another core owns the queue: hand the frames over (multi-producer ring).
    const unsigned sent = ring_enqueue_burst(handoff(q), reinterpret_cast<void**>(pkts), n);
    if (sent < n) {
        counters(ctx.slot).drop(Drop::handoff_full, n - sent);
        rte_pktmbuf_free_bulk(pkts + sent, n - sent);
    }
}

void Port::drop_handoffs()
{
    rte_mbuf* pkts[kBurst];
    for (Queue& q : queues_) {
        if (q.handoff == nullptr)
            continue;
        while (const unsigned n = ring_dequeue_burst(q.handoff, reinterpret_cast<void**>(pkts), kBurst))
            rte_pktmbuf_free_bulk(pkts, n);
    }
}

uint64_t Port::poll_cycles_total(unsigned slot) const
{
    uint64_t n = 0;
    for (const Queue& q : queues_)
        n += q.poll_cycles[slot].get();
    return n;
}

void Port::set_config(const PortConfig& config)
{
    config_ = config;
    set_frontend_mtu(std::nullopt);
}

void Port::set_frontend_mtu(std::optional<uint16_t> mtu)
{
    const EffectiveMtu e = vusw::effective_mtu(config_, mtu);
    mtu_word_.store(e.mtu | uint32_t(e.source) << 16, std::memory_order_relaxed);
}

EffectiveMtu Port::effective_mtu() const
{
    const uint32_t w = mtu_word_.load(std::memory_order_relaxed);
    return {uint16_t(w), MtuSource(w >> 16)};
}

PortTotals Port::totals() const
{
    PortTotals t;
    for (const PortCounters& c : counters_) {
        t.rx_packets += c.rx_packets.get();
        t.rx_bytes += c.rx_bytes.get();
        t.tx_packets += c.tx_packets.get();
        t.tx_bytes += c.tx_bytes.get();
        t.rx_zero_copy += c.rx_zero_copy.get();
        for (std::size_t i = 0; i < t.drops.size(); ++i)
            t.drops[i] += c.drops[i].get();
    }
    return t;
}

}  // namespace vusw
