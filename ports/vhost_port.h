// A vhost-user-net port: the device side of a guest's virtio-net queues.
//
// The PMD side (receive/transmit) walks the guest's rings through the current memory
// snapshot. The control side (the vhost-user Session) publishes memory snapshots and
// sends ring setups, which the owning PMD core applies between bursts.
//
// The implementation is split by direction: vhost_guest_tx.cc (guest TX rings into
// mbufs, copied or lent), vhost_guest_rx.cc (mbufs into guest RX rings), vhost_loans.cc
// (lent buffers coming back), vhost_port.cc (ring set-up, queue selection, the rest).
// Ring index 2q is the RX ring of queue pair q, 2q+1 its TX ring (virtio-net §5.1.2).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <rte_mbuf_core.h>

#include "vusw/counters.h"
#include "vusw/dirty_log.h"
#include "vusw/guest_memory.h"
#include "vusw/mutex.h"
#include "vusw/offload.h"
#include "vusw/packed_queue.h"
#include "vusw/port.h"
#include "vusw/rcu.h"
#include "vusw/virtqueue.h"

namespace vusw {

// Queue pairs a port offers (VIRTIO_NET_F_MQ, GET_QUEUE_NUM); pair q is the port's queue q.
inline constexpr uint16_t kMaxQueuePairs = kMaxPortQueues;

// The spec name of a vhost-user request code (control/vhost_user/dispatch.cc).
std::string_view vhost_request_name(uint32_t request);

// Control-plane statistics of a port's vhost-user connections: the control thread writes
// them, `vuswitchctl` answers and the metrics exporter's threads read them, all under the
// mutex (clang checks it); never touched by PMD cores.
struct ProtocolStats {
    mutable Mutex mutex;
    std::array<uint64_t, 41> messages VUSW_GUARDED_BY(mutex){};         // by request code
    std::map<std::string, uint64_t> errors VUSW_GUARDED_BY(mutex);      // by reason
    // The last few errors, oldest first, for `vuswitchctl show port`.
    struct ErrorEvent {
        std::chrono::system_clock::time_point when;
        std::string reason;
        std::string detail;
    };
    static constexpr std::size_t kRecentErrors = 8;
    std::deque<ErrorEvent> recent_errors VUSW_GUARDED_BY(mutex);
    uint64_t rem_mem_reg_fds VUSW_GUARDED_BY(mutex) = 0;  // fds that came with REM_MEM_REG (and were closed)
    uint64_t connections VUSW_GUARDED_BY(mutex) = 0;
    uint64_t mem_regions VUSW_GUARDED_BY(mutex) = 0;      // regions in the current table
    uint64_t mem_regions_dma VUSW_GUARDED_BY(mutex) = 0;  // of them, registered for DMA (lendable)
    std::map<std::string, uint64_t> mem_updates VUSW_GUARDED_BY(mutex);  // tables published, by message type
    // The session as negotiated (0 before SET_FEATURES / SET_PROTOCOL_FEATURES / NET_SET_MTU).
    uint64_t features VUSW_GUARDED_BY(mutex) = 0;
    uint64_t protocol_features VUSW_GUARDED_BY(mutex) = 0;
    uint16_t mtu VUSW_GUARDED_BY(mutex) = 0;
    uint64_t log_size VUSW_GUARDED_BY(mutex) = 0;  // SET_LOG_BASE's bitmap, bytes (0: none)
    bool logging VUSW_GUARDED_BY(mutex) = false;   // LOG_ALL negotiated and a log mapped: PMD cores mark what they write
    struct Ring {
        uint16_t size = 0;      // SET_VRING_NUM
        bool started = false;   // size, addresses and kick given
        bool enabled = false;   // SET_VRING_ENABLE
    };
    std::array<Ring, 2 * kMaxQueuePairs> rings VUSW_GUARDED_BY(mutex){};  // by ring index: 2q RX, 2q+1 TX of pair q

    void count_message(uint32_t request);
    void count_error(const std::string& reason, std::string detail = {});
};

// What the owning PMD core should do with one ring.
struct RingSetup {
    RingConfig ring;         // placement; used when the ring (re)starts or `reconfigure`
    int call_fd = -1;        // guest notification eventfd; -1 = none
    bool started = false;    // kicked and not stopped
    bool enabled = false;    // SET_VRING_ENABLE (or no PROTOCOL_FEATURES)
    bool reconfigure = false;// new placement for a running ring, keeping its position
    bool mrg_rxbuf = false;  // VIRTIO_NET_F_MRG_RXBUF
    bool in_order = false;   // VIRTIO_F_IN_ORDER: buffers are used in the order made available
    bool offloads = false;   // CSUM or GUEST_CSUM: the virtio-net header carries offload requests
    OffloadCaps guest;       // what the guest takes on RX (GUEST_CSUM, GUEST_TSO4/6, GUEST_ECN, GUEST_USO4/6)
    OffloadCaps host;        // what the guest may ask on TX (CSUM, HOST_TSO4/6, HOST_ECN, HOST_USO)
    uint16_t hdr_len = 12;   // virtio-net header size
    bool log = false;        // VHOST_F_LOG_ALL: mark what the ring's loops write in the dirty log
    // ring.packed (VIRTIO_F_RING_PACKED) chooses the queue type.
};

class VhostPort final : public Port {
public:
    VhostPort(std::string name, std::string path, bool client);
    ~VhostPort() override;

    const std::string& path() const { return path_; }
    bool client_mode() const { return client_; }

    Status prepare_queue(uint16_t pair) override;
    // Pair q's TX ring: the guest's frames.
    uint16_t receive(PmdContext& ctx, uint16_t q, rte_mbuf** pkts, uint16_t max) override;
    // Pair q's RX ring: frames for the guest.
    void transmit(PmdContext& ctx, uint16_t q, rte_mbuf** pkts, uint16_t n) override;
    void flush(PmdContext& ctx, uint16_t q) override;
    // Spreads frames over the guest's enabled RX queues by flow hash (one flow, one queue).
    void send(PmdContext& ctx, rte_mbuf** pkts, uint16_t n) override;
    std::string state() const override;
    // Removed: gives back the loans freed since (no core owns the pairs any more, so
    // the control thread is their returns' consumer); true once none is out.
    bool settle() override;

    // Guest TX frames at least `bytes` long (after the virtio-net header) are lent to mbufs
    // instead of copied; 0 = never lend. Set once at start-up (--zero-copy-min), before
    // any PMD core runs. Lending needs guest memory a device can DMA from: see
    // guest_dma.h for how regions are registered with DPDK.
    static void set_zero_copy_min(uint32_t bytes) { lend_min_ = bytes == 0 ? kNeverLend : bytes; }
    // Most buffers lent at once per queue pair (bounds the return ring, guest stalls
    // and the share of the mbuf pool one guest holds).
    static constexpr uint32_t kMaxLoans = 2048;

    // Control side.
    RcuPointer<MemTable>& memory() { return memory_; }
    const RcuPointer<MemTable>& memory() const { return memory_; }
    // The dirty log PMD cores write while the front-end migrates the guest (LOG_ALL and a
    // log base); nullptr otherwise.
    RcuPointer<DirtyLog>& dirty_log() { return log_; }
    // Pages marked in dirty logs (newly set bits), and pages that were outside the log.
    uint64_t logged_pages() const;
    uint64_t log_missed() const;
    ProtocolStats& protocol() { return protocol_; }
    GraceStats& grace() { return grace_; }
    const GraceStats& grace() const { return grace_; }
    const ProtocolStats& protocol() const { return protocol_; }
    void set_state(std::string s) { state_ = std::move(s); }
    // Control: the queue pairs whose RX ring is started and enabled (where send() may
    // put frames), in order. PMD cores read the list between frames; one that reads a
    // list being replaced may put a frame into a ring that just stopped, which drops it
    // as queue_not_ready, as a stopped ring must.
    void set_rx_queues(std::span<const uint16_t> pairs);
    // Runs on the owning PMD core: applies `setup` to ring `index`; returns the ring's
    // position as GET_VRING_BASE reports it (split: last avail index; packed: avail index
    // and wrap counter in bits 0-15, used index and wrap counter in bits 16-31).
    uint32_t apply_ring(uint16_t index, const RingSetup& setup);
    // Broken-queue events by reason (written by the owning core).
    uint64_t broken(QueueFault f) const { return broken_[std::size_t(f)].get(); }
    uint64_t broken_total() const;
    // Current fault of ring `index` as last seen by the PMD core (for logs).
    QueueFault ring_fault(uint16_t index) const { return vrings_[index].seen.load(std::memory_order_relaxed); }
    uint16_t ring_count() const { return uint16_t(vrings_.size()); }
    // Where ring `index` is: the next available entry it will take, and the used index it
    // published (packed: index | wrap counter << 15, as in SET_VRING_BASE). Reads state the
    // owning PMD core writes: call it there (PmdCommand::call) or while no core polls the ring.
    struct RingPosition {
        uint16_t last_avail = 0;
        uint16_t used = 0;
    };
    RingPosition ring_position(uint16_t index) const;
    // Buffers of ring `index` still lent to mbufs; GET_VRING_BASE waits for zero.
    uint32_t loans(uint16_t index) const { return vrings_[index].loans.load(std::memory_order_acquire); }

private:
    // A guest TX buffer lent to an mbuf (DPDK external buffer) until the mbuf is freed;
    // then its descriptor goes back to the guest. Indexed by descriptor head.
    struct Loan {
        rte_mbuf_ext_shared_info shinfo;
        VhostPort* port;
        const MemTable* table;  // stays mapped while lent
        uint32_t generation;    // of the ring when lent: a restarted ring ignores old loans
        uint16_t ring;
        uint16_t head;
        bool out;  // lent now: a guest re-posting this head gets a copy, the slot stays
    };

    struct Vring;
    // The hot loops of one ring, compiled for its queue type and negotiated features
    // (RingFeatures, vhost_ring_features.h) and chosen when the ring is set up, so the
    // per-frame code tests none of them.
    using ReceiveLoop = uint16_t (VhostPort::*)(PmdContext&, Vring&, uint16_t, rte_mbuf**, uint16_t);
    using TransmitLoop = void (VhostPort::*)(PmdContext&, Vring&, rte_mbuf**, uint16_t);
    using NotifyFn = void (VhostPort::*)(Vring&);
    struct Loops {
        ReceiveLoop receive;   // guest TX ring -> mbufs (vhost_guest_tx.cc)
        TransmitLoop transmit; // mbufs -> guest RX ring (vhost_guest_rx.cc)
        NotifyFn notify;       // publish used entries (and log them: notify_logged), wake the guest
    };
    static Loops loops_for(const RingSetup& s);
    static ReceiveLoop receive_loop_for(const RingSetup& s);
    static TransmitLoop transmit_loop_for(const RingSetup& s);

    struct alignas(64) Vring {
        std::variant<SplitQueue, PackedQueue> queue;  // chosen at set-up (RingSetup::ring.packed)
        int call_fd = -1;
        bool started = false;
        bool enabled = false;
        bool log = false;                  // RingSetup::log: guest RX logs what it wrote
        Loops loops = loops_for(RingSetup{});
        OffloadCaps caps;                  // RX rings: what the guest takes as it is; TX rings: what it may ask
        uint32_t generation = 0;
        std::vector<Loan> lent;            // TX rings: one slot per descriptor
        // In-order TX rings while buffers are lent: every buffer taken since the oldest
        // outstanding loan, oldest first, and which of them are done. A loan returns
        // out of order; its successors wait here so the guest gets them back in order.
        std::vector<uint16_t> order;       // ring buffer of heads, as large as `lent`
        std::vector<uint8_t> finished;     // by head
        uint32_t order_first = 0, order_end = 0;
        uint32_t order_mask = 0;           // order.size() - 1 (a power of two; no division per frame)
        std::atomic<uint32_t> loans{0};    // owner writes, control reads
        std::atomic<QueueFault> seen{QueueFault::none};
        Counter log_pages;                 // dirty logging: pages newly marked, and pages outside the log
        Counter log_missed;
    };

    template <class Q>
    static Q& queue_of(Vring& v) { return *std::get_if<Q>(&v.queue); }
    static uint32_t vring_base(const SplitQueue& q);
    static uint32_t vring_base(const PackedQueue& q);
    void start_ring(uint16_t index, Vring& v, const RingSetup& s);
    template <class Q>
    bool usable(Vring& v, const MemTable* mem);
    void note_fault(Vring& v);
    template <class Q>
    void notify(Vring& v);
    template <class Q>
    void notify_logged(Vring& v);
    static void wake(const Vring& v);
    void count_logged(Vring& v, uint32_t pages, uint32_t missed);
    template <class F>
    uint16_t receive_ring(PmdContext& ctx, Vring& v, uint16_t index, rte_mbuf** pkts, uint16_t max);
    template <class F>
    void transmit_ring(PmdContext& ctx, Vring& v, rte_mbuf** pkts, uint16_t n);
    // Guest RX without the checks: frames the guest takes as they are.
    template <class F>
    void fill_ring(PmdContext& ctx, Vring& v, rte_mbuf** pkts, uint16_t n);
    // Guest RX of a burst with frames needing software checksums or segmentation.
    template <class F>
    void transmit_in_software(PmdContext& ctx, Vring& v, rte_mbuf** pkts, uint16_t n);
    // Available entries (up to `limit`), with the rings translated through a table read
    // after the index.
    template <class Q>
    uint16_t fresh_available(Vring& v, uint16_t limit);
    void send_spread(PmdContext& ctx, rte_mbuf** pkts, uint16_t n, uint16_t queues);
    // One popped guest TX chain into an mbuf (lent or copied); false if dropped.
    // `spare` is a pre-allocated mbuf the frame may take (then set to nullptr).
    template <class F>
    bool take_frame(PmdContext& ctx, Vring& v, uint16_t index, const MemTable* mem, const Chain& c, rte_mbuf*& spare,
                    rte_mbuf*& out);
    template <class F>
    rte_mbuf* lend(PmdContext& ctx, Vring& v, uint16_t index, const MemTable* mem, const Chain& c, rte_mbuf*& spare,
                   Drop& why);
    void give_back(Loan& loan);   // owner core: the descriptor returns to the guest
    // Owner core: TX buffer `head` is done with (copied, dropped, or its loan returned).
    template <class Q>
    void complete(Vring& v, uint16_t head);
    void take_returns(uint16_t pair);  // owner core: loans freed on other cores
    static void on_mbuf_free(void* addr, void* opaque);
    // Guest RX, pass 1: pops the RX buffers frame `cl.m` needs into rx_chains_ from
    // cl.first on and prefetches them; the drop reason if it cannot.
    struct RxClaim {
        rte_mbuf* m;
        uint16_t first, count;  // chains in rx_chains_
        bool too_small;         // one buffer without MRG_RXBUF, too small: returned empty
    };
    template <class F>
    std::optional<Drop> claim(Vring& v, RxClaim& cl, uint16_t& avail);
    // Guest RX, pass 2: copies the frame into its claimed buffers and marks them used.
    template <class F>
    void fill(PmdContext& ctx, Vring& v, const RxClaim& cl);
    // Dirty logging of guest RX: marks the bytes fill() wrote into the claimed buffers.
    void log_filled(Vring& v, std::span<const RxClaim> claims, uint32_t hdr_len);

    std::string path_;
    bool client_;
    std::string state_ = "waiting";
    RcuPointer<MemTable> memory_;
    RcuPointer<DirtyLog> log_;
    ProtocolStats protocol_;
    GraceStats grace_;
    std::array<Vring, 2 * kMaxQueuePairs> vrings_;
    static uint16_t pair_of(uint16_t ring) { return uint16_t(ring / 2); }
    uint16_t pair_of(const Vring& v) const { return uint16_t((&v - vrings_.data()) / 2); }
    std::array<std::atomic<uint8_t>, kMaxQueuePairs> rx_queues_{};  // set_rx_queues()
    std::atomic<uint8_t> rx_queue_count_{0};
    std::array<Counter, std::size_t(QueueFault::count_)> broken_;  // written by the rings' owner cores
    static constexpr uint32_t kNeverLend = UINT32_MAX;
    static inline uint32_t lend_min_ = 1024;  // --zero-copy-min's default
    // Merged RX buffers per frame: a 64 KiB TSO segment in 1.5 KiB buffers takes 44.
    static constexpr uint16_t kMaxRxChainsPerFrame = 48;
    static constexpr uint16_t kRxScan = 2 * kBurst;       // RX buffers counted at a time (packed rings scan)
    // A queue pair's own state beyond its two rings: only the pair's owner core touches
    // it, so pairs polled by different cores share nothing. Made by prepare_queue().
    struct PairScratch {
        std::array<Chain, 2 * kBurst + kMaxRxChainsPerFrame> rx_chains;  // one burst's claimed RX buffers
        std::array<RxClaim, kBurst> rx_claims;
        std::array<Chain, kBurst> tx_chains;  // one guest TX burst, walked before it is copied
    };
    struct Pair {
        std::unique_ptr<PairScratch> scratch;
        rte_ring* returns = nullptr;  // Loan* freed off the owner core (multi-producer)
        uint32_t lent = 0;            // owner core: buffers lent now
    };
    std::array<Pair, kMaxQueuePairs> pairs_;
    PairScratch& scratch(const Vring& v) { return *pairs_[pair_of(v)].scratch; }
};

}  // namespace vusw
