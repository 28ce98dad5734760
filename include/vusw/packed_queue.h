// Packed virtqueues (virtio 1.2 §2.8), device side: the sibling of SplitQueue.
//
// Same shape as SplitQueue (configure/attach/available/pop/push_used/flush_used, faults
// as named values), so the vhost port's hot loops are instantiated for either queue
// type at ring set-up instead of branching per descriptor. Everything read from the ring
// is guest-controlled: descriptor flags, ids, lengths and chains are checked and a
// violation sets a QueueFault; the queue stays broken until the front-end configures
// it again. A PackedQueue belongs to exactly one PMD core.
//
// Ring placement (vhost-user SET_VRING_ADDR with VIRTIO_F_RING_PACKED): `desc` is the
// descriptor ring, `avail` the driver event suppression area, `used` the device event
// suppression area. The vring base (SET/GET_VRING_BASE) is index | wrap counter << 15.
#pragma once

#include <cstdint>
#include <vector>

#include "vusw/guest_memory.h"
#include "vusw/virtqueue.h"

namespace vusw {

namespace virtio {
struct PackedDesc {
    uint64_t addr;
    uint32_t len;
    uint16_t id;
    uint16_t flags;
};
static_assert(sizeof(PackedDesc) == 16);

// Event suppression structure (§2.8.10).
struct PackedEvent {
    uint16_t off_wrap;  // descriptor ring offset (bits 0-14) | wrap counter (bit 15)
    uint16_t flags;     // kEventEnable / kEventDisable / kEventDesc
};
static_assert(sizeof(PackedEvent) == 4);

inline constexpr uint16_t kDescAvail = 1 << 7;
inline constexpr uint16_t kDescUsed = 1 << 15;
inline constexpr uint16_t kEventEnable = 0;
inline constexpr uint16_t kEventDisable = 1;
inline constexpr uint16_t kEventDesc = 2;
}  // namespace virtio

class PackedQueue {
public:
    // Control-supplied placement (config.packed is true; last_avail/last_used carry the
    // wrap counters in bit 15); takes effect at the next attach(). May allocate (it runs
    // when the ring is set up, never per burst).
    void configure(const RingConfig& config);
    // Translates the rings through `mem`. Returns false and sets fault() when they are
    // not inside guest memory. Sets the device event flags to "disabled": we poll.
    bool attach(const MemTable* mem);
    const MemTable* memory() const { return mem_; }

    // Chains the driver has made available and we have not popped, counted up to `limit`
    // (found by scanning descriptor flags, so bounded by the caller). The scan is kept
    // between calls: each descriptor's flags are looked at once, not once per call.
    uint16_t available(uint16_t limit)
    {
        if (!ready())
            return 0;
        if (scan_chains_ < limit)
            scan(limit);
        return scan_chains_ < limit ? scan_chains_ : limit;
    }
    // Walks the chain at the next available descriptor. Returns false (fault() set) on a
    // guest error that breaks the queue. `writable` is the direction we expect. Call only
    // after available() said there is one.
    bool pop(Chain& chain, bool writable);
    void prefetch_heads(uint16_t n) const;
    void prefetch_used(uint16_t n) const;
    // Goes back to an earlier last_avail() (RX: the chains popped since are put back).
    void rewind(uint16_t last_avail);

    // Marks buffer `id` (a Chain::head from pop()) used with `len` bytes written. The
    // used descriptor goes where the device's used index is, and the index advances by
    // as many descriptors as that chain took in the ring.
    void push_used(uint16_t id, uint32_t len);
    // Publishes pushed entries; true when the driver wants a notification for them.
    bool flush_used();
    // Dirty logging, as SplitQueue: marks the used descriptors written since used
    // position `since` (a last_used() value), at the descriptor ring's guest address,
    // and the device event area if attach() wrote it.
    uint16_t published_used() const { return signalled_used_; }
    uint32_t log_used(const DirtyLog& log, uint16_t since, uint32_t& missed);
    void logging_starts() { event_unlogged_ = false; }

    // Vring base encoding: index | wrap counter << 15.
    uint16_t last_avail() const { return uint16_t(avail_idx_ | (avail_wrap_ ? 0x8000 : 0)); }
    uint16_t last_used() const { return uint16_t(used_idx_ | (used_wrap_ ? 0x8000 : 0)); }
    uint16_t size() const { return size_; }
    QueueFault fault() const { return fault_; }
    bool ready() const { return fault_ == QueueFault::none && desc_ != nullptr; }
    void break_with(QueueFault f) { fault_ = f; }

private:
    void scan(uint16_t limit);
    void consumed(uint16_t descs);
    void forget_scan();
    bool read_avail(uint16_t index, bool wrap, virtio::PackedDesc& d) const;
    bool pop_chain(virtio::PackedDesc d, Chain& chain, bool writable);
    bool popped(const virtio::PackedDesc& last, uint16_t descs, uint16_t index, bool wrap, Chain& chain);
    bool take(const virtio::PackedDesc& d, bool head, Chain& chain, bool writable);
    bool walk_indirect(const virtio::PackedDesc& d, Chain& chain, bool writable);
    bool add_buffer(const virtio::PackedDesc& d, Chain& chain, bool writable);
    bool add_pieces(const virtio::PackedDesc& d, Chain& chain);
    bool fail(QueueFault f)
    {
        fault_ = f;
        return false;
    }

    RingConfig config_{};
    const MemTable* mem_ = nullptr;
    virtio::PackedDesc* desc_ = nullptr;
    virtio::PackedEvent* driver_event_ = nullptr;
    virtio::PackedEvent* device_event_ = nullptr;
    uint16_t size_ = 0;
    uint16_t avail_idx_ = 0;
    bool avail_wrap_ = true;
    uint16_t used_idx_ = 0;
    bool used_wrap_ = true;
    uint16_t signalled_used_ = 0;        // last_used() at the last flush_used()
    bool signalled_valid_ = false;       // as SplitQueue: the first flush after configure() notifies
    uint64_t desc_gpa_ = 0;              // the descriptor ring's guest address (dirty logging)
    bool desc_gpa_known_ = false;
    uint64_t device_event_gpa_ = 0;
    bool event_unlogged_ = false;        // attach() wrote the device event flags
    // available()'s scan so far: it looked at scan_ahead_ descriptors from the next
    // available one on and found scan_chains_ chain heads among them; scan_in_chain_:
    // the last one had NEXT (the next one continues its chain).
    uint16_t scan_ahead_ = 0;
    uint16_t scan_chains_ = 0;
    bool scan_in_chain_ = false;
    std::vector<uint16_t> descs_of_id_;  // by buffer id: ring descriptors its chain took
    QueueFault fault_ = QueueFault::none;
};

}  // namespace vusw
