// vhost-user-net port: ring set-up on the owning core, which rings a burst goes to,
// counters. The hot loops are in vhost_guest_tx.cc and vhost_guest_rx.cc.
#include "ports/vhost_port.h"

#include <rte_mbuf.h>
#include <rte_ring.h>

#include <algorithm>
#include <bit>
#include <stdexcept>

#include "ports/vhost_rings.h"
#include "vusw/flow_hash.h"

namespace vusw {

void ProtocolStats::count_message(uint32_t request)
{
    std::lock_guard lock(mutex);
    if (request < messages.size())
        ++messages[request];
}

void ProtocolStats::count_error(const std::string& reason)
{
    std::lock_guard lock(mutex);
    ++errors[reason];
}

VhostPort::VhostPort(std::string name, std::string path, bool client)
    : Port(std::move(name), "vhost-user"), path_(std::move(path)), client_(client)
{
    create_handoff();
    static unsigned serial = 0;
    const std::string ring_name = "vusw_ret" + std::to_string(serial++);
    returns_ = rte_ring_create(ring_name.c_str(), kMaxLoans, SOCKET_ID_ANY, RING_F_SC_DEQ | RING_F_EXACT_SZ);
    if (returns_ == nullptr)
        throw std::runtime_error("cannot create the buffer return ring for port " + this->name());
}

VhostPort::~VhostPort()
{
    rte_ring_free(returns_);
}

std::string VhostPort::state() const
{
    return state_;
}

uint64_t VhostPort::broken_total() const
{
    uint64_t n = 0;
    for (const Counter& c : broken_)
        n += c.get();
    return n;
}

uint32_t VhostPort::apply_ring(uint16_t index, const RingSetup& s)
{
    Vring& v = vrings_[index];
    if (s.started && (!v.started || s.reconfigure))
        start_ring(index, v, s);
    v.call_fd = s.call_fd;
    v.started = s.started;
    v.enabled = s.enabled;
    v.caps = index % 2 == 1 ? s.host : s.guest;  // ring 2q+1 is the guest's TX
    // The loops must match the queue the ring holds (a stop carries no features).
    RingSetup chosen = s;
    chosen.ring.packed = std::holds_alternative<PackedQueue>(v.queue);
    v.loops = loops_for(chosen);
    rings_in_use_ = 0;
    for (uint16_t i = 0; i < vrings_.size(); ++i)
        if (vrings_[i].started)
            rings_in_use_ = uint16_t(i + 1);
    update_rx_queues();
    return std::visit([](const auto& q) { return vring_base(q); }, v.queue);
}

uint32_t VhostPort::vring_base(const SplitQueue& q)
{
    return q.last_avail();
}

uint32_t VhostPort::vring_base(const PackedQueue& q)
{
    return q.last_avail() | uint32_t(q.last_used()) << 16;
}

void VhostPort::start_ring(uint16_t index, Vring& v, const RingSetup& s)
{
    RingConfig ring = s.ring;
    if (v.started) {  // new placement, same position
        const uint32_t base = std::visit([](const auto& q) { return vring_base(q); }, v.queue);
        ring.last_avail = uint16_t(base);
        ring.last_used = ring.packed ? uint16_t(base >> 16) : 0;
    }
    if (ring.packed && !std::holds_alternative<PackedQueue>(v.queue))
        v.queue.emplace<PackedQueue>();
    else if (!ring.packed && !std::holds_alternative<SplitQueue>(v.queue))
        v.queue.emplace<SplitQueue>();
    std::visit([&](auto& q) { q.configure(ring); }, v.queue);
    v.seen.store(QueueFault::none, std::memory_order_relaxed);
    ++v.generation;  // loans of the previous run are not returned into this one
    // Loan slots are addressed by in-flight mbufs: never move them while any is lent.
    if (index % 2 == 1 && v.lent.size() < ring.size && v.loans.load(std::memory_order_relaxed) == 0) {
        v.lent = std::vector<Loan>(ring.size);
        const uint32_t fifo = std::bit_ceil(uint32_t(ring.size));  // packed ring sizes need not be powers of two
        v.order.assign(fifo, 0);
        v.order_mask = fifo - 1u;
        v.finished.assign(ring.size, 0);
    }
    std::fill(v.finished.begin(), v.finished.end(), 0);
    v.order_first = v.order_end = 0;
}

void VhostPort::update_rx_queues()
{
    rx_ring_count_ = 0;
    for (uint16_t i = 0; i < rings_in_use_; i += 2)
        if (vrings_[i].started && vrings_[i].enabled)
            rx_rings_[rx_ring_count_++] = i;
}

void VhostPort::note_fault(Vring& v)
{
    const QueueFault f = std::visit([](const auto& q) { return q.fault(); }, v.queue);
    if (f != QueueFault::none && v.seen.load(std::memory_order_relaxed) != f) {
        broken_[std::size_t(f)].add();
        v.seen.store(f, std::memory_order_relaxed);
    }
}

uint16_t VhostPort::receive(PmdContext& ctx, rte_mbuf** pkts, uint16_t max)
{
    take_returns();
    // Every TX ring of the guest, starting one pair further each call, so that a busy
    // queue cannot keep the others waiting behind a full burst.
    const uint16_t pairs = uint16_t(rings_in_use_ / 2);
    uint16_t got = 0;
    for (uint16_t k = 0; k < pairs && got < max; ++k) {
        const uint16_t q = uint16_t(2 * ((first_tx_pair_ + k) % pairs) + 1);
        Vring& v = vrings_[q];
        if (v.started)
            got = uint16_t(got + (this->*v.loops.receive)(ctx, v, q, pkts + got, uint16_t(max - got)));
    }
    if (pairs > 1)
        first_tx_pair_ = uint16_t((first_tx_pair_ + 1) % pairs);
    return got;
}

void VhostPort::flush(PmdContext&)
{
    for (uint16_t q = 1; q < rings_in_use_; q += 2)
        (this->*vrings_[q].loops.notify)(vrings_[q]);
}

void VhostPort::transmit(PmdContext& ctx, rte_mbuf** pkts, uint16_t n)
{
    if (rx_ring_count_ == 1) {
        Vring& v = vrings_[rx_rings_[0]];
        (this->*v.loops.transmit)(ctx, v, pkts, n);
    } else if (rx_ring_count_ > 1) {
        transmit_spread(ctx, pkts, n);
    } else {
        counters(ctx.slot).drop(Drop::queue_not_ready, n);
        rte_pktmbuf_free_bulk(pkts, n);
    }
}

void VhostPort::transmit_spread(PmdContext& ctx, rte_mbuf** pkts, uint16_t n)
{
    for (uint16_t done = 0; done < n;) {
        const uint16_t chunk = std::min<uint16_t>(uint16_t(n - done), kBurst);
        std::array<uint16_t, kMaxQueuePairs> count{};
        for (uint16_t i = 0; i < chunk; ++i) {
            rte_mbuf* m = pkts[done + i];
            const uint16_t q = uint16_t((uint64_t(flow_hash(m)) * rx_ring_count_) >> 32);
            spread_[q][count[q]++] = m;
        }
        for (uint16_t q = 0; q < rx_ring_count_; ++q) {
            if (count[q] == 0)
                continue;
            Vring& v = vrings_[rx_rings_[q]];
            (this->*v.loops.transmit)(ctx, v, spread_[q].data(), count[q]);
        }
        done = uint16_t(done + chunk);
    }
}

VhostPort::Loops VhostPort::loops_for(const RingSetup& s)
{
    NotifyFn notify = &VhostPort::notify<SplitQueue>;
    if (s.ring.packed)
        notify = &VhostPort::notify<PackedQueue>;
    return {receive_loop_for(s), transmit_loop_for(s), notify};
}

}  // namespace vusw
