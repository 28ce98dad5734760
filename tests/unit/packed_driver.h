// Test helper: the driver side of a virtio 1.2 packed ring (§2.8) in memfd-backed guest
// memory, for the PackedQueue tests. Written from the spec, with its own constants and
// wrap counters: it shares nothing with the implementation but RingConfig. Ring
// addresses are front-end addresses (uva); buffer addresses are GPAs.
#pragma once

#include <cstring>
#include <optional>
#include <vector>

#include <doctest/doctest.h>

#include "tests/unit/memfd.h"
#include "vusw/packed_queue.h"

namespace vusw::test::packed {

// virtio 1.2 §2.8.13 and §2.8.14 (descriptor and event suppression formats): the driver's view.
namespace spec {
struct Desc {
    uint64_t addr;
    uint32_t len;
    uint16_t id;
    uint16_t flags;
};
constexpr uint16_t NEXT = 0x1, WRITE = 0x2, INDIRECT = 0x4;
constexpr uint16_t AVAIL = 0x80, USED = 0x8000;
constexpr uint16_t EVENT_ENABLE = 0x0, EVENT_DISABLE = 0x1, EVENT_DESC = 0x2;
constexpr uint16_t FRESH_RING = 0x8000;  // vring base of a new ring: index 0, wrap counter 1
}  // namespace spec

// Two regions adjacent in GPA (so a buffer may span them), far apart in UVA.
constexpr uint64_t kGpaA = 0x100000, kUvaA = 0x7f0000000000;
constexpr uint64_t kGpaB = 0x200000, kUvaB = 0x7f0000800000;
constexpr uint64_t kRegionSize = 0x100000;
// Ring placement inside region A: the descriptor ring and the two event areas.
constexpr uint64_t kRingOff = 0x0, kDriverEventOff = 0x10000, kDeviceEventOff = 0x20000;
constexpr uint64_t kBufGpa = kGpaA + 0x40000;
constexpr uint64_t kTableGpa = kGpaA + 0x80000;

struct Buf {
    uint64_t addr;
    uint32_t len;
    bool write = false;
};

struct Used {
    uint16_t id;
    uint32_t len;
};

// The driver side of one packed ring.
class PackedDriver {
public:
    explicit PackedDriver(uint16_t size, bool event_idx = false)
        : a_(make_region(kGpaA, kRegionSize, kUvaA)), b_(make_region(kGpaB, kRegionSize, kUvaB)), size_(size),
          event_idx_(event_idx), descs_of_(size, 0)
    {
        auto t = MemTable::from_regions({a_, b_});
        REQUIRE(t.has_value());
        mem_ = std::move(*t);
    }

    RingConfig config(uint16_t base = spec::FRESH_RING) const
    {
        RingConfig c{FrontendAddr{kUvaA + kRingOff}, FrontendAddr{kUvaA + kDriverEventOff},
                     FrontendAddr{kUvaA + kDeviceEventOff}, size_, base, event_idx_};
        c.packed = true;
        c.last_used = base;
        return c;
    }
    // A queue configured and attached to this ring, both sides starting at `base`.
    void attach(PackedQueue& q, uint16_t base = spec::FRESH_RING)
    {
        next_avail_ = next_used_ = base & 0x7fff;
        avail_wrap_ = used_wrap_ = base >> 15;
        q.configure(config(base));
        REQUIRE(q.attach(mem_.get()));
    }

    const MemTable* mem() const { return mem_.get(); }
    std::byte* host(uint64_t gpa) const { return mem_->translate(GuestPhysAddr{gpa}, 1); }
    spec::Desc* ring() const { return reinterpret_cast<spec::Desc*>(a_->host() + kRingOff); }
    spec::Desc* table(uint64_t offset = 0) const { return reinterpret_cast<spec::Desc*>(host(kTableGpa + offset)); }
    uint16_t next_avail() const { return next_avail_; }
    bool avail_wrap() const { return avail_wrap_; }

    // The AVAIL/USED bits that make a descriptor available in lap `wrap` (§2.8.1).
    static uint16_t avail_bits(bool wrap) { return wrap ? spec::AVAIL : spec::USED; }

    // Makes `bufs` available as one chain with buffer id `id` (§2.8.21): every descriptor
    // but the head first, the head's flags last, each with the wrap counter of its lap.
    void post(uint16_t id, const std::vector<Buf>& bufs)
    {
        REQUIRE(!bufs.empty());
        const uint16_t head = next_avail_;
        const bool head_wrap = avail_wrap_;
        uint16_t head_flags = 0;
        for (std::size_t i = 0; i < bufs.size(); ++i) {
            const uint16_t f = uint16_t((bufs[i].write ? spec::WRITE : 0) | (i + 1 < bufs.size() ? spec::NEXT : 0));
            raw(next_avail_, spec::Desc{bufs[i].addr, bufs[i].len, id, uint16_t(i == 0 ? 0 : f | avail_bits(avail_wrap_))});
            if (i == 0)
                head_flags = f;
            step(next_avail_, avail_wrap_);
        }
        ring()[head].flags = uint16_t(head_flags | avail_bits(head_wrap));
        descs_of_[id] = uint16_t(bufs.size());
    }
    // Makes an indirect table of `bufs` at kTableGpa + offset available with id `id`.
    void post_indirect(uint16_t id, const std::vector<Buf>& bufs, uint64_t offset = 0)
    {
        for (std::size_t i = 0; i < bufs.size(); ++i)
            table(offset)[i] = spec::Desc{bufs[i].addr, bufs[i].len, 0, uint16_t(bufs[i].write ? spec::WRITE : 0)};
        put(id, kTableGpa + offset, uint32_t(bufs.size() * sizeof(spec::Desc)), spec::INDIRECT);
    }
    // Writes one descriptor at the next position, flags as given plus the AVAIL/USED bits
    // of the current lap unless `available` is false, and moves on.
    void put(uint16_t id, uint64_t addr, uint32_t len, uint16_t flags, bool available = true)
    {
        raw(next_avail_, spec::Desc{addr, len, id, uint16_t(flags | (available ? avail_bits(avail_wrap_) : 0))});
        descs_of_[id % size_] = 1;
        step(next_avail_, avail_wrap_);
    }
    void raw(uint16_t index, const spec::Desc& d) { std::memcpy(&ring()[index], &d, sizeof d); }

    // The next used buffer, if the device has returned one (§2.8.1: a descriptor is used
    // when AVAIL and USED both equal the driver's used wrap counter). The next used
    // descriptor is as many positions on as the buffer's chain had descriptors.
    std::optional<Used> take_used()
    {
        const spec::Desc d = ring()[next_used_];
        const bool avail = d.flags & spec::AVAIL, used = d.flags & spec::USED;
        if (avail != used_wrap_ || used != used_wrap_)
            return std::nullopt;
        REQUIRE(d.id < size_);
        REQUIRE(descs_of_[d.id] > 0);
        for (uint16_t i = 0; i < descs_of_[d.id]; ++i)
            step(next_used_, used_wrap_);
        descs_of_[d.id] = 0;
        return Used{d.id, d.len};
    }
    uint16_t next_used() const { return next_used_; }
    bool used_wrap() const { return used_wrap_; }

    void set_driver_event(uint16_t flags, uint16_t off_wrap = 0)
    {
        auto* e = reinterpret_cast<uint16_t*>(a_->host() + kDriverEventOff);
        e[0] = off_wrap;
        e[1] = flags;
    }
    uint16_t device_event_flags() const { return reinterpret_cast<uint16_t*>(a_->host() + kDeviceEventOff)[1]; }

private:
    void step(uint16_t& index, bool& wrap) const
    {
        if (++index == size_) {
            index = 0;
            wrap = !wrap;
        }
    }

    std::shared_ptr<const MappedRegion> a_, b_;
    std::unique_ptr<MemTable> mem_;
    uint16_t size_;
    bool event_idx_;
    uint16_t next_avail_ = 0;
    bool avail_wrap_ = true;
    uint16_t next_used_ = 0;
    bool used_wrap_ = true;
    std::vector<uint16_t> descs_of_;  // by id: descriptors of the outstanding chain
};

}  // namespace vusw::test::packed
