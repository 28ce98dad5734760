// Which PMD core polls which port: placement at start-up, pins, the load measured per
// port, rebalancing by load, and moving ports between running cores.
//
// Control thread only. The assignment here is the control thread's view; a PMD core's
// own port list changes only through its command queue (the moving protocol: pmd.h).
#pragma once

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

// One port's place and load, for vuswitchctl show pmd.
struct PortPlacement {
    const Port* port;
    unsigned pmd;
    bool pinned;
    uint64_t cycles;  // spent on it by its PMD within the window
    double share;     // of that PMD's cycles within the window, 0..1
};

struct PortMove {
    std::string port;
    unsigned from, to;
};

struct RebalanceResult {
    AssignmentPlan plan;
    std::vector<PortMove> moves;  // applied (empty if the plan was not worthwhile)
};

class Scheduler {
public:
    // Loads are measured over the last kWindowSeconds.
    static constexpr unsigned kWindowSeconds = 10;

    // `ports` indexed by Port::id(). rebalance_interval 0 = only on request.
    Scheduler(const std::vector<Port*>& ports, const std::vector<Pmd*>& pmds, std::chrono::seconds rebalance_interval,
              unsigned threshold_pct);

    // Start-up, before the cores run: `pins` (by Port::id(), kUnassigned = none) are
    // kept on their PMD, the other ports spread round robin.
    void place(const std::vector<int>& pins);
    // Control tick: samples the loads once a second, rebalances every interval.
    void tick();

    // Plans by the measured loads and, if worthwhile, moves the ports.
    Result<RebalanceResult> rebalance();
    // Pins a port to a PMD and moves it there now; unpin() leaves it where it is.
    Result<PortMove> pin(const std::string& port, unsigned pmd);
    Status unpin(const std::string& port);

    // The PMD that polls `port` (the one its ring setups must go to).
    Pmd& pmd_of(const Port& port) const;
    unsigned pmd_index(const Port& port) const { return assigned_[port.id()]; }
    bool pinned(const Port& port) const { return pins_[port.id()] != kUnassigned; }
    std::vector<PortPlacement> placements() const;
    uint64_t moves() const { return moves_; }

private:
    struct Sample {
        std::chrono::steady_clock::time_point at;
        std::vector<uint64_t> port_cycles;  // [port * pmds + pmd]
        std::vector<uint64_t> pmd_cycles;   // busy + idle, by PMD
    };
    Sample sample() const;
    std::vector<PortLoad> loads() const;
    Result<std::size_t> find(const std::string& name) const;
    Status move(std::size_t port, unsigned to);

    const std::vector<Port*>& ports_;
    const std::vector<Pmd*>& pmds_;
    std::chrono::seconds interval_;
    unsigned threshold_pct_;
    std::vector<unsigned> assigned_;  // by port id
    std::vector<int> pins_;           // by port id
    std::deque<Sample> window_;       // oldest first; one a second
    std::chrono::steady_clock::time_point next_rebalance_;
    uint64_t moves_ = 0;
};

}  // namespace vusw
