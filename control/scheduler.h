// Which PMD core polls which port queue: placement at start-up and as front-ends set up
// more queues, pins, the load measured per queue, rebalancing by load, and moving
// queues between running cores.
//
// The unit is a port's queue (a vhost-user queue pair, a NIC queue), like OVS's rx
// queue: the queues of one port may be polled by different cores. Pins are per port
// (all its queues). Control thread only. The assignment here is the control thread's
// view; a PMD core's own queue list changes only through its command queue (the
// moving protocol: pmd.h).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "vusw/port.h"
#include "vusw/result.h"
#include "vusw/rxq_assign.h"

namespace vusw {

class Pmd;

// One queue's place and load, for vuswitchctl show pmd.
struct QueuePlacement {
    const Port* port;
    uint16_t queue;
    unsigned pmd;
    bool pinned;
    uint64_t cycles;  // spent on it by its PMD within the window
    double share;     // of that PMD's cycles within the window, 0..1
};

struct QueueMove {
    std::string port;
    uint16_t queue;
    unsigned from, to;
};

struct RebalanceResult {
    AssignmentPlan plan;           // over placed queues, in placements() order
    std::vector<QueueMove> moves;  // applied (empty if the plan was not worthwhile)
};

class Scheduler {
public:
    // Loads are measured over the last kWindowSeconds.
    static constexpr unsigned kWindowSeconds = 10;

    // `ports`: the live ports (the caller adds and removes them, telling us with
    // add_port() and remove_port()). rebalance_interval 0 = only on request.
    Scheduler(const std::vector<Port*>& ports, const std::vector<Pmd*>& pmds, std::chrono::seconds rebalance_interval,
              unsigned threshold_pct);

    // Start-up, before the cores run: queue 0 of every port is placed; `pins` (by
    // Port::id(), kUnassigned = none) are kept on their PMD, the others round robin.
    void place(const std::vector<int>& pins);
    // A port added while the cores run: its queue 0 goes to `pin` (kUnassigned: the least
    // loaded core), and its later queues follow the pin as at start-up.
    Result<Pmd*> add_port(Port& port, int pin);
    // Control: the port's queues leave their cores (each core acknowledges, so none polls
    // them afterwards); frames other cores still send it wait in its hand-off rings.
    Status remove_port(Port& port);
    // Queue q of `port` was set up: places it on a core (its port's pin, else the core
    // with the least load, then the fewest queues) if it has none yet; the core.
    Result<Pmd*> place_queue(Port& port, uint16_t q);
    // Control tick: samples the loads once a second, rebalances every interval.
    void tick();

    // Plans by the measured loads and, if worthwhile, moves queues.
    Result<RebalanceResult> rebalance();
    // Pins a port's queues to a PMD and moves them there now; unpin() leaves them where
    // they are. The moves made (none if already there).
    Result<std::vector<QueueMove>> pin(const std::string& port, unsigned pmd);
    Status unpin(const std::string& port);

    // The PMD that polls queue q of `port` (where its ring setups must go), or nullptr
    // if the queue was never placed.
    Pmd* pmd_of(const Port& port, uint16_t q) const;
    unsigned pmd_index(const Port& port) const { return unsigned(assigned_[port.id()][0]); }
    bool placed(const Port& port) const { return assigned_[port.id()][0] != kUnassigned; }
    bool pinned(const Port& port) const { return pins_[port.id()] != kUnassigned; }
    std::vector<QueuePlacement> placements() const;
    uint64_t moves() const { return moves_; }

private:
    struct Sample {
        std::chrono::steady_clock::time_point at;
        std::vector<uint64_t> queue_cycles;  // [(port id * kMaxPortQueues + queue) * pmds + pmd], up to the highest id
        std::vector<uint64_t> pmd_cycles;    // busy + idle, by PMD
    };
    struct Unit {
        Port* port;
        uint16_t queue;
    };
    Sample sample() const;
    uint64_t cycles(const Sample& now, const Sample& then, Unit u, unsigned pmd) const;
    std::vector<Unit> units() const;  // placed queues, by port then queue
    std::vector<PortLoad> loads(const std::vector<Unit>& units) const;
    Result<Port*> find(const std::string& name) const;
    Status move(Unit u, unsigned to);
    // A new port took id `id`: the loads measured under it (by a removed port) are gone.
    void forget(uint16_t id);

    const std::vector<Port*>& ports_;
    const std::vector<Pmd*>& pmds_;
    std::chrono::seconds interval_;
    unsigned threshold_pct_;
    std::array<std::array<int, kMaxPortQueues>, kMaxPorts> assigned_;  // by port id, queue: PMD index or kUnassigned
    std::array<int, kMaxPorts> pins_;                                  // by port id
    std::deque<Sample> window_;                              // oldest first; one a second
    std::chrono::steady_clock::time_point next_rebalance_;
    uint64_t moves_ = 0;
};

}  // namespace vusw
