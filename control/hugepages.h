// The hugepage pre-check: before DPDK starts, is there a hugetlbfs mount and enough free
// pages for --memory? DPDK's own failure ("cannot get hugepage information", a
// segmentation of messages) does not say what to do; this does, and vuswitchd exits 1.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace vusw {

// What the host offers, as the kernel reports it.
struct HugepageHost {
    std::string meminfo;  // /proc/meminfo: Hugepagesize, HugePages_Total/_Free/_Rsvd (the default size)
    std::string mounts;   // /proc/mounts: hugetlbfs mounts and their pagesize=
    // Free pages of the other sizes, by size in KiB (/sys/kernel/mm/hugepages/*/free_hugepages).
    std::map<uint64_t, uint64_t> free_by_kib;
};

// The host as it is now.
HugepageHost read_hugepage_host();

// Why DPDK cannot get `memory_mb` MiB of hugepages (from `huge_dir` if not empty, else
// from any hugetlbfs mount), with the commands that fix it; nullopt if it can.
std::optional<std::string> hugepage_problem(const HugepageHost& host, const std::string& huge_dir, unsigned memory_mb);

}  // namespace vusw
