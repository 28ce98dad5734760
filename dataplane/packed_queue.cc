// Packed virtqueue walking, device side (virtio 1.2 §2.8).
//
// One ring of descriptors serves both directions: the driver makes a descriptor
// available by setting its AVAIL flag to its wrap counter and USED to the inverse; we
// return a buffer by writing a descriptor at our used position with both flags equal to
// our used wrap counter. Ring sizes need not be powers of two, so indices wrap by
// comparison, never by mask.
#include "vusw/packed_queue.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <utility>

#include "dataplane/barrier.h"
#include "dataplane/guest_buffer.h"
#include "vusw/prefetch.h"

namespace vusw {
namespace {

constexpr uint16_t kWrapBit = 1u << 15;  // vring base and off_wrap: index | wrap counter << 15
constexpr uint16_t kDescsPerLine = 64 / sizeof(virtio::PackedDesc);
constexpr uint16_t kScanPrefetch = 8 * kDescsPerLine;  // how far available()'s scan prefetches ahead

// §2.8.1: available when AVAIL matches the driver's wrap counter and USED does not.
// One mask and one compare.
bool is_avail(uint16_t flags, bool wrap)
{
    return (flags & (virtio::kDescAvail | virtio::kDescUsed)) == (wrap ? virtio::kDescAvail : virtio::kDescUsed);
}

// The index `by` positions after `index`, for prefetching (no wrap counter). Only rings
// smaller than `by` need the division.
uint16_t ahead_of(uint16_t index, uint16_t by, uint16_t size)
{
    uint32_t next = uint32_t(index) + by;
    if (next >= size)
        next -= size;
    return uint16_t(next >= size ? next % size : next);
}

// One prefetch per cache line of `count` (<= size) descriptors from `index` on.
void prefetch_descs(const virtio::PackedDesc* ring, uint16_t index, uint16_t count, uint16_t size, bool write)
{
    const auto fetch = [&](uint16_t i) {
        if (write)
            prefetch_for_write(&ring[ahead_of(index, i, size)]);
        else
            __builtin_prefetch(&ring[ahead_of(index, i, size)]);
    };
    for (uint16_t i = 0; i < count; i = uint16_t(i + kDescsPerLine))
        fetch(i);
    if (count > 1)
        fetch(uint16_t(count - 1));  // the last line, when `index` is not at a line start
}

// Steps a ring position by one, flipping its wrap counter at the end.
void step(uint16_t& index, bool& wrap, uint16_t size)
{
    if (++index == size) {
        index = 0;
        wrap = !wrap;
    }
}

// Steps a ring position, flipping its wrap counter when it passes the end.
void advance(uint16_t& index, bool& wrap, uint16_t by, uint16_t size)
{
    const uint32_t next = uint32_t(index) + by;
    if (next >= size) {
        index = uint16_t(next - size);
        wrap = !wrap;
    } else {
        index = uint16_t(next);
    }
}

// Whether the used index crossed the driver's event position (off_wrap) going from
// `old` to `now` (all three as index | wrap << 15): §2.8.10's EVENT_IDX rule, the
// packed form of vring_need_event. Positions are placed on one line relative to the lap
// `now` is in; a position with the other wrap counter is in the lap before.
bool crossed_event(uint16_t off_wrap, uint16_t old, uint16_t now, uint16_t size)
{
    const bool lap = now & kWrapBit;
    const auto line = [&](uint16_t encoded) {
        const int32_t index = encoded & ~kWrapBit;
        return bool(encoded & kWrapBit) == lap ? index : index - int32_t(size);
    };
    const int32_t from = line(old), to = now & ~kWrapBit, event = line(off_wrap);
    if (from >= to)
        return true;  // more than a lap since the last flush (a confused guest): notify
    return from <= event && event < to;
}

}  // namespace

// Nothing known about what follows the next available descriptor.
[[gnu::always_inline]] inline void PackedQueue::forget_scan()
{
    scan_ahead_ = 0;
    scan_chains_ = 0;
    scan_in_chain_ = false;
}

void PackedQueue::configure(const RingConfig& config)
{
    config_ = config;
    size_ = config.size;
    avail_idx_ = config.last_avail & ~kWrapBit;
    avail_wrap_ = config.last_avail & kWrapBit;
    used_idx_ = config.last_used & ~kWrapBit;
    used_wrap_ = config.last_used & kWrapBit;
    signalled_used_ = config.last_used;
    signalled_valid_ = config.last_used == kWrapBit;  // a fresh ring has nothing to catch up on
    descs_of_id_.assign(size_, 1);
    forget_scan();
    mem_ = nullptr;
    desc_ = nullptr;
    driver_event_ = nullptr;
    device_event_ = nullptr;
    fault_ = QueueFault::none;
    if (size_ != 0 && (avail_idx_ >= size_ || used_idx_ >= size_))
        fault_ = QueueFault::bad_desc_index;  // a vring base outside the ring
}

bool PackedQueue::attach(const MemTable* mem)
{
    mem_ = mem;
    desc_ = nullptr;  // never write through a mapping the new snapshot dropped
    forget_scan();
    driver_event_ = nullptr;
    device_event_ = nullptr;
    if (size_ == 0 || size_ > virtio::kMaxQueueSize || mem == nullptr)
        return false;
    auto* desc = mem->translate_uva(config_.desc, uint64_t(size_) * sizeof(virtio::PackedDesc));
    auto* driver = mem->translate_uva(config_.avail, sizeof(virtio::PackedEvent));
    auto* device = mem->translate_uva(config_.used, sizeof(virtio::PackedEvent));
    // §2.8.10.1 (Structure Size and Alignment): ring 16-byte aligned, event areas 4.
    const bool aligned = (config_.desc.value % 16 | config_.avail.value % 4 | config_.used.value % 4) == 0;
    if (desc == nullptr || driver == nullptr || device == nullptr || !aligned) {
        fault_ = QueueFault::ring_outside_memory;
        return false;
    }
    if (fault_ == QueueFault::ring_outside_memory)
        fault_ = QueueFault::none;  // the front-end (or a new table) fixed it
    desc_ = reinterpret_cast<virtio::PackedDesc*>(desc);
    driver_event_ = reinterpret_cast<virtio::PackedEvent*>(driver);
    device_event_ = reinterpret_cast<virtio::PackedEvent*>(device);
    desc_gpa_known_ = mem->uva_to_gpa(config_.desc, desc_gpa_) && mem->uva_to_gpa(config_.used, device_event_gpa_);
    // We poll: ask the driver not to notify us of available buffers.
    // Written only when it changes (a re-attach writes nothing), and logged if it does.
    std::atomic_ref<uint16_t> flags(device_event_->flags);
    if (flags.load(std::memory_order_relaxed) != virtio::kEventDisable) {
        flags.store(virtio::kEventDisable, std::memory_order_relaxed);
        event_unlogged_ = true;
    }
    return fault_ == QueueFault::none;
}

// Looks at the flags of descriptors not scanned yet until `limit` chain heads are known,
// one is not available, or the whole ring was scanned. A head is a descriptor that does
// not follow one with NEXT. The scan state is kept in locals: our members are uint16_t
// like the ring's flags, so the compiler would store them back after every ring load.
void PackedQueue::scan(uint16_t limit)
{
    uint16_t index = avail_idx_, ahead = scan_ahead_, chains = scan_chains_;
    bool wrap = avail_wrap_, in_chain = scan_in_chain_;
    advance(index, wrap, ahead, size_);
    const uint16_t size = size_;
    const virtio::PackedDesc* ring = desc_;
    // At least one descriptor per chain still wanted; the loop keeps prefetching further.
    const uint16_t wanted = std::min<uint16_t>(uint16_t(limit - chains), kScanPrefetch);
    for (uint16_t i = 0; i < wanted; i = uint16_t(i + kDescsPerLine))
        __builtin_prefetch(&ring[ahead_of(index, i, size)]);
    for (; ahead < size && chains < limit; ++ahead) {
        // The lines the driver wrote last are misses: keep kScanPrefetch descriptors ahead.
        if (reinterpret_cast<uintptr_t>(&ring[index]) % 64 == 0)
            __builtin_prefetch(&ring[ahead_of(index, kScanPrefetch, size)]);
        const uint16_t flags = load_acquire(&ring[index].flags);
        if (!is_avail(flags, wrap))
            break;
        chains = uint16_t(chains + !in_chain);
        in_chain = flags & virtio::kDescNext;
        step(index, wrap, size);
    }
    scan_ahead_ = ahead;
    scan_chains_ = chains;
    scan_in_chain_ = in_chain;
}

// pop() took a chain of `descs` descriptors. The scan moves with the next available
// position. It only tells how many chains to pop (pop() checks every descriptor again),
// but a driver that rewrote flags after the scan can make pop() take other chains than
// it counted: whenever what is left would claim no head, or more heads than
// descriptors, it starts afresh, so the count can neither stall nor run away.
[[gnu::always_inline]] inline void PackedQueue::consumed(uint16_t descs)
{
    if (descs < scan_ahead_ && scan_chains_ > 1 && scan_chains_ - 1 <= scan_ahead_ - descs) {
        scan_ahead_ = uint16_t(scan_ahead_ - descs);
        --scan_chains_;
    } else {
        forget_scan();
    }
}

// Copies the ring descriptor at `index` if the driver made it available in lap `wrap`:
// flags first (acquire: the driver wrote the rest before them), then the rest, once.
// Inlined, as add_buffer(): both run for every descriptor.
[[gnu::always_inline]] inline bool PackedQueue::read_avail(uint16_t index, bool wrap, virtio::PackedDesc& d) const
{
    const uint16_t flags = load_acquire(&desc_[index].flags);
    if (!is_avail(flags, wrap))
        return false;
    // One read of each field (the guest may rewrite them under us), into registers: a
    // copy of the whole descriptor went through the stack and stalled the loads after it.
    const virtio::PackedDesc& r = desc_[index];
    d.addr = r.addr;
    d.len = r.len;
    d.id = r.id;
    d.flags = flags;  // and go by the flags we checked
    return true;
}

[[gnu::always_inline]] inline bool PackedQueue::add_buffer(const virtio::PackedDesc& d, Chain& chain, bool writable)
{
    if (bool(d.flags & virtio::kDescWrite) != writable)
        return fail(QueueFault::wrong_direction);
    // The common case, a buffer inside one region, in one translation. Anything else
    // (zero length, several regions, outside memory, a full chain) takes the whole walk.
    const std::span<std::byte> piece = mem_->translate_prefix(GuestPhysAddr{d.addr}, d.len);
    if (d.len != 0 && piece.size() == d.len && chain.count < Chain::kMaxSegments) {
        chain.seg[chain.count++] = Segment{piece.data(), d.len};
        chain.bytes += d.len;
        return true;
    }
    return add_pieces(d, chain);
}

// Out of line, so that the inlined common case keeps few registers.
[[gnu::noinline]] bool PackedQueue::add_pieces(const virtio::PackedDesc& d, Chain& chain)
{
    const QueueFault f = append_buffer(*mem_, d.addr, d.len, chain);
    return f == QueueFault::none || fail(f);
}

// §2.8.7: an indirect table holds len/16 descriptors in the ring's layout, used in
// order; inside it only WRITE means anything (NEXT and the ids are ignored, §2.8.19),
// and only on RX (see below).
bool PackedQueue::walk_indirect(const virtio::PackedDesc& d, Chain& chain, bool writable)
{
    if ((d.flags & virtio::kDescNext) || d.len == 0 || d.len % sizeof(virtio::PackedDesc) != 0)
        return fail(QueueFault::bad_indirect);
    const std::byte* table = mem_->translate(GuestPhysAddr{d.addr}, d.len);
    if (table == nullptr)
        return fail(QueueFault::desc_outside_memory);
    for (uint32_t i = 0; i < d.len / sizeof(virtio::PackedDesc); ++i) {
        virtio::PackedDesc e;  // one read; the table need not be aligned
        std::memcpy(&e, table + i * sizeof e, sizeof e);
        if (e.flags & virtio::kDescIndirect)
            return fail(QueueFault::nested_indirect);
        // DPDK's virtio PMD fills its TX tables' entries with WRITE and leaves it on the
        // header entry (vring_desc_init_indirect_packed). We never write a TX buffer, so
        // only an RX table's entries are held to their direction.
        if (!writable)
            e.flags &= uint16_t(~virtio::kDescWrite);
        if (!add_buffer(e, chain, writable))
            return false;
    }
    return true;
}

// One ring descriptor of a chain. INDIRECT is allowed only on a chain's first and only
// descriptor: §2.8.19 forbids it in a list linked by NEXT, and the split queue refuses
// it there too.
[[gnu::always_inline]] inline bool PackedQueue::take(const virtio::PackedDesc& d, bool head, Chain& chain, bool writable)
{
    if (!(d.flags & virtio::kDescIndirect))
        return add_buffer(d, chain, writable);
    if (!head)
        return fail(QueueFault::nested_indirect);
    return walk_indirect(d, chain, writable);  // the table's own WRITE flag is ignored
}

// The chain ended with `last` after `descs` ring descriptors; the next one is at
// (index, wrap). §2.8.6: the buffer id is in the chain's last descriptor.
[[gnu::always_inline]] inline bool PackedQueue::popped(const virtio::PackedDesc& last, uint16_t descs, uint16_t index, bool wrap, Chain& chain)
{
    if (last.id >= size_)
        return fail(QueueFault::bad_desc_index);
    chain.head = last.id;
    descs_of_id_[last.id] = descs;
    avail_idx_ = index;
    avail_wrap_ = wrap;
    consumed(descs);
    return true;
}

bool PackedQueue::pop(Chain& chain, bool writable)
{
    chain.count = 0;
    chain.bytes = 0;
    chain.too_long = false;
    if (!ready())
        return false;
    virtio::PackedDesc d;
    // Available chains are whole (§2.8.21: the driver makes the head available last), so
    // a chain starting or running into a descriptor that is not is a broken driver.
    if (!read_avail(avail_idx_, avail_wrap_, d))
        return fail(QueueFault::partial_chain);
    if (d.flags & (virtio::kDescNext | virtio::kDescIndirect))
        return pop_chain(d, chain, writable);
    if (!add_buffer(d, chain, writable))  // one buffer: the common case
        return false;
    uint16_t index = avail_idx_;
    bool wrap = avail_wrap_;
    step(index, wrap, size_);
    return popped(d, 1, index, wrap, chain);
}

// A chain of several ring descriptors, or an indirect table; `d` is its head.
bool PackedQueue::pop_chain(virtio::PackedDesc d, Chain& chain, bool writable)
{
    uint16_t index = avail_idx_;
    bool wrap = avail_wrap_;
    uint16_t taken = 0;
    for (;;) {
        if (!take(d, taken == 0, chain, writable))
            return false;
        ++taken;
        step(index, wrap, size_);
        if (!(d.flags & virtio::kDescNext))
            return popped(d, taken, index, wrap, chain);
        if (taken == size_)
            return fail(QueueFault::chain_loop);
        if (!read_avail(index, wrap, d))
            return fail(QueueFault::partial_chain);
    }
}

// The descriptors of the chains available() counted were read by its scan: only the
// ones after them need a prefetch.
void PackedQueue::prefetch_heads(uint16_t n) const
{
    if (desc_ == nullptr || n <= scan_chains_)
        return;
    const uint16_t from = ahead_of(avail_idx_, scan_ahead_ % size_, size_);
    prefetch_descs(desc_, from, std::min(uint16_t(n - scan_chains_), size_), size_, false);
}

// Used descriptors are written over the ring where the next chains were made available:
// prefetched for writing, about as many as those chains take. The scan saw how many
// descriptors are not heads; chains are mostly of one or two, so up to two each are
// prefetched (a hint: no division on the hot path for an exact share).
void PackedQueue::prefetch_used(uint16_t n) const
{
    if (desc_ == nullptr || n == 0)
        return;
    const uint32_t descs = uint32_t(n) + std::min<uint32_t>(n, uint16_t(scan_ahead_ - scan_chains_));
    prefetch_descs(desc_, used_idx_, uint16_t(std::min<uint32_t>(descs, size_)), size_, true);
}

void PackedQueue::rewind(uint16_t last_avail)
{
    avail_idx_ = last_avail & ~kWrapBit;
    avail_wrap_ = last_avail & kWrapBit;
    forget_scan();
    if (avail_idx_ >= size_)
        fault_ = QueueFault::bad_desc_index;  // not a position this queue handed out
}

void PackedQueue::push_used(uint16_t id, uint32_t len)
{
    if (desc_ == nullptr || id >= size_)
        return;  // rings not in guest memory: the entry is lost with the broken queue
    // §2.8.6: the used position skips the rest of the chain's descriptors. Read before
    // the stores into the ring, which the compiler must assume could change it.
    const uint16_t descs = std::max<uint16_t>(descs_of_id_[id], 1);
    uint16_t index = used_idx_;
    bool wrap = used_wrap_;
    virtio::PackedDesc& u = desc_[index];
    u.id = id;
    u.len = len;
    // §2.8.1: used when AVAIL and USED both equal our used wrap counter. The flags are
    // what the driver polls, so they go last.
    const uint16_t flags = wrap ? virtio::kDescAvail | virtio::kDescUsed : 0;
    std::atomic_ref<uint16_t>(u.flags).store(flags, std::memory_order_release);
    advance(index, wrap, descs, size_);
    used_idx_ = index;
    used_wrap_ = wrap;
}

bool PackedQueue::flush_used()
{
    const uint16_t now = last_used();
    const uint16_t old = signalled_used_;
    if (now == old || driver_event_ == nullptr)
        return false;
    signalled_used_ = now;
    // The driver's suppression flags must be read after our used descriptors are visible.
    store_load_barrier();
    const uint16_t flags = load_acquire(&driver_event_->flags);
    if (flags == virtio::kEventDisable)
        return false;
    if (flags != virtio::kEventDesc || !config_.event_idx)
        return true;  // enabled (or a value we do not know: a spare interrupt is harmless)
    const uint16_t off_wrap = std::atomic_ref<uint16_t>(driver_event_->off_wrap).load(std::memory_order_relaxed);
    if (!std::exchange(signalled_valid_, true))
        return true;  // the event may lie before `old`: its notification was not ours to send
    return crossed_event(off_wrap, old, now, size_);
}

uint32_t PackedQueue::log_used(const DirtyLog& log, uint16_t since, uint32_t& missed)
{
    const uint16_t now = last_used();
    if ((now == since && !event_unlogged_) || desc_ == nullptr)
        return 0;
    if (!desc_gpa_known_) {
        ++missed;
        return 0;
    }
    uint32_t pages = 0;
    if (std::exchange(event_unlogged_, false))
        pages += log.mark(device_event_gpa_ + offsetof(virtio::PackedEvent, flags), sizeof(uint16_t), missed);
    if (now == since)
        return pages;
    // Descriptors [since, now) in ring order: the same wrap counter means no wrap between
    // them; a different one, that the ring wrapped once (a full ring when the indexes match).
    constexpr uint16_t kIndex = 0x7fff;
    const uint16_t from = since & kIndex, to = now & kIndex;
    const bool wrapped = (since ^ now) & 0x8000;
    const uint64_t d = sizeof(virtio::PackedDesc);
    if (!wrapped)
        return pages + log.mark(desc_gpa_ + d * from, d * uint64_t(to - from), missed);
    pages += log.mark(desc_gpa_ + d * from, d * uint64_t(size_ - from), missed);
    if (to > 0)
        pages += log.mark(desc_gpa_, d * to, missed);
    return pages;
}

}  // namespace vusw
