// Daemon start-up, control loop and shutdown.
#include "control/daemon.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "control/hugepages.h"
#include "control/management.h"
#include "control/metrics.h"
#include "control/privileges.h"
#include "control/scheduler.h"
#include "control/service_notify.h"
#include "control/vhost_user/endpoint.h"
#include "ports/ethdev_port.h"
#include "ports/vhost_port.h"
#include "ports/vxlan_port.h"
#include "vusw/guest_dma.h"
#include "vusw/fdb.h"
#include "vusw/l2switch.h"
#include "vusw/log.h"
#include "vusw/pmd.h"
#include "vusw/rcu.h"

namespace vusw {
namespace {


std::vector<std::string> eal_args(const Config& c)
{
    std::string lcores;
    bool mapped = false;  // some LCORE@CPU: EAL's --lcores syntax, else -l
    for (std::size_t i = 0; i < c.lcores.size(); ++i) {
        const int cpu = i < c.lcore_cpus.size() ? c.lcore_cpus[i] : -1;
        lcores += (lcores.empty() ? "" : ",") + std::to_string(c.lcores[i]);
        if (cpu >= 0)
            lcores += "@" + std::to_string(cpu);
        mapped |= cpu >= 0;
    }
    std::vector<std::string> args = {"vuswitchd", mapped ? "--lcores" : "-l", lcores, "--file-prefix", c.file_prefix, "-m",
                                     std::to_string(c.memory_mb), "--log-level", "lib.*:warning", "--no-telemetry"};
    // The first --lcores entry runs the control thread, whatever its number (EAL would
    // otherwise make the lowest lcore the main one).
    if (!c.lcores.empty())
        args.insert(args.end(), {"--main-lcore", std::to_string(c.lcores.front())});
    if (c.no_huge)
        args.push_back("--no-huge");
    if (!c.huge_dir.empty())
        args.insert(args.end(), {"--huge-dir", c.huge_dir});
    // After the drop to --user the runtime and hugepage files would stay root's: keep
    // them off the file system (memfd hugepages, no multi-process files), nothing to remove.
    // (--no-huge is legacy memory, which --in-memory refuses; it has no hugepage files.)
    if (c.user)
        args.push_back(c.no_huge ? "--no-shconf" : "--in-memory");
    bool pci = false;
    for (const PortSpec& nic : c.nics)
        if (looks_like_pci(nic.target)) {
            args.insert(args.end(), {"-a", nic.target.substr(0, nic.target.find(','))});
            pci = true;
        }
    if (!pci)  // never grab a host NIC nobody asked for; virtual addresses are DMA addresses
        args.insert(args.end(), {"--no-pci", "--iova-mode=va"});
    return args;
}

}  // namespace

Daemon::Daemon(Config config, std::vector<std::string> args)
    : config_(std::move(config)), args_(std::move(args)), state_(config_.state_file)
{
    logged_faults_.resize(kMaxPorts);
}

Daemon::~Daemon()
{
    for (Pmd* pmd : pmds_)
        pmd->stop();
    metrics_.reset();
    management_.reset();
    for (Attached& a : attached_)
        a.endpoint.reset();  // sessions stop their rings (the cores are stopped: applied inline)
    if (reclaimer_)
        reclaimer_->drain(std::chrono::seconds(1));
    attached_.clear();
    retiring_.clear();
    set_dma_registry(nullptr);
    rte_mempool_free(pool_);
    if (reclaimer_) {
        reclaimer_.reset();
        rte_eal_cleanup();
    }
}

Status Daemon::init_dpdk()
{
    std::vector<std::string> args = eal_args(config_);
    std::vector<char*> argv;
    for (std::string& a : args)
        argv.push_back(a.data());
    log(LogLevel::debug, "EAL arguments: {}", fmt::join(args, " "));
    if (rte_eal_init(int(argv.size()), argv.data()) < 0)
        return fail("eal", fmt::format("DPDK initialisation failed: {}. Are huge pages reserved and mounted "
                                       "(deploy/setup.sh), the --lcores present, and the --file-prefix unused?",
                                       rte_strerror(rte_errno)));
    // Each core's cache of free buffers is at most 1/16 of the pool, so a small pool is not
    // all in caches of cores that do not need it.
    const unsigned mbufs = pool_mbufs(config_);
    pool_ = rte_pktmbuf_pool_create("vusw_mbufs", mbufs, std::min(256u, mbufs / 16), 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                    int(rte_socket_id()));
    if (pool_ == nullptr)
        return fail("eal", fmt::format("cannot create the packet buffer pool of {} buffers ({}); raise --memory or "
                                       "lower --mbufs", mbufs, rte_strerror(rte_errno)));
    reclaimer_ = std::make_unique<Reclaimer>(kMaxPmds);
    fdb_ = std::make_unique<Fdb>();
    tick_mac_tables();  // entries learned before the first tick must not look 50 years old
    l2_ = std::make_unique<L2Switch>(*fdb_, *reclaimer_);
    unsigned index = 0;
    for (std::size_t i = 1; i < config_.lcores.size(); ++i) {
        owned_pmds_.push_back(std::make_unique<Pmd>(index++, config_.lcores[i], *l2_, reclaimer_->qsbr(), pool_));
        pmds_.push_back(owned_pmds_.back().get());
    }
    return {};
}

Status Daemon::create_ports()
{
    const auto specs = port_specs(config_);  // NICs first: guest memory is DMA-mapped for them
    auto create = [&](PortKind kind, const PortSpec& spec) -> Status {
        auto port = make_port(kind, spec);
        if (!port)
            return std::unexpected(port.error());
        if (auto ok = l2_->add_port(**port); !ok)
            return ok;
        ports_.add(port->get());
        std::optional<PortSpec> underlay;  // a tunnel's (make_port() found it)
        if (kind == PortKind::vxlan)
            underlay = configured_underlay(spec).value_or(PortSpec{});
        attached_.push_back(Attached{std::move(*port), nullptr, kind, spec, true, std::move(underlay)});
        return {};
    };
    const auto opens_nic = [](PortKind kind) { return kind == PortKind::nic || kind == PortKind::vxlan; };
    for (const auto& [kind, spec] : specs)
        if (opens_nic(kind))
            if (auto ok = create(kind, spec); !ok)
                return ok;
    // Guest memory mapped from now on is registered for DMA with the NICs opened above.
    dma_ = std::make_unique<EalDmaRegistry>();
    set_dma_registry(dma_.get());
    if (config_.debug_dirty_log_always)
        log(LogLevel::warn, "--debug-dirty-log-always: every guest logs its writes as if migrating (benchmarks only)");
    if (config_.debug_no_dirty_log)
        log(LogLevel::warn, "--debug-no-dirty-log: migrating guests will get stale memory (a test's control run only)");
    VhostPort::set_zero_copy_min(config_.zero_copy_min);
    if (config_.zero_copy_min == 0)
        log(LogLevel::info, "zero copy off (--zero-copy-min off): every guest frame is copied");
    else if (rte_eal_iova_mode() != RTE_IOVA_VA)
        log(LogLevel::warn, "DPDK runs in IOVA-as-PA mode: guest frames are copied, never lent (zero copy needs "
                            "IOVA-as-VA, e.g. the NIC bound to vfio-pci with an IOMMU)");
    else
        log(LogLevel::info, "zero copy: guest frames of {} B and more are lent to NICs and guests", config_.zero_copy_min);
    for (const auto& [kind, spec] : specs)
        if (!opens_nic(kind))
            if (auto ok = create(kind, spec); !ok)
                return ok;
    place_ports();
    return {};
}

void Daemon::place_ports()
{
    // Names were checked against the configured ports (config.cc): every pin finds its port.
    std::vector<int> pins(ports_.list().size(), kUnassigned);  // ids are 0.. in ports_ order at start-up
    for (const Port* port : ports_.list())
        pins[port->id()] = int(pin_of(config_, port->name()).value_or(unsigned(kUnassigned)));
    scheduler_ = std::make_unique<Scheduler>(ports_.list(), pmds_, std::chrono::seconds(config_.rebalance_interval_s),
                                             config_.rebalance_threshold_pct);
    scheduler_->place(pins);
}

Status Daemon::start_serving()
{
    for (Attached& a : attached_)
        if (auto ok = start_endpoint(a); !ok)
            return ok;
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(config_.control).parent_path(), ec);
    PortControl control{[this](PortKind kind, const PortSpec& spec) { return add_port(kind, spec); },
                        [this](const std::string& name) { return remove_port(name); }, [this] { return reload(); },
                        [this](const PortSpec& spec, const std::optional<PortSpec>& underlay) {
                            return add_tunnel(spec, underlay);
                        }};
    management_ = std::make_unique<Management>(config_.control, loop_, ports_.list(), *fdb_, pmds_, *scheduler_, config_,
                                               std::move(control), state_);
    if (auto ok = management_->start(); !ok)
        return ok;
    if (config_.metrics != "off") {
        metrics_ = std::make_unique<MetricsServer>(ports_, *fdb_, pmds_, *reclaimer_, *pool_);
        if (auto ok = metrics_->start(config_.metrics); !ok)
            return ok;
    }
    return loop_.watch(signals_.get(), [this] { on_signal(); });
}

std::vector<std::string> Daemon::owned_files() const
{
    std::vector<std::string> paths{config_.control};
    for (const Attached& a : attached_)
        if (a.kind == PortKind::vhost_server)
            paths.push_back(a.spec.target);
    std::error_code ec;
    if (!state_.path().empty() && std::filesystem::exists(state_.path(), ec))  // rewritten by the user later
        paths.push_back(state_.path());
    return paths;
}

void Daemon::on_signal()
{
    signalfd_siginfo info{};
    if (read(signals_.get(), &info, sizeof(info)) != sizeof(info))
        return;
    if (info.ssi_signo != SIGHUP) {
        log(LogLevel::info, "signal {}: shutting down", strsignal(int(info.ssi_signo)));
        loop_.stop();
        return;
    }
    log(LogLevel::info, "SIGHUP: reloading the configuration");
    if (auto report = reload(); !report)
        log(LogLevel::error, "reload: {}; the ports stay as they are", report.error().detail);
}

void Daemon::log_broken_queues()
{
    for (const Port* port : ports_.list()) {
        const auto* vhost = dynamic_cast<const VhostPort*>(port);
        if (vhost == nullptr)
            continue;
        auto& seen = logged_faults_[port->id()];
        seen.resize(vhost->ring_count());
        for (uint16_t q = 0; q < vhost->ring_count(); ++q) {
            const QueueFault f = vhost->ring_fault(q);
            if (uint8_t(f) != seen[q] && f != QueueFault::none)
                log(LogLevel::warn, "port {}: vring {} broken: {}; it stays stopped until the front-end sets it up again",
                    vhost->name(), q, fault_name(f));
            seen[q] = uint8_t(f);
        }
    }
}

uint32_t Daemon::mac_clock_s()
{
    const auto now = std::chrono::steady_clock::now().time_since_epoch();
    return uint32_t(std::chrono::duration_cast<std::chrono::seconds>(now).count());
}

void Daemon::tick_mac_tables()
{
    next_second_ = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    const uint32_t now_s = mac_clock_s();
    fdb_->tick(now_s);
    fdb_->age(config_.mac_age_s);
    for (Attached& a : attached_)
        if (auto* tunnel = dynamic_cast<VxlanPort*>(a.port.get())) {
            tunnel->tick_inner_macs(now_s);
            tunnel->age_inner_macs(config_.mac_age_s);
        }
}

void Daemon::tick()
{
    reclaimer_->poll();
    retire_ports();
    for (Attached& a : attached_)
        if (a.endpoint)
            a.endpoint->tick();
    log_broken_queues();
    scheduler_->tick();
    if (std::chrono::steady_clock::now() >= next_second_) {
        tick_mac_tables();
        log_suppressed();  // "... and N more suppressed" of rate-limited log lines (log.h)
    }
}

Status Daemon::start_up()
{
    // Before DPDK, whose own failure does not say what to do.
    if (!config_.no_huge)
        if (auto problem = hugepage_problem(read_hugepage_host(), config_.huge_dir, config_.memory_mb))
            return fail("hugepages", *problem);
    if (Status ok = init_dpdk(); !ok)
        return ok;
    if (Status ok = create_ports(); !ok)
        return ok;
    for (Pmd* pmd : pmds_)
        if (Status ok = pmd->launch(); !ok)
            return ok;
    if (Status ok = start_serving(); !ok)
        return ok;
    restore_ports();  // after the configured ports, whose names and devices come first
    return drop_privileges(config_, owned_files());  // the last step: everything above may need root
}

int Daemon::run()
{
    // Signals go to the signalfd, in every thread DPDK creates too.
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);  // reload
    pthread_sigmask(SIG_BLOCK, &mask, nullptr);
    signal(SIGPIPE, SIG_IGN);
    signals_.reset(signalfd(-1, &mask, SFD_CLOEXEC));
    set_log_level(config_.log_level);
    if (Status ok = start_up(); !ok) {
        log(LogLevel::error, "{}", ok.error().detail);
        return 1;
    }
    for (const Port* port : ports_.list())
        log_port(*port, "port");
    if (l2_->vlan_aware())
        log(LogLevel::info, "VLANs: frames are classified, tagged and untagged per port");
    else
        log(LogLevel::info, "VLANs: no port has VLAN options: VLAN-transparent (frames pass tagged or not, no VLAN work)");
    if (config_.rebalance_interval_s > 0 && pmds_.size() > 1)
        log(LogLevel::info, "rebalancing unpinned ports by load every {} s", config_.rebalance_interval_s);
    if (config_.metrics != "off")
        log(LogLevel::info, "metrics on http://{}/metrics", config_.metrics);
    log(LogLevel::info, "control socket {}", config_.control);
    fmt::print(stderr, "{}vuswitchd: ready\n", log_journal() ? "<5>" : "");  // scripts wait for this line
    ServiceNotify service;
    service.ready(fmt::format("ports: {}, PMD cores: {}", ports_.list().size(), pmds_.size()));
    // Tick fast while retired memory or a removed port waits for its grace period, so it
    // is freed (and the grace period measured) within a millisecond; otherwise ten times a second.
    loop_.run([this] { return std::chrono::milliseconds(reclaimer_->pending() || !retiring_.empty() ? 1 : 100); }, [&] {
        tick();
        service.tick();
    });
    service.stopping();
    return 0;
}

}  // namespace vusw
