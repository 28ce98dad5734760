// Split virtqueue walking, device side (virtio 1.2 §2.7).
#include "vusw/virtqueue.h"

#include "dataplane/barrier.h"
#include "dataplane/guest_buffer.h"
#include "vusw/prefetch.h"

#include <algorithm>
#include <atomic>
#include <utility>

namespace vusw {
namespace {

constexpr std::array<std::string_view, std::size_t(QueueFault::count_)> kFaultNames = {
    "none", "ring_outside_memory", "avail_idx_jump", "bad_desc_index", "chain_loop",
    "desc_outside_memory", "zero_length_desc", "bad_indirect", "nested_indirect", "wrong_direction",
    "partial_chain",
};

}  // namespace

std::string_view fault_name(QueueFault f)
{
    return kFaultNames[std::size_t(f)];
}

void SplitQueue::configure(const RingConfig& config)
{
    config_ = config;
    size_ = config.size;
    last_avail_ = config.last_avail;
    used_idx_ = config.last_avail;  // in-order device: everything before it was returned
    signalled_used_ = used_idx_;
    signalled_valid_ = config.last_avail == 0;  // a fresh ring has nothing to catch up on
    mem_ = nullptr;
    desc_ = nullptr;
    fault_ = QueueFault::none;
}

bool SplitQueue::attach(const MemTable* mem)
{
    mem_ = mem;
    desc_ = nullptr;
    avail_ = nullptr;
    used_hdr_ = nullptr;  // never write through a mapping the new snapshot dropped
    used_ = nullptr;
    if (size_ == 0 || mem == nullptr)
        return false;
    const uint64_t event = config_.event_idx ? 2 : 0;  // used_event / avail_event words
    auto* desc = mem->translate_uva(config_.desc, uint64_t(size_) * sizeof(virtio::Desc));
    auto* avail = mem->translate_uva(config_.avail, 4 + 2 * uint64_t(size_) + event);
    auto* used = mem->translate_uva(config_.used, 4 + 8 * uint64_t(size_) + event);
    const bool aligned = (config_.desc.value % 16 | config_.avail.value % 2 | config_.used.value % 4) == 0;
    if (desc == nullptr || avail == nullptr || used == nullptr || !aligned) {
        fault_ = QueueFault::ring_outside_memory;
        return false;
    }
    if (fault_ == QueueFault::ring_outside_memory)
        fault_ = QueueFault::none;  // the front-end (or a new table) fixed it
    desc_ = reinterpret_cast<virtio::Desc*>(desc);
    avail_ = reinterpret_cast<uint16_t*>(avail);
    used_hdr_ = reinterpret_cast<uint16_t*>(used);
    used_ = reinterpret_cast<virtio::UsedElem*>(used + 4);
    used_gpa_ = config_.log_addr;
    used_gpa_known_ = config_.log_used || mem->uva_to_gpa(config_.used, used_gpa_);
    // We poll: ask the driver not to kick us (ignored under EVENT_IDX, where we never
    // move avail_event, so kicks stay rare).
    // Written only when it changes (a re-attach writes nothing), and logged if it does.
    std::atomic_ref<uint16_t> flags(used_hdr_[0]);
    if (flags.load(std::memory_order_relaxed) != virtio::kUsedNoNotify) {
        flags.store(virtio::kUsedNoNotify, std::memory_order_relaxed);
        flags_unlogged_ = true;
    }
    return fault_ == QueueFault::none;
}

uint16_t SplitQueue::available(uint16_t limit)
{
    if (!ready())
        return 0;
    const uint16_t n = uint16_t(load_acquire(&avail_[1]) - last_avail_);
    if (n > size_) {
        fault_ = QueueFault::avail_idx_jump;
        return 0;
    }
    return std::min(n, limit);
}

bool SplitQueue::add_buffer(const virtio::Desc& d, Chain& chain)
{
    const QueueFault f = append_buffer(*mem_, d.addr, d.len, chain);
    if (f != QueueFault::none)
        fault_ = f;
    return f == QueueFault::none;
}

bool SplitQueue::walk(const virtio::Desc* table, uint32_t table_size, uint16_t index, Chain& chain, bool writable)
{
    for (uint32_t steps = 0;; ++steps) {
        if (steps >= table_size) {
            fault_ = QueueFault::chain_loop;
            return false;
        }
        if (index >= table_size) {
            fault_ = QueueFault::bad_desc_index;
            return false;
        }
        const virtio::Desc d = table[index];  // one read: the guest may rewrite it under us
        if (d.flags & virtio::kDescIndirect) {
            fault_ = QueueFault::nested_indirect;
            return false;
        }
        if (bool(d.flags & virtio::kDescWrite) != writable) {
            fault_ = QueueFault::wrong_direction;
            return false;
        }
        if (!add_buffer(d, chain))
            return false;
        if (!(d.flags & virtio::kDescNext))
            return true;
        index = d.next;
    }
}

bool SplitQueue::pop(Chain& chain, bool writable)
{
    chain.count = 0;
    chain.bytes = 0;
    chain.too_long = false;
    const uint16_t head = load_acquire(&avail_[2 + (last_avail_ & (size_ - 1))]);
    if (head >= size_) {
        fault_ = QueueFault::bad_desc_index;
        return false;
    }
    chain.head = head;
    ++last_avail_;
    const virtio::Desc d = desc_[head];  // one read: the guest may rewrite it under us
    if (!(d.flags & (virtio::kDescIndirect | virtio::kDescNext))) {  // one buffer: the common case
        if (bool(d.flags & virtio::kDescWrite) != writable) {
            fault_ = QueueFault::wrong_direction;
            return false;
        }
        return add_buffer(d, chain);
    }
    if (!(d.flags & virtio::kDescIndirect))
        return walk(desc_, size_, head, chain, writable);
    // Spec §2.7.5.3.1: the driver must not set NEXT together with INDIRECT, and the table
    // holds len/16 descriptors.
    if ((d.flags & virtio::kDescNext) || d.len == 0 || d.len % sizeof(virtio::Desc) != 0) {
        fault_ = QueueFault::bad_indirect;
        return false;
    }
    const auto* table = reinterpret_cast<const virtio::Desc*>(mem_->translate(GuestPhysAddr{d.addr}, d.len));
    if (table == nullptr) {
        fault_ = QueueFault::desc_outside_memory;
        return false;
    }
    return walk(table, d.len / sizeof(virtio::Desc), 0, chain, writable);
}

void SplitQueue::prefetch_heads(uint16_t n) const
{
    for (uint16_t i = 0; i < n; ++i) {
        const uint16_t head = avail_[2 + ((last_avail_ + i) & (size_ - 1))];  // a hint only: pop() checks it
        __builtin_prefetch(&desc_[head & (size_ - 1)]);
    }
}

void SplitQueue::prefetch_used(uint16_t n) const
{
    if (used_ == nullptr || n == 0)
        return;
    // Used entries are 8 bytes: one prefetch per cache line, wrapping with the ring.
    constexpr uint16_t kPerLine = 64 / sizeof(virtio::UsedElem);
    for (uint16_t i = 0; i < n; i = uint16_t(i + kPerLine))
        prefetch_for_write(&used_[(used_idx_ + i) & (size_ - 1)]);
    prefetch_for_write(&used_[(used_idx_ + n - 1) & (size_ - 1)]);
}

void SplitQueue::push_used(uint16_t id, uint32_t len)
{
    if (used_ == nullptr)
        return;  // rings not in guest memory: the entry is lost with the broken queue
    virtio::UsedElem& e = used_[used_idx_ & (size_ - 1)];
    e.id = id;
    e.len = len;
    ++used_idx_;
}

bool SplitQueue::flush_used()
{
    const uint16_t old = signalled_used_;
    if (old == used_idx_ || used_hdr_ == nullptr)
        return false;
    std::atomic_ref<uint16_t>(used_hdr_[1]).store(used_idx_, std::memory_order_release);
    signalled_used_ = used_idx_;
    // The driver's suppression flags must be read after our index store is visible.
    store_load_barrier();
    if (!config_.event_idx)
        return !(load_acquire(&avail_[0]) & virtio::kAvailNoInterrupt);
    const uint16_t used_event = load_acquire(&avail_[2 + size_]);
    if (!std::exchange(signalled_valid_, true))
        return true;  // used_event may lie before `old`: its notification was not ours to send
    return uint16_t(used_idx_ - used_event - 1) < uint16_t(used_idx_ - old);
}

uint32_t SplitQueue::log_used(const DirtyLog& log, uint16_t since, uint32_t& missed)
{
    const uint16_t n = uint16_t(used_idx_ - since);
    if ((n == 0 && !flags_unlogged_) || used_ == nullptr)
        return 0;
    flags_unlogged_ = false;
    if (!used_gpa_known_) {
        ++missed;
        return 0;
    }
    if (n == 0)
        return log.mark(used_gpa_, 2, missed);
    // Entries [since, used_idx_) wrap the ring at most once; then flags and idx.
    constexpr uint64_t kEntries = 4;  // offset of ring[] in the used ring
    const uint16_t first = since & (size_ - 1);
    const uint16_t head = std::min<uint16_t>(n, uint16_t(size_ - first));
    uint32_t pages = log.mark(used_gpa_ + kEntries + 8 * uint64_t(first), 8 * uint64_t(head), missed);
    if (head < n)
        pages += log.mark(used_gpa_ + kEntries, 8 * uint64_t(n - head), missed);
    return pages + log.mark(used_gpa_, kEntries, missed);
}

}  // namespace vusw
