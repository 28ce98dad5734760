// Snapshot publication to PMD cores, by quiescent-state RCU (DPDK rte_rcu_qsbr).
//
// The control thread replaces a snapshot with one atomic pointer store and hands the old
// one to the Reclaimer, which frees it only after every PMD core has reported a quiescent
// state (it does so after each batch), so a core never sees memory disappear under it.
// Nothing here blocks a PMD core.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>

#include "vusw/counters.h"

struct rte_rcu_qsbr;

namespace vusw {

// Grace-period durations: a fixed-bucket histogram with count and sum (for metrics and
// the hotplug benchmark). Written by the control thread, read by the exporter.
struct GraceStats {
    static constexpr std::array<double, 10> kBounds = {1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 1e-1, 1.0};
    std::array<Counter, kBounds.size() + 1> buckets;  // non-cumulative; last = above 1 s
    Counter count;
    std::atomic<double> sum{0};

    void record(double seconds);
};

class Reclaimer {
public:
    explicit Reclaimer(unsigned max_threads);
    ~Reclaimer();
    Reclaimer(const Reclaimer&) = delete;
    Reclaimer& operator=(const Reclaimer&) = delete;

    rte_rcu_qsbr* qsbr() const { return qsbr_; }

    // Frees `old` once all registered PMD cores have passed a quiescent state; the wait
    // is recorded in the global stats and in `stats` (e.g. the port's) if given.
    // `busy`, if given, must also read zero before `old` is freed (buffers still lent out).
    void retire(std::shared_ptr<const void> old, GraceStats* stats = nullptr,
                const std::atomic<uint32_t>* busy = nullptr);
    // Frees what is due; returns how many snapshots remain pending. Control thread only.
    std::size_t poll();
    // Blocks (control thread) until everything pending is freed or `timeout` passes.
    bool drain(std::chrono::milliseconds timeout);

    bool pending() const { return !pending_.empty(); }
    // Every grace period completed, for metrics.
    const GraceStats& stats() const { return stats_; }

private:
    struct Pending {
        uint64_t token;
        std::chrono::steady_clock::time_point since;
        std::shared_ptr<const void> object;
        GraceStats* stats;
        const std::atomic<uint32_t>* busy;
    };
    rte_rcu_qsbr* qsbr_;
    std::deque<Pending> pending_;
    GraceStats stats_;
};

// A pointer the control thread publishes and PMD cores read at batch start.
template <class T>
class RcuPointer {
public:
    const T* read() const noexcept { return current_.load(std::memory_order_acquire); }

    // Control thread: installs `next` and retires the previous snapshot.
    void publish(std::shared_ptr<const T> next, Reclaimer& reclaimer, GraceStats* stats = nullptr)
    {
        current_.store(next.get(), std::memory_order_release);
        if (owner_) {
            const std::atomic<uint32_t>* busy = nullptr;
            if constexpr (requires(const T& t) { t.loans(); })
                busy = &owner_->loans();  // zero-copy buffers still point into it
            reclaimer.retire(std::move(owner_), stats, busy);
        }
        owner_ = std::move(next);
    }
    // The control thread's own view (it is the only writer).
    const std::shared_ptr<const T>& owned() const { return owner_; }

private:
    std::atomic<const T*> current_{nullptr};
    std::shared_ptr<const T> owner_;
};

}  // namespace vusw
