// Hotplug benchmark (issue 3): loopback traffic between two fake vhost-user
// guests through vuswitchd while one guest's memory is re-laid-out (ADD_MEM_REG
// a new region, move its TX/RX buffers there, REM_MEM_REG the old one), with
// throughput sampled every 10 ms.
//
//   guest x <--x.sock--> vuswitchd (PMD on core 1) <--a.sock--> guest a
//   both guests, the sampler and the memory changes run in this process on core 0
//
// Reports steady-state Mpps, the lowest 10-ms interval of the hotplug phase as a
// fraction of steady state (goal: none below 95 %), how many intervals fell below
// 95 %, and the daemon's RCU grace-period distribution for the port
// (vusw_grace_period_seconds{port="x"} from /metrics, delta over the phase).
// Reuses the integration tests' fake front-end (tests/integration); no DPDK here.
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "daemon.h"
#include "moving_traffic.h"

using namespace vusw::it;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

struct Args {
  double steady_s = 2.0;
  double warmup_s = 0.5;
  int cycles = 100;
  int pace_ms = 0;  // pause between cycles
  size_t size = 64;
  bool verify = false;
  bool hugepages = false;
  std::string markdown;
  std::string samples;  // CSV of every 10-ms sample
};

[[noreturn]] void usage(int rc) {
  std::cout << "usage: hotplug_bench [--steady S] [--warmup S] [--cycles N] [--pace-ms MS]\n"
               "                     [--size BYTES] [--verify] [--hugepages] [--markdown FILE]\n"
               "                     [--samples CSV]\n"
               "  --size    frame size without FCS (>= 1024 B frames are lent zero-copy: vuswitchd's --zero-copy-min); default 64\n"
               "  --pace-ms pause between add/remove cycles (default 0: back to back)\n"
               "  --verify  byte-compare every frame (slower)\n"
               "  --hugepages  back the moved-into guest regions with 2 MiB hugetlbfs pages\n"
               "            (as production guests are; default: 4 KiB memfd pages)\n"
               "  --samples write every 10-ms sample (seconds, frames delivered, phase) as CSV\n"
               "VUSWITCHD=path selects the daemon (default: this build's control/vuswitchd).\n";
  std::exit(rc);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) usage(2);
      return argv[++i];
    };
    if (k == "--steady") a.steady_s = std::stod(val());
    else if (k == "--warmup") a.warmup_s = std::stod(val());
    else if (k == "--cycles") a.cycles = std::stoi(val());
    else if (k == "--pace-ms") a.pace_ms = std::stoi(val());
    else if (k == "--size") a.size = std::stoul(val());
    else if (k == "--verify") a.verify = true;
    else if (k == "--hugepages") a.hugepages = true;
    else if (k == "--markdown") a.markdown = val();
    else if (k == "--samples") a.samples = val();
    else if (k == "-h" || k == "--help") usage(0);
    else usage(2);
  }
  if (a.size < kMinTestFrame || a.size > 1514) {
    std::cerr << "--size must be in " << kMinTestFrame << "..1514\n";
    std::exit(2);
  }
  return a;
}

void pin_to_core(int core) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(core, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) std::perror("sched_setaffinity (continuing unpinned)");
}

enum class Phase : int { Warmup, Steady, Hotplug, Tail };

struct Tick {
  Clock::time_point t;
  uint64_t delivered;
  Phase phase;
};

// A Prometheus histogram (cumulative buckets by upper bound), delta-able.
struct Histogram {
  std::map<double, double> buckets;  // le -> cumulative count
  double count = 0, sum = 0;

  static Histogram from(const Metrics& m, const std::string& name, const std::map<std::string, std::string>& labels) {
    Histogram h;
    for (const auto& s : m.samples()) {
      bool match = true;
      for (const auto& [k, v] : labels) {
        auto it = s.labels.find(k);
        match &= it != s.labels.end() && it->second == v;
      }
      if (!match) continue;
      if (s.name == name + "_bucket") {
        auto le = s.labels.find("le");
        double bound = le == s.labels.end() || le->second == "+Inf" ? INFINITY : std::stod(le->second);
        h.buckets[bound] += s.value;
      } else if (s.name == name + "_count") {
        h.count += s.value;
      } else if (s.name == name + "_sum") {
        h.sum += s.value;
      }
    }
    return h;
  }
  Histogram minus(const Histogram& o) const {
    Histogram d = *this;
    for (auto& [le, n] : d.buckets) n -= o.buckets.count(le) ? o.buckets.at(le) : 0;
    d.count -= o.count;
    d.sum -= o.sum;
    return d;
  }
  // Quantile by linear interpolation inside the bucket (Prometheus' histogram_quantile).
  double quantile(double q) const {
    if (count <= 0) return NAN;
    double rank = q * count, lower = 0, below = 0;
    for (const auto& [le, n] : buckets) {
      if (n >= rank) {
        if (std::isinf(le)) return lower;  // beyond the last finite bound: report that bound
        double in_bucket = n - below;
        return in_bucket <= 0 ? le : lower + (le - lower) * (rank - below) / in_bucket;
      }
      lower = le;
      below = n;
    }
    return lower;
  }
};

std::string fmt_ms(double seconds) {
  if (std::isnan(seconds)) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f ms", seconds * 1e3);
  return buf;
}

std::string fmt(double v, int prec) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", prec, v);
  return buf;
}

// CPU time (seconds) of the whole host, and of one process, from /proc.
double host_busy_seconds() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  uint64_t v[8] = {};
  in >> cpu >> v[0] >> v[1] >> v[2] >> v[3] >> v[4] >> v[5] >> v[6] >> v[7];
  // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
  return double(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / double(sysconf(_SC_CLK_TCK));
}

double process_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  size_t close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 2));
  std::string f;
  uint64_t utime = 0, stime = 0;
  for (int field = 3; rest >> f; ++field) {  // field numbers as in proc(5)
    if (field == 14) utime = std::stoull(f);
    if (field == 15) {
      stime = std::stoull(f);
      break;
    }
  }
  return double(utime + stime) / double(sysconf(_SC_CLK_TCK));
}

// CPU used by anything but this benchmark and its daemon, in % of one core.
struct ForeignCpu {
  pid_t daemon;
  double t0 = 0, host0 = 0, own0 = 0;
  Clock::time_point start;
  void begin() {
    start = Clock::now();
    host0 = host_busy_seconds();
    own0 = process_seconds(getpid()) + process_seconds(daemon);
  }
  double percent() const {
    double wall = std::chrono::duration<double>(Clock::now() - start).count();
    double foreign = (host_busy_seconds() - host0) - (process_seconds(getpid()) + process_seconds(daemon) - own0);
    return wall > 0 ? std::max(0.0, 100 * foreign / wall) : 0;
  }
};

std::unique_ptr<FakeFrontend> attach(const Daemon& d, const std::string& port) {
  auto fe = FakeFrontend::connect(d.socket_path(port), {});
  if (!fe || !fe->bring_up()) return nullptr;
  return fe;
}

}  // namespace

int main(int argc, char** argv) {
  Args args = parse(argc, argv);
#ifdef VUSWITCHD_PATH
  setenv("VUSWITCHD", VUSWITCHD_PATH, 0);
#endif
  // Fork the daemon before pinning: its EAL places its own threads (--lcores 0,1).
  DaemonConfig cfg;
  cfg.servers = {"x", "a"};
  Daemon d(cfg);
  pin_to_core(0);
  auto x = attach(d, "x");
  auto a = attach(d, "a");
  if (!x || !a) {
    std::cerr << "guests did not come up\n" << d.log_tail();
    return 1;
  }
  // The daemon ages out MACs learned before its first FDB tick (100 ms after ready).
  std::this_thread::sleep_for(milliseconds(300));
  const Mac mx = mac(0x1e), ma = mac(0x0a);
  if (!pair_switches(*x, mx, *a, ma) || !pair_switches(*x, mx, *a, ma)) {
    std::cerr << "x <-> a does not switch\n" << d.log_tail();
    return 1;
  }
  std::this_thread::sleep_for(milliseconds(100));
  x->poll_rx();
  a->poll_rx();

  MovingTrafficOptions opt;
  opt.sizes = {args.size};
  opt.mix_layouts = false;
  opt.verify = args.verify;
  opt.hugepage_regions = args.hugepages;
  opt.rx_posted = 256;
  opt.window = 192;
  opt.no_interrupt = true;
  opt.yield_when_idle = false;
  MovingTraffic mt(*x, mx, *a, ma, opt);
  const nlohmann::json x_start = d.port("x"), a_start = d.port("a");
  std::atomic<int> phase{int(Phase::Warmup)};
  std::atomic<bool> sampling{true};
  std::vector<Tick> samples;
  samples.reserve(100000);
  std::thread traffic([&] { mt.run(); });
  std::thread sampler([&] {
    auto next = Clock::now();
    while (sampling.load(std::memory_order_relaxed)) {
      samples.push_back({Clock::now(), mt.delivered(), Phase(phase.load(std::memory_order_relaxed))});
      next += milliseconds(10);
      std::this_thread::sleep_until(next);
    }
  });

  auto secs = [](double s) { return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s)); };
  // The buffers start out in a first extra region, so that every measured cycle
  // is one ADD_MEM_REG plus one REM_MEM_REG.
  if (!mt.relayout()) {
    std::cerr << "first re-layout failed: " << mt.error() << "\n" << d.log_tail();
    return 1;
  }
  std::this_thread::sleep_for(secs(args.warmup_s));
  phase = int(Phase::Steady);
  ForeignCpu foreign{d.pid(), 0, 0, 0, Clock::now()};
  auto steady_start = d.scrape();
  foreign.begin();
  std::this_thread::sleep_for(secs(args.steady_s));
  double foreign_steady = foreign.percent();
  auto before = d.scrape();
  const nlohmann::json x0 = d.port("x");
  phase = int(Phase::Hotplug);
  foreign.begin();
  auto hp_start = Clock::now();
  int done = 0;
  bool ok = true;
  for (; done < args.cycles && ok; ++done) {
    ok = mt.relayout();
    if (args.pace_ms > 0) std::this_thread::sleep_for(milliseconds(args.pace_ms));
  }
  double hp_secs = std::chrono::duration<double>(Clock::now() - hp_start).count();
  double foreign_hot = foreign.percent();
  auto hotplug_end = d.scrape();
  phase = int(Phase::Tail);
  std::this_thread::sleep_for(milliseconds(500));  // let the last grace periods end
  sampling = false;
  sampler.join();
  mt.stop();
  traffic.join();
  std::this_thread::sleep_for(milliseconds(200));
  auto after = d.scrape();
  const nlohmann::json x1 = d.port("x"), a1 = d.port("a");
  if (!ok) done -= 1;

  if (!args.samples.empty()) {
    std::ofstream csv(args.samples);
    csv << "seconds,delivered,phase\n";
    static constexpr const char* kPhase[] = {"warmup", "steady", "hotplug", "tail"};
    for (const Tick& s : samples)
      csv << std::chrono::duration<double>(s.t - samples.front().t).count() << ',' << s.delivered << ','
          << kPhase[int(s.phase)] << '\n';
  }

  // ---- throughput per interval
  std::vector<double> steady_rates, hot_rates;
  double steady_frames = 0, steady_time = 0;
  for (size_t i = 1; i < samples.size(); ++i) {
    double dt = std::chrono::duration<double>(samples[i].t - samples[i - 1].t).count();
    double frames = double(samples[i].delivered - samples[i - 1].delivered);
    if (dt <= 0) continue;
    // An interval belongs to a phase if it both starts and ends in it.
    Phase p = samples[i].phase;
    if (samples[i - 1].phase != p) continue;
    if (p == Phase::Steady) {
      steady_rates.push_back(frames / dt);
      steady_frames += frames;
      steady_time += dt;
    } else if (p == Phase::Hotplug) {
      hot_rates.push_back(frames / dt);
    }
  }
  double steady = steady_time > 0 ? steady_frames / steady_time : 0;
  auto stats = [&](const std::vector<double>& rates, double& min_frac, size_t& below) {
    min_frac = rates.empty() ? NAN : 1e9;
    below = 0;
    for (double r : rates) {
      min_frac = std::min(min_frac, r / steady);
      below += r < 0.95 * steady ? 1 : 0;
    }
  };
  double hot_min = 0, steady_min = 0;
  size_t hot_below = 0, steady_below = 0;
  stats(hot_rates, hot_min, hot_below);
  stats(steady_rates, steady_min, steady_below);

  // ---- grace periods (delta over the hotplug phase and tail)
  Histogram g, rcu;
  if (before && after) {
    g = Histogram::from(*after, "vusw_grace_period_seconds", {{"port", "x"}})
            .minus(Histogram::from(*before, "vusw_grace_period_seconds", {{"port", "x"}}));
    rcu = Histogram::from(*after, "vusw_rcu_grace_period_seconds", {})
              .minus(Histogram::from(*before, "vusw_rcu_grace_period_seconds", {}));
  }
  std::string buckets;
  double prev = 0;
  for (const auto& [le, n] : g.buckets) {
    double in = n - prev;
    prev = n;
    if (in <= 0) continue;
    if (!buckets.empty()) buckets += ", ";
    buckets += (std::isinf(le) ? std::string("+Inf") : "≤" + fmt_ms(le)) + ": " + fmt(in, 0);
  }

  // PMD loop turns (the switch's own view: a stall of its core shows up here even when
  // the generator, which shares core 0 with the memory changes, is what slows down).
  auto turns = [](const std::optional<Metrics>& m1, const std::optional<Metrics>& m0) {
    if (!m1 || !m0) return Histogram{};
    return Histogram::from(*m1, "vusw_pmd_iteration_seconds", {}).minus(Histogram::from(*m0, "vusw_pmd_iteration_seconds", {}));
  };
  const Histogram steady_turns = turns(before, steady_start), hot_turns = turns(hotplug_end, before);
  auto turns_text = [](const Histogram& h) {
    auto over = [&](double bound) { return h.count - (h.buckets.count(bound) ? h.buckets.at(bound) : h.count); };
    return fmt(h.count, 0) + " / " + fmt(over(1e-4), 0) + " / " + fmt(over(1e-3), 0) + " / " + fmt(over(1e-2), 0);
  };

  auto delta = [](const nlohmann::json& p1, const nlohmann::json& p0, const char* type) {
    auto n = [type](const nlohmann::json& p) {
      return p.contains("mem_updates") ? json_u64(p["mem_updates"], type) : uint64_t{0};
    };
    return n(p1) - n(p0);
  };
  uint64_t drops = (json_sum(x1, "drops") - json_sum(x_start, "drops")) +
                   (json_sum(a1, "drops") - json_sum(a_start, "drops"));
  uint64_t lost = (mt.to_peer().sent - mt.to_peer().received) + (mt.to_mover().sent - mt.to_mover().received);
  uint64_t corrupt = mt.to_peer().corrupt + mt.to_mover().corrupt;

  std::ostringstream md;
  md << "| metric | value |\n|---|---|\n";
  md << "| frame size | " << args.size << " B (" << (args.size >= 1024 ? "zero-copy TX" : "copied TX")
     << (args.verify ? ", byte-verified" : ", seq-checked") << ") |\n";
  md << "| moved-into regions | " << (args.hugepages ? "2 MiB hugetlbfs pages" : "4 KiB memfd pages") << " |\n";
  md << "| steady state (" << fmt(steady_time, 2) << " s, both directions) | " << fmt(steady / 1e6, 3) << " Mpps |\n";
  md << "| steady state: lowest 10-ms interval / intervals < 95 % | " << fmt(100 * steady_min, 1) << " % / "
     << steady_below << " of " << steady_rates.size() << " |\n";
  md << "| add/remove cycles (pace " << args.pace_ms << " ms) | " << done << " in " << fmt(hp_secs, 2) << " s ("
     << fmt_ms(mt.mem_msg_seconds() / std::max(done, 1)) << " per cycle in ADD/REM acks) |\n";
  md << "| PMD loop turns, steady: all / > 100 µs / > 1 ms / > 10 ms | " << turns_text(steady_turns) << " |\n";
  md << "| PMD loop turns, hotplug: all / > 100 µs / > 1 ms / > 10 ms | " << turns_text(hot_turns) << " |\n";
  auto spread = [&](std::vector<double> rates) {
    if (rates.empty() || steady <= 0) return std::string("-");
    std::sort(rates.begin(), rates.end());
    auto at = [&](double q) { return fmt(100 * rates[size_t(q * double(rates.size() - 1))] / steady, 1); };
    return at(0.01) + " / " + at(0.05) + " / " + at(0.5) + " %";
  };
  md << "| 10-ms intervals p1 / p5 / p50, steady | " << spread(steady_rates) << " |\n";
  md << "| 10-ms intervals p1 / p5 / p50, hotplug | " << spread(hot_rates) << " |\n";
  md << "| **hotplug: lowest 10-ms interval** | **" << fmt(100 * hot_min, 1) << " %** of steady state |\n";
  md << "| **hotplug: intervals < 95 %** | **" << hot_below << "** of " << hot_rates.size() << " |\n";
  md << "| grace periods port x: count / mean | " << fmt(g.count, 0) << " / "
     << fmt_ms(g.count > 0 ? g.sum / g.count : NAN) << " |\n";
  md << "| grace periods port x: p50 / p99 (from buckets) | " << fmt_ms(g.quantile(0.5)) << " / "
     << fmt_ms(g.quantile(0.99)) << " |\n";
  md << "| grace periods port x: buckets | " << (buckets.empty() ? "-" : buckets) << " |\n";
  md << "| all ports (vusw_rcu_grace_period_seconds): count / mean / p99 | " << fmt(rcu.count, 0) << " / "
     << fmt_ms(rcu.count > 0 ? rcu.sum / rcu.count : NAN) << " / " << fmt_ms(rcu.quantile(0.99)) << " |\n";
  md << "| foreign CPU (other processes), steady / hotplug | " << fmt(foreign_steady, 1) << " % / "
     << fmt(foreign_hot, 1) << " % of one core |\n";
  md << "| frames lost / corrupt / switch drops | " << lost << " / " << corrupt << " / " << drops << " |\n";
  md << "| mem_updates ADD/REM (x) | " << delta(x1, x0, "ADD_MEM_REG") << " / "
     << delta(x1, x0, "REM_MEM_REG") << " |\n";

  std::cout << md.str();
  if (foreign_steady > 10 || foreign_hot > 10)
    std::cerr << "WARNING: other processes used more than 10 % of a core during the measurement; "
                 "the intervals are not the switch's alone. Do not record these numbers.\n";
  if (!mt.error().empty() || mt.stalled()) std::cerr << "traffic: " << mt.summary() << "\n";
  if (!args.markdown.empty()) {
    std::ofstream out(args.markdown, std::ios::app);
    out << md.str();
  }
  int rc = d.stop();
  if (rc != 0) std::cerr << "vuswitchd exit status " << rc << "\n" << d.log_tail();
  return ok && lost == 0 && corrupt == 0 && drops == 0 && rc == 0 ? 0 : 1;
}
