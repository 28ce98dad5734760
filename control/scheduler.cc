// Queue placement on PMD cores: pins, load windows, rebalancing, moves.
#include "control/scheduler.h"

#include <fmt/format.h>

#include <algorithm>
#include <tuple>

#include "vusw/log.h"
#include "vusw/pmd.h"

namespace vusw {

Scheduler::Scheduler(const std::vector<Port*>& ports, const std::vector<Pmd*>& pmds,
                     std::chrono::seconds rebalance_interval, unsigned threshold_pct)
    : ports_(ports), pmds_(pmds), interval_(rebalance_interval), threshold_pct_(threshold_pct)
{
    for (auto& queues : assigned_)
        queues.fill(kUnassigned);
    pins_.fill(kUnassigned);
}

void Scheduler::place(const std::vector<int>& pins)
{
    std::vector<PortLoad> start(ports_.size());
    for (std::size_t i = 0; i < ports_.size(); ++i) {
        const uint16_t id = ports_[i]->id();
        pins_[id] = id < pins.size() ? pins[id] : kUnassigned;
        start[i].pin = pins_[id];
    }
    const AssignmentPlan plan = plan_assignment(start, unsigned(pmds_.size()), threshold_pct_);
    for (std::size_t i = 0; i < ports_.size(); ++i) {
        assigned_[ports_[i]->id()][0] = int(plan.pmd[i]);
        pmds_[plan.pmd[i]]->adopt(*ports_[i], 0);
    }
    window_.assign(1, sample());
    next_rebalance_ = std::chrono::steady_clock::now() + interval_;
}

void Scheduler::forget(uint16_t id)
{
    const std::size_t n = pmds_.size();
    for (Sample& s : window_)
        for (std::size_t at = id * kMaxPortQueues * n; at < (id + 1u) * kMaxPortQueues * n && at < s.queue_cycles.size(); ++at)
            s.queue_cycles[at] = 0;  // the new port's counters start at zero
}

Result<Pmd*> Scheduler::add_port(Port& port, int pin)
{
    forget(port.id());
    pins_[port.id()] = pin;
    return place_queue(port, 0);
}

Status Scheduler::remove_port(Port& port)
{
    const uint16_t id = port.id();
    Status result;
    for (uint16_t q = 0; q < kMaxPortQueues; ++q) {
        const int from = assigned_[id][q];
        if (from == kUnassigned)
            continue;
        port.set_owner(q, kNoOwner);  // from now on every core hands its frames over
        if (auto gone = pmds_[unsigned(from)]->execute(
                PmdCommand{.kind = PmdCommand::Kind::detach_queue, .port = &port, .queue = q});
            !gone && result)
            result = fail("remove", fmt::format("PMD {} has not let go of port {} queue {}: {}", from, port.name(), q,
                                                gone.error().detail));
        assigned_[id][q] = kUnassigned;
    }
    pins_[id] = kUnassigned;
    return result;
}

Result<Pmd*> Scheduler::place_queue(Port& port, uint16_t q)
{
    if (q >= port.queue_limit())
        return fail("bad_queue", fmt::format("port {} has no queue {}", port.name(), q));
    const std::size_t i = port.id();
    if (assigned_[i][q] != kUnassigned)
        return pmds_[unsigned(assigned_[i][q])];
    if (auto ok = port.prepare_queue(q); !ok)
        return std::unexpected(ok.error());
    unsigned best = pins_[i] != kUnassigned ? unsigned(pins_[i]) : 0;
    if (pins_[i] == kUnassigned) {
        // Least load, then fewest queues, then fewest of this port's queues: a new
        // port's queues spread over the cores before anything is measured.
        const std::vector<Unit> placed = units();
        const std::vector<PortLoad> load = loads(placed);
        std::vector<std::tuple<uint64_t, unsigned, unsigned, unsigned>> key(pmds_.size());
        for (unsigned p = 0; p < pmds_.size(); ++p)
            key[p] = {0, 0, 0, p};
        for (std::size_t u = 0; u < placed.size(); ++u) {
            auto& [cycles, queues, own, p] = key[unsigned(load[u].current)];
            cycles += load[u].cycles;
            ++queues;
            own += placed[u].port == &port;
        }
        best = std::get<3>(*std::min_element(key.begin(), key.end()));
    }
    assigned_[i][q] = int(best);
    if (auto there = pmds_[best]->execute(PmdCommand{.kind = PmdCommand::Kind::attach_queue, .port = &port, .queue = q});
        !there)
        return fail("place", fmt::format("PMD {} has not taken queue {} of port {}: {}", best, q, port.name(),
                                         there.error().detail));
    log(LogLevel::info, "port {} queue {} on PMD {}", port.name(), q, best);
    return pmds_[best];
}

Scheduler::Sample Scheduler::sample() const
{
    const std::size_t n = pmds_.size();
    std::size_t ids = 0;
    for (const Port* port : ports_)
        ids = std::max<std::size_t>(ids, port->id() + 1u);
    Sample s{std::chrono::steady_clock::now(), std::vector<uint64_t>(ids * kMaxPortQueues * n), std::vector<uint64_t>(n)};
    for (std::size_t p = 0; p < n; ++p) {
        const PmdStats st = pmds_[p]->stats();
        s.pmd_cycles[p] = st.busy_cycles + st.idle_cycles;
        for (const Port* port : ports_)
            for (uint16_t q = 0; q < port->queue_limit(); ++q)
                s.queue_cycles[(port->id() * kMaxPortQueues + q) * n + p] = port->poll_cycles(q, pmds_[p]->index()).get();
    }
    return s;
}

uint64_t Scheduler::cycles(const Sample& now, const Sample& then, Unit u, unsigned pmd) const
{
    // A sample older than the port has no entry for it: the port's counters began at zero.
    const std::size_t at = (u.port->id() * kMaxPortQueues + u.queue) * pmds_.size() + pmd;
    auto value = [at](const Sample& s) { return at < s.queue_cycles.size() ? s.queue_cycles[at] : 0; };
    return value(now) - value(then);
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

std::vector<Scheduler::Unit> Scheduler::units() const
{
    std::vector<Unit> out;
    for (Port* port : ports_)
        for (uint16_t q = 0; q < kMaxPortQueues; ++q)
            if (assigned_[port->id()][q] != kUnassigned)
                out.push_back({port, q});
    return out;
}

std::vector<PortLoad> Scheduler::loads(const std::vector<Unit>& units) const
{
    const Sample now = sample();
    const Sample& then = window_.front();
    std::vector<PortLoad> out(units.size());
    for (std::size_t u = 0; u < units.size(); ++u) {
        for (unsigned p = 0; p < pmds_.size(); ++p)
            out[u].cycles += cycles(now, then, units[u], p);
        out[u].current = assigned_[units[u].port->id()][units[u].queue];
        out[u].pin = pins_[units[u].port->id()];
    }
    return out;
}

Result<RebalanceResult> Scheduler::rebalance()
{
    next_rebalance_ = std::chrono::steady_clock::now() + interval_;
    const std::vector<Unit> placed = units();
    RebalanceResult r{plan_assignment(loads(placed), unsigned(pmds_.size()), threshold_pct_), {}};
    if (!r.plan.worthwhile)
        return r;
    for (std::size_t u = 0; u < placed.size(); ++u) {
        const unsigned from = unsigned(assigned_[placed[u].port->id()][placed[u].queue]), to = r.plan.pmd[u];
        if (from == to)
            continue;
        if (auto ok = move(placed[u], to); !ok)
            return std::unexpected(ok.error());
        r.moves.push_back({placed[u].port->name(), placed[u].queue, from, to});
    }
    log(LogLevel::info, "rebalance: moved {} queue{}; load imbalance {} -> {} cycles over the last {} s", r.moves.size(),
        r.moves.size() == 1 ? "" : "s", imbalance(r.plan.current_load), imbalance(r.plan.load), kWindowSeconds);
    return r;
}

Result<Port*> Scheduler::find(const std::string& name) const
{
    for (Port* port : ports_)
        if (port->name() == name)
            return port;
    return fail("no_port", fmt::format("no port named `{}`", name));
}

Result<std::vector<QueueMove>> Scheduler::pin(const std::string& name, unsigned pmd)
{
    auto i = find(name);
    if (!i)
        return std::unexpected(i.error());
    if (pmd >= pmds_.size())
        return fail("bad_pmd", fmt::format("PMD {} out of range: there {} {} PMD core{} (0..{})", pmd,
                                           pmds_.size() == 1 ? "is" : "are", pmds_.size(), pmds_.size() == 1 ? "" : "s",
                                           pmds_.size() - 1));
    std::vector<QueueMove> moved;
    for (uint16_t q = 0; q < kMaxPortQueues; ++q) {
        const int from = assigned_[(*i)->id()][q];
        if (from == kUnassigned)
            continue;
        if (auto ok = move({*i, q}, pmd); !ok)
            return std::unexpected(ok.error());
        moved.push_back({name, q, unsigned(from), pmd});
    }
    pins_[(*i)->id()] = int(pmd);
    return moved;
}

Status Scheduler::unpin(const std::string& name)
{
    auto i = find(name);
    if (!i)
        return std::unexpected(i.error());
    pins_[(*i)->id()] = kUnassigned;
    return {};
}

// The moving protocol (pmd.h): owner = kNoOwner, detach from the old core and wait for
// its ack, attach to the new one (which takes over the hand-off ring).
Status Scheduler::move(Unit u, unsigned to)
{
    Port& port = *u.port;
    const unsigned from = unsigned(assigned_[port.id()][u.queue]);
    if (from == to)
        return {};
    const PmdCommand detach{.kind = PmdCommand::Kind::detach_queue, .port = &port, .queue = u.queue};
    const PmdCommand attach{.kind = PmdCommand::Kind::attach_queue, .port = &port, .queue = u.queue};
    port.set_owner(u.queue, kNoOwner);
    if (auto gone = pmds_[from]->execute(detach); !gone) {
        // A stuck core: the queue stays with it (the attach waits behind the detach).
        (void)pmds_[from]->execute(attach, std::chrono::milliseconds(0));
        return fail("move", fmt::format("cannot move port {} queue {} off PMD {}: {}", port.name(), u.queue, from,
                                        gone.error().detail));
    }
    assigned_[port.id()][u.queue] = int(to);
    ++moves_;
    if (auto there = pmds_[to]->execute(attach); !there)
        return fail("move", fmt::format("port {} queue {} left PMD {}, but PMD {} has not taken it yet: {}", port.name(),
                                        u.queue, from, to, there.error().detail));
    log(LogLevel::info, "port {} queue {} moved from PMD {} to PMD {}", port.name(), u.queue, from, to);
    return {};
}

Pmd* Scheduler::pmd_of(const Port& port, uint16_t q) const
{
    const int p = q < kMaxPortQueues ? assigned_[port.id()][q] : kUnassigned;
    return p == kUnassigned ? nullptr : pmds_[unsigned(p)];
}

std::vector<QueuePlacement> Scheduler::placements() const
{
    const Sample now = sample();
    const Sample& then = window_.front();
    std::vector<QueuePlacement> out;
    for (const Unit u : units()) {
        const unsigned p = unsigned(assigned_[u.port->id()][u.queue]);
        const uint64_t spent = cycles(now, then, u, p);
        const uint64_t total = now.pmd_cycles[p] - then.pmd_cycles[p];
        out.push_back({u.port, u.queue, p, pins_[u.port->id()] != kUnassigned, spent,
                       total > 0 ? double(spent) / double(total) : 0.0});
    }
    return out;
}

}  // namespace vusw
