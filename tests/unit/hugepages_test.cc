// The hugepage pre-check's decision, on fake /proc/meminfo and /proc/mounts text.
#include "control/hugepages.h"

#include <string>

#include <doctest/doctest.h>

using namespace vusw;

namespace {

std::string meminfo(unsigned total, unsigned free, unsigned rsvd = 0, unsigned size_kib = 2048)
{
    return "MemTotal:       16316412 kB\nMemFree:         9182720 kB\nHugePages_Total:    " + std::to_string(total) +
           "\nHugePages_Free:     " + std::to_string(free) + "\nHugePages_Rsvd:        " + std::to_string(rsvd) +
           "\nHugePages_Surp:        0\nHugepagesize:       " + std::to_string(size_kib) + " kB\nHugetlb:  0 kB\n";
}

constexpr const char* kMounts = "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n"
                                "tmpfs /run tmpfs rw,nosuid,nodev,noexec,relatime,size=1631644k,mode=755 0 0\n";
constexpr const char* kHugeMount = "hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n";

}  // namespace

TEST_CASE("enough free pages on a mounted hugetlbfs: no problem")
{
    CHECK_FALSE(hugepage_problem({meminfo(1024, 1024), std::string(kMounts) + kHugeMount, {}}, "", 256));
    CHECK_FALSE(hugepage_problem({meminfo(128, 128), std::string(kMounts) + kHugeMount, {}}, "", 256));  // exactly
    CHECK_FALSE(hugepage_problem({meminfo(1024, 200), std::string(kMounts) + kHugeMount, {}}, "/dev/hugepages/", 256));
}

TEST_CASE("no free pages: how many are needed and the command that reserves them")
{
    auto why = hugepage_problem({meminfo(0, 0), std::string(kMounts) + kHugeMount, {}}, "", 256);
    REQUIRE(why);
    CHECK(*why == "0 free 2 MiB hugepages, --memory 256 needs 128; run: echo 1024 > "
                  "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages (or deploy/setup.sh), or start with --no-huge");
}

TEST_CASE("too few: pages reserved for other mappings do not count; the command adds what is missing")
{
    auto why = hugepage_problem({meminfo(2048, 600, 500), std::string(kMounts) + kHugeMount, {}}, "", 512);
    REQUIRE(why);
    CHECK(why->starts_with("100 free 2 MiB hugepages, --memory 512 needs 256; run: echo 2204 > "));
}

TEST_CASE("no hugetlbfs mounted: reserve and mount")
{
    auto why = hugepage_problem({meminfo(0, 0), kMounts, {}}, "", 256);
    REQUIRE(why);
    CHECK(*why == "no hugetlbfs is mounted; run: echo 1024 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages && "
                  "mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages (or deploy/setup.sh), or "
                  "start with --no-huge");
    auto mount_only = hugepage_problem({meminfo(1024, 1024), kMounts, {}}, "", 256);
    REQUIRE(mount_only);
    CHECK(mount_only->find("echo") == std::string::npos);
    CHECK(mount_only->find("mount -t hugetlbfs nodev /dev/hugepages") != std::string::npos);
}

TEST_CASE("--huge-dir must be a hugetlbfs mount")
{
    auto why = hugepage_problem({meminfo(1024, 1024), std::string(kMounts) + kHugeMount, {}}, "/tmp/empty", 256);
    REQUIRE(why);
    CHECK(why->starts_with("--huge-dir /tmp/empty is not a hugetlbfs mount; run: mkdir -p /tmp/empty && "
                           "mount -t hugetlbfs nodev /tmp/empty"));
}

TEST_CASE("1 GiB pages: counted from their own pool, named in GiB")
{
    const std::string mounts = std::string(kMounts) + "hugetlbfs /mnt/huge1G hugetlbfs rw,relatime,pagesize=1024M 0 0\n";
    CHECK_FALSE(hugepage_problem({meminfo(0, 0), mounts, {{1048576, 1}}}, "/mnt/huge1G", 1024));
    auto why = hugepage_problem({meminfo(1024, 1024), mounts, {{1048576, 0}}}, "/mnt/huge1G", 1024);
    REQUIRE(why);
    CHECK(why->starts_with("0 free 1 GiB hugepages, --memory 1024 needs 1; run: echo 2 > "
                           "/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages"));
}

TEST_CASE("pages of every mounted size count when no --huge-dir is given")
{
    const std::string mounts = std::string(kMounts) + kHugeMount + "hugetlbfs /mnt/huge1G hugetlbfs rw,pagesize=1G 0 0\n";
    CHECK_FALSE(hugepage_problem({meminfo(64, 64), mounts, {{1048576, 1}}}, "", 1024));  // 128 MiB + 1 GiB
    CHECK(hugepage_problem({meminfo(64, 64), mounts, {{1048576, 0}}}, "", 1024));
}
