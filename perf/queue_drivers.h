// The driver side of a split and of a packed virtqueue, for perf/queue_bench.cc: what a
// DPDK virtio PMD does with its rings (post chains, publish them, reap used entries), in
// the benchmark's own memfd-backed guest memory and the same thread as the device.
//
// Both drivers lay their chains out the same way, so the two queues see the same work:
// chain slot s (0 .. ring/descs-1) uses the buffers of slot s; a 2-descriptor chain is a
// 12-byte virtio-net header buffer plus a data buffer (the layout of drivers without
// ANY_LAYOUT), a 1-descriptor chain carries both in one buffer. Ids are given in order,
// as a DPDK PMD with IN_ORDER does (and as its free list does when the device returns
// buffers in order, which ours do). Every used entry is checked against what was posted:
// the benchmark measures queues that did the right thing, or fails.
#pragma once

#include <sys/mman.h>
#include <x86intrin.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "vusw/guest_memory.h"
#include "vusw/packed_queue.h"
#include "vusw/virtqueue.h"

namespace vusw::bench {

// What a ring carries: guest TX (device reads) or guest RX (device writes) chains of
// `descs` descriptors, with or without EVENT_IDX.
struct RingShape {
    uint16_t size = 256;
    uint16_t descs = 1;
    bool rx = false;
    bool event_idx = false;
    bool cold = false;  // keep the lines the driver touches (TouchedLines)
};

inline constexpr uint32_t kNetHdr = 12;      // virtio-net header with VERSION_1
inline constexpr uint32_t kTxFrame = 60;     // a 64-byte frame without its FCS
inline constexpr uint32_t kRxBuffer = 2048;  // DPDK's default mbuf data room
inline constexpr uint32_t kRxUsedLen = kNetHdr + kTxFrame;  // what the device reports written

[[noreturn]] inline void die(const char* what)
{
    std::fprintf(stderr, "queue_bench: %s\n", what);
    std::exit(1);
}

// The cache lines the driver touched in its turn, when asked to keep them: --cold flushes
// them before the device's turn, as the device's copies of lines another core wrote (or
// took shared) are gone. Lines the driver only read are then misses too, which costs the
// device more than a real shared line would, for both queue types.
class TouchedLines {
public:
    explicit TouchedLines(bool keep) : keep_(keep) {}
    void note(const void* p)
    {
        const uintptr_t line = reinterpret_cast<uintptr_t>(p) & ~uintptr_t(63);
        if (keep_ && (lines_.empty() || lines_.back() != line))
            lines_.push_back(line);
    }
    void flush()
    {
        for (uintptr_t line : lines_)
            _mm_clflush(reinterpret_cast<const void*>(line));
        lines_.clear();
    }

private:
    bool keep_;
    std::vector<uintptr_t> lines_;
};

// One memfd-backed region of guest memory: rings at the start, buffers after them.
class GuestMemory {
public:
    static constexpr uint64_t kGpa = 0x40000000, kUva = 0x7f0000000000, kSize = 4u << 20;
    static constexpr uint64_t kRingOff = 0, kDriverAreaOff = 0x10000, kDeviceAreaOff = 0x20000;
    static constexpr uint64_t kHdrOff = 0x40000, kBufOff = 0x100000;

    GuestMemory()
    {
        UniqueFd fd(memfd_create("queue-bench", MFD_CLOEXEC));
        if (!fd.valid() || ftruncate(fd.get(), off_t(kSize)) != 0)
            die("memfd");
        auto region = MappedRegion::map(std::move(fd), RegionDesc{kGpa, kSize, kUva, 0});
        if (!region)
            die("mapping guest memory");
        region_ = *region;
        auto table = MemTable::from_regions({region_});
        if (!table)
            die("memory table");
        table_ = std::move(*table);
    }
    const MemTable* table() const { return table_.get(); }
    template <class T>
    T* at(uint64_t off) const { return reinterpret_cast<T*>(region_->host() + off); }
    // Guest addresses of slot s's header and data buffers.
    static uint64_t hdr_gpa(uint16_t s) { return kGpa + kHdrOff + 64u * s; }
    static uint64_t buf_gpa(uint16_t s) { return kGpa + kBufOff + uint64_t(kRxBuffer) * s; }

private:
    std::shared_ptr<const MappedRegion> region_;
    std::unique_ptr<MemTable> table_;
};

// The (addr, len, WRITE) of descriptor `i` of slot `s`'s chain.
struct Piece {
    uint64_t addr;
    uint32_t len;
};
inline Piece piece(const RingShape& r, uint16_t s, uint16_t i)
{
    if (r.descs == 1)
        return {GuestMemory::buf_gpa(s), r.rx ? kRxBuffer : kNetHdr + kTxFrame};
    if (i == 0)
        return {GuestMemory::hdr_gpa(s), kNetHdr};
    return {GuestMemory::buf_gpa(s), r.rx ? kRxBuffer - kNetHdr : kTxFrame};
}

// What the driver expects back, in order: the slot, and the length the device wrote.
inline uint32_t expected_len(const RingShape& r)
{
    return r.rx ? kRxUsedLen : 0;
}

template <class T>
T load_acquire(const T* p)
{
    return std::atomic_ref<const T>(*p).load(std::memory_order_acquire);
}
template <class T>
void store_release(T* p, T v)
{
    std::atomic_ref<T>(*p).store(v, std::memory_order_release);
}

// virtio 1.2 §2.7: descriptor table, available ring (flags, idx, ring[], used_event),
// used ring (flags, idx, ring[], avail_event).
class SplitDriver {
public:
    explicit SplitDriver(const RingShape& r) : r_(r), slots_(uint16_t(r.size / r.descs)), touched_(r.cold) {}

    RingConfig config() const
    {
        return RingConfig{FrontendAddr{GuestMemory::kUva + GuestMemory::kRingOff},
                          FrontendAddr{GuestMemory::kUva + GuestMemory::kDriverAreaOff},
                          FrontendAddr{GuestMemory::kUva + GuestMemory::kDeviceAreaOff}, r_.size, 0, r_.event_idx};
    }
    const MemTable* memory() const { return mem_.table(); }
    TouchedLines& touched() { return touched_; }

    // Posts up to `n` chains (as many as free slots allow), then publishes them with one
    // avail->idx store. Returns how many.
    uint16_t post(uint16_t n)
    {
        uint16_t done = 0;
        for (; done < n && in_flight_ < slots_; ++done, ++in_flight_) {
            const uint16_t s = uint16_t(next_slot_++ % slots_), head = uint16_t(s * r_.descs);
            for (uint16_t i = 0; i < r_.descs; ++i) {
                const Piece p = piece(r_, s, i);
                const bool more = i + 1 < r_.descs;
                virtio::Desc& d = desc()[head + i];  // field by field, as DPDK's PMD writes them
                d.addr = p.addr;
                d.len = p.len;
                d.flags = uint16_t((r_.rx ? virtio::kDescWrite : 0) | (more ? virtio::kDescNext : 0));
                d.next = uint16_t(head + i + 1);
                touched_.note(&d);
            }
            touched_.note(&avail()[2 + (avail_idx_ & (r_.size - 1))]);
            avail()[2 + (avail_idx_++ & (r_.size - 1))] = head;
        }
        store_release(&avail()[1], avail_idx_);
        touched_.note(&avail()[1]);
        return done;
    }
    // Takes every used entry the device published, checking each. Asks for a
    // notification at the next one (EVENT_IDX) or for none.
    uint16_t reap()
    {
        const uint16_t idx = load_acquire(&used_hdr()[1]);
        touched_.note(used_hdr());
        uint16_t n = 0;
        for (; used_idx_ != idx; ++used_idx_, ++n) {
            const virtio::UsedElem e = used()[used_idx_ & (r_.size - 1)];
            touched_.note(&used()[used_idx_ & (r_.size - 1)]);
            const uint16_t s = uint16_t(reaped_++ % slots_);
            if (e.id != uint32_t(s * r_.descs) || e.len != expected_len(r_))
                die("split: a used entry that was not posted");
        }
        in_flight_ = uint16_t(in_flight_ - n);
        if (r_.event_idx) {
            store_release(&avail()[2 + r_.size], used_idx_);  // used_event
            touched_.note(&avail()[2 + r_.size]);
        } else {
            avail()[0] = virtio::kAvailNoInterrupt;
            touched_.note(avail());
        }
        return n;
    }

private:
    virtio::Desc* desc() const { return mem_.at<virtio::Desc>(GuestMemory::kRingOff); }
    uint16_t* avail() const { return mem_.at<uint16_t>(GuestMemory::kDriverAreaOff); }
    uint16_t* used_hdr() const { return mem_.at<uint16_t>(GuestMemory::kDeviceAreaOff); }
    virtio::UsedElem* used() const { return mem_.at<virtio::UsedElem>(GuestMemory::kDeviceAreaOff + 4); }

    GuestMemory mem_;
    RingShape r_;
    uint16_t slots_;
    TouchedLines touched_;
    uint16_t in_flight_ = 0;
    uint32_t next_slot_ = 0, reaped_ = 0;
    uint16_t avail_idx_ = 0, used_idx_ = 0;
};

// virtio 1.2 §2.8: one descriptor ring, driver and device event suppression areas.
class PackedDriver {
public:
    static constexpr uint16_t kFreshRing = 0x8000;  // vring base: index 0, wrap counter 1

    explicit PackedDriver(const RingShape& r) : r_(r), slots_(uint16_t(r.size / r.descs)), touched_(r.cold) {}

    RingConfig config() const
    {
        RingConfig c{FrontendAddr{GuestMemory::kUva + GuestMemory::kRingOff},
                     FrontendAddr{GuestMemory::kUva + GuestMemory::kDriverAreaOff},
                     FrontendAddr{GuestMemory::kUva + GuestMemory::kDeviceAreaOff}, r_.size, kFreshRing, r_.event_idx};
        c.packed = true;
        c.last_used = kFreshRing;
        return c;
    }
    const MemTable* memory() const { return mem_.table(); }
    TouchedLines& touched() { return touched_; }

    // Posts up to `n` chains, each published by its head's flags, stored last (§2.8.21).
    uint16_t post(uint16_t n)
    {
        uint16_t done = 0;
        for (; done < n && in_flight_ < slots_; ++done, ++in_flight_) {
            const uint16_t s = uint16_t(next_slot_++ % slots_), head = avail_idx_;
            const uint16_t head_flags = uint16_t(flags_for(0) | avail_bits(avail_wrap_));
            for (uint16_t i = 0; i < r_.descs; ++i) {
                const Piece p = piece(r_, s, i);
                virtio::PackedDesc& d = ring()[avail_idx_];
                d.addr = p.addr;
                d.len = p.len;
                d.id = s;
                if (i > 0)
                    d.flags = uint16_t(flags_for(i) | avail_bits(avail_wrap_));
                touched_.note(&d);
                step(avail_idx_, avail_wrap_);
            }
            store_release(&ring()[head].flags, head_flags);
        }
        return done;
    }
    // Takes every used descriptor (AVAIL and USED equal to our used wrap counter, §2.8.1),
    // checking each, and moves over the rest of its chain.
    uint16_t reap()
    {
        uint16_t n = 0;
        for (;; ++n) {
            const uint16_t f = load_acquire(&ring()[used_idx_].flags);
            touched_.note(&ring()[used_idx_]);
            if (bool(f & virtio::kDescAvail) != used_wrap_ || bool(f & virtio::kDescUsed) != used_wrap_)
                break;
            const virtio::PackedDesc& d = ring()[used_idx_];
            if (d.id != uint16_t(reaped_++ % slots_) || d.len != expected_len(r_))
                die("packed: a used descriptor that was not posted");
            for (uint16_t i = 0; i < r_.descs; ++i)
                step(used_idx_, used_wrap_);
        }
        in_flight_ = uint16_t(in_flight_ - n);
        virtio::PackedEvent& e = *mem_.at<virtio::PackedEvent>(GuestMemory::kDriverAreaOff);
        touched_.note(&e);
        if (r_.event_idx) {
            e.off_wrap = uint16_t(used_idx_ | (used_wrap_ ? 0x8000 : 0));
            store_release(&e.flags, virtio::kEventDesc);
        } else {
            store_release(&e.flags, virtio::kEventDisable);
        }
        return n;
    }

private:
    virtio::PackedDesc* ring() const { return mem_.at<virtio::PackedDesc>(GuestMemory::kRingOff); }
    uint16_t flags_for(uint16_t i) const
    {
        return uint16_t((r_.rx ? virtio::kDescWrite : 0) | (i + 1 < r_.descs ? virtio::kDescNext : 0));
    }
    static uint16_t avail_bits(bool wrap) { return wrap ? virtio::kDescAvail : virtio::kDescUsed; }
    void step(uint16_t& index, bool& wrap) const
    {
        if (++index == r_.size) {
            index = 0;
            wrap = !wrap;
        }
    }

    GuestMemory mem_;
    RingShape r_;
    uint16_t slots_;
    TouchedLines touched_;
    uint16_t in_flight_ = 0;
    uint32_t next_slot_ = 0, reaped_ = 0;
    uint16_t avail_idx_ = 0, used_idx_ = 0;
    bool avail_wrap_ = true, used_wrap_ = true;
};

}  // namespace vusw::bench
