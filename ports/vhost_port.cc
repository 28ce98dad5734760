// vhost-user-net port: ring set-up on the owning core, which rings a burst goes to,
// counters. The hot loops are in vhost_guest_tx.cc and vhost_guest_rx.cc.
#include "ports/vhost_port.h"

#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <stdexcept>

#include "ports/vhost_rings.h"
#include "vusw/flow_hash.h"

namespace vusw {

void ProtocolStats::count_message(uint32_t request)
{
    MutexLock lock(mutex);
    if (request < messages.size())
        ++messages[request];
}

void ProtocolStats::count_error(const std::string& reason, std::string detail)
{
    MutexLock lock(mutex);
    ++errors[reason];
    if (recent_errors.size() == kRecentErrors)
        recent_errors.pop_front();
    recent_errors.push_back({std::chrono::system_clock::now(), reason, std::move(detail)});
}

VhostPort::VhostPort(std::string name, std::string path, bool client)
    : Port(std::move(name), "vhost-user", kMaxQueuePairs), path_(std::move(path)), client_(client)
{
    if (auto ok = prepare_queue(0); !ok)
        throw std::runtime_error(ok.error().detail);
}

VhostPort::~VhostPort()
{
    for (Pair& p : pairs_)
        rte_ring_free(p.returns);
}

Status VhostPort::prepare_queue(uint16_t q)
{
    if (auto ok = Port::prepare_queue(q); !ok)
        return ok;
    Pair& p = pairs_[q];
    if (p.returns != nullptr)
        return {};
    static unsigned serial = 0;
    const std::string ring_name = "vusw_ret" + std::to_string(serial++);
    p.returns = rte_ring_create(ring_name.c_str(), kMaxLoans, SOCKET_ID_ANY, RING_F_SC_DEQ | RING_F_EXACT_SZ);
    if (p.returns == nullptr)
        return fail("no_memory", fmt::format("cannot create the buffer return ring of port {} queue pair {}: {}",
                                             name(), q, rte_strerror(rte_errno)));
    p.scratch = std::make_unique<PairScratch>();
    return {};
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
    const bool starts = s.started && !v.started;
    if (s.started && (!v.started || s.reconfigure))
        start_ring(index, v, s);
    if (!s.started)
        (this->*v.loops.notify)(v);  // a stopped ring's used entries are published (and logged) now, not later
    if (s.log && !v.log)
        std::visit([](auto& q) { q.logging_starts(); }, v.queue);
    v.call_fd = s.call_fd;
    v.started = s.started;
    v.enabled = s.enabled;
    v.log = s.log;
    if (starts)  // the notification of used entries the guest has not seen yet may have been lost with
        wake(v);  // the previous back-end (migration, reconnect): the guest looks at the ring once
    v.caps = index % 2 == 1 ? s.host : s.guest;  // ring 2q+1 is the guest's TX
    // The loops must match the queue the ring holds (a stop carries no features).
    RingSetup chosen = s;
    chosen.ring.packed = std::holds_alternative<PackedQueue>(v.queue);
    v.loops = loops_for(chosen);
    return std::visit([](const auto& q) { return vring_base(q); }, v.queue);
}

VhostPort::RingPosition VhostPort::ring_position(uint16_t index) const
{
    const Vring& v = vrings_[index];
    if (const auto* split = std::get_if<SplitQueue>(&v.queue))
        return {split->last_avail(), split->published_used()};
    const auto& packed = *std::get_if<PackedQueue>(&v.queue);
    return {packed.last_avail(), packed.last_used()};
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

void VhostPort::set_rx_queues(std::span<const uint16_t> pairs)
{
    const std::size_t n = std::min(pairs.size(), rx_queues_.size());
    for (std::size_t i = 0; i < n; ++i)
        rx_queues_[i].store(uint8_t(pairs[i]), std::memory_order_relaxed);
    rx_queue_count_.store(uint8_t(n), std::memory_order_release);
}

void VhostPort::note_fault(Vring& v)
{
    const QueueFault f = std::visit([](const auto& q) { return q.fault(); }, v.queue);
    if (f != QueueFault::none && v.seen.load(std::memory_order_relaxed) != f) {
        broken_[std::size_t(f)].add();
        v.seen.store(f, std::memory_order_relaxed);
    }
}

uint16_t VhostPort::receive(PmdContext& ctx, uint16_t q, rte_mbuf** pkts, uint16_t max)
{
    take_returns(q);
    Vring& v = vrings_[2 * q + 1];
    return v.started ? (this->*v.loops.receive)(ctx, v, uint16_t(2 * q + 1), pkts, max) : 0;
}

void VhostPort::flush(PmdContext&, uint16_t q)
{
    Vring& v = vrings_[2 * q + 1];
    (this->*v.loops.notify)(v);
}

void VhostPort::transmit(PmdContext& ctx, uint16_t q, rte_mbuf** pkts, uint16_t n)
{
    Vring& v = vrings_[2 * q];
    (this->*v.loops.transmit)(ctx, v, pkts, n);
}

void VhostPort::send(PmdContext& ctx, rte_mbuf** pkts, uint16_t n)
{
    const uint16_t queues = rx_queue_count_.load(std::memory_order_acquire);
    if (queues == 1) {
        deliver(ctx, rx_queues_[0].load(std::memory_order_relaxed), pkts, n);
    } else if (queues > 1) {
        send_spread(ctx, pkts, n, queues);
    } else {
        counters(ctx.slot).drop(Drop::queue_not_ready, n);
        rte_pktmbuf_free_bulk(pkts, n);
    }
}

void VhostPort::send_spread(PmdContext& ctx, rte_mbuf** pkts, uint16_t n, uint16_t queues)
{
    // A counting sort by queue (stable: a flow's frames keep their order).
    std::array<uint8_t, kBurst> pick;
    std::array<uint16_t, kMaxQueuePairs + 1> start{};
    std::array<rte_mbuf*, kBurst> sorted;
    for (uint16_t done = 0; done < n;) {
        const uint16_t chunk = std::min<uint16_t>(uint16_t(n - done), kBurst);
        start.fill(0);
        for (uint16_t i = 0; i < chunk; ++i) {
            pick[i] = uint8_t((uint64_t(flow_hash(pkts[done + i])) * queues) >> 32);
            ++start[pick[i] + 1u];
        }
        for (uint16_t k = 1; k <= queues; ++k)
            start[k] = uint16_t(start[k] + start[k - 1]);
        std::array<uint16_t, kMaxQueuePairs + 1> at = start;
        for (uint16_t i = 0; i < chunk; ++i)
            sorted[at[pick[i]]++] = pkts[done + i];
        for (uint16_t k = 0; k < queues; ++k)
            if (start[k + 1] > start[k])
                deliver(ctx, rx_queues_[k].load(std::memory_order_relaxed), sorted.data() + start[k],
                        uint16_t(start[k + 1] - start[k]));
        done = uint16_t(done + chunk);
    }
}

VhostPort::Loops VhostPort::loops_for(const RingSetup& s)
{
    NotifyFn notify = s.log ? &VhostPort::notify_logged<SplitQueue> : &VhostPort::notify<SplitQueue>;
    if (s.ring.packed)
        notify = s.log ? &VhostPort::notify_logged<PackedQueue> : &VhostPort::notify<PackedQueue>;
    return {receive_loop_for(s), transmit_loop_for(s), notify};
}

void VhostPort::count_logged(Vring& v, uint32_t pages, uint32_t missed)
{
    v.log_pages.add(pages);
    if (missed != 0)
        v.log_missed.add(missed);
}

uint64_t VhostPort::logged_pages() const
{
    uint64_t n = 0;
    for (const Vring& v : vrings_)
        n += v.log_pages.get();
    return n;
}

uint64_t VhostPort::log_missed() const
{
    uint64_t n = 0;
    for (const Vring& v : vrings_)
        n += v.log_missed.get();
    return n;
}

}  // namespace vusw
