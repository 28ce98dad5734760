// The hugepage pre-check (hugepages.h).
#include "control/hugepages.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include <fmt/format.h>

namespace vusw {
namespace {

constexpr unsigned kSuggestedPages = 1024;  // what deploy/setup.sh reserves

// A hugetlbfs mount point and its page size.
struct HugeMount {
    std::string dir;
    uint64_t page_kib;
};

// The value of a "Key:   123 kB" line of /proc/meminfo, 0 if absent.
uint64_t meminfo_value(const std::string& meminfo, std::string_view key)
{
    std::stringstream in(meminfo);
    std::string name;
    uint64_t value = 0;
    while (in >> name) {
        if (name.size() == key.size() + 1 && name.starts_with(key) && name.back() == ':' && (in >> value))
            return value;
        in.ignore(1 << 20, '\n');
    }
    return 0;
}

// "2M", "1G", "2048k" (mount option pagesize=) in KiB; 0 if not understood.
uint64_t size_kib(const std::string& text)
{
    std::stringstream in(text);
    uint64_t n = 0;
    char unit = 'k';
    if (!(in >> n))
        return 0;
    in >> unit;
    switch (unit) {
    case 'k': case 'K': return n;
    case 'm': case 'M': return n * 1024;
    case 'g': case 'G': return n * 1024 * 1024;
    default: return 0;
    }
}

std::vector<HugeMount> huge_mounts(const HugepageHost& host)
{
    const uint64_t default_kib = meminfo_value(host.meminfo, "Hugepagesize");
    std::vector<HugeMount> out;
    std::stringstream in(host.mounts);
    std::string line;
    while (std::getline(in, line)) {
        std::stringstream fields(line);
        std::string device, dir, type, options;
        if (!(fields >> device >> dir >> type >> options) || type != "hugetlbfs")
            continue;
        const auto at = options.find("pagesize=");
        const uint64_t kib = at == std::string::npos ? default_kib : size_kib(options.substr(at + 9, options.find(',', at) - at - 9));
        out.push_back(HugeMount{dir, kib});
    }
    return out;
}

uint64_t free_pages(const HugepageHost& host, uint64_t page_kib)
{
    if (page_kib == meminfo_value(host.meminfo, "Hugepagesize")) {
        const uint64_t free = meminfo_value(host.meminfo, "HugePages_Free"), rsvd = meminfo_value(host.meminfo, "HugePages_Rsvd");
        return free > rsvd ? free - rsvd : 0;  // reserved pages are promised to a mapping already
    }
    const auto it = host.free_by_kib.find(page_kib);
    return it == host.free_by_kib.end() ? 0 : it->second;
}

std::string size_name(uint64_t kib)
{
    return kib % (1024 * 1024) == 0 ? fmt::format("{} GiB", kib / 1024 / 1024) : fmt::format("{} MiB", kib / 1024);
}

// The commands that give `need` pages of `kib`: reserve (when `pages_short`), mount (when `mount`).
std::string remedy(const HugepageHost& host, uint64_t kib, uint64_t need, bool pages_short, const std::string& mount)
{
    const uint64_t total = kib == meminfo_value(host.meminfo, "Hugepagesize") ? meminfo_value(host.meminfo, "HugePages_Total") : 0;
    const uint64_t want = std::max<uint64_t>(kSuggestedPages * 2048 / kib, total + need - std::min(need, free_pages(host, kib)));
    std::string steps;
    if (pages_short)
        steps = fmt::format("echo {} > /sys/kernel/mm/hugepages/hugepages-{}kB/nr_hugepages", want, kib);
    if (!mount.empty())
        steps += fmt::format("{}mkdir -p {} && mount -t hugetlbfs {}nodev {}", steps.empty() ? "" : " && ", mount,
                             kib == 2048 ? "" : fmt::format("-o pagesize={}M ", kib / 1024), mount);
    return fmt::format("run: {} (or deploy/setup.sh), or start with --no-huge", steps);
}

}  // namespace

HugepageHost read_hugepage_host()
{
    auto slurp = [](const std::string& path) {
        std::ifstream in(path);
        std::stringstream text;
        text << in.rdbuf();
        return text.str();
    };
    HugepageHost host{slurp("/proc/meminfo"), slurp("/proc/mounts"), {}};
    std::error_code ec;
    for (const auto& dir : std::filesystem::directory_iterator("/sys/kernel/mm/hugepages", ec)) {
        const std::string name = dir.path().filename().string();  // hugepages-2048kB
        std::stringstream free(slurp(dir.path() / "free_hugepages"));
        uint64_t pages = 0;
        if (name.starts_with("hugepages-") && (free >> pages))
            host.free_by_kib[size_kib(name.substr(10))] = pages;
    }
    return host;
}

std::optional<std::string> hugepage_problem(const HugepageHost& host, const std::string& huge_dir, unsigned memory_mb)
{
    std::vector<HugeMount> mounts = huge_mounts(host);
    const uint64_t default_kib = std::max<uint64_t>(2048, meminfo_value(host.meminfo, "Hugepagesize"));
    if (!huge_dir.empty()) {
        const std::string dir = std::filesystem::path(huge_dir).lexically_normal().string();
        std::erase_if(mounts, [&](const HugeMount& m) { return m.dir != dir && m.dir + "/" != dir; });
        if (mounts.empty())
            return fmt::format("--huge-dir {} is not a hugetlbfs mount; {}", huge_dir,
                               remedy(host, default_kib, 0, false, huge_dir));
    }
    if (mounts.empty()) {
        const uint64_t need = (memory_mb * 1024ull + default_kib - 1) / default_kib;
        return fmt::format("no hugetlbfs is mounted; {}",
                           remedy(host, default_kib, need, free_pages(host, default_kib) < need, "/dev/hugepages"));
    }
    // DPDK takes pages of every mounted size; report the first mount's size.
    uint64_t free_kib = 0;
    for (const HugeMount& m : mounts)
        free_kib += free_pages(host, m.page_kib) * m.page_kib;
    if (free_kib >= memory_mb * 1024ull)
        return std::nullopt;
    const HugeMount& first = mounts.front();
    const uint64_t need = (memory_mb * 1024ull + first.page_kib - 1) / first.page_kib;
    return fmt::format("{} free {} hugepages, --memory {} needs {}; {}", free_pages(host, first.page_kib),
                       size_name(first.page_kib), memory_mb, need, remedy(host, first.page_kib, need, true, ""));
}

}  // namespace vusw
