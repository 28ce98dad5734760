// Assignment of ports to PMD cores by measured load (dataplane/rxq_assign.cc).
#include <doctest/doctest.h>

#include <vector>

#include "vusw/rxq_assign.h"

namespace vusw {
namespace {

PortLoad load(uint64_t cycles, int current = kUnassigned, int pin = kUnassigned)
{
    return PortLoad{cycles, current, pin};
}

}  // namespace

TEST_CASE("no load measured yet: round robin, pins first")
{
    const std::vector<PortLoad> none(5);
    CHECK(plan_assignment(none, 2).pmd == std::vector<unsigned>{0, 1, 0, 1, 0});
    CHECK(plan_assignment(none, 3).pmd == std::vector<unsigned>{0, 1, 2, 0, 1});
    CHECK(plan_assignment(none, 1).pmd == std::vector<unsigned>{0, 0, 0, 0, 0});

    // Port 2 pinned to PMD 0: the others fill PMD 1 first.
    const std::vector<PortLoad> pinned = {load(0), load(0), load(0, kUnassigned, 0), load(0)};
    CHECK(plan_assignment(pinned, 2).pmd == std::vector<unsigned>{1, 0, 0, 1});
}

TEST_CASE("heaviest first, each onto the least loaded PMD")
{
    const std::vector<PortLoad> ports = {load(10, 0), load(100, 0), load(60, 0), load(50, 0)};
    const AssignmentPlan plan = plan_assignment(ports, 2);
    // 100 -> PMD 0; 60 -> PMD 1; 50 -> PMD 1 (60 < 100); 10 -> PMD 0 (100 < 110).
    CHECK(plan.pmd == std::vector<unsigned>{0, 0, 1, 1});
    CHECK(plan.load == std::vector<uint64_t>{110, 110});
    CHECK(plan.current_load == std::vector<uint64_t>{220, 0});
    CHECK(plan.moves == 2);
    CHECK(plan.worthwhile);
    CHECK(imbalance(plan.current_load) == 220);
    CHECK(imbalance(plan.load) == 0);
}

TEST_CASE("pinned ports never move and their load counts on their PMD")
{
    const std::vector<PortLoad> ports = {load(100, 0, 0), load(100, 0, 0), load(30, 0), load(20, 1)};
    const AssignmentPlan plan = plan_assignment(ports, 2);
    CHECK(plan.pmd[0] == 0);
    CHECK(plan.pmd[1] == 0);
    CHECK(plan.pmd[2] == 1);  // PMD 0 carries 200 of pinned load
    CHECK(plan.pmd[3] == 1);
    CHECK(plan.load == std::vector<uint64_t>{200, 50});
    CHECK_FALSE(plan.pins_violated);

    // A pinned port off its pin is moved back, whatever the imbalance.
    const std::vector<PortLoad> off = {load(0, 1, 0), load(0, 1)};
    const AssignmentPlan back = plan_assignment(off, 2);
    CHECK(back.pmd[0] == 0);
    CHECK(back.pins_violated);
    CHECK(back.worthwhile);
}

TEST_CASE("an even load does not churn: ties keep ports where they are")
{
    // Two equal ports, one per PMD, listed so that plain round robin would swap them.
    const std::vector<PortLoad> ports = {load(50, 1), load(50, 0)};
    const AssignmentPlan plan = plan_assignment(ports, 2);
    CHECK(plan.pmd == std::vector<unsigned>{1, 0});
    CHECK(plan.moves == 0);
    CHECK_FALSE(plan.worthwhile);

    // Idle switch: nothing measured, nothing moves even if the port counts are uneven.
    const std::vector<PortLoad> idle = {load(0, 0), load(0, 0), load(0, 0)};
    const AssignmentPlan still = plan_assignment(idle, 2);
    CHECK_FALSE(still.worthwhile);
}

TEST_CASE("the improvement threshold decides whether a plan is worth its moves")
{
    // Now: PMD 0 = 100 + 40, PMD 1 = 90: imbalance 50. Best: 100 | 90 + 40 = 130: imbalance 30 (-40 %).
    const std::vector<PortLoad> ports = {load(100, 0), load(40, 0), load(90, 1)};
    const AssignmentPlan plan = plan_assignment(ports, 2, 25);
    CHECK(imbalance(plan.current_load) == 50);
    CHECK(imbalance(plan.load) == 30);
    CHECK(plan.moves == 1);
    CHECK(plan.worthwhile);
    CHECK(plan_assignment(ports, 2, 40).worthwhile);       // exactly 40 % is enough
    CHECK_FALSE(plan_assignment(ports, 2, 41).worthwhile);  // 41 % is not reached
}

TEST_CASE("more PMDs than ports; one PMD; no ports")
{
    const std::vector<PortLoad> ports = {load(5, 3), load(7, 3)};
    const AssignmentPlan plan = plan_assignment(ports, 4);
    CHECK(plan.pmd[0] != plan.pmd[1]);
    CHECK(plan.load.size() == 4);

    const std::vector<PortLoad> one = {load(5, 0), load(7, 0)};
    CHECK_FALSE(plan_assignment(one, 1).worthwhile);
    CHECK(plan_assignment(std::vector<PortLoad>{}, 2).pmd.empty());
    CHECK(imbalance(std::vector<uint64_t>{}) == 0);
}

}  // namespace vusw
