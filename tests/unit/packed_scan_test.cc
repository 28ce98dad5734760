// PackedQueue::available() keeps its scan of the ring's flags between calls, so that each
// descriptor's flags are looked at once (perf/queue_bench: a fresh scan of 64 descriptors
// per burst made the packed RX path 5x split's cost at burst 1). These tests hold the kept
// count to what a fresh count of the ring gives, and a driver that rewrites flags it
// already made available to a clear outcome.
#include <algorithm>
#include <deque>
#include <random>
#include <utility>

#include <doctest/doctest.h>

#include "tests/unit/packed_driver.h"
#include "vusw/packed_queue.h"

using namespace vusw;
using namespace vusw::test::packed;

TEST_CASE("packed available: a kept count grows with what the driver adds and shrinks with pop")
{
    PackedDriver d(16);
    PackedQueue q;
    d.attach(q);
    for (uint16_t id = 0; id < 3; ++id)
        d.post(id, {{kBufGpa, 16}});
    CHECK(q.available(2) == 2);
    CHECK(q.available(64) == 3);
    d.post(3, {{kBufGpa, 16}, {kBufGpa + 0x100, 16}});
    d.post(4, {{kBufGpa, 16}});
    CHECK(q.available(64) == 5);
    Chain c;
    for (uint16_t id = 0; id < 5; ++id) {
        REQUIRE(q.pop(c, false));
        CHECK(c.head == id);
        CHECK(q.available(64) == 4 - id);
    }
}

TEST_CASE("packed available: a count that stopped inside a chain resumes there")
{
    PackedDriver d(16);
    PackedQueue q;
    d.attach(q);
    d.post(0, {{kBufGpa, 16}, {kBufGpa + 0x100, 16}, {kBufGpa + 0x200, 16}});
    d.post(1, {{kBufGpa, 16}});
    CHECK(q.available(1) == 1);   // stopped after the first chain's head
    CHECK(q.available(64) == 2);  // that chain's other descriptors are not heads
    Chain c;
    REQUIRE(q.pop(c, false));
    CHECK(c.count == 3);
    CHECK(q.available(64) == 1);
    REQUIRE(q.pop(c, false));
    CHECK(c.head == 1);
    CHECK(q.available(64) == 0);
}

TEST_CASE("packed available: rewind and attach start the count afresh")
{
    PackedDriver d(8);
    PackedQueue q;
    d.attach(q);
    d.post(0, {{kBufGpa, 16}, {kBufGpa + 0x100, 16}});
    d.post(1, {{kBufGpa, 16}});
    d.post(2, {{kBufGpa, 16}});
    REQUIRE(q.available(64) == 3);
    const uint16_t start = q.last_avail();
    Chain c;
    REQUIRE(q.pop(c, false));  // two descriptors: the count moves on by two
    CHECK(q.available(64) == 2);
    q.rewind(start);
    CHECK(q.available(64) == 3);  // not the two-descriptor step of the pop taken back
    REQUIRE(q.pop(c, false));
    REQUIRE(q.attach(d.mem()));  // a new memory table: the ring is read again
    CHECK(q.available(64) == 2);
    REQUIRE(q.pop(c, false));
    CHECK(c.head == 1);
}

// Spec §2.8.21 (and §2.8.6) leave an available descriptor to the device; a driver that
// changes one anyway must cost only its own queue, and never stall it silently.
TEST_CASE("packed available: flags rewritten after the count neither stall the queue nor reach past the ring")
{
    PackedDriver d(16);
    PackedQueue q;
    d.attach(q);
    Chain c;
    SUBCASE("a counted chain loses NEXT: its tail becomes a chain of its own, and is popped")
    {
        d.post(0, {{kBufGpa, 16}, {kBufGpa + 0x100, 16}});
        d.post(1, {{kBufGpa, 16}});
        d.post(2, {{kBufGpa, 16}});
        REQUIRE(q.available(64) == 3);
        d.ring()[0].flags = uint16_t(d.ring()[0].flags & ~spec::NEXT);
        int popped = 0;
        for (int turn = 0; turn < 8 && popped < 4; ++turn) {
            const uint16_t n = q.available(64);
            REQUIRE(n > 0);  // four chains are there now: the count may lag, never stop
            for (uint16_t i = 0; i < n; ++i, ++popped)
                REQUIRE(q.pop(c, false));
        }
        CHECK(popped == 4);
        CHECK(q.available(64) == 0);
        CHECK(q.ready());
    }
    SUBCASE("a counted descriptor gains NEXT: the count runs past the ring's chains and pop says partial_chain")
    {
        for (uint16_t id = 0; id < 3; ++id)
            d.post(id, {{kBufGpa, 16}});
        REQUIRE(q.available(64) == 3);
        d.ring()[1].flags = uint16_t(d.ring()[1].flags | spec::NEXT);
        REQUIRE(q.pop(c, false));
        REQUIRE(q.available(64) == 2);  // counted before the change
        REQUIRE(q.pop(c, false));
        CHECK(c.count == 2);  // descriptors 1 and 2, one chain now
        CHECK(c.head == 2);
        CHECK_FALSE(q.pop(c, false));  // descriptor 3 was never made available
        CHECK(fault_name(q.fault()) == "partial_chain");
    }
}

// A model of the ring: the chains posted and not popped, in order. Every available() must
// give what a fresh count would, whatever limits came before, over many laps.
TEST_CASE("packed available: the kept count equals a fresh count over many laps, random chains and limits")
{
    std::mt19937 rng(9);
    for (uint16_t size : {5, 16, 256}) {
        CAPTURE(size);
        PackedDriver d(size);
        PackedQueue q;
        d.attach(q);
        std::deque<std::pair<uint16_t, uint16_t>> posted;  // id, descriptors
        uint32_t in_ring = 0, next_id = 0;
        const auto expect = [&](uint16_t limit) { return uint16_t(std::min<std::size_t>(limit, posted.size())); };
        for (int turn = 0; turn < 4000; ++turn) {
            CAPTURE(turn);
            const uint16_t descs = uint16_t(1 + rng() % 3);
            if (rng() % 2 && in_ring + descs <= size) {
                const uint16_t id = uint16_t(next_id++ % size);
                std::vector<Buf> bufs(descs, Buf{kBufGpa, 16});
                d.post(id, bufs);
                posted.emplace_back(id, descs);
                in_ring += descs;
            }
            const uint16_t limit = uint16_t(rng() % 70);
            REQUIRE(q.available(limit) == expect(limit));
            const uint16_t take = expect(uint16_t(rng() % 4));
            REQUIRE(q.available(take) == take);
            for (uint16_t i = 0; i < take; ++i) {
                Chain c;
                REQUIRE(q.pop(c, false));
                REQUIRE(c.head == posted.front().first);
                REQUIRE(c.count == posted.front().second);
                q.push_used(c.head, 0);
                in_ring -= posted.front().second;
                posted.pop_front();
            }
            q.flush_used();
            while (d.take_used()) {
            }
        }
        CHECK(q.ready());
    }
}
