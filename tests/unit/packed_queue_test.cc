// PackedQueue against a fake driver that runs a virtio 1.2 packed ring (§2.8) in
// memfd-backed guest memory (tests/unit/packed_driver.h). Ring addresses are front-end
// addresses (uva); buffer addresses are GPAs.
#include "vusw/packed_queue.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <vector>

#include <doctest/doctest.h>

#include "tests/unit/packed_driver.h"

using namespace vusw;
using namespace vusw::test::packed;

namespace {

std::string fault_of(const PackedQueue& q)
{
    return std::string(fault_name(q.fault()));
}

// Pops the one chain the driver posted, expecting a fault that breaks the queue.
std::string pop_fault(PackedQueue& q, bool writable)
{
    Chain c;
    CHECK_FALSE(q.pop(c, writable));
    CHECK_FALSE(q.ready());
    CHECK(q.available(64) == 0);  // a broken queue is not processed any more
    return fault_of(q);
}

}  // namespace

TEST_CASE("packed attach: a ring inside memory makes a ready queue that asks not to be notified")
{
    PackedDriver d(256);
    PackedQueue q;
    CHECK_FALSE(q.ready());
    q.configure(d.config());
    CHECK_FALSE(q.attach(nullptr));
    CHECK_FALSE(q.ready());
    REQUIRE(q.attach(d.mem()));
    CHECK(q.ready());
    CHECK(q.memory() == d.mem());
    CHECK(q.size() == 256);
    CHECK(q.available(64) == 0);
    CHECK(d.device_event_flags() == spec::EVENT_DISABLE);  // we poll
    CHECK(q.last_avail() == spec::FRESH_RING);
    CHECK(q.last_used() == spec::FRESH_RING);
}

TEST_CASE("packed attach: sizes need not be powers of two, but zero is no ring")
{
    PackedDriver d(7);
    PackedQueue q;
    q.configure(d.config());
    CHECK(q.attach(d.mem()));
    RingConfig c = d.config();
    c.size = 0;
    q.configure(c);
    CHECK_FALSE(q.attach(d.mem()));
    CHECK_FALSE(q.ready());
    CHECK(q.available(8) == 0);
}

TEST_CASE("packed attach: a ring not inside guest memory is ring_outside_memory, fixed by a new config")
{
    PackedDriver d(256);
    PackedQueue q;
    RingConfig c = d.config();
    SUBCASE("descriptor ring in no region")
    {
        c.desc = FrontendAddr{0x1000};
    }
    SUBCASE("descriptor ring given as a gpa")
    {
        c.desc = FrontendAddr{kGpaA};
    }
    SUBCASE("descriptor ring runs off the end of the region")
    {
        c.desc = FrontendAddr{kUvaA + kRegionSize - 16 * 255};
    }
    SUBCASE("driver event area runs off the end of the region")
    {
        c.avail = FrontendAddr{kUvaA + kRegionSize - 2};
    }
    SUBCASE("device event area in no region")
    {
        c.used = FrontendAddr{kUvaB + kRegionSize};
    }
    SUBCASE("unaligned descriptor ring")
    {
        c.desc = FrontendAddr{kUvaA + 8};
    }
    SUBCASE("unaligned driver event area")
    {
        c.avail = FrontendAddr{kUvaA + kDriverEventOff + 2};
    }
    SUBCASE("unaligned device event area")
    {
        c.used = FrontendAddr{kUvaA + kDeviceEventOff + 1};
    }
    q.configure(c);
    CHECK_FALSE(q.attach(d.mem()));
    CHECK(fault_of(q) == "ring_outside_memory");
    CHECK_FALSE(q.ready());
    CHECK(q.available(8) == 0);

    q.configure(d.config());
    CHECK(q.attach(d.mem()));
    CHECK(q.ready());
}

TEST_CASE("packed attach: a removed region breaks the ring; the next table heals it")
{
    PackedDriver d(16);
    PackedQueue q;
    d.attach(q);
    d.post(0, {{kBufGpa, 64}});
    MemTable empty;
    CHECK_FALSE(q.attach(&empty));
    CHECK(fault_of(q) == "ring_outside_memory");
    CHECK(q.available(8) == 0);
    q.push_used(0, 0);  // dropped: no ring to write to
    CHECK_FALSE(q.flush_used());
    CHECK(q.attach(d.mem()));
    CHECK(q.ready());
    CHECK(q.available(8) == 1);
    CHECK_FALSE(d.take_used());
}

TEST_CASE("packed pop: a single descriptor becomes one segment; its id comes back used")
{
    PackedDriver d(16);
    PackedQueue q;
    d.attach(q);
    std::memcpy(d.host(kBufGpa), "packet", 6);
    d.post(9, {{kBufGpa, 1500}});
    CHECK(q.available(64) == 1);
    Chain c;
    REQUIRE(q.pop(c, false));
    CHECK(c.head == 9);
    REQUIRE(c.count == 1);
    CHECK(c.bytes == 1500);
    CHECK_FALSE(c.too_long);
    CHECK(c.seg[0].host == d.host(kBufGpa));
    CHECK(c.seg[0].len == 1500);
    CHECK(std::memcmp(c.seg[0].host, "packet", 6) == 0);
    CHECK(q.available(64) == 0);
    CHECK(q.last_avail() == (spec::FRESH_RING | 1));

    CHECK_FALSE(d.take_used());
    q.push_used(c.head, 0);
    const auto u = d.take_used();
    REQUIRE(u);
    CHECK(u->id == 9);
    CHECK(u->len == 0);
    CHECK((d.ring()[0].flags & (spec::AVAIL | spec::USED)) == (spec::AVAIL | spec::USED));
    CHECK(q.last_used() == (spec::FRESH_RING | 1));
    CHECK(q.ready());
}

TEST_CASE("packed pop: an RX buffer is device-writable and returns the length written")
{
    PackedDriver d(16);
    PackedQueue q;
    d.attach(q);
    d.post(4, {{kBufGpa, 2048, true}});
    Chain c;
    REQUIRE(q.pop(c, true));
    CHECK(c.head == 4);
    CHECK(c.bytes == 2048);
    q.push_used(4, 1514);
    const auto u = d.take_used();
    REQUIRE(u);
    CHECK(u->id == 4);
    CHECK(u->len == 1514);
}

TEST_CASE("packed pop: a chain takes consecutive descriptors; the id is the last one's")
{
    PackedDriver d(16);
    PackedQueue q;
    d.attach(q);
    d.post(11, {{kBufGpa, 12}, {kBufGpa + 0x1000, 100}, {kBufGpa + 0x3000, 1000}});
    d.ring()[0].id = 3;  // ids of all but the last descriptor mean nothing (§2.8.6)
    d.ring()[1].id = 200;
    d.post(2, {{kBufGpa + 0x8000, 64}});
    CHECK(q.available(64) == 2);
    Chain c;
    REQUIRE(q.pop(c, false));
    CHECK(c.head == 11);
    REQUIRE(c.count == 3);
    CHECK(c.bytes == 1112);
    CHECK(c.seg[0].host == d.host(kBufGpa));
    CHECK(c.seg[1].host == d.host(kBufGpa + 0x1000));
    CHECK(c.seg[1].len == 100);
    CHECK(c.seg[2].host == d.host(kBufGpa + 0x3000));
    CHECK(c.seg[2].len == 1000);
    CHECK(q.last_avail() == (spec::FRESH_RING | 3));
    REQUIRE(q.pop(c, false));  // the next pop starts clean
    CHECK(c.head == 2);
    CHECK(c.count == 1);
    CHECK(c.bytes == 64);

    // The used position skips the whole chain: the second used descriptor is at 3.
    q.push_used(11, 0);
    q.push_used(2, 0);
    CHECK(q.last_used() == (spec::FRESH_RING | 4));
    CHECK(d.ring()[3].id == 2);
    CHECK(d.take_used()->id == 11);
    CHECK(d.take_used()->id == 2);
    CHECK_FALSE(d.take_used());
}

TEST_CASE("packed pop: an indirect table is walked in order and takes one ring descriptor")
{
    PackedDriver d(16);
    PackedQueue q;
    d.attach(q);
    d.post_indirect(5, {{kBufGpa, 10}, {kBufGpa + 0x100, 20}, {kBufGpa + 0x200, 30}});
    d.table()[0].flags = spec::NEXT;  // NEXT inside a table means nothing (§2.8.7)
    d.table()[1].id = 77;             // nor do ids
    d.post(6, {{kBufGpa + 0x300, 40}});
    Chain c;
    REQUIRE(q.pop(c, false));
    CHECK(c.head == 5);
    REQUIRE(c.count == 3);
    CHECK(c.seg[0].host == d.host(kBufGpa));
    CHECK(c.seg[1].host == d.host(kBufGpa + 0x100));
    CHECK(c.seg[2].host == d.host(kBufGpa + 0x200));
    CHECK(c.bytes == 60);
    CHECK(q.last_avail() == (spec::FRESH_RING | 1));
    REQUIRE(q.pop(c, false));
    CHECK(c.head == 6);
    q.push_used(5, 0);
    q.push_used(6, 0);
    CHECK(d.take_used()->id == 5);
    CHECK(d.take_used()->id == 6);
    CHECK(q.last_used() == (spec::FRESH_RING | 2));
}

TEST_CASE("packed pop: the WRITE flag of the descriptor naming an indirect table is ignored")
{
    PackedDriver d(16);
    PackedQueue q;
    d.attach(q);
    d.post_indirect(0, {{kBufGpa, 2048, true}, {kBufGpa + 0x1000, 2048, true}});
    Chain c;
    REQUIRE(q.pop(c, true));
    CHECK(c.bytes == 4096);
}

// DPDK's virtio PMD initialises its packed TX indirect tables with WRITE on every entry
// and does not clear it on the header entry (vring_desc_init_indirect_packed): a TX table
// with WRITE set must still be read, or every multi-segment frame of that driver breaks
// the queue.
TEST_CASE("packed pop: WRITE inside a TX indirect table is ignored (DPDK virtio sets it)")
{
    PackedDriver d(8);
    PackedQueue q;
    d.attach(q);
    d.post_indirect(3, {{kBufGpa, 12, true}, {kBufGpa + 0x100, 1000}, {kBufGpa + 0x800, 2000, true}});
    Chain c;
    REQUIRE(q.pop(c, false));
    CHECK(c.head == 3);
    CHECK(c.count == 3);
    CHECK(c.bytes == 3012);
    CHECK(q.fault() == QueueFault::none);
}

TEST_CASE("packed pop: an indirect table need not be aligned")
{
    PackedDriver d(16);
    PackedQueue q;
    d.attach(q);
    const uint64_t off = 3;
    const spec::Desc e{kBufGpa, 99, 0, 0};
    std::memcpy(d.host(kTableGpa + off), &e, sizeof e);
    d.put(1, kTableGpa + off, sizeof e, spec::INDIRECT);
    Chain c;
    REQUIRE(q.pop(c, false));
    CHECK(c.bytes == 99);
}

TEST_CASE("packed pop: a buffer spanning two regions becomes two segments")
{
    PackedDriver d(16);
    PackedQueue q;
    d.attach(q);
    d.post(0, {{kGpaB - 100, 300}});
    Chain c;
    REQUIRE(q.pop(c, false));
    REQUIRE(c.count == 2);
    CHECK(c.bytes == 300);
    CHECK(c.seg[0].host == d.host(kGpaB - 100));
    CHECK(c.seg[0].len == 100);
    CHECK(c.seg[1].host == d.host(kGpaB));
    CHECK(c.seg[1].len == 200);
}

TEST_CASE("packed pop: more than 64 segments drops the packet, not the queue")
{
    PackedDriver d(128);
    PackedQueue q;
    d.attach(q);
    std::vector<Buf> bufs;
    for (uint16_t i = 0; i < 65; ++i)
        bufs.push_back({kBufGpa + 0x100 * i, 16});
    d.post(7, bufs);
    d.post(8, {{kBufGpa, 60}});
    Chain c;
    REQUIRE(q.pop(c, false));
    CHECK(c.too_long);
    CHECK(c.count == Chain::kMaxSegments);
    CHECK(c.head == 7);
    CHECK(c.bytes == 64 * 16);
    CHECK(q.ready());
    REQUIRE(q.pop(c, false));  // the walk consumed the whole chain
    CHECK_FALSE(c.too_long);
    CHECK(c.head == 8);
}

TEST_CASE("packed pop: a chain of the whole ring is not a loop")
{
    PackedDriver d(5);
    PackedQueue q;
    d.attach(q);
    std::vector<Buf> bufs;
    for (uint16_t i = 0; i < 5; ++i)
        bufs.push_back({kBufGpa + 0x100 * i, 8});
    d.post(4, bufs);
    CHECK(q.available(64) == 1);
    Chain c;
    REQUIRE(q.pop(c, false));
    CHECK(c.count == 5);
    CHECK(q.last_avail() == 0);  // index 0 of the next lap, whose wrap counter is 0
    q.push_used(4, 0);
    CHECK(q.last_used() == 0);
    CHECK(d.take_used()->id == 4);
}

TEST_CASE("packed: both wrap counters over many laps of a ring of 5 or 7, chains crossing the end")
{
    for (uint16_t size : {5, 7}) {
        CAPTURE(size);
        PackedDriver d(size);
        PackedQueue q;
        d.attach(q);
        uint16_t next_id = 0;
        uint32_t tag = 0;
        for (int round = 0; round < 200; ++round) {
            CAPTURE(round);
            // One to three chains of one to three descriptors, never more than the ring.
            std::vector<std::pair<uint16_t, uint16_t>> posted;  // id, descriptors
            uint16_t used_slots = 0;
            for (int k = 0; k < 1 + round % 3; ++k) {
                const uint16_t n = uint16_t(1 + (round + k) % 3);
                if (used_slots + n > size)
                    break;
                std::vector<Buf> bufs;
                for (uint16_t i = 0; i < n; ++i)
                    bufs.push_back({kBufGpa + 0x100 * i, 16, true});
                d.post(next_id, bufs);
                posted.emplace_back(next_id, n);
                next_id = uint16_t((next_id + 1) % size);
                used_slots = uint16_t(used_slots + n);
            }
            REQUIRE(q.available(64) == posted.size());
            std::vector<uint16_t> ids;
            for (std::size_t k = 0; k < posted.size(); ++k) {
                Chain c;
                REQUIRE(q.pop(c, true));
                CHECK(c.head == posted[k].first);
                CHECK(c.count == posted[k].second);
                ids.push_back(c.head);
            }
            CHECK(q.last_avail() == uint16_t(d.next_avail() | d.avail_wrap() << 15));
            if (round % 2)  // returned out of order every other round
                std::reverse(ids.begin(), ids.end());
            for (uint16_t id : ids)
                q.push_used(id, 1000 + tag++);
            uint32_t want = tag - uint32_t(ids.size());
            for (uint16_t id : ids) {
                const auto u = d.take_used();
                REQUIRE(u);
                CHECK(u->id == id);
                CHECK(u->len == 1000 + want++);
            }
            CHECK_FALSE(d.take_used());
            CHECK(q.last_used() == uint16_t(d.next_used() | d.used_wrap() << 15));
        }
        CHECK(q.ready());
    }
}

TEST_CASE("packed: last_avail and last_used encode index | wrap counter << 15")
{
    PackedDriver d(4);
    PackedQueue q;
    d.attach(q);
    Chain c;
    for (uint16_t i = 0; i < 4; ++i)
        d.post(i, {{kBufGpa, 16}});
    for (uint16_t i = 0; i < 4; ++i)
        REQUIRE(q.pop(c, false));
    CHECK(q.last_avail() == 0x0000);  // lap 2 starts with wrap counter 0
    for (uint16_t i = 0; i < 4; ++i)
        q.push_used(i, 0);
    CHECK(q.last_used() == 0x0000);
    for (uint16_t i = 0; i < 4; ++i)
        REQUIRE(d.take_used());
    d.post(0, {{kBufGpa, 16}});
    REQUIRE(q.pop(c, false));
    CHECK(q.last_avail() == 0x0001);
    q.push_used(0, 0);
    CHECK(q.last_used() == 0x0001);
    CHECK(d.take_used()->id == 0);
}

TEST_CASE("packed configure: a non-zero vring base with wrap counter 0 is taken as given")
{
    PackedDriver d(8);
    PackedQueue q;
    d.attach(q, 3);  // index 3, both wrap counters 0
    CHECK(q.last_avail() == 3);
    CHECK(q.last_used() == 3);
    d.post(6, {{kBufGpa, 16}, {kBufGpa + 0x100, 16}});
    // In lap 0, available is AVAIL clear, USED set.
    CHECK((d.ring()[3].flags & (spec::AVAIL | spec::USED)) == spec::USED);
    CHECK(q.available(64) == 1);
    Chain c;
    REQUIRE(q.pop(c, false));
    CHECK(c.head == 6);
    CHECK(q.last_avail() == 5);
    q.push_used(6, 0);
    CHECK((d.ring()[3].flags & (spec::AVAIL | spec::USED)) == 0);  // used in lap 0: both clear
    CHECK(d.take_used()->id == 6);
    CHECK(q.last_used() == 5);
}

TEST_CASE("packed configure: a vring base past the ring is bad_desc_index")
{
    PackedDriver d(8);
    PackedQueue q;
    RingConfig c = d.config(spec::FRESH_RING | 8);
    q.configure(c);
    q.attach(d.mem());
    CHECK(fault_of(q) == "bad_desc_index");
    CHECK(q.available(8) == 0);
    c = d.config();
    c.last_used = 9;
    q.configure(c);
    q.attach(d.mem());
    CHECK(fault_of(q) == "bad_desc_index");
}

TEST_CASE("packed available: counts chains, not descriptors, up to the limit")
{
    PackedDriver d(16);
    PackedQueue q;
    d.attach(q);
    d.post(0, {{kBufGpa, 16}, {kBufGpa, 16}, {kBufGpa, 16}});
    d.post(1, {{kBufGpa, 16}});
    d.post_indirect(2, {{kBufGpa, 16}, {kBufGpa, 16}});
    d.post(3, {{kBufGpa, 16}, {kBufGpa, 16}});
    CHECK(q.available(64) == 4);
    CHECK(q.available(4) == 4);
    CHECK(q.available(3) == 3);
    CHECK(q.available(1) == 1);
    CHECK(q.available(0) == 0);
    Chain c;
    REQUIRE(q.pop(c, false));
    CHECK(q.available(64) == 3);
    // A descriptor written but not yet made available ends the count.
    d.put(4, kBufGpa, 16, 0, false);
    d.post(5, {{kBufGpa, 16}});
    CHECK(q.available(64) == 3);
}

TEST_CASE("packed available: a full ring of single descriptors is the ring size")
{
    PackedDriver d(7);
    PackedQueue q;
    d.attach(q);
    for (uint16_t i = 0; i < 7; ++i)
        d.post(i, {{kBufGpa, 16}});
    CHECK(q.available(64) == 7);
    Chain c;
    for (uint16_t i = 0; i < 7; ++i)
        REQUIRE(q.pop(c, false));
    CHECK(q.available(64) == 0);  // the next lap's descriptors are not available yet
}

TEST_CASE("packed rewind: chains popped since an earlier last_avail come again")
{
    PackedDriver d(4);
    PackedQueue q;
    d.attach(q);
    Chain c;
    d.post(0, {{kBufGpa, 512, true}, {kBufGpa + 0x1000, 512, true}});
    REQUIRE(q.pop(c, true));
    const uint16_t mark = q.last_avail();
    d.post(1, {{kBufGpa + 0x2000, 512, true}});
    d.post(2, {{kBufGpa + 0x3000, 512, true}});  // the last descriptor of the ring
    REQUIRE(q.pop(c, true));
    REQUIRE(q.pop(c, true));
    CHECK(q.last_avail() == 0);  // wrapped
    CHECK(q.available(64) == 0);
    q.rewind(mark);
    CHECK(q.last_avail() == mark);
    CHECK(q.available(64) == 2);
    REQUIRE(q.pop(c, true));
    CHECK(c.head == 1);
    CHECK(c.seg[0].host == d.host(kBufGpa + 0x2000));
    REQUIRE(q.pop(c, true));
    CHECK(c.head == 2);
    CHECK_FALSE(d.take_used());  // nothing reached the driver
}

TEST_CASE("packed push_used: out of order, each at the device's used position")
{
    PackedDriver d(8);
    PackedQueue q;
    d.attach(q);
    d.post(0, {{kBufGpa, 16}, {kBufGpa, 16}});
    d.post(1, {{kBufGpa, 16}});
    d.post(2, {{kBufGpa, 16}, {kBufGpa, 16}, {kBufGpa, 16}});
    Chain c;
    for (int i = 0; i < 3; ++i)
        REQUIRE(q.pop(c, false));
    q.push_used(2, 30);  // took 3 descriptors: the next used one is at 3
    q.push_used(0, 10);  // took 2: next at 5
    q.push_used(1, 20);
    CHECK(d.ring()[0].id == 2);
    CHECK(d.ring()[3].id == 0);
    CHECK(d.ring()[5].id == 1);
    CHECK(q.last_used() == (spec::FRESH_RING | 6));
    for (auto [id, len] : {std::pair{2, 30}, {0, 10}, {1, 20}}) {
        const auto u = d.take_used();
        REQUIRE(u);
        CHECK(u->id == id);
        CHECK(u->len == len);
    }
    CHECK_FALSE(d.take_used());
}

TEST_CASE("packed push_used: an id that is not a buffer of this ring writes nothing")
{
    PackedDriver d(8);
    PackedQueue q;
    d.attach(q);
    q.push_used(8, 10);
    CHECK(q.last_used() == spec::FRESH_RING);
    CHECK_FALSE(d.take_used());
}

TEST_CASE("packed notifications: driver event flags enable and disable")
{
    PackedDriver d(8);
    PackedQueue q;
    d.attach(q);
    d.set_driver_event(spec::EVENT_ENABLE);
    CHECK_FALSE(q.flush_used());  // nothing to say
    q.push_used(0, 1);
    CHECK(q.flush_used());
    CHECK_FALSE(q.flush_used());
    d.set_driver_event(spec::EVENT_DISABLE);
    q.push_used(1, 1);
    CHECK_FALSE(q.flush_used());
    CHECK(d.ring()[1].id == 1);  // used all the same
    d.set_driver_event(spec::EVENT_ENABLE);
    q.push_used(2, 1);
    CHECK(q.flush_used());
    SUBCASE("DESC without EVENT_IDX is not a mode we know: notify")
    {
        d.set_driver_event(spec::EVENT_DESC, spec::FRESH_RING | 7);
        q.push_used(3, 1);
        CHECK(q.flush_used());
    }
}

TEST_CASE("packed notifications: DESC mode notifies when the used index passes off_wrap")
{
    PackedDriver d(8, true);
    PackedQueue q;
    d.attach(q);

    SUBCASE("the batch that uses the descriptor at the offset notifies, and only it")
    {
        d.set_driver_event(spec::EVENT_DESC, spec::FRESH_RING | 4);
        q.push_used(0, 1);
        q.push_used(1, 1);
        CHECK_FALSE(q.flush_used());  // 0 -> 2
        q.push_used(2, 1);
        q.push_used(3, 1);
        CHECK_FALSE(q.flush_used());  // 2 -> 4: descriptor 4 not yet used
        q.push_used(4, 1);
        CHECK(q.flush_used());  // 4 -> 5
        q.push_used(5, 1);
        CHECK_FALSE(q.flush_used());  // already passed
    }
    SUBCASE("a chain that steps over the offset notifies")
    {
        d.post(0, {{kBufGpa, 16}, {kBufGpa, 16}, {kBufGpa, 16}});
        Chain c;
        REQUIRE(q.pop(c, false));
        d.set_driver_event(spec::EVENT_DESC, spec::FRESH_RING | 1);
        q.push_used(0, 0);  // 0 -> 3
        CHECK(q.flush_used());
    }
    SUBCASE("across the wrap: off_wrap with wrap counter 0 is in the second lap")
    {
        for (uint16_t i = 0; i < 6; ++i)
            q.push_used(i, 1);
        d.set_driver_event(spec::EVENT_DESC, 1);  // index 1 of lap 2
        CHECK_FALSE(q.flush_used());              // 0 -> 6 of lap 1
        q.push_used(6, 1);
        q.push_used(7, 1);
        CHECK_FALSE(q.flush_used());  // 6 -> lap 2 index 0
        q.push_used(0, 1);
        q.push_used(1, 1);
        CHECK(q.flush_used());  // 0 -> 2 of lap 2 passes 1
        CHECK(q.last_used() == 2);
    }
    SUBCASE("across the wrap: an offset at the end of the old lap")
    {
        for (uint16_t i = 0; i < 6; ++i)
            q.push_used(i, 1);
        d.set_driver_event(spec::EVENT_DESC, spec::FRESH_RING | 7);
        CHECK_FALSE(q.flush_used());  // 0 -> 6
        q.push_used(6, 1);
        q.push_used(7, 1);
        q.push_used(0, 1);
        CHECK(q.flush_used());  // 6 -> lap 2 index 1 passes 7 of lap 1
    }
    SUBCASE("across the wrap: an offset of the old lap already passed")
    {
        for (uint16_t i = 0; i < 6; ++i)
            q.push_used(i, 1);
        CHECK(q.flush_used());  // enabled by default (flags 0)
        d.set_driver_event(spec::EVENT_DESC, spec::FRESH_RING | 2);
        q.push_used(6, 1);
        q.push_used(7, 1);
        q.push_used(0, 1);
        CHECK_FALSE(q.flush_used());  // 6 -> lap 2 index 1: 2 of lap 1 was passed before
    }
    SUBCASE("a whole lap in one flush passes every offset")
    {
        d.set_driver_event(spec::EVENT_DESC, spec::FRESH_RING | 5);
        for (uint16_t i = 0; i < 8; ++i)
            q.push_used(i, 1);
        CHECK(q.flush_used());
        CHECK(q.last_used() == 0);
    }
}

TEST_CASE("packed pop: every guest error is a QueueFault that stops the queue")
{
    PackedDriver d(16);
    PackedQueue q;
    d.attach(q);
    SUBCASE("a chain longer than the ring (descriptor loop)")
    {
        PackedDriver small(4);
        small.attach(q);
        for (uint16_t i = 0; i < 4; ++i)
            small.put(i, kBufGpa, 16, spec::NEXT);
        CHECK(q.available(64) == 1);
        CHECK(pop_fault(q, false) == "chain_loop");
    }
    SUBCASE("a chain running into a descriptor not made available")
    {
        d.put(0, kBufGpa, 16, spec::NEXT);
        d.put(0, kBufGpa, 16, 0, false);
        CHECK(q.available(64) == 1);
        CHECK(pop_fault(q, false) == "partial_chain");
    }
    SUBCASE("a chain running into a descriptor of the previous lap")
    {
        PackedDriver small(4);
        small.attach(q);
        Chain c;
        for (uint16_t i = 0; i < 3; ++i)
            small.post(i, {{kBufGpa, 16}});
        for (uint16_t i = 0; i < 3; ++i)
            REQUIRE(q.pop(c, false));
        small.put(3, kBufGpa, 16, spec::NEXT);  // index 3; index 0 still holds lap 1's flags
        CHECK(pop_fault(q, false) == "partial_chain");
    }
    SUBCASE("buffer id beyond the ring")
    {
        d.put(16, kBufGpa, 16, 0);
        CHECK(pop_fault(q, false) == "bad_desc_index");
    }
    SUBCASE("buffer id beyond the ring in the last descriptor of a chain")
    {
        d.put(0, kBufGpa, 16, spec::NEXT);
        d.put(0xffff, kBufGpa, 16, 0);
        CHECK(pop_fault(q, false) == "bad_desc_index");
    }
    SUBCASE("zero-length buffer")
    {
        d.put(0, kBufGpa, 0, 0);
        CHECK(pop_fault(q, false) == "zero_length_desc");
    }
    SUBCASE("zero-length buffer inside an indirect table")
    {
        d.post_indirect(0, {{kBufGpa, 16}, {kBufGpa, 0}});
        CHECK(pop_fault(q, false) == "zero_length_desc");
    }
    SUBCASE("buffer in no region")
    {
        d.put(0, 0x900000, 16, 0);
        CHECK(pop_fault(q, false) == "desc_outside_memory");
    }
    SUBCASE("buffer starting inside, ending past the last region")
    {
        d.put(0, kGpaB + kRegionSize - 8, 16, 0);
        CHECK(pop_fault(q, false) == "desc_outside_memory");
    }
    SUBCASE("buffer whose addr + len wraps past 2^64")
    {
        d.put(0, ~uint64_t(0) - 7, 16, 0);
        CHECK(pop_fault(q, false) == "desc_outside_memory");
    }
    SUBCASE("a later descriptor of a chain outside memory")
    {
        d.put(0, kBufGpa, 16, spec::NEXT);
        d.put(0, 0x10, 16, 0);
        CHECK(pop_fault(q, false) == "desc_outside_memory");
    }
    SUBCASE("indirect table outside memory")
    {
        d.put(0, 0x900000, 4 * sizeof(spec::Desc), spec::INDIRECT);
        CHECK(pop_fault(q, false) == "desc_outside_memory");
    }
    SUBCASE("indirect table running off its region")
    {
        d.put(0, kGpaB + kRegionSize - sizeof(spec::Desc), 2 * sizeof(spec::Desc), spec::INDIRECT);
        CHECK(pop_fault(q, false) == "desc_outside_memory");
    }
    SUBCASE("device-writable buffer on TX")
    {
        d.post(0, {{kBufGpa, 16, true}});
        CHECK(pop_fault(q, false) == "wrong_direction");
    }
    SUBCASE("read-only buffer on RX")
    {
        d.post(0, {{kBufGpa, 16}});
        CHECK(pop_fault(q, true) == "wrong_direction");
    }
    SUBCASE("RX chain with a read-only tail")
    {
        d.post(0, {{kBufGpa, 16, true}, {kBufGpa, 16}});
        CHECK(pop_fault(q, true) == "wrong_direction");
    }
    SUBCASE("a read-only buffer inside an RX indirect table")
    {
        d.post_indirect(0, {{kBufGpa, 16, true}, {kBufGpa, 16}});
        CHECK(pop_fault(q, true) == "wrong_direction");
    }
    SUBCASE("indirect of length 0")
    {
        d.put(0, kTableGpa, 0, spec::INDIRECT);
        CHECK(pop_fault(q, false) == "bad_indirect");
    }
    SUBCASE("indirect length not a multiple of 16")
    {
        d.put(0, kTableGpa, 24, spec::INDIRECT);
        CHECK(pop_fault(q, false) == "bad_indirect");
    }
    SUBCASE("indirect with NEXT")
    {
        d.table()[0] = spec::Desc{kBufGpa, 16, 0, 0};
        d.put(0, kTableGpa, sizeof(spec::Desc), spec::INDIRECT | spec::NEXT);
        d.put(0, kBufGpa, 16, 0);
        CHECK(pop_fault(q, false) == "bad_indirect");
    }
    SUBCASE("indirect inside an indirect table")
    {
        d.table(0x100)[0] = spec::Desc{kBufGpa, 16, 0, 0};
        d.table()[0] = spec::Desc{kBufGpa, 16, 0, 0};
        d.table()[1] = spec::Desc{kTableGpa + 0x100, sizeof(spec::Desc), 0, spec::INDIRECT};
        d.put(0, kTableGpa, 2 * sizeof(spec::Desc), spec::INDIRECT);
        CHECK(pop_fault(q, false) == "nested_indirect");
    }
    SUBCASE("indirect as a later descriptor of a chain")
    {
        d.table()[0] = spec::Desc{kBufGpa, 16, 0, 0};
        d.put(0, kBufGpa, 16, spec::NEXT);
        d.put(0, kTableGpa, sizeof(spec::Desc), spec::INDIRECT);
        CHECK(pop_fault(q, false) == "nested_indirect");
    }
}

TEST_CASE("packed: a fault sticks until the front-end configures the ring again")
{
    PackedDriver d(16);
    PackedQueue q;
    d.attach(q);
    d.put(0, kBufGpa, 0, 0);
    Chain c;
    CHECK_FALSE(q.pop(c, false));
    CHECK(fault_of(q) == "zero_length_desc");
    CHECK_FALSE(q.attach(d.mem()));  // a new memory snapshot does not clear a guest error
    CHECK(fault_of(q) == "zero_length_desc");
    CHECK_FALSE(q.pop(c, false));
    d.ring()[0].len = 16;
    d.attach(q);
    CHECK(q.ready());
    CHECK(q.available(64) == 1);
    CHECK(q.pop(c, false));
}

TEST_CASE("packed: a queue broken by break_with is not processed")
{
    PackedDriver d(16);
    PackedQueue q;
    d.attach(q);
    d.post(0, {{kBufGpa, 16}});
    q.break_with(QueueFault::avail_idx_jump);
    CHECK(q.available(64) == 0);
    Chain c;
    CHECK_FALSE(q.pop(c, false));
    CHECK(fault_of(q) == "avail_idx_jump");
}
