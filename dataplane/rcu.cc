// Quiescent-state reclamation of retired snapshots.
#include "vusw/rcu.h"

#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>

#include <stdexcept>
#include <thread>

namespace vusw {

Reclaimer::Reclaimer(unsigned max_threads)
{
    const size_t size = rte_rcu_qsbr_get_memsize(max_threads);
    qsbr_ = static_cast<rte_rcu_qsbr*>(rte_zmalloc("vusw_qsbr", size, RTE_CACHE_LINE_SIZE));
    if (qsbr_ == nullptr || rte_rcu_qsbr_init(qsbr_, max_threads) != 0)
        throw std::runtime_error("cannot allocate the RCU state (out of DPDK memory?)");
}

Reclaimer::~Reclaimer()
{
    pending_.clear();  // PMD cores are stopped by now
    rte_free(qsbr_);
}

void GraceStats::record(double seconds)
{
    std::size_t b = 0;
    while (b < kBounds.size() && seconds > kBounds[b])
        ++b;
    buckets[b].add();
    count.add();
    sum.store(sum.load(std::memory_order_relaxed) + seconds, std::memory_order_relaxed);
}

void Reclaimer::retire(std::shared_ptr<const void> old, GraceStats* stats, const std::atomic<uint32_t>* busy)
{
    pending_.push_back(Pending{rte_rcu_qsbr_start(qsbr_), std::chrono::steady_clock::now(), std::move(old), stats, busy});
}

std::size_t Reclaimer::poll()
{
    auto lent = [](const Pending& p) { return p.busy != nullptr && p.busy->load(std::memory_order_acquire) != 0; };
    while (!pending_.empty() && rte_rcu_qsbr_check(qsbr_, pending_.front().token, false) == 1 && !lent(pending_.front())) {
        const std::chrono::duration<double> took = std::chrono::steady_clock::now() - pending_.front().since;
        stats_.record(took.count());
        if (pending_.front().stats != nullptr)
            pending_.front().stats->record(took.count());
        pending_.pop_front();
    }
    return pending_.size();
}

bool Reclaimer::drain(std::chrono::milliseconds timeout)
{
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (poll() != 0) {
        if (std::chrono::steady_clock::now() > deadline)
            return false;
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    return true;
}

}  // namespace vusw
