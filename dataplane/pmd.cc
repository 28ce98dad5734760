// The PMD core loop.
#include "vusw/pmd.h"

#include <rte_cycles.h>
#include <rte_launch.h>
#include <rte_mbuf.h>
#include <rte_pause.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include <fmt/format.h>

#include <algorithm>
#include <thread>

#include "vusw/l2switch.h"
#include "vusw/ring.h"

namespace vusw {
namespace {
thread_local int t_pmd_slot = -1;
}  // namespace

int current_pmd()
{
    return t_pmd_slot;
}

Pmd::Pmd(unsigned index, unsigned lcore, L2Switch& sw, rte_rcu_qsbr* qsbr, rte_mempool* pool)
    : ctx_{index, pool}, lcore_(lcore), switch_(sw), qsbr_(qsbr)
{
    const double hz = double(rte_get_tsc_hz());
    for (std::size_t b = 0; b < turn_bounds_.size(); ++b)
        turn_bounds_[b] = uint64_t(IterationStats::kBounds[b] * hz);
}

void Pmd::adopt(Port& port, uint16_t q)
{
    port.set_owner(q, ctx_.slot);
    queues_.push_back({&port, q});
}

Status Pmd::launch()
{
    if (rte_rcu_qsbr_thread_register(qsbr_, ctx_.slot) != 0)
        return fail("rcu", fmt::format("cannot register PMD {} with RCU", ctx_.slot));
    running_.store(true, std::memory_order_release);
    if (rte_eal_remote_launch(&Pmd::entry, this, lcore_) != 0) {
        running_.store(false);
        return fail("launch", fmt::format("cannot launch PMD on lcore {} (is it in --lcores and free?)", lcore_));
    }
    launched_ = true;
    return {};
}

void Pmd::stop()
{
    running_.store(false, std::memory_order_release);
    if (!launched_)
        return;
    launched_ = false;
    rte_eal_wait_lcore(lcore_);
    // EAL's wait orders the core's last accesses before ours, but through atomics in an
    // uninstrumented library: say it in our own code, where ThreadSanitizer sees it.
    while (!exited_.load(std::memory_order_acquire))
        rte_pause();
}

int Pmd::entry(void* self)
{
    return static_cast<Pmd*>(self)->run();
}

Result<uint64_t> Pmd::execute(PmdCommand cmd, std::chrono::milliseconds timeout)
{
    cmd.seq = ++next_seq_;
    if (!running_.load(std::memory_order_acquire)) {
        commands_.push(cmd);  // the core is not polling: its state is ours to change
        apply_commands();
        return ack_value_.load(std::memory_order_relaxed);
    }
    if (!commands_.push(cmd))
        return fail("pmd_busy", fmt::format("PMD {} command queue is full", ctx_.slot));
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (acked_seq_.load(std::memory_order_acquire) < cmd.seq) {
        if (std::chrono::steady_clock::now() > deadline)
            return fail("pmd_timeout", fmt::format("PMD {} did not answer within {} ms", ctx_.slot, timeout.count()));
        std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
    return ack_value_.load(std::memory_order_acquire);
}

void Pmd::apply_commands()
{
    PmdCommand cmd;
    while (commands_.pop(cmd)) {
        uint64_t value = 0;
        switch (cmd.kind) {
        case PmdCommand::Kind::attach_queue: {  // the moving protocol: pmd.h
            const PortQueue pq{cmd.port, cmd.queue};
            cmd.port->set_owner(cmd.queue, ctx_.slot);
            if (std::find(queues_.begin(), queues_.end(), pq) == queues_.end())
                queues_.push_back(pq);
            drain_handoffs();
            break;
        }
        case PmdCommand::Kind::detach_queue:
            std::erase(queues_, PortQueue{cmd.port, cmd.queue});
            break;
        case PmdCommand::Kind::call:
            value = cmd.fn(cmd.arg, ctx_);
            break;
        }
        ack_value_.store(value, std::memory_order_relaxed);
        acked_seq_.store(cmd.seq, std::memory_order_release);
    }
}

void Pmd::drain_handoffs()
{
    rte_mbuf* pkts[kBurst];
    for (const auto& [port, q] : queues_) {
        unsigned n = ring_count(port->handoff(q));  // what was queued before; not what keeps coming
        while (n > 0) {
            const unsigned got = ring_dequeue_burst(port->handoff(q), reinterpret_cast<void**>(pkts),
                                                    std::min<unsigned>(n, kBurst));
            if (got == 0)
                break;
            port->transmit(ctx_, q, pkts, uint16_t(got));
            n -= got;
        }
    }
}

void Pmd::poll()
{
    rte_mbuf* pkts[kBurst];
    uint64_t moved = 0;
    const uint64_t start = rte_rdtsc();
    uint64_t last = start;
    for (const auto& [port, q] : queues_) {
        const uint16_t n = port->receive(ctx_, q, pkts, kBurst);
        if (n > 0) {
            port->queue_counters(q).rx_packets.add(n);
            switch_.forward(ctx_, *port, pkts, n);
        }
        port->flush(ctx_, q);
        const unsigned handed = ring_dequeue_burst(port->handoff(q), reinterpret_cast<void**>(pkts), kBurst);
        if (handed > 0)
            port->transmit(ctx_, q, pkts, uint16_t(handed));
        moved += n + handed;
        const uint64_t now = rte_rdtsc();
        if (n + handed > 0)  // a queue's load: the turns it had work (an empty poll is no load)
            port->poll_cycles(q, ctx_.slot).add(now - last);
        last = now;
    }
    const uint64_t spent = last - start;
    (moved > 0 ? busy_cycles_ : idle_cycles_).add(spent);
    packets_.add(moved);
    per_turn_[PacketsPerTurn::bucket_of(moved)].add();
}

int Pmd::run()
{
    t_pmd_slot = int(ctx_.slot);
    rte_rcu_qsbr_thread_online(qsbr_, ctx_.slot);
    uint64_t turn_start = rte_rdtsc();
    while (running_.load(std::memory_order_acquire)) {
        apply_commands();
        poll();
        // Batch boundary: nothing from the previous snapshots is held past this point.
        rte_rcu_qsbr_quiescent(qsbr_, ctx_.slot);
        const uint64_t now = rte_rdtsc();
        record_turn(now - turn_start);
        turn_start = now;
    }
    apply_commands();
    rte_rcu_qsbr_thread_offline(qsbr_, ctx_.slot);
    rte_rcu_qsbr_thread_unregister(qsbr_, ctx_.slot);
    exited_.store(true, std::memory_order_release);  // the last touch of *this
    return 0;
}

void Pmd::record_turn(uint64_t cycles)
{
    std::size_t b = 0;
    while (b < turn_bounds_.size() && cycles > turn_bounds_[b])
        ++b;
    turn_buckets_[b].add();
    turn_cycles_.add(cycles);
    if (cycles > longest_turn_.get())
        longest_turn_.set(cycles);
    // After the histogram: whoever reads `iterations` first and the histogram later never
    // sees fewer turns in the histogram (the two are separate counters).
    std::atomic_thread_fence(std::memory_order_release);
    iterations_.add();
}

PmdStats Pmd::stats() const
{
    PmdStats s{busy_cycles_.get(), idle_cycles_.get(), iterations_.get(), packets_.get(), {}, rte_get_tsc_hz(), {}};
    for (std::size_t b = 0; b < turn_buckets_.size(); ++b)
        s.turns.buckets[b] = turn_buckets_[b].get();
    s.turns.cycles = turn_cycles_.get();
    s.turns.longest = longest_turn_.get();
    for (std::size_t b = 0; b < per_turn_.size(); ++b)
        s.per_turn.buckets[b] = per_turn_[b].get();
    return s;
}

}  // namespace vusw
