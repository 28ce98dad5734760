// Split virtqueues (virtio 1.x, "Split Virtqueues"), device side.
//
// The queue knows rings and guest memory, not sockets or packets. Everything it reads
// from the ring is guest-controlled, so every index and length is checked: a violation
// sets a QueueFault and the queue stays broken until the front-end configures it again.
// A SplitQueue belongs to exactly one PMD core.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "vusw/dirty_log.h"
#include "vusw/guest_memory.h"

namespace vusw {

namespace virtio {
struct Desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};
static_assert(sizeof(Desc) == 16);

struct UsedElem {
    uint32_t id;
    uint32_t len;
};
static_assert(sizeof(UsedElem) == 8);

inline constexpr uint16_t kDescNext = 1;
inline constexpr uint16_t kDescWrite = 2;
inline constexpr uint16_t kDescIndirect = 4;
inline constexpr uint16_t kUsedNoNotify = 1;
inline constexpr uint16_t kAvailNoInterrupt = 1;
inline constexpr uint32_t kMaxQueueSize = 32768;
}  // namespace virtio

// Why a queue stopped being processed. Stable names: they are metric labels.
enum class QueueFault : uint8_t {
    none,
    ring_outside_memory,   // desc/avail/used area not inside guest memory
    avail_idx_jump,        // avail->idx ran more than the ring size ahead
    bad_desc_index,        // head or next index >= ring (or table) size
    chain_loop,            // more descriptors than the table holds
    desc_outside_memory,   // buffer not inside guest memory, or addr+len wraps
    zero_length_desc,
    bad_indirect,          // indirect with NEXT, or a length that is 0 or not a multiple of 16
    nested_indirect,
    wrong_direction,       // a device-writable buffer on TX, a read-only one on RX
    partial_chain,         // packed: a chain continues into a descriptor the driver has not made available
    count_
};
std::string_view fault_name(QueueFault f);

// Ring placement as SET_VRING_NUM/ADDR/BASE gave it.
struct RingConfig {
    FrontendAddr desc{0};
    FrontendAddr avail{0};
    FrontendAddr used{0};
    uint16_t size = 0;          // power of two, <= 32768
    uint16_t last_avail = 0;    // SET_VRING_BASE: split index; packed index | avail wrap counter << 15
    bool event_idx = false;     // VIRTIO_RING_F_EVENT_IDX negotiated
    bool packed = false;        // VIRTIO_F_RING_PACKED: desc = descriptor ring, avail/used = event areas
    uint16_t last_used = 0;     // packed: used index | used wrap counter << 15 (SET_VRING_BASE bits 16-31)
    // SET_VRING_ADDR's VHOST_VRING_F_LOG: the split used ring's guest-physical address for
    // dirty logging (`log_guest_addr`). Without it the used ring's own address is used.
    bool log_used = false;
    uint64_t log_addr = 0;
};

// One contiguous piece of a guest buffer in host memory.
struct Segment {
    std::byte* host;
    uint32_t len;
};

// A descriptor chain flattened into host segments (a buffer spanning two regions
// becomes two segments).
struct Chain {
    static constexpr std::size_t kMaxSegments = 64;
    uint16_t head = 0;       // split: head descriptor index; packed: buffer id (< ring size)
    uint16_t count = 0;
    uint64_t bytes = 0;      // bytes in seg[] (all of the chain unless too_long); 64 descriptors of 4 GiB must not wrap
    bool too_long = false;  // more segments than kMaxSegments: drop the packet, not the queue
    std::array<Segment, kMaxSegments> seg;
};

class SplitQueue {
public:
    // Control-supplied placement; takes effect at the next attach().
    void configure(const RingConfig& config);
    // Translates the ring through `mem` (a new snapshot, or after configure()).
    // Returns false and sets fault() when the rings are not inside guest memory.
    bool attach(const MemTable* mem);
    const MemTable* memory() const { return mem_; }

    // Entries the driver has made available and we have not popped, at most `limit`.
    // Faults on a jump.
    uint16_t available(uint16_t limit = UINT16_MAX);
    // Walks the chain at the next avail slot. Returns false (fault() set) on a
    // guest error that breaks the queue. `writable` is the direction we expect.
    bool pop(Chain& chain, bool writable);
    // Prefetches the head descriptors of the next `n` available chains, so a burst's
    // cache misses overlap instead of coming one chain at a time.
    void prefetch_heads(uint16_t n) const;
    // Prefetches, for writing, the used-ring entries the next `n` push_used() fill.
    void prefetch_used(uint16_t n) const;
    // Puts back the last `n` popped chains (RX: not enough buffers for a frame).
    void unpop(uint16_t n) { last_avail_ = uint16_t(last_avail_ - n); }
    // Goes back to an earlier last_avail() (RX: the chains popped since then are put back).
    void rewind(uint16_t last_avail) { last_avail_ = last_avail; }

    void push_used(uint16_t id, uint32_t len);
    // Publishes pushed entries; true when the driver wants an interrupt for them.
    bool flush_used();
    // Dirty logging: the used position flush_used() published last; after the next
    // flush_used(), log_used(log, that position) marks the used-ring bytes it published
    // (the entries and the index), and the used flags if attach() wrote them. Returns
    // the pages it newly marked; pages outside the log are added to `missed`.
    uint16_t published_used() const { return signalled_used_; }
    uint32_t log_used(const DirtyLog& log, uint16_t since, uint32_t& missed);
    // Logging starts: what was written before needs no mark (a migration copies all of
    // guest memory once after it turned logging on).
    void logging_starts() { flags_unlogged_ = false; }

    uint16_t last_avail() const { return last_avail_; }
    uint16_t size() const { return size_; }
    QueueFault fault() const { return fault_; }
    bool ready() const { return fault_ == QueueFault::none && desc_ != nullptr; }
    void break_with(QueueFault f) { fault_ = f; }

private:
    bool walk(const virtio::Desc* table, uint32_t table_size, uint16_t index, Chain& chain, bool writable);
    bool add_buffer(const virtio::Desc& d, Chain& chain);

    RingConfig config_{};
    const MemTable* mem_ = nullptr;
    virtio::Desc* desc_ = nullptr;
    uint16_t* avail_ = nullptr;         // flags, idx, ring[size], used_event
    uint16_t* used_hdr_ = nullptr;      // flags, idx
    virtio::UsedElem* used_ = nullptr;  // ring[size], then avail_event
    uint16_t size_ = 0;
    uint16_t last_avail_ = 0;
    uint16_t used_idx_ = 0;       // shadow of used->idx, published by flush_used()
    uint16_t signalled_used_ = 0; // used->idx at the last flush (EVENT_IDX)
    // Whether the driver was told about signalled_used_ by us: not after configure() at a
    // position other than the start. A ring taken over at a position (reconnect,
    // migration) may have had its last notification sent by someone else, or lost: its
    // first flush always notifies.
    bool signalled_valid_ = false;
    uint64_t used_gpa_ = 0;       // where used-ring writes are logged (attach())
    bool used_gpa_known_ = false;
    bool flags_unlogged_ = false; // attach() wrote used->flags
    QueueFault fault_ = QueueFault::none;
};

}  // namespace vusw
