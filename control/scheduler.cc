// Port placement on PMD cores: pins, load windows, rebalancing, moves.
#include "control/scheduler.h"

#include <fmt/format.h>

#include "vusw/log.h"
#include "vusw/pmd.h"

namespace vusw {

Scheduler::Scheduler(const std::vector<Port*>& ports, const std::vector<Pmd*>& pmds,
                     std::chrono::seconds rebalance_interval, unsigned threshold_pct)
    : ports_(ports), pmds_(pmds), interval_(rebalance_interval), threshold_pct_(threshold_pct)
{
}

void Scheduler::place(const std::vector<int>& pins)
{
    pins_ = pins;
    pins_.resize(ports_.size(), kUnassigned);
    std::vector<PortLoad> start(ports_.size());
    for (std::size_t i = 0; i < ports_.size(); ++i)
        start[i].pin = pins_[i];
    const AssignmentPlan plan = plan_assignment(start, unsigned(pmds_.size()), threshold_pct_);
    assigned_ = plan.pmd;
    for (std::size_t i = 0; i < ports_.size(); ++i)
        pmds_[assigned_[i]]->adopt(*ports_[i]);
    window_.assign(1, sample());
    next_rebalance_ = std::chrono::steady_clock::now() + interval_;
}

Scheduler::Sample Scheduler::sample() const
{
    Sample s{std::chrono::steady_clock::now(), std::vector<uint64_t>(ports_.size() * pmds_.size()),
             std::vector<uint64_t>(pmds_.size())};
    for (std::size_t p = 0; p < pmds_.size(); ++p) {
        const PmdStats st = pmds_[p]->stats();
        s.pmd_cycles[p] = st.busy_cycles + st.idle_cycles;
        for (std::size_t i = 0; i < ports_.size(); ++i)
            s.port_cycles[i * pmds_.size() + p] = ports_[i]->poll_cycles(pmds_[p]->index()).get();
    }
    return s;
}

void Scheduler::tick()
{
    const auto now = std::chrono::steady_clock::now();
    if (now - window_.back().at >= std::chrono::seconds(1)) {
        window_.push_back(sample());
        if (window_.size() > kWindowSeconds + 1)
            window_.pop_front();
    }
    if (interval_.count() == 0 || now < next_rebalance_)
        return;
    auto done = rebalance();  // sets next_rebalance_
    if (!done)
        log(LogLevel::warn, "rebalance: {}", done.error().detail);
}

std::vector<PortLoad> Scheduler::loads() const
{
    const Sample now = sample();
    const Sample& then = window_.front();
    std::vector<PortLoad> out(ports_.size());
    for (std::size_t i = 0; i < ports_.size(); ++i) {
        for (std::size_t p = 0; p < pmds_.size(); ++p)
            out[i].cycles += now.port_cycles[i * pmds_.size() + p] - then.port_cycles[i * pmds_.size() + p];
        out[i].current = int(assigned_[i]);
        out[i].pin = pins_[i];
    }
    return out;
}

Result<RebalanceResult> Scheduler::rebalance()
{
    next_rebalance_ = std::chrono::steady_clock::now() + interval_;
    RebalanceResult r{plan_assignment(loads(), unsigned(pmds_.size()), threshold_pct_), {}};
    if (!r.plan.worthwhile)
        return r;
    for (std::size_t i = 0; i < ports_.size(); ++i) {
        const unsigned from = assigned_[i], to = r.plan.pmd[i];
        if (from == to)
            continue;
        if (auto ok = move(i, to); !ok)
            return std::unexpected(ok.error());
        r.moves.push_back({ports_[i]->name(), from, to});
    }
    log(LogLevel::info, "rebalance: moved {} port{}; load imbalance {} -> {} cycles over the last {} s", r.moves.size(),
        r.moves.size() == 1 ? "" : "s", imbalance(r.plan.current_load), imbalance(r.plan.load), kWindowSeconds);
    return r;
}

Result<std::size_t> Scheduler::find(const std::string& name) const
{
    for (std::size_t i = 0; i < ports_.size(); ++i)
        if (ports_[i]->name() == name)
            return i;
    return fail("no_port", fmt::format("no port named `{}`", name));
}

Result<PortMove> Scheduler::pin(const std::string& name, unsigned pmd)
{
    auto i = find(name);
    if (!i)
        return std::unexpected(i.error());
    if (pmd >= pmds_.size())
        return fail("bad_pmd", fmt::format("PMD {} out of range: there {} {} PMD core{} (0..{})", pmd,
                                           pmds_.size() == 1 ? "is" : "are", pmds_.size(), pmds_.size() == 1 ? "" : "s",
                                           pmds_.size() - 1));
    const PortMove m{name, assigned_[*i], pmd};
    if (auto ok = move(*i, pmd); !ok)
        return std::unexpected(ok.error());
    pins_[*i] = int(pmd);
    return m;
}

Status Scheduler::unpin(const std::string& name)
{
    auto i = find(name);
    if (!i)
        return std::unexpected(i.error());
    pins_[*i] = kUnassigned;
    return {};
}

// The moving protocol (pmd.h): owner() = kNoOwner, detach from the old core and wait
// for its ack, attach to the new one (which takes over the hand-off ring).
Status Scheduler::move(std::size_t i, unsigned to)
{
    Port& port = *ports_[i];
    const unsigned from = assigned_[i];
    if (from == to)
        return {};
    port.set_owner(kNoOwner);
    if (auto gone = pmds_[from]->execute(PmdCommand{PmdCommand::Kind::detach_port, &port}); !gone) {
        // A stuck core: the port stays with it (the attach waits behind the detach).
        (void)pmds_[from]->execute(PmdCommand{PmdCommand::Kind::attach_port, &port}, std::chrono::milliseconds(0));
        return fail("move", fmt::format("cannot move port {} off PMD {}: {}", port.name(), from, gone.error().detail));
    }
    assigned_[i] = to;
    ++moves_;
    if (auto there = pmds_[to]->execute(PmdCommand{PmdCommand::Kind::attach_port, &port}); !there)
        return fail("move", fmt::format("port {} left PMD {}, but PMD {} has not taken it yet: {}", port.name(), from, to,
                                        there.error().detail));
    log(LogLevel::info, "port {} moved from PMD {} to PMD {}", port.name(), from, to);
    return {};
}

Pmd& Scheduler::pmd_of(const Port& port) const
{
    return *pmds_[assigned_[port.id()]];
}

std::vector<PortPlacement> Scheduler::placements() const
{
    const Sample now = sample();
    const Sample& then = window_.front();
    std::vector<PortPlacement> out;
    for (std::size_t i = 0; i < ports_.size(); ++i) {
        const unsigned p = assigned_[i];
        const std::size_t at = i * pmds_.size() + p;
        const uint64_t cycles = now.port_cycles[at] - then.port_cycles[at];
        const uint64_t total = now.pmd_cycles[p] - then.pmd_cycles[p];
        out.push_back({ports_[i], p, pins_[i] != kUnassigned, cycles, total > 0 ? double(cycles) / double(total) : 0.0});
    }
    return out;
}

}  // namespace vusw
