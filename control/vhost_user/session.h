// The back-end side of one vhost-user connection: protocol state and message handlers.
//
// A Session lives on the control thread. It owns the connection, the eventfds, and the
// per-ring configuration; it publishes memory snapshots to its port and sends ring
// setups to the port's PMD core. Handlers are named after the spec's messages. Any
// error costs at most this connection; the daemon and other ports keep running.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <tuple>
#include <string>

#include "control/vhost_user/connection.h"
#include "control/vhost_user/message.h"
#include "ports/vhost_port.h"
#include "vusw/result.h"

namespace vusw {
class Pmd;
class Reclaimer;
class L2Switch;
}  // namespace vusw

namespace vusw::vhost_user {

inline constexpr uint64_t kOfferedFeatures = feature::kVersion1 | feature::kMrgRxbuf | feature::kIndirectDesc |
                                             feature::kEventIdx | feature::kProtocolFeatures | feature::kNetMtu |
                                             feature::kInOrder | feature::kMq | feature::kRingPacked | feature::kCsum |
                                             feature::kGuestCsum | feature::kHostTso4 | feature::kHostTso6 |
                                             feature::kGuestTso4 | feature::kGuestTso6 | feature::kHostEcn |
                                             feature::kGuestEcn | feature::kHostUso | feature::kGuestUso4 |
                                             feature::kGuestUso6 | feature::kLogAll;
// PAGEFAULT (postcopy) is offered as well where the kernel lets us open a userfaultfd.
inline constexpr uint64_t kOfferedProtocolFeatures = protocol::kMq | protocol::kLogShmfd | protocol::kRarp | protocol::kReplyAck |
                                                     protocol::kNetMtu | protocol::kConfigureMemSlots | protocol::kStatus;

// What a session needs from the daemon.
struct SessionEnv {
    // The core that polls queue pair `pair` now (queues move between cores), placing the
    // pair on one first if it has none.
    std::function<Result<Pmd*>(uint16_t pair)> place;
    // The same for a pair already placed; nullptr if it never was.
    std::function<Pmd*(uint16_t pair)> pmd;
    Reclaimer& reclaimer; // retires memory snapshots
    L2Switch& l2;         // SEND_RARP injects a frame
    rte_mempool* pool;
    // false only for the migration test's control run (--debug-no-dirty-log): logging is
    // negotiated but the dirty log never written, so a migrated guest must see stale memory.
    bool write_dirty_log = true;
    // Benchmarks only (--debug-dirty-log-always): every session logs into a private log
    // as if its guest were migrating, to measure what logging costs.
    bool always_log = false;
};

class Session {
public:
    Session(VhostPort& port, UniqueFd sock, SessionEnv env);
    ~Session();  // stops the rings, drops guest memory
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    int fd() const { return conn_.fd(); }
    // Reads and handles one message. False: the connection must be closed.
    bool on_readable();

    // Handlers (spec names as verbs); the dispatcher has checked sizes, fds, features.
    Status get_features(Message& m);
    Status set_features(Message& m);
    Status set_owner(Message& m);
    Status reset_owner(Message& m);
    Status set_mem_table(Message& m);
    Status set_log_base(Message& m);
    Status set_log_fd(Message& m);
    Status set_vring_num(Message& m);
    Status set_vring_addr(Message& m);
    Status set_vring_base(Message& m);
    Status get_vring_base(Message& m);
    Status set_vring_kick(Message& m);
    Status set_vring_call(Message& m);
    Status set_vring_err(Message& m);
    Status get_protocol_features(Message& m);
    Status set_protocol_features(Message& m);
    Status get_queue_num(Message& m);
    Status set_vring_enable(Message& m);
    Status send_rarp(Message& m);
    Status net_set_mtu(Message& m);
    Status get_max_mem_slots(Message& m);
    Status add_mem_reg(Message& m);
    Status rem_mem_reg(Message& m);
    Status set_status(Message& m);
    Status get_status(Message& m);
    Status postcopy_advise(Message& m);
    Status postcopy_listen(Message& m);
    Status postcopy_end(Message& m);

    // The protocol features this back-end offers on this host.
    static uint64_t offered_protocol_features();

private:
    struct Ring {
        RingConfig config;
        bool have_num = false;
        bool have_addr = false;
        bool kicked = false;
        bool enabled = false;
        UniqueFd kick, call, err;
        // Size, addresses and kick given: the PMD core processes it.
        bool running() const { return kicked && have_num && have_addr; }
    };

    Result<uint32_t> ring_index(uint64_t index) const;
    Status sync_ring(uint32_t index, bool reconfigure = false);
    // Stops ring `index` on the core that polls it; its position (GET_VRING_BASE).
    Result<uint32_t> stop_on_core(Pmd& core, uint32_t index);
    // Tells the port which RX rings frames may go to (started and enabled ones).
    void publish_rx_queues();
    // Stops ring `index`; `base` is its position as GET_VRING_BASE reports it.
    Status stop_ring(uint32_t index, uint32_t& base);
    bool packed() const { return features_ & feature::kRingPacked; }
    bool logging() const { return (features_ & feature::kLogAll) || env_.always_log; }
    // Gives PMD cores the dirty log while LOG_ALL is on and a log base is mapped.
    void publish_log();
    // Postcopy: a region mapped while listening is registered with the userfaultfd; the
    // front-end learns where we mapped it from the reply.
    Result<std::shared_ptr<const MappedRegion>> map_region(UniqueFd fd, const RegionDesc& desc);
    // QEMU's "done" after a postcopy memory update: the last memory message's code with a
    // u64 payload (or code 0). Not a request.
    bool is_postcopy_ack(const Message& m) const;
    Status publish(Result<std::unique_ptr<MemTable>> table);
    Status set_ring_fd(Message& m, UniqueFd Ring::*slot);
    void record_error(const Error& e);
    // "ready" once memory and the first queue pair run, else "connected".
    void update_state();
    bool has(uint64_t protocol_feature) const { return protocol_features_ & protocol_feature; }

    VhostPort& port_;
    Connection conn_;
    SessionEnv env_;
    uint64_t features_ = 0;
    uint64_t protocol_features_ = 0;
    bool features_set_ = false;
    uint8_t status_ = 0;
    uint16_t mtu_ = 1500;
    bool mtu_set_ = false;
    std::array<Ring, 2 * kMaxQueuePairs> rings_;
    std::shared_ptr<const DirtyLog> log_;  // SET_LOG_BASE's mapping
    UniqueFd log_fd_;                      // SET_LOG_FD (kept, never signalled: QEMU polls the log)
    UniqueFd userfault_;                   // POSTCOPY_ADVISE .. POSTCOPY_END
    bool postcopy_listening_ = false;      // POSTCOPY_LISTEN .. POSTCOPY_END
    // Regions ADD_MEM_REG gave again while mapped, by (gpa, uva, size): how many more
    // REM_MEM_REGs they take before they go.
    std::map<std::tuple<uint64_t, uint64_t, uint64_t>, uint32_t> repeated_regions_;
    Message msg_;  // receive buffer, reused
};

}  // namespace vusw::vhost_user
