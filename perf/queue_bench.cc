// Queue microbenchmark (issue 9): the device-side cost of SplitQueue against PackedQueue
// per chain, in one process and one thread, robust to a loaded machine.
//
// Each queue runs against an in-process driver (perf/queue_drivers.h) that posts and
// reaps like a DPDK virtio PMD, interleaved with the device's steps. Only the device's
// steps are timed (TSC, the timer's own cost subtracted), and they are the calls the
// vhost port makes per burst (ports/vhost_guest_{tx,rx}.cc):
//   guest TX: available(burst), prefetch_heads, prefetch_used, pop each chain (read-only),
//             push_used(head, 0) each, flush_used (the notify decision);
//   guest RX: available(kRxScan = 64), prefetch, pop min(available, burst) chains
//             (writable), push_used(head, bytes written) each, flush_used.
// A round runs the same number of chains through the split queue and the packed queue,
// in alternating order (split first in even rounds, packed first in odd ones); the report
// gives the median cycles per chain of each and the median of the per-round ratios
// packed / split, so that load from other processes, which hits both halves of a round
// alike, cancels out of the ratio.
//
// --cold flushes the ring lines the driver touched in its turn from the cache before each
// device step: the device then misses on them, as it does when the driver runs on another
// core (an overestimate: memory is slower than a cross-core transfer, and lines the driver
// only read would stay readable).
#include <sched.h>
#include <x86intrin.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "perf/queue_drivers.h"

using namespace vusw;
using namespace vusw::bench;

namespace {

constexpr uint16_t kRxScan = 64;  // as the vhost port's RX path: 2 * kBurst

struct Args {
    int rounds = 101;
    uint32_t chains = 4096;  // per queue per round
    int cpu = -1;
    bool cold = false;
    std::vector<std::string> directions{"tx", "rx"};
    std::vector<int> descs{1, 2};
    std::vector<int> bursts{1, 8, 32};
    std::vector<int> event_idx{0, 1};
    std::vector<std::string> queues{"split", "packed"};
};

[[noreturn]] void usage(int rc)
{
    std::cout << "usage: queue_bench [--rounds N] [--chains N] [--cpu N] [--cold]\n"
                 "                   [--directions \"tx rx\"] [--descs \"1 2\"] [--bursts \"1 8 32\"]\n"
                 "                   [--event-idx \"0 1\"] [--queues \"split packed\"]\n"
                 "  --rounds  A/B rounds per configuration (default 101)\n"
                 "  --chains  chains per queue per round (default 4096)\n"
                 "  --cpu     pin to this CPU (default: stay where started)\n"
                 "  --cold    flush the ring lines the driver touched before each device step\n"
                 "  --queues  \"packed\" or \"split\" alone runs one queue (for perf record)\n";
    std::exit(rc);
}

template <class T>
std::vector<T> list(const std::string& s)
{
    std::vector<T> out;
    std::istringstream in(s);
    for (T v; in >> v;)
        out.push_back(v);
    if (out.empty())
        usage(2);
    return out;
}

Args parse(int argc, char** argv)
{
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string k = argv[i];
        const auto value = [&]() -> std::string {
            if (i + 1 >= argc)
                usage(2);
            return argv[++i];
        };
        if (k == "--rounds") a.rounds = std::stoi(value());
        else if (k == "--chains") a.chains = uint32_t(std::stoul(value()));
        else if (k == "--cpu") a.cpu = std::stoi(value());
        else if (k == "--cold") a.cold = true;
        else if (k == "--directions") a.directions = list<std::string>(value());
        else if (k == "--descs") a.descs = list<int>(value());
        else if (k == "--bursts") a.bursts = list<int>(value());
        else if (k == "--event-idx") a.event_idx = list<int>(value());
        else if (k == "--queues") a.queues = list<std::string>(value());
        else if (k == "-h" || k == "--help") usage(0);
        else usage(2);
    }
    if (a.rounds < 1 || a.chains < 1)
        usage(2);
    return a;
}

uint64_t tsc()
{
    _mm_lfence();  // not before earlier instructions finished
    const uint64_t t = __rdtsc();
    _mm_lfence();  // and later ones start after it
    return t;
}

// The cost of the two tsc() calls around an empty step, subtracted from every step.
uint64_t timer_overhead()
{
    std::vector<uint64_t> d(2001);
    for (auto& x : d) {
        const uint64_t t0 = tsc();
        x = tsc() - t0;
    }
    std::nth_element(d.begin(), d.begin() + d.size() / 2, d.end());
    return d[d.size() / 2];
}

// One queue and its driver, and what the device did on it.
template <class Q, class Driver>
struct Lane {
    explicit Lane(const RingShape& r) : shape(r), driver(r), chains(64)
    {
        queue.configure(driver.config());
        if (!queue.attach(driver.memory()))
            die("attach");
    }

    // Driver turn: take what the device returned, post more (guest TX: one burst; guest
    // RX: refill the ring, as a PMD refills its RX queue).
    void drive(uint16_t burst, bool cold)
    {
        driver.reap();
        driver.post(shape.rx ? shape.size : burst);
        if (cold)
            driver.touched().flush();
        // The driver's stores leave the store buffer before the device reads them, as they
        // would reach another core: no load of the device's may stall on forwarding from them.
        _mm_mfence();
    }

    // Device turn, timed: the vhost port's calls for one burst.
    void step(uint16_t burst, uint64_t overhead)
    {
        const uint64_t t0 = tsc();
        const uint16_t avail = queue.available(shape.rx ? kRxScan : burst);
        const uint16_t n = std::min(avail, burst);
        queue.prefetch_heads(n);
        queue.prefetch_used(n);
        uint16_t popped = 0;
        while (popped < n && queue.pop(chains[popped], shape.rx))
            ++popped;
        for (uint16_t i = 0; i < popped; ++i)
            queue.push_used(chains[i].head, shape.rx ? kRxUsedLen : 0);
        notifications += queue.flush_used();
        const uint64_t t1 = tsc();
        cycles += t1 - t0 > overhead ? t1 - t0 - overhead : 0;
        done += popped;
        ++steps;
        if (!queue.ready())
            die(fault_name(queue.fault()).data());
    }

    // Runs `n` chains through; returns cycles per chain.
    double run(uint32_t n, uint16_t burst, bool cold, uint64_t overhead)
    {
        cycles = 0;
        done = 0;
        while (done < n) {
            drive(burst, cold);
            step(burst, overhead);
        }
        return double(cycles) / double(done);
    }

    RingShape shape;
    Driver driver;
    Q queue;
    std::vector<Chain> chains;
    uint64_t cycles = 0, done = 0, steps = 0, notifications = 0;
};

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    const std::size_t m = v.size() / 2;
    return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

double quantile(std::vector<double> v, double q)
{
    std::sort(v.begin(), v.end());
    return v[std::size_t(q * double(v.size() - 1) + 0.5)];
}

struct Measured {
    double split = 0, packed = 0, ratio = 0, ratio_p25 = 0, ratio_p75 = 0;
    double split_notify = 0, packed_notify = 0;  // notifications per step
};

Measured measure(const Args& a, const RingShape& r, uint16_t burst, uint64_t overhead)
{
    Lane<SplitQueue, SplitDriver> split(r);
    Lane<PackedQueue, PackedDriver> packed(r);
    const bool run_split = std::ranges::count(a.queues, "split") > 0;
    const bool run_packed = std::ranges::count(a.queues, "packed") > 0;
    for (int w = 0; w < 3; ++w) {  // warm-up: caches, branch predictors, both wrap counters
        if (run_split)
            split.run(a.chains, burst, a.cold, overhead);
        if (run_packed)
            packed.run(a.chains, burst, a.cold, overhead);
    }
    std::vector<double> s, p, ratio;
    for (int round = 0; round < a.rounds; ++round) {
        double cs = 0, cp = 0;
        if (round % 2 == 0 && run_split)
            cs = split.run(a.chains, burst, a.cold, overhead);
        if (run_packed)
            cp = packed.run(a.chains, burst, a.cold, overhead);
        if (round % 2 == 1 && run_split)
            cs = split.run(a.chains, burst, a.cold, overhead);
        s.push_back(cs);
        p.push_back(cp);
        if (cs > 0)
            ratio.push_back(cp / cs);
    }
    Measured res{median(s), median(p)};
    if (!ratio.empty())
        res = Measured{res.split, res.packed, median(ratio), quantile(ratio, 0.25), quantile(ratio, 0.75)};
    res.split_notify = split.steps ? double(split.notifications) / double(split.steps) : 0;
    res.packed_notify = packed.steps ? double(packed.notifications) / double(packed.steps) : 0;
    if (run_split && run_packed && res.split_notify != res.packed_notify)
        die("the queues disagree on notifications");
    return res;
}

void pin(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        die("sched_setaffinity");
}

}  // namespace

int main(int argc, char** argv)
{
    const Args a = parse(argc, argv);
    pin(a.cpu);
    const uint64_t overhead = timer_overhead();
    std::printf("queue_bench: ring 256, %d rounds x %u chains per queue, %s rings, timer overhead %llu cycles "
                "(subtracted per step)\n\n",
                a.rounds, a.chains, a.cold ? "cold (lines the driver touched flushed before each step)" : "warm",
                (unsigned long long)overhead);
    std::printf("| direction | descs | burst | event_idx | split cyc/chain | packed cyc/chain | packed/split "
                "(p25-p75) | notify/step |\n|---|---|---|---|---|---|---|---|\n");
    for (const std::string& dir : a.directions)
        for (int descs : a.descs)
            for (int burst : a.bursts)
                for (int ev : a.event_idx) {
                    const RingShape r{256, uint16_t(descs), dir == "rx", ev != 0, a.cold};
                    const Measured res = measure(a, r, uint16_t(burst), overhead);
                    std::printf("| guest %s | %d | %d | %s | %.1f | %.1f | %.3f (%.3f-%.3f) | %.2f |\n",
                                dir == "rx" ? "RX" : "TX", descs, burst, ev ? "yes" : "no", res.split, res.packed,
                                res.ratio, res.ratio_p25, res.ratio_p75, std::max(res.split_notify, res.packed_notify));
                    std::fflush(stdout);
                }
    return 0;
}
