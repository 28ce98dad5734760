// DirtyLog: which bits a write marks, what it counts, and that it never writes past the
// log; MemTable's reverse lookups the logging paths use.
#include "vusw/dirty_log.h"

#include <fcntl.h>

#include <array>
#include <cstring>

#include <doctest/doctest.h>

#include "tests/unit/memfd.h"

using namespace vusw;
using vusw::test::make_memfd;
using vusw::test::make_region;

namespace {

constexpr uint64_t kPage = 4096;

bool bit(const std::array<std::byte, 16>& log, uint64_t page)
{
    return (std::to_integer<unsigned>(log[page / 8]) >> (page % 8)) & 1u;
}

template <class T>
std::string reason(const Result<T>& r)
{
    return r ? "ok" : r.error().reason;
}

}  // namespace

TEST_CASE("DirtyLog marks every 4 KiB page a write touches, and counts new bits once")
{
    std::array<std::byte, 16> bits{};  // pages 0..127
    const auto log = DirtyLog::over(bits.data(), bits.size());
    uint32_t missed = 0;
    CHECK(log->mark(5 * kPage + 100, 1, missed) == 1);
    CHECK(bit(bits, 5));
    CHECK_FALSE(bit(bits, 4));
    CHECK_FALSE(bit(bits, 6));
    CHECK(log->mark(5 * kPage, kPage, missed) == 0);  // already set: not counted again
    // A write across a boundary marks both pages; exactly up to a boundary only one.
    CHECK(log->mark(9 * kPage - 2, 4, missed) == 2);
    CHECK((bit(bits, 8) && bit(bits, 9)));
    CHECK(log->mark(20 * kPage, kPage, missed) == 1);
    CHECK_FALSE(bit(bits, 21));
    CHECK(log->mark(30 * kPage + 1, 3 * kPage, missed) == 4);  // pages 30..33
    CHECK(missed == 0);
    int set = 0;
    for (uint64_t p = 0; p < 128; ++p)
        set += bit(bits, p);
    CHECK(set == 1 + 2 + 1 + 4);
}

TEST_CASE("DirtyLog counts pages beyond the log and never writes past it")
{
    std::array<std::byte, 16> bits{};
    bits.fill(std::byte{0});
    const auto log = DirtyLog::over(bits.data(), 8);  // pages 0..63; bytes 8..15 are a canary
    uint32_t missed = 0;
    CHECK(log->mark(62 * kPage, 4 * kPage, missed) == 2);  // 62, 63 in; 64, 65 out
    CHECK(missed == 2);
    CHECK(log->mark(uint64_t(1) << 40, 10, missed) == 0);
    CHECK(missed == 3);
    // A range that wraps past 2^64 ends at the top; nothing inside the log.
    CHECK(log->mark(UINT64_MAX - 10, 100, missed) == 0);
    CHECK(missed == 4);
    for (std::size_t i = 8; i < bits.size(); ++i)
        CHECK(bits[i] == std::byte{0});
    CHECK(log->covers() == 64 * kPage);
}

TEST_CASE("DirtyLog::map checks the log against its fd")
{
    auto fd = make_memfd(2 * kPage);
    const int raw = fd.get();
    auto log = DirtyLog::map(std::move(fd), kPage, 100);  // an unaligned offset is fine
    REQUIRE(log.has_value());
    uint32_t missed = 0;
    CHECK((*log)->mark(0, 1, missed) == 1);
    CHECK(fcntl(raw, F_GETFD) == -1);  // the fd is closed once mapped: the mapping keeps the log
    CHECK(reason(DirtyLog::map(make_memfd(kPage), 2 * kPage, 0)) == "bad_log");
    CHECK(reason(DirtyLog::map(make_memfd(kPage), 0, 0)) == "bad_log");
    CHECK(reason(DirtyLog::map(UniqueFd(), kPage, 0)) == "bad_log");
    CHECK(reason(DirtyLog::map(make_memfd(kPage), 16, UINT64_MAX - 8)) == "bad_log");
}

TEST_CASE("MemTable maps host pointers and front-end addresses back to guest-physical ones")
{
    auto low = make_region(0x100000, 16 * kPage, 0x7000000);
    auto high = make_region(0x40000000, 16 * kPage, 0x9000000);
    auto table = MemTable::from_regions({low, high});
    REQUIRE(table.has_value());
    uint64_t gpa = 0;
    CHECK((*table)->host_to_gpa(high->host() + 123, gpa));
    CHECK(gpa == 0x40000000 + 123);
    CHECK((*table)->host_to_gpa(low->host() + 16 * kPage - 1, gpa));
    CHECK(gpa == 0x100000 + 16 * kPage - 1);
    // One past the low region: not that region's (whatever else the address space holds there).
    const bool past = (*table)->host_to_gpa(low->host() + 16 * kPage, gpa);
    CHECK((!past || gpa >= 0x40000000));
    CHECK((*table)->uva_to_gpa(FrontendAddr{0x9000000 + 5}, gpa));
    CHECK(gpa == 0x40000005);
    CHECK_FALSE((*table)->uva_to_gpa(FrontendAddr{0x9000000 + 16 * kPage}, gpa));
    CHECK_FALSE((*table)->uva_to_gpa(FrontendAddr{0x1000}, gpa));
}
