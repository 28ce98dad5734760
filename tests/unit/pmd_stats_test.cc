// PMD loop-turn histogram: which buckets count as "longer than" a bound.
#include <doctest/doctest.h>

#include "vusw/pmd.h"

namespace vusw {

TEST_CASE("IterationStats::longer_than sums the buckets above a bound")
{
    IterationStats s;
    // kBounds: 10 us, 100 us, 1 ms, 10 ms, 100 ms; buckets[5] is above 100 ms.
    s.buckets = {1000, 100, 10, 3, 2, 1};
    CHECK(s.longer_than(1e-5) == 100 + 10 + 3 + 2 + 1);
    CHECK(s.longer_than(1e-4) == 10 + 3 + 2 + 1);
    CHECK(s.longer_than(1e-3) == 3 + 2 + 1);
    CHECK(s.longer_than(1e-2) == 2 + 1);
    CHECK(s.longer_than(1e-1) == 1);
    CHECK(IterationStats{}.longer_than(1e-3) == 0);
}

TEST_CASE("PacketsPerTurn puts a turn in the bucket of the smallest bound it does not exceed")
{
    CHECK(PacketsPerTurn::bucket_of(0) == 0);
    CHECK(PacketsPerTurn::bucket_of(1) == 1);
    CHECK(PacketsPerTurn::bucket_of(2) == 2);
    CHECK(PacketsPerTurn::bucket_of(4) == 2);
    CHECK(PacketsPerTurn::bucket_of(5) == 3);
    CHECK(PacketsPerTurn::bucket_of(32) == 5);
    CHECK(PacketsPerTurn::bucket_of(64) == 6);
    CHECK(PacketsPerTurn::bucket_of(65) == PacketsPerTurn::kBounds.size());
    CHECK(PacketsPerTurn::bucket_of(UINT64_MAX) == PacketsPerTurn::kBounds.size());
}

}  // namespace vusw
