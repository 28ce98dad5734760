// Load-based assignment of ports to PMD cores.
#include "vusw/rxq_assign.h"

#include <algorithm>
#include <tuple>

namespace vusw {

uint64_t imbalance(std::span<const uint64_t> load)
{
    if (load.empty())
        return 0;
    const auto [lo, hi] = std::minmax_element(load.begin(), load.end());
    return *hi - *lo;
}

AssignmentPlan plan_assignment(std::span<const PortLoad> ports, unsigned n_pmds, unsigned threshold_pct)
{
    AssignmentPlan plan;
    plan.pmd.assign(ports.size(), 0);
    plan.load.assign(n_pmds, 0);
    plan.current_load.assign(n_pmds, 0);
    std::vector<unsigned> count(n_pmds, 0);
    std::vector<std::size_t> unpinned;
    for (std::size_t i = 0; i < ports.size(); ++i) {
        const PortLoad& p = ports[i];
        if (p.current >= 0 && unsigned(p.current) < n_pmds)
            plan.current_load[unsigned(p.current)] += p.cycles;
        if (p.pin >= 0 && unsigned(p.pin) < n_pmds) {
            plan.pmd[i] = unsigned(p.pin);
            plan.load[plan.pmd[i]] += p.cycles;
            ++count[plan.pmd[i]];
            plan.pins_violated |= p.current != p.pin;
        } else {
            unpinned.push_back(i);
        }
    }
    std::stable_sort(unpinned.begin(), unpinned.end(),
                     [&](std::size_t a, std::size_t b) { return ports[a].cycles > ports[b].cycles; });
    for (std::size_t i : unpinned) {
        auto key = [&](unsigned pmd) { return std::tuple(plan.load[pmd], count[pmd], int(pmd) != ports[i].current, pmd); };
        unsigned best = 0;
        for (unsigned pmd = 1; pmd < n_pmds; ++pmd)
            if (key(pmd) < key(best))
                best = pmd;
        plan.pmd[i] = best;
        plan.load[best] += ports[i].cycles;
        ++count[best];
    }
    for (std::size_t i = 0; i < ports.size(); ++i)
        plan.moves += ports[i].current >= 0 && unsigned(ports[i].current) != plan.pmd[i];
    const uint64_t before = imbalance(plan.current_load), after = imbalance(plan.load);
    // after <= before * (1 - threshold), in integers without overflow for cycle counts.
    const bool improves = after < before && (before - after) * 100.0 >= double(before) * threshold_pct;
    plan.worthwhile = plan.moves > 0 && (plan.pins_violated || improves);
    return plan;
}

}  // namespace vusw
