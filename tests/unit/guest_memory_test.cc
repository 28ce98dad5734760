// MappedRegion and MemTable: mapping rules, whole-range translation, slot and overlap rules.
#include "vusw/guest_memory.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include <doctest/doctest.h>

#include "tests/unit/memfd.h"

using namespace vusw;
using vusw::test::make_memfd;
using vusw::test::make_region;

namespace {

constexpr uint64_t kPage = 4096;

bool fd_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1;
}

std::unique_ptr<MemTable> table_of(std::vector<std::shared_ptr<const MappedRegion>> regions)
{
    auto t = MemTable::from_regions(std::move(regions));
    REQUIRE_MESSAGE(t.has_value(), (t ? "" : t.error().detail));
    return std::move(*t);
}

std::string reason_of(const Result<std::unique_ptr<MemTable>>& r)
{
    return r ? "ok" : r.error().reason;
}

}  // namespace

TEST_CASE("MappedRegion maps the fd shared, at mmap_offset")
{
    UniqueFd fd = make_memfd(4 * kPage);
    const int raw = dup(fd.get());
    REQUIRE(raw >= 0);
    UniqueFd peer(raw);
    const char msg[] = "hello";
    REQUIRE(pwrite(peer.get(), msg, sizeof msg, kPage + 100) == ssize_t(sizeof msg));

    // An unaligned offset: the mapping starts on a page, host() points at the offset.
    auto region = MappedRegion::map(std::move(fd), RegionDesc{0x100000, 2 * kPage, 0x7f0000000000, kPage + 100});
    REQUIRE(region.has_value());
    const MappedRegion& r = **region;
    CHECK(r.desc().gpa == 0x100000);
    CHECK(r.desc().uva == 0x7f0000000000);
    CHECK(std::memcmp(r.host(), msg, sizeof msg) == 0);

    // Writes through the mapping reach the file (MAP_SHARED): the guest sees what we write.
    std::memcpy(r.host() + 8, "xy", 2);
    char back[2] = {};
    REQUIRE(pread(peer.get(), back, 2, kPage + 108) == 2);
    CHECK(std::string(back, 2) == "xy");
}

TEST_CASE("MappedRegion rejects bad descriptions and closes the fd")
{
    struct Case {
        const char* what;
        RegionDesc desc;
        const char* reason;
    };
    const Case cases[] = {
        {"zero size", {0, 0, 0x1000, 0}, "bad_region"},
        {"gpa wraps", {~uint64_t(0) - 100, kPage, 0x1000, 0}, "bad_region"},
        {"uva wraps", {0, kPage, ~uint64_t(0) - 100, 0}, "bad_region"},
        {"offset + size wraps", {0, kPage, 0x1000, ~uint64_t(0) - 100}, "bad_region"},
        {"past the end of the file", {0, 2 * kPage + 1, 0x1000, 0}, "bad_region"},
        {"offset pushes it past the end", {0, 2 * kPage, 0x1000, 1}, "bad_region"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.what);
        UniqueFd fd = make_memfd(2 * kPage);
        const int raw = fd.get();
        auto r = MappedRegion::map(std::move(fd), c.desc);
        REQUIRE_FALSE(r.has_value());
        CHECK(std::string(r.error().reason) == c.reason);
        CHECK_FALSE(fd_open(raw));  // a rejected region does not leak the front-end's fd
    }
    auto none = MappedRegion::map(UniqueFd(), RegionDesc{0, kPage, 0x1000, 0});
    REQUIRE_FALSE(none.has_value());
    CHECK(std::string(none.error().reason) == "bad_region");
}

TEST_CASE("MappedRegion: exactly the file size fits; a region may end at 2^64")
{
    CHECK(MappedRegion::map(make_memfd(2 * kPage), RegionDesc{0, 2 * kPage, 0x1000, 0}).has_value());
    CHECK(MappedRegion::map(make_memfd(2 * kPage), RegionDesc{0, kPage, 0x1000, kPage}).has_value());
    auto top = MappedRegion::map(make_memfd(kPage), RegionDesc{~uint64_t(0) - kPage + 1, kPage, ~uint64_t(0) - kPage + 1, 0});
    REQUIRE(top.has_value());
    auto table = table_of({*top});
    CHECK(table->translate(GuestPhysAddr{~uint64_t(0)}, 1) == (*top)->host() + kPage - 1);
    CHECK(table->translate(GuestPhysAddr{~uint64_t(0)}, 2) == nullptr);
    CHECK(table->translate_prefix(GuestPhysAddr{~uint64_t(0) - 1}, 100).size() == 2);
}

TEST_CASE("MappedRegion closes its fd exactly when the last owner goes")
{
    UniqueFd fd = make_memfd(kPage);
    const int raw = fd.get();
    auto region = make_region(0, kPage, 0x1000);  // a second region, so raw is not reused
    {
        auto r = MappedRegion::map(std::move(fd), RegionDesc{0x10000, kPage, 0x20000, 0});
        REQUIRE(r.has_value());
        auto table = table_of({*r, region});
        r->reset();
        CHECK(fd_open(raw));  // the table still owns it
        auto smaller = table->without_region(RegionDesc{0x10000, kPage, 0x20000, 0});
        REQUIRE(smaller.has_value());
        table.reset();
        CHECK(fd_open(raw) == false);
        CHECK((*smaller)->region_count() == 1);
    }
}

TEST_CASE("translate checks the whole range, not the first byte")
{
    auto a = make_region(0x10000, 0x10000, 0x7f0000000000);
    auto b = make_region(0x20000, 0x10000, 0x7f0000100000);  // adjacent in GPA, not in UVA
    auto table = table_of({b, a});                           // order does not matter
    REQUIRE(table->region_count() == 2);
    CHECK(table->regions()[0] == a);  // sorted by gpa

    CHECK(table->translate(GuestPhysAddr{0x10000}, 1) == a->host());
    CHECK(table->translate(GuestPhysAddr{0x10010}, 0x100) == a->host() + 0x10);
    CHECK(table->translate(GuestPhysAddr{0x10000}, 0x10000) == a->host());
    CHECK(table->translate(GuestPhysAddr{0x1ffff}, 1) == a->host() + 0xffff);
    CHECK(table->translate(GuestPhysAddr{0x20000}, 0x10000) == b->host());

    CHECK(table->translate(GuestPhysAddr{0x1ffff}, 2) == nullptr);    // crosses into b: not contiguous
    CHECK(table->translate(GuestPhysAddr{0x2ffff}, 2) == nullptr);    // runs off the end
    CHECK(table->translate(GuestPhysAddr{0xffff}, 2) == nullptr);     // starts before
    CHECK(table->translate(GuestPhysAddr{0x40000}, 1) == nullptr);    // unmapped
    CHECK(table->translate(GuestPhysAddr{0x10000}, 0) == nullptr);    // empty
    CHECK(table->translate(GuestPhysAddr{0x10000}, ~uint64_t(0)) == nullptr);  // wraps
    CHECK(table->translate(GuestPhysAddr{~uint64_t(0)}, 2) == nullptr);
}

TEST_CASE("translate_prefix gives the contiguous part, for segment-by-segment walks")
{
    auto a = make_region(0x10000, 0x10000, 0x7f0000000000);
    auto b = make_region(0x20000, 0x10000, 0x7f0000100000);
    auto table = table_of({a, b});

    auto p = table->translate_prefix(GuestPhysAddr{0x1ff00}, 0x300);
    CHECK(p.data() == a->host() + 0xff00);
    CHECK(p.size() == 0x100);
    auto q = table->translate_prefix(GuestPhysAddr{0x20000}, 0x200);
    CHECK(q.data() == b->host());
    CHECK(q.size() == 0x200);
    CHECK(table->translate_prefix(GuestPhysAddr{0x10000}, 0x10).size() == 0x10);
    CHECK(table->translate_prefix(GuestPhysAddr{0x30000}, 0x10).empty());
    CHECK(table->translate_prefix(GuestPhysAddr{0x10000}, 0).empty());
    CHECK(table->translate_prefix(GuestPhysAddr{0x2fff0}, ~uint64_t(0)).size() == 0x10);
}

TEST_CASE("translate_uva maps front-end addresses, whole range")
{
    auto a = make_region(0x10000, 0x10000, 0x7f0000000000);
    auto b = make_region(0x20000, 0x10000, 0x7f0000010000);  // adjacent in UVA too
    auto table = table_of({a, b});
    CHECK(table->translate_uva(FrontendAddr{0x7f0000000000}, 0x10000) == a->host());
    CHECK(table->translate_uva(FrontendAddr{0x7f0000010100}, 16) == b->host() + 0x100);
    CHECK(table->translate_uva(FrontendAddr{0x7f000000fff0}, 0x20) == nullptr);  // spans two mappings
    CHECK(table->translate_uva(FrontendAddr{0x7f0000020000}, 1) == nullptr);
    CHECK(table->translate_uva(FrontendAddr{0x10000}, 1) == nullptr);  // a gpa is not a uva
    CHECK(table->translate_uva(FrontendAddr{0x7f0000000000}, 0) == nullptr);
    CHECK(table->translate_uva(FrontendAddr{~uint64_t(0)}, 2) == nullptr);
}

TEST_CASE("with_region rejects GPA and UVA overlaps and never changes the old table")
{
    auto a = make_region(0x10000, 0x10000, 0x7f0000000000);
    auto empty = std::make_unique<MemTable>();
    auto one = empty->with_region(a);
    REQUIRE(one.has_value());
    CHECK(empty->region_count() == 0);
    CHECK(empty->translate(GuestPhysAddr{0x10000}, 1) == nullptr);

    SUBCASE("gpa overlap, last byte")
    {
        CHECK(reason_of((*one)->with_region(make_region(0x1ffff, kPage, 0x7f1000000000))) == "region_overlap");
    }
    SUBCASE("gpa overlap, containing")
    {
        CHECK(reason_of((*one)->with_region(make_region(0x0, 0x40000, 0x7f1000000000))) == "region_overlap");
    }
    SUBCASE("uva overlap with distinct gpa")
    {
        CHECK(reason_of((*one)->with_region(make_region(0x80000, kPage, 0x7f000000f000))) == "region_overlap");
    }
    SUBCASE("adjacent in both is fine")
    {
        auto two = (*one)->with_region(make_region(0x20000, kPage, 0x7f0000010000));
        REQUIRE(two.has_value());
        CHECK((*two)->region_count() == 2);
        CHECK((*one)->region_count() == 1);
        CHECK((*one)->translate(GuestPhysAddr{0x20000}, 1) == nullptr);
    }
    SUBCASE("from_regions fails on an overlap")
    {
        auto t = MemTable::from_regions({a, make_region(0x18000, 0x10000, 0x7f2000000000)});
        REQUIRE_FALSE(t.has_value());
        CHECK(std::string(t.error().reason) == "region_overlap");
    }
}

TEST_CASE("without_region removes only on a gpa + uva + size match")
{
    auto a = make_region(0x10000, 0x10000, 0x7f0000000000);
    auto b = make_region(0x40000, 0x10000, 0x7f0000100000);
    auto table = table_of({a, b});

    CHECK(reason_of(table->without_region({0x10000, 0x10000, 0x7f0000001000, 0})) == "region_not_found");
    CHECK(reason_of(table->without_region({0x10000, 0x8000, 0x7f0000000000, 0})) == "region_not_found");
    CHECK(reason_of(table->without_region({0x11000, 0x10000, 0x7f0000000000, 0})) == "region_not_found");
    CHECK(reason_of(table->without_region({0x40000, 0x10000, 0x7f0000000000, 0})) == "region_not_found");  // mixes a and b
    CHECK(table->region_count() == 2);

    // mmap_offset is not part of the identity (spec: REM_MEM_REG).
    auto rest = table->without_region({0x10000, 0x10000, 0x7f0000000000, 0x12345});
    REQUIRE(rest.has_value());
    CHECK((*rest)->region_count() == 1);
    CHECK((*rest)->translate(GuestPhysAddr{0x10000}, 1) == nullptr);
    CHECK((*rest)->translate(GuestPhysAddr{0x40000}, 0x10000) == b->host());
    // The old snapshot is still whole (a PMD core may be using it).
    CHECK(table->translate(GuestPhysAddr{0x10000}, 1) == a->host());

    auto gone = (*rest)->without_region({0x40000, 0x10000, 0x7f0000100000, 0});
    REQUIRE(gone.has_value());
    CHECK((*gone)->region_count() == 0);
    CHECK(reason_of((*gone)->without_region({0x40000, 0x10000, 0x7f0000100000, 0})) == "region_not_found");
}

TEST_CASE("the slot limit: kMaxMemSlots regions fit, one more is an error")
{
    REQUIRE(kMaxMemSlots >= 509);
    auto table = std::make_unique<MemTable>();
    std::vector<std::shared_ptr<const MappedRegion>> all;
    for (std::size_t i = 0; i < kMaxMemSlots; ++i) {
        // Every other page, so lookups must find the right region and miss the gaps.
        all.push_back(make_region(0x100000 + 2 * i * kPage, kPage, 0x7f0000000000 + 2 * i * kPage));
        auto next = table->with_region(all.back());
        REQUIRE(next.has_value());
        table = std::move(*next);
    }
    CHECK(table->region_count() == kMaxMemSlots);
    auto over = table->with_region(make_region(0x10000000, kPage, 0x7e0000000000));
    REQUIRE_FALSE(over.has_value());
    CHECK(std::string(over.error().reason) == "mem_slots_full");

    for (std::size_t i = 0; i < kMaxMemSlots; i += 37) {
        CAPTURE(i);
        const uint64_t gpa = 0x100000 + 2 * i * kPage;
        CHECK(table->translate(GuestPhysAddr{gpa + 5}, 10) == all[i]->host() + 5);
        CHECK(table->translate(GuestPhysAddr{gpa + kPage}, 1) == nullptr);  // the gap
        CHECK(table->translate_prefix(GuestPhysAddr{gpa}, 2 * kPage).size() == kPage);
        CHECK(table->translate_uva(FrontendAddr{0x7f0000000000 + 2 * i * kPage}, kPage) == all[i]->host());
    }
    CHECK(table->translate(GuestPhysAddr{0xfffff}, 1) == nullptr);

    // After a removal the slot is free again.
    auto fewer = table->without_region(all[7]->desc());
    REQUIRE(fewer.has_value());
    CHECK((*fewer)->translate(GuestPhysAddr{all[7]->desc().gpa}, 1) == nullptr);
    CHECK((*fewer)->translate(GuestPhysAddr{all[8]->desc().gpa}, 1) == all[8]->host());
    CHECK((*fewer)->with_region(make_region(0x10000000, kPage, 0x7e0000000000)).has_value());
}
