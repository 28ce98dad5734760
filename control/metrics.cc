// Prometheus metrics.
#include "control/metrics.h"

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>

#include <fmt/format.h>
#include <netdb.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <limits>
#include <thread>

#include <rte_malloc.h>
#include <rte_mempool.h>

#include "control/live_ports.h"
#include "ports/vhost_port.h"
#include "ports/vxlan_port.h"
#include "vusw/fdb.h"
#include "vusw/pmd.h"
#include "vusw/rcu.h"

namespace vusw {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily family(std::string name, std::string help, MetricType type)
{
    return MetricFamily{std::move(name), std::move(help), type, {}};
}

// The address a client on this host reaches `address` (civetweb's "HOST:PORT") at; the
// port is the one it listens on (`port` may have been 0).
bool local_address(const std::string& address, int port, sockaddr_storage& out, socklen_t& len)
{
    std::string host = address.substr(0, address.rfind(':') == std::string::npos ? 0 : address.rfind(':'));
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    if (host.empty() || host == "0.0.0.0")
        host = "127.0.0.1";
    else if (host == "::")
        host = "::1";
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0 || found == nullptr)
        return false;
    std::memcpy(&out, found->ai_addr, found->ai_addrlen);
    len = found->ai_addrlen;
    ::freeaddrinfo(found);
    return true;
}

void add(MetricFamily& f, std::vector<ClientMetric::Label> labels, double value)
{
    ClientMetric m;
    m.label = std::move(labels);
    if (f.type == MetricType::Counter)
        m.counter.value = value;
    else
        m.gauge.value = value;
    f.metric.push_back(std::move(m));
}

// `counts` are non-cumulative, one per bound plus one above the last.
template <std::size_t N>
void add_histogram(MetricFamily& f, std::vector<ClientMetric::Label> labels, const std::array<double, N>& bounds,
                   const std::array<uint64_t, N + 1>& counts, double sum)
{
    ClientMetric m;
    m.label = std::move(labels);
    uint64_t cumulative = 0;
    for (std::size_t b = 0; b < N; ++b) {
        cumulative += counts[b];
        m.histogram.bucket.push_back({cumulative, bounds[b]});
    }
    cumulative += counts[N];
    m.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
    m.histogram.sample_count = cumulative;
    m.histogram.sample_sum = sum;
    f.metric.push_back(std::move(m));
}

void add_histogram(MetricFamily& f, std::vector<ClientMetric::Label> labels, const GraceStats& g)
{
    std::array<uint64_t, GraceStats::kBounds.size() + 1> counts{};
    for (std::size_t b = 0; b < counts.size(); ++b)
        counts[b] = g.buckets[b].get();
    add_histogram(f, std::move(labels), GraceStats::kBounds, counts, g.sum.load(std::memory_order_relaxed));
}

}  // namespace

class PortsCollector : public prometheus::Collectable {
public:
    PortsCollector(const LivePorts& ports, const Fdb& fdb, const std::vector<Pmd*>& pmds, const Reclaimer& rcu,
                   const rte_mempool& pool)
        : ports_(ports), fdb_(fdb), pmds_(pmds), rcu_(rcu), pool_(pool)
    {
    }

    std::vector<MetricFamily> Collect() const override
    {
        // A removed port's series go with it: it leaves the list under the lock before it is freed.
        return ports_.read([&](const std::vector<Port*>& ports) {
            std::vector<MetricFamily> out;
            collect_ports(out, ports);
            collect_vhost(out, ports);
            collect_vxlan(out, ports);
            collect_core(out, ports);
            return out;
        });
    }

private:
    void collect_ports(std::vector<MetricFamily>& out, const std::vector<Port*>& ports) const
    {
        auto rxp = family("vusw_port_rx_packets_total", "Frames the switch received from the port", MetricType::Counter);
        auto rxb = family("vusw_port_rx_bytes_total", "Bytes the switch received from the port", MetricType::Counter);
        auto txp = family("vusw_port_tx_packets_total", "Frames the switch delivered to the port", MetricType::Counter);
        auto txb = family("vusw_port_tx_bytes_total", "Bytes the switch delivered to the port", MetricType::Counter);
        auto zc = family("vusw_port_rx_zero_copy_packets_total", "Received frames lent to the switch without a copy",
                         MetricType::Counter);
        auto drops = family("vusw_port_drops_total", "Frames dropped, by port and reason", MetricType::Counter);
        auto qrx = family("vusw_queue_rx_packets_total", "Frames the switch received from a port's queue (queue pair)",
                          MetricType::Counter);
        auto qtx = family("vusw_queue_tx_packets_total", "Frames the switch delivered into a port's queue (queue pair)",
                          MetricType::Counter);
        for (const Port* p : ports) {
            for (uint16_t q = 0; q < p->queue_limit(); ++q) {
                if (!p->has_queue(q))
                    continue;
                const std::vector<ClientMetric::Label> labels{{"port", p->name()}, {"queue", std::to_string(q)}};
                add(qrx, labels, double(p->queue_counters(q).rx_packets.get()));
                add(qtx, labels, double(p->queue_counters(q).tx_packets.get()));
            }
            const PortTotals t = p->totals();
            add(rxp, {{"port", p->name()}}, double(t.rx_packets));
            add(rxb, {{"port", p->name()}}, double(t.rx_bytes));
            add(txp, {{"port", p->name()}}, double(t.tx_packets));
            add(txb, {{"port", p->name()}}, double(t.tx_bytes));
            add(zc, {{"port", p->name()}}, double(t.rx_zero_copy));
            for (std::size_t d = 0; d < t.drops.size(); ++d)
                add(drops, {{"port", p->name()}, {"reason", std::string(drop_name(Drop(d)))}}, double(t.drops[d]));
        }
        for (auto* f : {&rxp, &rxb, &txp, &txb, &zc, &drops, &qrx, &qtx})
            out.push_back(std::move(*f));
    }

    void collect_vhost(std::vector<MetricFamily>& out, const std::vector<Port*>& ports) const
    {
        auto msgs = family("vusw_vhost_messages_total", "vhost-user messages received, by type", MetricType::Counter);
        auto errs = family("vusw_vhost_protocol_errors_total", "vhost-user protocol errors, by reason", MetricType::Counter);
        auto regions = family("vusw_port_mem_regions", "Guest memory regions mapped", MetricType::Gauge);
        auto dma = family("vusw_port_mem_regions_dma", "Guest memory regions registered for device DMA (zero copy needs all of them)", MetricType::Gauge);
        auto remfds = family("vusw_vhost_rem_mem_reg_fds_total", "fds that came with REM_MEM_REG (closed unused)", MetricType::Counter);
        auto broken = family("vusw_queue_broken_total", "Queues marked broken by a guest error, by reason", MetricType::Counter);
        auto updates = family("vusw_mem_table_updates_total", "Memory tables published, by the message that caused them", MetricType::Counter);
        auto logged = family("vusw_dirty_log_pages_total", "Guest pages marked in the migration dirty log (newly set bits)", MetricType::Counter);
        auto missed = family("vusw_dirty_log_missed_pages_total", "Guest pages written while migrating that lay outside the dirty log", MetricType::Counter);
        auto logging = family("vusw_dirty_log_enabled", "1 while the port's guest migrates (LOG_ALL with a dirty log)", MetricType::Gauge);
        auto grace = family("vusw_grace_period_seconds", "Time from publishing a memory table until the old one was freed (RCU grace period)", MetricType::Histogram);
        for (const Port* p : ports) {
            const auto* v = dynamic_cast<const VhostPort*>(p);
            if (v == nullptr)
                continue;
            const ProtocolStats& s = v->protocol();
            MutexLock lock(s.mutex);
            for (uint32_t i = 1; i < s.messages.size(); ++i)
                if (s.messages[i] != 0)
                    add(msgs, {{"port", p->name()}, {"type", std::string(vhost_request_name(i))}}, double(s.messages[i]));
            for (const auto& [reason, n] : s.errors)
                add(errs, {{"port", p->name()}, {"reason", reason}}, double(n));
            add(regions, {{"port", p->name()}}, double(s.mem_regions));
            add(dma, {{"port", p->name()}}, double(s.mem_regions_dma));
            for (const auto& [type, n] : s.mem_updates)
                add(updates, {{"port", p->name()}, {"type", type}}, double(n));
            add_histogram(grace, {{"port", p->name()}}, v->grace());
            add(remfds, {{"port", p->name()}}, double(s.rem_mem_reg_fds));
            add(logged, {{"port", p->name()}}, double(v->logged_pages()));
            add(missed, {{"port", p->name()}}, double(v->log_missed()));
            add(logging, {{"port", p->name()}}, s.logging ? 1.0 : 0.0);
            for (std::size_t f = 1; f < std::size_t(QueueFault::count_); ++f)
                add(broken, {{"port", p->name()}, {"reason", std::string(fault_name(QueueFault(f)))}}, double(v->broken(QueueFault(f))));
        }
        for (auto* f : {&msgs, &errs, &regions, &dma, &remfds, &broken, &updates, &grace, &logged, &missed, &logging})
            out.push_back(std::move(*f));
    }

    // Tunnels: their ARP work (per port) and, per remote VTEP, the frames to and from it,
    // whether its MAC is known and how many inner MACs live behind it. The frames are also
    // the port's rx/tx counters (summed over the remotes), and per VNI (summed over the
    // remotes: with one VNI, the port's).
    void collect_vxlan(std::vector<MetricFamily>& out, const std::vector<Port*>& ports) const
    {
        auto req = family("vusw_vxlan_arp_requests_sent_total", "ARP requests the tunnel sent for its remote VTEPs' MACs",
                          MetricType::Counter);
        auto rep = family("vusw_vxlan_arp_replies_sent_total", "ARP requests for the tunnel's local= address answered",
                          MetricType::Counter);
        auto rcv = family("vusw_vxlan_arp_received_total", "ARP packets the tunnel took from its underlay",
                          MetricType::Counter);
        auto learned = family("vusw_vxlan_neighbours_learned_total",
                              "Remote VTEP MACs learned (first, or changed) from ARP", MetricType::Counter);
        auto encap = family("vusw_vxlan_encapsulated_packets_total", "Frames encapsulated and sent to the remote VTEP",
                            MetricType::Counter);
        auto decap = family("vusw_vxlan_decapsulated_packets_total", "Frames received from the remote VTEP and decapsulated",
                            MetricType::Counter);
        auto known = family("vusw_vxlan_remote_resolved",
                            "1 once the MAC of the remote VTEP's next hop (itself, or the gateway when off-link) is "
                            "known: frames to it go out",
                            MetricType::Gauge);
        auto macs = family("vusw_vxlan_remote_inner_macs", "Inner MACs learned behind the remote VTEP", MetricType::Gauge);
        auto vni_encap = family("vusw_vxlan_vni_encapsulated_packets_total",
                                "Frames encapsulated into the VNI (to every remote; one per remote a frame went to)",
                                MetricType::Counter);
        auto vni_decap = family("vusw_vxlan_vni_decapsulated_packets_total", "Frames received in the VNI and decapsulated",
                                MetricType::Counter);
        for (const Port* p : ports) {
            const auto* t = dynamic_cast<const VxlanPort*>(p);
            if (t == nullptr)
                continue;
            const VxlanTotals v = t->vxlan_totals();
            add(req, {{"port", p->name()}}, double(v.arp_requests_sent));
            add(rep, {{"port", p->name()}}, double(v.arp_replies_sent));
            add(rcv, {{"port", p->name()}}, double(v.arp_received));
            add(learned, {{"port", p->name()}}, double(v.neighbours_learned));
            const auto behind = t->inner_macs_by_remote();
            for (std::size_t r = 0; r < t->settings().remotes.size(); ++r) {
                const std::vector<ClientMetric::Label> labels{{"port", p->name()}, {"remote", ipv4_text(t->settings().remotes[r])}};
                add(encap, labels, double(v.encapsulated[r]));
                add(decap, labels, double(v.decapsulated[r]));
                add(known, labels, t->neighbour(r) ? 1.0 : 0.0);
                add(macs, labels, double(behind[r]));
            }
            const std::vector<VniVlan> vnis = t->vnis();
            for (std::size_t i = 0; i < vnis.size(); ++i) {
                const std::vector<ClientMetric::Label> labels{{"port", p->name()}, {"vni", std::to_string(vnis[i].vni)}};
                add(vni_encap, labels, double(v.vni_encapsulated[i]));
                add(vni_decap, labels, double(v.vni_decapsulated[i]));
            }
        }
        for (auto* f : {&req, &rep, &rcv, &learned, &encap, &decap, &known, &macs, &vni_encap, &vni_decap})
            out.push_back(std::move(*f));
    }

    void collect_core(std::vector<MetricFamily>& out, const std::vector<Port*>& ports) const
    {
        auto busy = family("vusw_pmd_busy_cycles_total", "TSC cycles PMD iterations spent moving packets", MetricType::Counter);
        auto idle = family("vusw_pmd_idle_cycles_total", "TSC cycles PMD iterations spent finding nothing", MetricType::Counter);
        auto turns = family("vusw_pmd_iteration_seconds", "Duration of each PMD loop turn (a long one is a stall)",
                            MetricType::Histogram);
        auto longest = family("vusw_pmd_longest_iteration_seconds", "Longest PMD loop turn since start", MetricType::Gauge);
        auto polls = family("vusw_port_poll_cycles_total",
                            "TSC cycles a PMD spent on a port in loop turns that moved its frames (the port's load)",
                            MetricType::Counter);
        for (const Pmd* pmd : pmds_) {
            const PmdStats s = pmd->stats();
            const std::string id = std::to_string(pmd->index());
            add(busy, {{"pmd", id}}, double(s.busy_cycles));
            add(idle, {{"pmd", id}}, double(s.idle_cycles));
            const double hz = double(s.tsc_hz);
            add_histogram(turns, {{"pmd", id}}, IterationStats::kBounds, s.turns.buckets, double(s.turns.cycles) / hz);
            add(longest, {{"pmd", id}}, double(s.turns.longest) / hz);
            for (const Port* p : ports)
                add(polls, {{"port", p->name()}, {"pmd", id}}, double(p->poll_cycles_total(pmd->index())));
        }
        auto fdb_entries = family("vusw_fdb_entries", "Learned MAC table entries", MetricType::Gauge);
        add(fdb_entries, {}, double(fdb_.size()));
        auto learned = family("vusw_fdb_learned_total", "MAC table entries learned", MetricType::Counter);
        add(learned, {}, double(fdb_.learned()));
        auto aged = family("vusw_fdb_aged_total", "MAC table entries aged out", MetricType::Counter);
        add(aged, {}, double(fdb_.aged()));
        auto grace = family("vusw_rcu_grace_period_seconds", "RCU grace periods of all retired snapshots", MetricType::Histogram);
        add_histogram(grace, {}, rcu_.stats());
        for (auto* f : {&busy, &idle, &turns, &longest, &polls, &fdb_entries, &learned, &aged, &grace})
            out.push_back(std::move(*f));
        collect_memory(out);
    }

    // What a leak of packet buffers or DPDK memory would show. The in-use count is a
    // snapshot: PMD cores move buffers while it is read.
    void collect_memory(std::vector<MetricFamily>& out) const
    {
        auto total = family("vusw_mbufs", "Packet buffers (mbufs) in the switch's pool", MetricType::Gauge);
        add(total, {}, double(pool_.size));
        auto in_use = family("vusw_mbufs_in_use",
                             "Packet buffers in use: on rings, in hand-off queues, on their way to NICs and guests",
                             MetricType::Gauge);
        add(in_use, {}, double(rte_mempool_in_use_count(&pool_)));
        auto heap = family("vusw_dpdk_heap_allocated_bytes", "Bytes allocated from DPDK's heaps (rte_malloc)",
                           MetricType::Gauge);
        uint64_t allocated = 0;
        for (unsigned i = 0; i < rte_socket_count(); ++i) {
            rte_malloc_socket_stats st{};
            if (rte_malloc_get_socket_stats(rte_socket_id_by_idx(i), &st) == 0)
                allocated += st.heap_allocsz_bytes;
        }
        add(heap, {}, double(allocated));
        for (auto* f : {&total, &in_use, &heap})
            out.push_back(std::move(*f));
    }

    const LivePorts& ports_;
    const Fdb& fdb_;
    const std::vector<Pmd*>& pmds_;
    const Reclaimer& rcu_;
    const rte_mempool& pool_;
};

MetricsServer::MetricsServer(const LivePorts& ports, const Fdb& fdb,
                             const std::vector<Pmd*>& pmds, const Reclaimer& rcu, const rte_mempool& pool)
    : collector_(std::make_shared<PortsCollector>(ports, fdb, pmds, rcu, pool))
{
}

// civetweb's listener checks whether it should stop only between polls of 2 s: stopping
// took 2 s, every time (each test daemon, every `systemctl stop`). Connections made while
// it stops end its poll at once.
MetricsServer::~MetricsServer()
{
    if (!exposer_ || wake_len_ == 0)
        return;
    std::atomic<bool> stopped = false;
    std::thread waker([&] {
        while (!stopped.load()) {
            const int fd = ::socket(wake_.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd >= 0) {
                (void)::connect(fd, reinterpret_cast<const sockaddr*>(&wake_), wake_len_);
                ::close(fd);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    });
    exposer_.reset();
    stopped = true;
    waker.join();
}

Status MetricsServer::start(const std::string& address)
{
    try {
        exposer_ = std::make_unique<prometheus::Exposer>(address);
    } catch (const std::exception& e) {
        return fail("metrics", fmt::format("--metrics {}: cannot listen ({}); pick a free port or `off`", address, e.what()));
    }
    exposer_->RegisterCollectable(collector_);
    const std::vector<int> ports = exposer_->GetListeningPorts();
    if (ports.empty() || !local_address(address, ports.front(), wake_, wake_len_))
        wake_len_ = 0;  // it stops in 2 s then
    return {};
}

}  // namespace vusw
