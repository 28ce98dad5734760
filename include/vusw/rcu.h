// Snapshot publication to PMD cores, by quiescent-state RCU (DPDK rte_rcu_qsbr).
//
// The control thread replaces a snapshot with one atomic pointer store and hands the old
// one to the Reclaimer, which frees it only after every PMD core has reported a quiescent
// state (it does so after each batch), so a core never sees memory disappear under it.
// Nothing here blocks a PMD core.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>

struct rte_rcu_qsbr;

namespace vusw {

class Reclaimer {
public:
    explicit Reclaimer(unsigned max_threads);
    ~Reclaimer();
    Reclaimer(const Reclaimer&) = delete;
    Reclaimer& operator=(const Reclaimer&) = delete;

    rte_rcu_qsbr* qsbr() const { return qsbr_; }

    // Frees `old` once all registered PMD cores have passed a quiescent state.
    void retire(std::shared_ptr<const void> old);
    // Frees what is due; returns how many snapshots remain pending. Control thread only.
    std::size_t poll();
    // Blocks (control thread) until everything pending is freed or `timeout` passes.
    bool drain(std::chrono::milliseconds timeout);

    // Grace periods completed and their summed duration, for metrics.
    uint64_t grace_periods() const { return grace_periods_.load(std::memory_order_relaxed); }
    double grace_seconds() const { return grace_seconds_.load(std::memory_order_relaxed); }

private:
    struct Pending {
        uint64_t token;
        std::chrono::steady_clock::time_point since;
        std::shared_ptr<const void> object;
    };
    rte_rcu_qsbr* qsbr_;
    std::deque<Pending> pending_;
    std::atomic<uint64_t> grace_periods_{0};
    std::atomic<double> grace_seconds_{0};
};

// A pointer the control thread publishes and PMD cores read at batch start.
template <class T>
class RcuPointer {
public:
    const T* read() const noexcept { return current_.load(std::memory_order_acquire); }

    // Control thread: installs `next` and retires the previous snapshot.
    void publish(std::shared_ptr<const T> next, Reclaimer& reclaimer)
    {
        current_.store(next.get(), std::memory_order_release);
        if (owner_)
            reclaimer.retire(std::move(owner_));
        owner_ = std::move(next);
    }
    // The control thread's own view (it is the only writer).
    const std::shared_ptr<const T>& owned() const { return owner_; }

private:
    std::atomic<const T*> current_{nullptr};
    std::shared_ptr<const T> owner_;
};

}  // namespace vusw
