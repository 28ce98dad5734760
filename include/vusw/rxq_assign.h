// Which PMD core polls which port: assignment by measured load.
//
// Like OVS's pmd-rxq-assign=cycles: pinned ports stay on their pin; the others, heaviest
// first, each go to the PMD with the least load so far. A new plan is worth applying
// only if it lowers the imbalance by a threshold (OVS's pmd-auto-lb-improvement-
// threshold), so an even load never churns. Pure functions, no DPDK: the control thread
// measures the loads and moves the ports (control/scheduler.h).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace vusw {

inline constexpr int kUnassigned = -1;

// One port as the assignment sees it.
struct PortLoad {
    uint64_t cycles = 0;        // polling cost over the measurement window (TSC cycles)
    int current = kUnassigned;  // PMD index polling it now
    int pin = kUnassigned;      // PMD index it must be polled by
};

struct AssignmentPlan {
    std::vector<unsigned> pmd;            // by port: the PMD index that should poll it
    std::vector<uint64_t> load;           // by PMD: the ports' cycles under `pmd`
    std::vector<uint64_t> current_load;   // by PMD: the ports' cycles where they are now
    unsigned moves = 0;                   // assigned ports whose PMD changes
    bool pins_violated = false;           // some pinned port is not on its pin now
    bool worthwhile = false;              // apply it: pins violated, or imbalance improved enough
};

// Busiest minus idlest PMD.
uint64_t imbalance(std::span<const uint64_t> load);

// Plans an assignment of `ports` to `n_pmds` PMD cores (n_pmds >= 1; pins < n_pmds).
// Unpinned ports are taken heaviest first (ties: lower index) and each put on the PMD
// with the least load, then the fewest ports, then the port's current PMD, then the
// lowest index: with no load measured yet that is round robin. The plan is worthwhile
// when it moves a port and either honours a violated pin or cuts imbalance() by at
// least `threshold_pct` percent.
AssignmentPlan plan_assignment(std::span<const PortLoad> ports, unsigned n_pmds, unsigned threshold_pct = 25);

}  // namespace vusw
