// PMD cores: the polling loops that move packets.
//
// Each PMD core owns a list of port queues (a port's queue is the unit it polls). Between bursts it applies commands the control
// thread posted on its single-producer/single-consumer queue, acknowledges them, and
// reports an RCU quiescent state. Nothing in its loop takes a lock or allocates.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <vector>

#include <boost/lockfree/spsc_queue.hpp>

#include "vusw/port.h"
#include "vusw/result.h"

struct rte_rcu_qsbr;

namespace vusw {

class L2Switch;

// Work the control thread asks a PMD core to do on state the core owns.
//
// Moving queue q of port P from core A to core B (control thread, Scheduler::move):
//  1. P.set_owner(q, kNoOwner). From here on no core that reads it transmits into the
//     queue itself: every frame for it goes into its hand-off ring, which stays intact.
//  2. A.execute(detach_queue P q), waiting for the ack. A applies commands between
//     turns, so it is outside poll(): no transmit into the queue, receive from it or
//     hand-off dequeue of A is in progress, and A's later loads of its owner see
//     kNoOwner (the command queue orders them after step 1). A may still hold a
//     stale owner value only in the middle of a turn, and that turn is over.
//  3. B.execute(attach_queue P q): B sets the owner to B (every other core still hands
//     off), then, before polling anything, transmits whatever waits in the hand-off
//     rings of all its queues. Those frames were queued before B took the queue, by
//     cores that no longer route them any other way, so per-flow order holds: nothing
//     B switches later can overtake them.
// Each step happens-before the next (release/acquire on the queue and the ack), so
// A's last touch of the queue's rings and counters is visible to B; the hand-off ring's
// single consumer changes hands at the ack. Lent zero-copy buffers freed during the
// move go to the queue's return ring (its owner matches no core), which B drains.
struct PmdCommand {
    enum class Kind : uint8_t { attach_queue, detach_queue, call };
    Kind kind = Kind::call;
    Port* port = nullptr;
    uint64_t (*fn)(void* arg, PmdContext& ctx) = nullptr;  // for call: runs on the PMD core
    void* arg = nullptr;
    uint64_t seq = 0;
    uint16_t queue = 0;  // attach/detach: which queue of `port`
};

// How long each turn of a PMD loop took (commands, one burst from every port, the
// quiescent state): a turn far longer than a burst means the core stalled (a page
// fault, a preemption, a slow command) and its queues waited.
struct IterationStats {
    static constexpr std::array<double, 5> kBounds = {1e-5, 1e-4, 1e-3, 1e-2, 1e-1};  // seconds
    std::array<uint64_t, kBounds.size() + 1> buckets{};                              // non-cumulative; last = above
    uint64_t cycles = 0;   // sum
    uint64_t longest = 0;  // cycles

    // Turns longer than `bound`, which must be one of kBounds.
    uint64_t longer_than(double bound) const
    {
        uint64_t n = 0;
        for (std::size_t b = kBounds.size(); b > 0 && kBounds[b - 1] >= bound; --b)
            n += buckets[b];
        return n;
    }
};

// How many frames each turn of a PMD loop moved (received plus handed off, over all its
// queues), like OVS's pmd-stats-show: mostly 0 is an idle core, mostly full bursts a
// saturated one. Bucket b counts turns with at most kBounds[b] frames (and more than
// kBounds[b-1]); the last bucket, turns with more than kBounds.back().
struct PacketsPerTurn {
    static constexpr std::array<uint32_t, 7> kBounds = {0, 1, 4, 8, 16, 32, 64};
    std::array<uint64_t, kBounds.size() + 1> buckets{};

    static constexpr std::size_t bucket_of(uint64_t packets)
    {
        std::size_t b = 0;
        while (b < kBounds.size() && packets > kBounds[b])
            ++b;
        return b;
    }
};

struct PmdStats {
    uint64_t busy_cycles, idle_cycles, iterations, packets;
    IterationStats turns;
    uint64_t tsc_hz;
    PacketsPerTurn per_turn;
};

class Pmd {
public:
    Pmd(unsigned index, unsigned lcore, L2Switch& sw, rte_rcu_qsbr* qsbr, rte_mempool* pool);

    unsigned index() const { return ctx_.slot; }
    unsigned lcore() const { return lcore_; }
    bool running() const { return running_.load(std::memory_order_acquire); }

    // Before launch only: gives the core a port's queue to poll.
    void adopt(Port& port, uint16_t q);
    Status launch();
    void stop();  // control: ends the loop and waits for the core

    // Control: runs `cmd` on the core between bursts and waits for it (timeout on a
    // stuck core). Returns the command's result.
    Result<uint64_t> execute(PmdCommand cmd, std::chrono::milliseconds timeout = std::chrono::seconds(2));

    PmdStats stats() const;

private:
    static int entry(void* self);
    int run();
    void apply_commands();
    void poll();
    void drain_handoffs();
    void record_turn(uint64_t cycles);

    PmdContext ctx_;
    unsigned lcore_;
    L2Switch& switch_;
    rte_rcu_qsbr* qsbr_;
    std::vector<PortQueue> queues_;  // what the core polls
    boost::lockfree::spsc_queue<PmdCommand, boost::lockfree::capacity<64>> commands_;
    uint64_t next_seq_ = 0;                 // control thread only
    alignas(64) std::atomic<uint64_t> acked_seq_{0};
    std::atomic<uint64_t> ack_value_{0};
    std::atomic<bool> running_{false};
    std::atomic<bool> exited_{false};  // run() returned (stop() waits for it)
    bool launched_ = false;             // control thread: launch() succeeded, stop() not yet run
    alignas(64) Counter busy_cycles_, idle_cycles_, iterations_, packets_;
    std::array<uint64_t, IterationStats::kBounds.size()> turn_bounds_{};  // kBounds in TSC cycles
    std::array<Counter, IterationStats::kBounds.size() + 1> turn_buckets_;
    Counter turn_cycles_, longest_turn_;
    std::array<Counter, PacketsPerTurn::kBounds.size() + 1> per_turn_;
};

}  // namespace vusw
