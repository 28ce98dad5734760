// The one interface the switch needs from a port.
//
// A port is owned by one PMD core (it polls the port's receive side and is the only
// core that transmits into it; other cores hand packets over through the port's
// hand-off ring). The control thread creates ports at start-up and reads their state
// and counters; it changes a port only through PMD commands (pmd.h), and moves a port
// to another core with the protocol described at Pmd (pmd.h): while it moves, owner()
// is kNoOwner and every core hands frames over.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "vusw/counters.h"
#include "vusw/mtu.h"
#include "vusw/vlan.h"

struct rte_mbuf;
struct rte_mempool;
struct rte_ring;

namespace vusw {

inline constexpr uint16_t kBurst = 32;

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
    Port(std::string name, std::string_view kind);
    virtual ~Port();
    Port(const Port&) = delete;
    Port& operator=(const Port&) = delete;

    const std::string& name() const { return name_; }
    std::string_view kind() const { return kind_; }
    uint16_t id() const { return id_; }
    void set_id(uint16_t id) { id_ = id; }
    // The PMD slot that polls and transmits into the port, or kNoOwner. Read by every
    // core on the packet path; written by the control thread (kNoOwner, before a move)
    // and by the new owner core (when it attaches the port). The PMD command queue
    // orders these stores with the cores' loads (pmd.h).
    unsigned owner() const { return owner_.load(std::memory_order_relaxed); }
    void set_owner(unsigned pmd) { owner_.store(pmd, std::memory_order_release); }
    rte_ring* handoff() const { return handoff_; }

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

    // PMD: frames from the port into the switch (up to max); never blocks.
    virtual uint16_t receive(PmdContext& ctx, rte_mbuf** pkts, uint16_t max) = 0;
    // PMD (owner only): frames out of the switch into the port. Consumes every mbuf:
    // delivered, or dropped with a counted reason.
    virtual void transmit(PmdContext& ctx, rte_mbuf** pkts, uint16_t n) = 0;
    // PMD (owner only), after the received burst was switched: publish completions
    // (buffers returned to a guest) and wake whoever waits for them.
    virtual void flush(PmdContext&) {}
    // Control: a short human state ("ready", "waiting", "up", ...).
    virtual std::string state() const = 0;

    PortCounters& counters(unsigned slot) { return counters_[slot]; }
    PortTotals totals() const;
    // TSC cycles PMD `slot` spent on this port in turns that moved frames (receive,
    // switch, hand-off transmit): the port's load, written by its owner only.
    Counter& poll_cycles(unsigned slot) { return poll_cycles_[slot]; }
    const Counter& poll_cycles(unsigned slot) const { return poll_cycles_[slot]; }

protected:
    // Creates the hand-off ring; call once the port has a name (DPDK needs EAL).
    void create_handoff();

private:
    std::string name_;
    std::string_view kind_;
    uint16_t id_ = 0;
    std::atomic<unsigned> owner_{kNoOwner};
    rte_ring* handoff_ = nullptr;
    std::array<PortCounters, kMaxPmds + 1> counters_;
    std::array<Counter, kMaxPmds> poll_cycles_;
    PortConfig config_;
    std::atomic<uint32_t> mtu_word_{PortConfig::kDefaultMtu};  // MTU | MtuSource << 16
};

}  // namespace vusw
