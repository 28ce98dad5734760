// The one interface the switch needs from a port.
//
// A port has one or more queues (a vhost-user queue pair, a NIC queue): the units the
// PMD scheduler places, like OVS's rx queues. Each queue is owned by one PMD core: it
// polls the queue's receive side and is the only core that transmits into it; other
// cores hand frames over through the queue's hand-off ring (send() chooses). Queue 0
// exists from the start; a port with more (vhost-user multiqueue) prepares them as the
// front-end sets them up. The control thread reads state and counters; it changes a
// port only through PMD commands (pmd.h), and moves a queue to another core with the
// protocol described at Pmd (pmd.h): while it moves, its owner is kNoOwner and every
// core hands its frames over.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "vusw/counters.h"
#include "vusw/result.h"
#include "vusw/mtu.h"
#include "vusw/vlan.h"

struct rte_mbuf;
struct rte_mempool;
struct rte_ring;

namespace vusw {

inline constexpr uint16_t kBurst = 32;

// Queues a port can have (vhost-user: queue pairs, VIRTIO_NET_F_MQ).
inline constexpr uint16_t kMaxPortQueues = 16;

// Ports a switch can have at once, counting removed ones still retiring: Port::id() < kMaxPorts.
inline constexpr uint16_t kMaxPorts = 256;

// Port::owner() of a port no core polls (it is being moved): never a PMD slot, and
// never -1, what current_pmd() says off the PMD cores.
inline constexpr unsigned kNoOwner = 1u << 30;

// The PMD slot of the calling thread, or -1 off the PMD cores (control thread).
int current_pmd();

// Per-core scratch and identity, handed to ports on the packet path.
struct PmdContext {
    unsigned slot;        // counter slot = PMD index
    rte_mempool* pool;    // mbufs for frames copied out of guests
};

class Port {
public:
    virtual ~Port();
    Port(const Port&) = delete;
    Port& operator=(const Port&) = delete;

    const std::string& name() const { return name_; }
    std::string_view kind() const { return kind_; }
    uint16_t id() const { return id_; }
    void set_id(uint16_t id) { id_ = id; }
    // Queues the port can have (1 for a NIC with one queue).
    uint16_t queue_limit() const { return queue_limit_; }
    // Queue q was prepared (queue 0 always is): it has a hand-off ring and may be placed.
    bool has_queue(uint16_t q) const { return q < queue_limit_ && queues_[q].handoff != nullptr; }
    // Control, before queue q is first placed on a core: creates its hand-off ring and
    // whatever else the port needs for it. Idempotent.
    virtual Status prepare_queue(uint16_t q);
    // The PMD slot that polls and transmits into queue q, or kNoOwner. Read by every
    // core on the packet path; written by the control thread (kNoOwner, before a move)
    // and by the new owner core (when it attaches the queue). The PMD command queue
    // orders these stores with the cores' loads (pmd.h).
    unsigned owner(uint16_t q) const { return queues_[q].owner.load(std::memory_order_relaxed); }
    void set_owner(uint16_t q, unsigned pmd) { queues_[q].owner.store(pmd, std::memory_order_release); }
    rte_ring* handoff(uint16_t q) const { return queues_[q].handoff; }

    // The port's settings (MTU, VLAN membership). Set once by the daemon right after
    // the port is created, before any PMD core runs; read-only afterwards, so the
    // packet path reads them without synchronisation.
    const PortConfig& config() const { return config_; }
    void set_config(const PortConfig& config);
    // The effective MTU (mtu.h): the largest L3 payload (Ethernet frame minus its 14-byte
    // header, and minus a VLAN tag's 4 bytes) the switch sends to the port, and where
    // that value comes from. The control thread changes it (set_frontend_mtu), PMD cores
    // read it: one atomic word, MTU and source together.
    EffectiveMtu effective_mtu() const;
    uint16_t mtu() const { return uint16_t(mtu_word_.load(std::memory_order_relaxed)); }
    // PMD: the longest untagged frame the port takes, MTU + 14.
    uint32_t max_frame_len() const { return (mtu_word_.load(std::memory_order_relaxed) & 0xffff) + kEthHeaderLen; }
    // Control: the MTU the port's front-end set (NET_SET_MTU, after check_frontend_mtu),
    // or nullopt when it has none (again): the port's MTU follows the rule in mtu.h.
    void set_frontend_mtu(std::optional<uint16_t> mtu);

    // PMD (owner of queue q): frames from the queue into the switch (up to max); never blocks.
    virtual uint16_t receive(PmdContext& ctx, uint16_t q, rte_mbuf** pkts, uint16_t max) = 0;
    // PMD (owner of queue q only): frames out of the switch into queue q. Consumes every
    // mbuf: delivered, or dropped with a counted reason.
    virtual void transmit(PmdContext& ctx, uint16_t q, rte_mbuf** pkts, uint16_t n) = 0;
    // PMD (owner of queue q), after the received burst was switched: publish completions
    // (buffers returned to a guest) and wake whoever waits for them.
    virtual void flush(PmdContext&, uint16_t /*q*/) {}
    // Any PMD core: frames out of the switch into the port. The port picks the queue
    // (queue 0, or a flow hash over several); each goes to deliver().
    virtual void send(PmdContext& ctx, rte_mbuf** pkts, uint16_t n) { deliver(ctx, 0, pkts, n); }
    // Control: a short human state ("ready", "waiting", "up", ...).
    virtual std::string state() const = 0;

    // A removed port (Daemon, daemon_ports.cc), once no core owns its queues and no core
    // can still send to it: frees the frames waiting in its hand-off rings.
    void drop_handoffs();
    // Then, until it says true: takes back what others return to it (zero-copy buffers
    // it lent); true once nothing outside refers to the port, so it may be destroyed.
    virtual bool settle() { return true; }

    PortCounters& counters(unsigned slot) { return counters_[slot]; }
    PortTotals totals() const;
    // TSC cycles PMD `slot` spent on queue q in turns that moved frames (receive,
    // switch, hand-off transmit): the queue's load, written by its owner only.
    Counter& poll_cycles(uint16_t q, unsigned slot) { return queues_[q].poll_cycles[slot]; }
    const Counter& poll_cycles(uint16_t q, unsigned slot) const { return queues_[q].poll_cycles[slot]; }
    // Of all queues.
    uint64_t poll_cycles_total(unsigned slot) const;
    // Frames received from / delivered into queue q (its owner writes them).
    QueueCounters& queue_counters(uint16_t q) { return queues_[q].counters; }
    const QueueCounters& queue_counters(uint16_t q) const { return queues_[q].counters; }

protected:
    // `queue_limit` queues at most; call prepare_queue(0) once the port has a name
    // (DPDK needs EAL).
    Port(std::string name, std::string_view kind, uint16_t queue_limit);
    // Into queue q: transmit() if the calling core owns it, else its hand-off ring.
    void deliver(PmdContext& ctx, uint16_t q, rte_mbuf** pkts, uint16_t n);

private:
    struct alignas(64) Queue {
        std::atomic<unsigned> owner{kNoOwner};
        rte_ring* handoff = nullptr;
        QueueCounters counters;
        std::array<Counter, kMaxPmds> poll_cycles;
    };
    std::string name_;
    std::string_view kind_;
    uint16_t id_ = 0;
    uint16_t queue_limit_;
    std::array<Queue, kMaxPortQueues> queues_;
    std::array<PortCounters, kMaxPmds + 1> counters_;
    PortConfig config_;
    std::atomic<uint32_t> mtu_word_{PortConfig::kDefaultMtu};  // MTU | MtuSource << 16
};

// One queue of a port: what a PMD core polls.
struct PortQueue {
    Port* port;
    uint16_t queue;
    bool operator==(const PortQueue&) const = default;
};

}  // namespace vusw
