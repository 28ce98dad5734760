// The learning table: (MAC, VLAN) -> port, moves, aging, port flush, a full table.
#include "vusw/fdb.h"

#include <algorithm>

#include <doctest/doctest.h>

using namespace vusw;

namespace {

constexpr uint64_t kMacA = 0x525400000001;
constexpr uint64_t kMacB = 0x525400000002;

const FdbEntry* find(const std::vector<FdbEntry>& all, uint64_t mac, uint16_t vlan)
{
    auto it = std::find_if(all.begin(), all.end(), [&](const FdbEntry& e) { return e.mac == mac && e.vlan == vlan; });
    return it == all.end() ? nullptr : &*it;
}

}  // namespace

TEST_CASE("an empty table knows nothing")
{
    Fdb fdb(64);
    CHECK(fdb.lookup(kMacA, 0) == Fdb::kUnknown);
    CHECK(fdb.size() == 0);
    CHECK(fdb.entries().empty());
    CHECK(fdb.learned() == 0);
}

TEST_CASE("learn then lookup; VLANs are separate; MACs are 48-bit")
{
    Fdb fdb(64);
    REQUIRE(fdb.learn(kMacA, 0, 3));
    REQUIRE(fdb.learn(kMacB, 0, 4));
    REQUIRE(fdb.learn(kMacA, 100, 7));
    CHECK(fdb.lookup(kMacA, 0) == 3);
    CHECK(fdb.lookup(kMacB, 0) == 4);
    CHECK(fdb.lookup(kMacA, 100) == 7);
    CHECK(fdb.lookup(kMacB, 100) == Fdb::kUnknown);
    CHECK(fdb.lookup(kMacA, 101) == Fdb::kUnknown);
    CHECK(fdb.lookup(0x525400000003, 0) == Fdb::kUnknown);
    CHECK(fdb.lookup(kMacA | (1ull << 48), 0) == 3);  // bits above the MAC are not part of it
    CHECK(fdb.size() == 3);
    CHECK(fdb.learned() == 3);
}

TEST_CASE("port 0 is a real port")
{
    Fdb fdb(64);
    REQUIRE(fdb.learn(kMacA, 0, 0));
    CHECK(fdb.lookup(kMacA, 0) == 0);
}

TEST_CASE("a MAC that moves is found behind its new port, without a second entry")
{
    Fdb fdb(64);
    REQUIRE(fdb.learn(kMacA, 5, 1));
    REQUIRE(fdb.learn(kMacA, 5, 1));  // seen again: nothing new
    CHECK(fdb.learned() == 1);
    REQUIRE(fdb.learn(kMacA, 5, 2));
    CHECK(fdb.lookup(kMacA, 5) == 2);
    CHECK(fdb.size() == 1);
    CHECK(fdb.learned() == 1);
    auto all = fdb.entries();
    REQUIRE(all.size() == 1);
    CHECK(all[0].port == 2);
}

TEST_CASE("entries() reports mac, vlan, port and age")
{
    Fdb fdb(64);
    fdb.tick(100);
    REQUIRE(fdb.learn(kMacA, 0, 1));
    fdb.tick(130);
    REQUIRE(fdb.learn(kMacB, 42, 2));
    fdb.tick(135);
    auto all = fdb.entries();
    REQUIRE(all.size() == 2);
    const FdbEntry* a = find(all, kMacA, 0);
    const FdbEntry* b = find(all, kMacB, 42);
    REQUIRE(a != nullptr);
    REQUIRE(b != nullptr);
    CHECK(a->port == 1);
    CHECK(a->age_s == 35);
    CHECK(b->port == 2);
    CHECK(b->age_s == 5);
}

TEST_CASE("age() removes what was not seen for max_age, and traffic refreshes an entry")
{
    Fdb fdb(64);
    fdb.tick(0);
    REQUIRE(fdb.learn(kMacA, 0, 1));
    REQUIRE(fdb.learn(kMacB, 0, 2));
    fdb.tick(200);
    REQUIRE(fdb.learn(kMacB, 0, 2));  // B is still talking
    fdb.tick(300);
    CHECK(fdb.age(300) == 0);  // A is exactly 300 s old: kept
    fdb.tick(301);
    CHECK(fdb.age(300) == 1);
    CHECK(fdb.lookup(kMacA, 0) == Fdb::kUnknown);
    CHECK(fdb.lookup(kMacB, 0) == 2);
    CHECK(fdb.size() == 1);
    CHECK(fdb.aged() == 1);
    // An aged MAC is learned again as new.
    REQUIRE(fdb.learn(kMacA, 0, 3));
    CHECK(fdb.lookup(kMacA, 0) == 3);
    CHECK(fdb.learned() == 3);
}

TEST_CASE("flush_port forgets exactly that port's entries")
{
    Fdb fdb(64);
    for (uint64_t i = 0; i < 10; ++i)
        REQUIRE(fdb.learn(kMacA + i, 0, uint16_t(i % 2)));
    CHECK(fdb.flush_port(1) == 5);
    for (uint64_t i = 0; i < 10; ++i)
        CHECK(fdb.lookup(kMacA + i, 0) == (i % 2 ? Fdb::kUnknown : 0));
    CHECK(fdb.flush_port(1) == 0);
    CHECK(fdb.flush_port(7) == 0);
    CHECK(fdb.size() == 5);
}

TEST_CASE("a full probe window refuses new keys, keeps old ones, and frees up after removal")
{
    // The smallest table is one probe window (8 slots): every key competes for it.
    Fdb fdb(1);
    for (uint64_t i = 0; i < 8; ++i)
        REQUIRE(fdb.learn(kMacA + i, 0, uint16_t(i)));
    CHECK(fdb.size() == 8);
    CHECK_FALSE(fdb.learn(kMacA + 100, 0, 9));
    CHECK(fdb.lookup(kMacA + 100, 0) == Fdb::kUnknown);
    // Known keys still learn (move) while full.
    CHECK(fdb.learn(kMacA + 3, 0, 11));
    CHECK(fdb.lookup(kMacA + 3, 0) == 11);
    for (uint64_t i = 0; i < 8; ++i)
        CHECK(fdb.lookup(kMacA + i, 0) == (i == 3 ? 11 : i));
    CHECK(fdb.learned() == 8);

    CHECK(fdb.flush_port(5) == 1);
    REQUIRE(fdb.learn(kMacA + 100, 0, 9));
    CHECK(fdb.lookup(kMacA + 100, 0) == 9);
    // Removing one entry does not hide the others (no tombstone problem).
    for (uint64_t i = 0; i < 8; ++i)
        if (i != 5)
            CHECK(fdb.lookup(kMacA + i, 0) != Fdb::kUnknown);
}

TEST_CASE("a big table holds many entries")
{
    Fdb fdb(4096);
    std::size_t ok = 0;
    for (uint64_t i = 0; i < 2048; ++i)
        ok += fdb.learn(0x020000000000 + i * 0x1000003, uint16_t(i % 4), uint16_t(i % 13));
    // Half full with an 8-slot probe window: nearly everything fits.
    CHECK(ok >= 2040);
    CHECK(fdb.size() == ok);
    std::size_t found = 0;
    for (uint64_t i = 0; i < 2048; ++i)
        found += fdb.lookup(0x020000000000 + i * 0x1000003, uint16_t(i % 4)) == uint16_t(i % 13);
    CHECK(found == ok);
    CHECK(fdb.entries().size() == ok);
}
