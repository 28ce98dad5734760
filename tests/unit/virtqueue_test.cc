// SplitQueue against a fake driver that lays out a virtio 1.x split ring in memfd-backed
// guest memory. Ring addresses are front-end addresses (uva); buffer addresses are GPAs.
#include "vusw/virtqueue.h"

#include <cstring>
#include <numeric>

#include <doctest/doctest.h>

#include "tests/unit/memfd.h"

using namespace vusw;
using vusw::test::make_region;
using virtio::Desc;

namespace {

// Guest memory: two regions adjacent in GPA (so a buffer may span them), far apart in UVA.
constexpr uint64_t kGpaA = 0x100000, kUvaA = 0x7f0000000000;
constexpr uint64_t kGpaB = 0x200000, kUvaB = 0x7f0000800000;
constexpr uint64_t kRegionSize = 0x100000;
// Ring placement inside region A.
constexpr uint64_t kDescOff = 0x0, kAvailOff = 0x10000, kUsedOff = 0x20000;
// Buffers and indirect tables live from here on.
constexpr uint64_t kBufGpa = kGpaA + 0x40000;
constexpr uint64_t kTableGpa = kGpaA + 0x80000;

// The driver side of one split ring (virtio 1.2 §2.7).
class FakeDriver {
public:
    explicit FakeDriver(uint16_t size, bool event_idx = false)
        : a_(make_region(kGpaA, kRegionSize, kUvaA)), b_(make_region(kGpaB, kRegionSize, kUvaB)), size_(size),
          event_idx_(event_idx)
    {
        auto t = MemTable::from_regions({a_, b_});
        REQUIRE(t.has_value());
        mem_ = std::move(*t);
    }

    RingConfig config(uint16_t last_avail = 0) const
    {
        return RingConfig{FrontendAddr{kUvaA + kDescOff}, FrontendAddr{kUvaA + kAvailOff},
                          FrontendAddr{kUvaA + kUsedOff}, size_, last_avail, event_idx_};
    }
    // A queue configured and attached to this ring.
    void attach(SplitQueue& q, uint16_t last_avail = 0)
    {
        avail_idx_ = last_avail;
        set_avail_idx(last_avail);
        q.configure(config(last_avail));
        REQUIRE(q.attach(mem_.get()));
    }

    const MemTable* mem() const { return mem_.get(); }
    std::byte* host(uint64_t gpa) const { return mem_->translate(GuestPhysAddr{gpa}, 1); }

    Desc* desc_table() const { return reinterpret_cast<Desc*>(a_->host() + kDescOff); }
    void set_desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags = 0, uint16_t next = 0)
    {
        desc_table()[i] = Desc{addr, len, flags, next};
    }
    // An indirect table of `n` entries at kTableGpa (+ offset); returns its entries.
    Desc* indirect(uint64_t offset = 0) const { return reinterpret_cast<Desc*>(host(kTableGpa + offset)); }

    uint16_t* avail() const { return reinterpret_cast<uint16_t*>(a_->host() + kAvailOff); }
    void set_avail_idx(uint16_t idx) { avail()[1] = idx; }
    void set_avail_flags(uint16_t flags) { avail()[0] = flags; }
    void set_used_event(uint16_t v) { avail()[2 + size_] = v; }
    // Makes the chain at `head` available.
    void make_available(uint16_t head)
    {
        avail()[2 + (avail_idx_ & (size_ - 1))] = head;
        set_avail_idx(++avail_idx_);
    }

    uint16_t* used_hdr() const { return reinterpret_cast<uint16_t*>(a_->host() + kUsedOff); }
    uint16_t used_flags() const { return used_hdr()[0]; }
    uint16_t used_idx() const { return used_hdr()[1]; }
    virtio::UsedElem used(uint16_t slot) const
    {
        virtio::UsedElem e;
        std::memcpy(&e, a_->host() + kUsedOff + 4 + 8 * (slot & (size_ - 1)), sizeof e);
        return e;
    }

private:
    std::shared_ptr<const MappedRegion> a_, b_;
    std::unique_ptr<MemTable> mem_;
    uint16_t size_;
    bool event_idx_;
    uint16_t avail_idx_ = 0;
};

std::string fault_of(const SplitQueue& q)
{
    return std::string(fault_name(q.fault()));
}

// Pops one chain from a ring whose only available chain is `head`, expecting a fault.
std::string pop_fault(FakeDriver& d, uint16_t head, bool writable)
{
    SplitQueue q;
    d.attach(q);
    d.make_available(head);
    Chain c;
    CHECK(q.available() == 1);
    CHECK_FALSE(q.pop(c, writable));
    CHECK_FALSE(q.ready());
    CHECK(q.available() == 0);  // a broken queue is not processed any more
    return fault_of(q);
}

}  // namespace

TEST_CASE("fault names are stable metric labels")
{
    CHECK(fault_name(QueueFault::none) == "none");
    CHECK(fault_name(QueueFault::ring_outside_memory) == "ring_outside_memory");
    CHECK(fault_name(QueueFault::avail_idx_jump) == "avail_idx_jump");
    CHECK(fault_name(QueueFault::bad_desc_index) == "bad_desc_index");
    CHECK(fault_name(QueueFault::chain_loop) == "chain_loop");
    CHECK(fault_name(QueueFault::desc_outside_memory) == "desc_outside_memory");
    CHECK(fault_name(QueueFault::zero_length_desc) == "zero_length_desc");
    CHECK(fault_name(QueueFault::bad_indirect) == "bad_indirect");
    CHECK(fault_name(QueueFault::nested_indirect) == "nested_indirect");
    CHECK(fault_name(QueueFault::wrong_direction) == "wrong_direction");
}

TEST_CASE("attach: rings inside memory make a ready queue that asks not to be kicked")
{
    FakeDriver d(256);
    SplitQueue q;
    CHECK_FALSE(q.ready());
    q.configure(d.config());
    CHECK_FALSE(q.attach(nullptr));
    CHECK_FALSE(q.ready());
    REQUIRE(q.attach(d.mem()));
    CHECK(q.ready());
    CHECK(q.memory() == d.mem());
    CHECK(q.size() == 256);
    CHECK(q.fault() == QueueFault::none);
    CHECK(q.available() == 0);
    CHECK((d.used_flags() & virtio::kUsedNoNotify) != 0);  // we poll
}

TEST_CASE("attach: a ring not inside guest memory is ring_outside_memory, fixed by a new config")
{
    FakeDriver d(256);
    SplitQueue q;
    RingConfig c = d.config();

    SUBCASE("desc table in no region")
    {
        c.desc = FrontendAddr{0x1000};
    }
    SUBCASE("desc table given as a gpa")
    {
        c.desc = FrontendAddr{kGpaA};
    }
    SUBCASE("used ring runs off the end of the region")
    {
        c.used = FrontendAddr{kUvaA + kRegionSize - 4 - 8 * 256 + 4};
    }
    SUBCASE("avail ring runs off the end of the region")
    {
        c.avail = FrontendAddr{kUvaA + kRegionSize - 2};
    }
    SUBCASE("misaligned desc table")
    {
        c.desc = FrontendAddr{kUvaA + 8};
    }
    SUBCASE("misaligned used ring")
    {
        c.used = FrontendAddr{kUvaA + kUsedOff + 2};
    }
    q.configure(c);
    CHECK_FALSE(q.attach(d.mem()));
    CHECK(fault_of(q) == "ring_outside_memory");
    CHECK_FALSE(q.ready());
    CHECK(q.available() == 0);

    q.configure(d.config());
    CHECK(q.attach(d.mem()));
    CHECK(q.ready());
}

TEST_CASE("attach: a removed region breaks the ring; the next table heals it")
{
    FakeDriver d(16);
    SplitQueue q;
    d.attach(q);
    MemTable empty;
    CHECK_FALSE(q.attach(&empty));
    CHECK(fault_of(q) == "ring_outside_memory");
    CHECK(q.attach(d.mem()));
    CHECK(q.ready());
}

TEST_CASE("attach: under EVENT_IDX the used_event/avail_event words must be in memory too")
{
    const uint16_t size = 256;
    // The used ring ends exactly at the region's end: fine without EVENT_IDX, two bytes
    // short with it.
    const uint64_t used_at = kUvaA + kRegionSize - (4 + 8 * size);
    for (bool event_idx : {false, true}) {
        CAPTURE(event_idx);
        FakeDriver d(size, event_idx);
        RingConfig c = d.config();
        c.used = FrontendAddr{used_at};
        SplitQueue q;
        q.configure(c);
        CHECK(q.attach(d.mem()) == !event_idx);
    }
}

TEST_CASE("available counts new entries, across the 16-bit wrap, and faults on a jump")
{
    FakeDriver d(8);
    SplitQueue q;
    d.set_desc(0, kBufGpa, 64);

    SUBCASE("plain")
    {
        d.attach(q);
        for (int i = 0; i < 3; ++i)
            d.make_available(0);
        CHECK(q.available() == 3);
        Chain c;
        REQUIRE(q.pop(c, false));
        CHECK(q.available() == 2);
        CHECK(q.last_avail() == 1);
    }
    SUBCASE("the whole ring is not a jump")
    {
        d.attach(q);
        for (int i = 0; i < 8; ++i)
            d.make_available(0);
        CHECK(q.available() == 8);
        CHECK(q.ready());
    }
    SUBCASE("at most the caller's limit (a burst's scratch holds no more)")
    {
        d.attach(q);
        for (int i = 0; i < 8; ++i)
            d.make_available(0);
        CHECK(q.available(3) == 3);
        CHECK(q.available(0) == 0);
        CHECK(q.available(9) == 8);
        CHECK(q.ready());
    }
    SUBCASE("wrap of the free-running index")
    {
        d.attach(q, 65534);
        for (int i = 0; i < 4; ++i)
            d.make_available(0);
        CHECK(d.avail()[1] == 2);
        CHECK(q.available() == 4);
        Chain c;
        for (int i = 0; i < 4; ++i)
            REQUIRE(q.pop(c, false));
        CHECK(q.last_avail() == 2);
        CHECK(q.available() == 0);
    }
    SUBCASE("jump past the ring size")
    {
        d.attach(q);
        d.set_avail_idx(9);
        CHECK(q.available() == 0);
        CHECK(fault_of(q) == "avail_idx_jump");
        CHECK_FALSE(q.ready());
    }
    SUBCASE("index moving backwards is a jump")
    {
        d.attach(q, 100);
        d.set_avail_idx(99);
        CHECK(q.available() == 0);
        CHECK(fault_of(q) == "avail_idx_jump");
    }
}

TEST_CASE("pop: a single descriptor becomes one segment pointing at the guest buffer")
{
    FakeDriver d(16);
    SplitQueue q;
    d.attach(q);
    std::memcpy(d.host(kBufGpa), "packet", 6);
    d.set_desc(3, kBufGpa, 1500);
    d.make_available(3);
    Chain c;
    REQUIRE(q.pop(c, false));
    CHECK(c.head == 3);
    CHECK(c.count == 1);
    CHECK(c.bytes == 1500);
    CHECK_FALSE(c.too_long);
    CHECK(c.seg[0].host == d.host(kBufGpa));
    CHECK(c.seg[0].len == 1500);
    CHECK(std::memcmp(c.seg[0].host, "packet", 6) == 0);
    CHECK(q.ready());
}

TEST_CASE("pop: a chain follows next in order, whatever the indices")
{
    FakeDriver d(16);
    SplitQueue q;
    d.attach(q);
    d.set_desc(5, kBufGpa, 12, virtio::kDescNext, 2);
    d.set_desc(2, kBufGpa + 0x1000, 100, virtio::kDescNext, 15);
    d.set_desc(15, kBufGpa + 0x3000, 1000);
    d.make_available(5);
    d.set_desc(0, kBufGpa + 0x8000, 64);
    d.make_available(0);
    Chain c;
    REQUIRE(q.pop(c, false));
    CHECK(c.head == 5);
    REQUIRE(c.count == 3);
    CHECK(c.bytes == 1112);
    CHECK(c.seg[0].host == d.host(kBufGpa));
    CHECK(c.seg[0].len == 12);
    CHECK(c.seg[1].host == d.host(kBufGpa + 0x1000));
    CHECK(c.seg[1].len == 100);
    CHECK(c.seg[2].host == d.host(kBufGpa + 0x3000));
    CHECK(c.seg[2].len == 1000);
    // The next pop starts clean.
    REQUIRE(q.pop(c, false));
    CHECK(c.head == 0);
    CHECK(c.count == 1);
    CHECK(c.bytes == 64);
}

TEST_CASE("pop: device-writable chains for RX")
{
    FakeDriver d(16);
    SplitQueue q;
    d.attach(q);
    d.set_desc(1, kBufGpa, 2048, virtio::kDescWrite | virtio::kDescNext, 4);
    d.set_desc(4, kBufGpa + 0x1000, 2048, virtio::kDescWrite);
    d.make_available(1);
    Chain c;
    REQUIRE(q.pop(c, true));
    CHECK(c.count == 2);
    CHECK(c.bytes == 4096);
}

TEST_CASE("pop: an indirect table is walked from entry 0")
{
    FakeDriver d(16);
    SplitQueue q;
    d.attach(q);
    Desc* t = d.indirect();
    t[0] = Desc{kBufGpa, 10, virtio::kDescNext, 2};
    t[2] = Desc{kBufGpa + 0x100, 20, virtio::kDescNext, 1};
    t[1] = Desc{kBufGpa + 0x200, 30, 0, 0};
    d.set_desc(7, kTableGpa, 3 * sizeof(Desc), virtio::kDescIndirect);
    d.make_available(7);
    Chain c;
    REQUIRE(q.pop(c, false));
    CHECK(c.head == 7);  // the used ring gets the head of the main table
    REQUIRE(c.count == 3);
    CHECK(c.seg[0].host == d.host(kBufGpa));
    CHECK(c.seg[1].host == d.host(kBufGpa + 0x100));
    CHECK(c.seg[2].host == d.host(kBufGpa + 0x200));
    CHECK(c.bytes == 60);
    CHECK(q.ready());
}

TEST_CASE("pop: the WRITE flag of the descriptor naming an indirect table is ignored (virtio 1.2 §2.7.5.3.2)")
{
    FakeDriver d(16);
    SplitQueue q;
    d.attach(q);
    d.indirect()[0] = Desc{kBufGpa, 2048, virtio::kDescWrite, 0};
    d.set_desc(0, kTableGpa, sizeof(Desc), virtio::kDescIndirect);  // no WRITE here
    d.make_available(0);
    Chain c;
    REQUIRE(q.pop(c, true));
    CHECK(c.bytes == 2048);
}

TEST_CASE("pop: a buffer spanning two regions becomes two segments")
{
    FakeDriver d(16);
    SplitQueue q;
    d.attach(q);
    d.set_desc(0, kGpaB - 100, 300);
    d.make_available(0);
    Chain c;
    REQUIRE(q.pop(c, false));
    REQUIRE(c.count == 2);
    CHECK(c.bytes == 300);
    CHECK(c.seg[0].host == d.host(kGpaB - 100));
    CHECK(c.seg[0].len == 100);
    CHECK(c.seg[1].host == d.host(kGpaB));
    CHECK(c.seg[1].len == 200);
}

TEST_CASE("pop: more than 64 segments drops the packet, not the queue")
{
    FakeDriver d(128);
    SplitQueue q;
    d.attach(q);

    SUBCASE("65 descriptors")
    {
        for (uint16_t i = 0; i < 65; ++i)
            d.set_desc(i, kBufGpa + 0x100 * i, 16, i < 64 ? virtio::kDescNext : 0, uint16_t(i + 1));
    }
    SUBCASE("63 descriptors and one that spans two regions")
    {
        for (uint16_t i = 0; i < 63; ++i)
            d.set_desc(i, kBufGpa + 0x100 * i, 16, virtio::kDescNext, uint16_t(i + 1));
        d.set_desc(63, kGpaB - 8, 24, virtio::kDescNext, 64);
        d.set_desc(64, kBufGpa + 0x8000, 16);
    }
    d.make_available(0);
    d.set_desc(100, kBufGpa, 60);
    d.make_available(100);
    Chain c;
    REQUIRE(q.pop(c, false));
    CHECK(c.too_long);
    CHECK(c.count == Chain::kMaxSegments);
    CHECK(c.head == 0);
    uint64_t sum = 0;
    for (uint16_t i = 0; i < c.count; ++i)
        sum += c.seg[i].len;
    CHECK(c.bytes == sum);
    CHECK(q.ready());
    CHECK(q.fault() == QueueFault::none);
    // The walk consumed the whole chain; the next one is fine.
    REQUIRE(q.pop(c, false));
    CHECK_FALSE(c.too_long);
    CHECK(c.head == 100);
    CHECK(c.count == 1);
}

TEST_CASE("pop: a chain's byte count never wraps (a guest can hand us >4 GiB in 64 segments)")
{
    // One big region; 64 descriptors of 64 MiB + 16 bytes each all point into it: 2^32 + 1 KiB.
    constexpr uint64_t kBig = (64ull << 20) + 16;
    auto region = make_region(0x40000000, kBig, 0x7e0000000000);
    auto ring = make_region(0x10000, 0x10000, 0x7d0000000000);
    auto mem = MemTable::from_regions({region, ring});
    REQUIRE(mem.has_value());
    auto* desc = reinterpret_cast<Desc*>(ring->host());
    auto* avail = reinterpret_cast<uint16_t*>(ring->host() + 0x4000);
    for (uint16_t i = 0; i < 64; ++i)
        desc[i] = Desc{0x40000000, uint32_t(kBig), uint16_t(i < 63 ? virtio::kDescNext : 0), uint16_t(i + 1)};
    avail[2] = 0;
    avail[1] = 1;
    SplitQueue q;
    q.configure(RingConfig{FrontendAddr{0x7d0000000000}, FrontendAddr{0x7d0000004000}, FrontendAddr{0x7d0000008000}, 128, 0, false});
    REQUIRE(q.attach(mem->get()));
    Chain c;
    REQUIRE(q.pop(c, false));
    uint64_t sum = 0;
    for (uint16_t i = 0; i < c.count; ++i)
        sum += c.seg[i].len;
    CHECK(sum > 0xffffffffull);
    // Either the chain is refused as too big, or bytes is the real total: a wrapped
    // count would pass vhost_port's oversize check as a ~1 KiB frame.
    CHECK((c.too_long || q.fault() != QueueFault::none || uint64_t(c.bytes) == sum));
}

TEST_CASE("pop: every guest error is a QueueFault that stops the queue")
{
    FakeDriver d(16);

    SUBCASE("head index beyond the ring")
    {
        CHECK(pop_fault(d, 16, false) == "bad_desc_index");
    }
    SUBCASE("next index beyond the ring")
    {
        d.set_desc(0, kBufGpa, 16, virtio::kDescNext, 16);
        CHECK(pop_fault(d, 0, false) == "bad_desc_index");
    }
    SUBCASE("next index beyond an indirect table")
    {
        d.indirect()[0] = Desc{kBufGpa, 16, virtio::kDescNext, 2};
        d.indirect()[1] = Desc{kBufGpa, 16, 0, 0};
        d.set_desc(0, kTableGpa, 2 * sizeof(Desc), virtio::kDescIndirect);
        CHECK(pop_fault(d, 0, false) == "bad_desc_index");
    }
    SUBCASE("a two-descriptor loop")
    {
        d.set_desc(0, kBufGpa, 16, virtio::kDescNext, 1);
        d.set_desc(1, kBufGpa, 16, virtio::kDescNext, 0);
        CHECK(pop_fault(d, 0, false) == "chain_loop");
    }
    SUBCASE("a self loop")
    {
        d.set_desc(9, kBufGpa, 16, virtio::kDescNext, 9);
        CHECK(pop_fault(d, 9, false) == "chain_loop");
    }
    SUBCASE("a loop inside an indirect table")
    {
        d.indirect()[0] = Desc{kBufGpa, 16, virtio::kDescNext, 1};
        d.indirect()[1] = Desc{kBufGpa, 16, virtio::kDescNext, 0};
        d.set_desc(0, kTableGpa, 2 * sizeof(Desc), virtio::kDescIndirect);
        CHECK(pop_fault(d, 0, false) == "chain_loop");
    }
    SUBCASE("buffer in no region")
    {
        d.set_desc(0, 0x900000, 16);
        CHECK(pop_fault(d, 0, false) == "desc_outside_memory");
    }
    SUBCASE("buffer starting inside, ending past the last region")
    {
        d.set_desc(0, kGpaB + kRegionSize - 8, 16);
        CHECK(pop_fault(d, 0, false) == "desc_outside_memory");
    }
    SUBCASE("buffer whose addr + len wraps past 2^64")
    {
        d.set_desc(0, ~uint64_t(0) - 7, 16);
        CHECK(pop_fault(d, 0, false) == "desc_outside_memory");
    }
    SUBCASE("a later descriptor of the chain outside memory")
    {
        d.set_desc(0, kBufGpa, 16, virtio::kDescNext, 1);
        d.set_desc(1, 0x10, 16);
        CHECK(pop_fault(d, 0, false) == "desc_outside_memory");
    }
    SUBCASE("indirect table outside memory")
    {
        d.set_desc(0, 0x900000, 4 * sizeof(Desc), virtio::kDescIndirect);
        CHECK(pop_fault(d, 0, false) == "desc_outside_memory");
    }
    SUBCASE("indirect table running off its region")
    {
        d.set_desc(0, kGpaB + kRegionSize - sizeof(Desc), 2 * sizeof(Desc), virtio::kDescIndirect);
        CHECK(pop_fault(d, 0, false) == "desc_outside_memory");
    }
    SUBCASE("zero-length buffer")
    {
        d.set_desc(0, kBufGpa, 0);
        CHECK(pop_fault(d, 0, false) == "zero_length_desc");
    }
    SUBCASE("zero-length buffer inside an indirect table")
    {
        d.indirect()[0] = Desc{kBufGpa, 0, 0, 0};
        d.set_desc(0, kTableGpa, sizeof(Desc), virtio::kDescIndirect);
        CHECK(pop_fault(d, 0, false) == "zero_length_desc");
    }
    SUBCASE("indirect with NEXT")
    {
        d.indirect()[0] = Desc{kBufGpa, 16, 0, 0};
        d.set_desc(0, kTableGpa, sizeof(Desc), virtio::kDescIndirect | virtio::kDescNext, 1);
        d.set_desc(1, kBufGpa, 16);
        CHECK(pop_fault(d, 0, false) == "bad_indirect");
    }
    SUBCASE("indirect of length 0")
    {
        d.set_desc(0, kTableGpa, 0, virtio::kDescIndirect);
        CHECK(pop_fault(d, 0, false) == "bad_indirect");
    }
    SUBCASE("indirect length not a multiple of 16")
    {
        d.set_desc(0, kTableGpa, 24, virtio::kDescIndirect);
        CHECK(pop_fault(d, 0, false) == "bad_indirect");
    }
    SUBCASE("indirect inside an indirect table")
    {
        d.indirect()[0] = Desc{kBufGpa, 16, virtio::kDescNext, 1};
        d.indirect()[1] = Desc{kTableGpa + 0x100, sizeof(Desc), virtio::kDescIndirect, 0};
        *d.indirect(0x100) = Desc{kBufGpa, 16, 0, 0};
        d.set_desc(0, kTableGpa, 2 * sizeof(Desc), virtio::kDescIndirect);
        CHECK(pop_fault(d, 0, false) == "nested_indirect");
    }
    SUBCASE("indirect in the middle of a direct chain")
    {
        d.indirect()[0] = Desc{kBufGpa, 16, 0, 0};
        d.set_desc(0, kBufGpa, 16, virtio::kDescNext, 1);
        d.set_desc(1, kTableGpa, sizeof(Desc), virtio::kDescIndirect);
        CHECK(pop_fault(d, 0, false) == "nested_indirect");
    }
    SUBCASE("device-writable buffer on TX")
    {
        d.set_desc(0, kBufGpa, 16, virtio::kDescWrite);
        CHECK(pop_fault(d, 0, false) == "wrong_direction");
    }
    SUBCASE("read-only buffer on RX")
    {
        d.set_desc(0, kBufGpa, 16);
        CHECK(pop_fault(d, 0, true) == "wrong_direction");
    }
    SUBCASE("RX chain with a read-only tail")
    {
        d.set_desc(0, kBufGpa, 16, virtio::kDescWrite | virtio::kDescNext, 1);
        d.set_desc(1, kBufGpa + 0x100, 16);
        CHECK(pop_fault(d, 0, true) == "wrong_direction");
    }
    SUBCASE("wrong direction inside an indirect table")
    {
        d.indirect()[0] = Desc{kBufGpa, 16, virtio::kDescWrite, 0};
        d.set_desc(0, kTableGpa, sizeof(Desc), virtio::kDescIndirect);
        CHECK(pop_fault(d, 0, false) == "wrong_direction");
    }
}

TEST_CASE("a fault sticks until the front-end configures the ring again")
{
    FakeDriver d(16);
    SplitQueue q;
    d.attach(q);
    d.set_desc(0, kBufGpa, 0);
    d.make_available(0);
    Chain c;
    CHECK_FALSE(q.pop(c, false));
    CHECK(fault_of(q) == "zero_length_desc");
    CHECK_FALSE(q.attach(d.mem()));  // a new memory snapshot does not clear a guest error
    CHECK(fault_of(q) == "zero_length_desc");
    d.set_desc(0, kBufGpa, 16);
    d.attach(q, 0);
    d.make_available(0);
    CHECK(q.ready());
    CHECK(q.pop(c, false));
}

TEST_CASE("a ring-size chain is not a loop")
{
    FakeDriver d(16);
    SplitQueue q;
    d.attach(q);
    for (uint16_t i = 0; i < 16; ++i)
        d.set_desc(i, kBufGpa + 0x100 * i, 8, i < 15 ? virtio::kDescNext : 0, uint16_t(i + 1));
    d.make_available(0);
    Chain c;
    REQUIRE(q.pop(c, false));
    CHECK(c.count == 16);
    CHECK(c.bytes == 128);
}

TEST_CASE("unpop puts chains back for the next pop")
{
    FakeDriver d(16);
    SplitQueue q;
    d.attach(q);
    for (uint16_t i = 0; i < 3; ++i) {
        d.set_desc(i, kBufGpa + 0x1000 * i, 512, virtio::kDescWrite);
        d.make_available(i);
    }
    Chain c;
    REQUIRE(q.pop(c, true));
    REQUIRE(q.pop(c, true));
    CHECK(c.head == 1);
    CHECK(q.available() == 1);
    q.unpop(2);
    CHECK(q.available() == 3);
    CHECK(q.last_avail() == 0);
    REQUIRE(q.pop(c, true));
    CHECK(c.head == 0);
    CHECK(c.seg[0].host == d.host(kBufGpa));
    CHECK(d.used_idx() == 0);  // nothing reached the used ring
}

TEST_CASE("push_used writes entries; flush_used publishes them")
{
    FakeDriver d(4);
    SplitQueue q;
    d.attach(q);
    q.push_used(3, 100);
    q.push_used(1, 0);
    CHECK(d.used_idx() == 0);  // not visible before the flush
    CHECK(d.used(0).id == 3);
    CHECK(d.used(0).len == 100);
    CHECK(q.flush_used());
    CHECK(d.used_idx() == 2);
    CHECK(d.used(1).id == 1);
    CHECK(d.used(1).len == 0);

    // Wraps around the ring.
    for (uint16_t i = 0; i < 4; ++i)
        q.push_used(uint16_t(i), 1000u + i);
    q.flush_used();
    CHECK(d.used_idx() == 6);
    CHECK(d.used(2).id == 0);
    CHECK(d.used(3).id == 1);
    CHECK(d.used(4).id == 2);  // slot 0
    CHECK(d.used(5).id == 3);  // slot 1
    CHECK(d.used(5).len == 1003);
    CHECK_FALSE(q.flush_used());  // nothing new: no index store, no interrupt
    CHECK(d.used_idx() == 6);
}

TEST_CASE("the used index continues from SET_VRING_BASE")
{
    FakeDriver d(8);
    SplitQueue q;
    d.attach(q, 10);
    d.set_desc(4, kBufGpa, 64);
    d.make_available(4);
    CHECK(q.available() == 1);
    Chain c;
    REQUIRE(q.pop(c, false));
    CHECK(c.head == 4);
    q.push_used(c.head, 0);
    q.flush_used();
    CHECK(d.used_idx() == 11);
    CHECK(d.used(10).id == 4);
}

TEST_CASE("notifications without EVENT_IDX follow VIRTQ_AVAIL_F_NO_INTERRUPT")
{
    FakeDriver d(8, false);
    SplitQueue q;
    d.attach(q);
    CHECK_FALSE(q.flush_used());  // nothing to say
    q.push_used(0, 1);
    CHECK(q.flush_used());
    d.set_avail_flags(virtio::kAvailNoInterrupt);
    q.push_used(1, 1);
    CHECK_FALSE(q.flush_used());
    CHECK(d.used_idx() == 2);  // published all the same
    d.set_avail_flags(0);
    q.push_used(2, 1);
    CHECK(q.flush_used());
}

TEST_CASE("notifications with EVENT_IDX follow used_event (vring_need_event)")
{
    FakeDriver d(8, true);
    SplitQueue q;
    d.attach(q);

    SUBCASE("used_event 0: the first entry interrupts")
    {
        d.set_used_event(0);
        q.push_used(0, 1);
        CHECK(q.flush_used());
        q.push_used(1, 1);  // used_event was passed already
        CHECK_FALSE(q.flush_used());
    }
    SUBCASE("interrupt only when the batch crosses used_event")
    {
        d.set_used_event(4);
        q.push_used(0, 1);
        q.push_used(1, 1);
        CHECK_FALSE(q.flush_used());  // idx 0 -> 2
        q.push_used(2, 1);
        q.push_used(3, 1);
        CHECK_FALSE(q.flush_used());  // 2 -> 4: entry 4 not yet used
        q.push_used(4, 1);
        q.push_used(5, 1);
        CHECK(q.flush_used());  // 4 -> 6 crosses used_event 4
        CHECK(d.used_idx() == 6);
    }
    SUBCASE("the NO_INTERRUPT flag is ignored (virtio 1.2 §2.7.7.2)")
    {
        d.set_avail_flags(virtio::kAvailNoInterrupt);
        d.set_used_event(0);
        q.push_used(0, 1);
        CHECK(q.flush_used());
    }
    SUBCASE("a ring taken over at a position notifies at its first flush, whatever used_event says")
    {
        d.attach(q, 100);
        d.set_used_event(50);  // passed long ago: its notification was the old back-end's, or lost
        q.push_used(0, 1);
        CHECK(q.flush_used());
        q.push_used(1, 1);
        CHECK_FALSE(q.flush_used());  // from now on used_event rules
    }
    SUBCASE("across the 16-bit wrap")
    {
        d.attach(q, 65533);
        q.push_used(0, 1);
        CHECK(q.flush_used());  // taken over at a position: the first flush notifies
        d.set_used_event(65535);
        q.push_used(0, 1);
        CHECK_FALSE(q.flush_used());  // 65534 -> 65535
        q.push_used(1, 1);
        q.push_used(2, 1);
        CHECK(q.flush_used());  // 65535 -> 1 crosses 65535
        CHECK(d.used_idx() == 1);
    }
}
