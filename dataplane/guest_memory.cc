// Guest memory regions and immutable memory-table snapshots.
#include "vusw/guest_memory.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <fmt/format.h>

namespace vusw {
namespace {

// [a, a+size) as an inclusive range; false when it wraps past 2^64.
bool last_byte(uint64_t a, uint64_t size, uint64_t& last)
{
    if (size == 0 || a + (size - 1) < a)
        return false;
    last = a + (size - 1);
    return true;
}

bool overlaps(uint64_t a, uint64_t a_last, uint64_t b, uint64_t b_last)
{
    return a <= b_last && b <= a_last;
}

DmaRegistry* dma_registry = nullptr;

constexpr std::size_t kSmallPage = 4096;
constexpr std::size_t kMapAlign = std::size_t(2) << 20;

std::size_t round_up(std::size_t n, std::size_t to)
{
    return (n + to - 1) & ~(to - 1);
}

// Maps `length` bytes (a multiple of the file's page size) of `fd` at an address aligned
// to `align` (a power of two, at least that page size), so the region registers for DMA
// in few, large pages.
void* map_aligned(int fd, std::size_t length, off_t offset, std::size_t align)
{
    const std::size_t reserve = length + align;  // map() checked that it cannot wrap
    void* area = mmap(nullptr, reserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (area == MAP_FAILED)
        return MAP_FAILED;
    const uintptr_t start = uintptr_t(area), aligned = round_up(start, align);
    void* base = mmap(reinterpret_cast<void*>(aligned), length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd,
                      offset);
    if (base == MAP_FAILED) {
        munmap(area, reserve);
        return MAP_FAILED;
    }
    const uintptr_t end = aligned + length, area_end = start + reserve;
    if (aligned > start)
        munmap(area, aligned - start);
    if (area_end > end)
        munmap(reinterpret_cast<void*>(end), area_end - end);
    return base;
}

// The largest page (power of two, 4 KiB..align) that both base and length are multiples of.
std::size_t dma_page(uintptr_t base, std::size_t length, std::size_t align)
{
    std::size_t page = align;
    while (page > kSmallPage && (base % page != 0 || length % page != 0))
        page /= 2;
    return page;
}

}  // namespace

void set_dma_registry(DmaRegistry* registry)
{
    dma_registry = registry;
}

Result<std::shared_ptr<const MappedRegion>> MappedRegion::map(UniqueFd fd, const RegionDesc& d, bool dma)
{
    uint64_t last = 0;
    if (!fd)
        return fail("bad_region", "region has no fd");
    if (!last_byte(d.gpa, d.size, last) || !last_byte(d.uva, d.size, last))
        return fail("bad_region", fmt::format("region gpa {:#x} uva {:#x} size {:#x}: empty or wraps", d.gpa, d.uva, d.size));
    const long page = sysconf(_SC_PAGESIZE);
    const uint64_t aligned_off = d.mmap_offset & ~uint64_t(page - 1);
    const uint64_t lead = d.mmap_offset - aligned_off;
    uint64_t file_end = 0;
    if (!last_byte(d.mmap_offset, d.size, file_end))
        return fail("bad_region", fmt::format("mmap_offset {:#x} + size {:#x} overflows", d.mmap_offset, d.size));
    struct stat st {};
    if (fstat(fd.get(), &st) != 0)
        return fail("bad_region", "cannot fstat region fd");
    // A regular file (memfd, hugetlbfs) must be large enough; mapping past its end would
    // SIGBUS the PMD core on first touch.
    if (S_ISREG(st.st_mode) && file_end >= uint64_t(st.st_size))
        return fail("bad_region", fmt::format("region [{:#x}, +{:#x}) ends past the fd's size {:#x}",
                                              d.mmap_offset, d.size, uint64_t(st.st_size)));
    // Hugetlbfs files and hugetlb memfds report their huge page size as the block size.
    const auto blksize = std::size_t(st.st_blksize);
    const std::size_t file_page = std::has_single_bit(blksize) && blksize > kSmallPage ? blksize : kSmallPage;
    const std::size_t align = std::max(file_page, kMapAlign);
    if (d.size > SIZE_MAX - lead - align - file_page)
        return fail("mmap_failed", fmt::format("region size {:#x} does not fit the address space", d.size));
    const std::size_t length = round_up(std::size_t(lead + d.size), file_page);
    void* base = map_aligned(fd.get(), length, off_t(aligned_off), align);
    if (base == MAP_FAILED)
        return fail("mmap_failed", fmt::format("mmap of {:#x} bytes at offset {:#x} failed", length, aligned_off));
    auto* host = static_cast<std::byte*>(base) + lead;
    auto region = std::shared_ptr<MappedRegion>(new MappedRegion(std::move(fd), d, base, length, host));
    if (dma && dma_registry != nullptr &&
        dma_registry->add(static_cast<std::byte*>(base), length, dma_page(uintptr_t(base), length, align)))
        region->dma_ = dma_registry;
    return std::shared_ptr<const MappedRegion>(std::move(region));
}

MappedRegion::MappedRegion(UniqueFd fd, const RegionDesc& desc, void* base, std::size_t length, std::byte* host)
    : fd_(std::move(fd)), desc_(desc), mmap_base_(base), mmap_length_(length), host_(host)
{
}

MappedRegion::~MappedRegion()
{
    if (dma_ != nullptr)  // devices first: nothing may reach the pages once they are unmapped
        dma_->remove(static_cast<std::byte*>(mmap_base_), mmap_length_);
    munmap(mmap_base_, mmap_length_);
}

const MemTable::Hot* MemTable::find_gpa(uint64_t gpa) const noexcept
{
    // Few regions is the common case: a linear scan beats a binary search there.
    if (hot_.size() <= 8) {
        for (const Hot& h : hot_)
            if (gpa >= h.gpa && gpa <= h.gpa_last)
                return &h;
        return nullptr;
    }
    auto it = std::upper_bound(hot_.begin(), hot_.end(), gpa, [](uint64_t a, const Hot& h) { return a < h.gpa; });
    if (it == hot_.begin())
        return nullptr;
    --it;
    return gpa <= it->gpa_last ? &*it : nullptr;
}

std::byte* MemTable::translate(GuestPhysAddr gpa, uint64_t len) const noexcept
{
    uint64_t last = 0;
    if (!last_byte(gpa.value, len, last))
        return nullptr;
    const Hot* h = find_gpa(gpa.value);
    if (h == nullptr || last > h->gpa_last)
        return nullptr;
    return h->host + (gpa.value - h->gpa);
}

std::span<std::byte> MemTable::translate_prefix(GuestPhysAddr gpa, uint64_t len) const noexcept
{
    if (len == 0)
        return {};
    const Hot* h = find_gpa(gpa.value);
    if (h == nullptr)
        return {};
    const uint64_t avail = h->gpa_last - gpa.value + 1;  // cannot overflow: region is smaller than 2^64
    return {h->host + (gpa.value - h->gpa), std::size_t(std::min(len, avail))};
}

std::byte* MemTable::translate_uva(FrontendAddr uva, uint64_t len) const noexcept
{
    uint64_t last = 0;
    if (!last_byte(uva.value, len, last))
        return nullptr;
    for (const Hot& h : hot_)
        if (uva.value >= h.uva && last <= h.uva_last)
            return h.host + (uva.value - h.uva);
    return nullptr;
}

bool MemTable::host_to_gpa(const std::byte* host, uint64_t& gpa) const noexcept
{
    for (const Hot& h : hot_)
        if (host >= h.host && uint64_t(host - h.host) <= h.gpa_last - h.gpa) {
            gpa = h.gpa + uint64_t(host - h.host);
            return true;
        }
    return false;
}

bool MemTable::uva_to_gpa(FrontendAddr uva, uint64_t& gpa) const noexcept
{
    for (const Hot& h : hot_)
        if (uva.value >= h.uva && uva.value <= h.uva_last) {
            gpa = h.gpa + (uva.value - h.uva);
            return true;
        }
    return false;
}

void MemTable::rebuild_hot()
{
    std::sort(owners_.begin(), owners_.end(), [](const auto& a, const auto& b) { return a->desc().gpa < b->desc().gpa; });
    hot_.clear();
    hot_.reserve(owners_.size());
    dma_regions_ = 0;
    for (const auto& r : owners_) {
        const RegionDesc& d = r->desc();
        hot_.push_back(Hot{d.gpa, d.gpa + d.size - 1, d.uva, d.uva + d.size - 1, r->host()});
        dma_regions_ += r->dma() ? 1 : 0;
    }
}

Result<std::unique_ptr<MemTable>> MemTable::with_region(std::shared_ptr<const MappedRegion> region) const
{
    if (hot_.size() >= kMaxMemSlots)
        return fail("mem_slots_full", fmt::format("all {} memory slots are in use", kMaxMemSlots));
    const RegionDesc& d = region->desc();
    const uint64_t gpa_last = d.gpa + d.size - 1, uva_last = d.uva + d.size - 1;  // checked by map()
    for (const Hot& h : hot_) {
        if (overlaps(d.gpa, gpa_last, h.gpa, h.gpa_last))
            return fail("region_overlap", fmt::format("region gpa {:#x}+{:#x} overlaps guest memory at {:#x}", d.gpa, d.size, h.gpa));
        if (overlaps(d.uva, uva_last, h.uva, h.uva_last))
            return fail("region_overlap", fmt::format("region uva {:#x}+{:#x} overlaps front-end memory at {:#x}", d.uva, d.size, h.uva));
    }
    auto table = std::make_unique<MemTable>(*this);
    table->owners_.push_back(std::move(region));
    table->rebuild_hot();
    return table;
}

namespace {
bool same_region(const RegionDesc& a, const RegionDesc& b)
{
    return a.gpa == b.gpa && a.uva == b.uva && a.size == b.size;
}
}  // namespace

const std::shared_ptr<const MappedRegion>* MemTable::find(const RegionDesc& d) const
{
    auto it = std::find_if(owners_.begin(), owners_.end(), [&](const auto& r) { return same_region(r->desc(), d); });
    return it == owners_.end() ? nullptr : &*it;
}

Result<std::unique_ptr<MemTable>> MemTable::without_region(const RegionDesc& d) const
{
    const auto* found = find(d);
    if (found == nullptr)
        return fail("region_not_found", fmt::format("no region with gpa {:#x} uva {:#x} size {:#x}", d.gpa, d.uva, d.size));
    auto table = std::make_unique<MemTable>();
    for (const auto& r : owners_)
        if (r != *found)
            table->owners_.push_back(r);
    table->rebuild_hot();
    return table;
}

Result<std::unique_ptr<MemTable>> MemTable::from_regions(std::vector<std::shared_ptr<const MappedRegion>> regions)
{
    std::unique_ptr<MemTable> table = std::make_unique<MemTable>();
    for (auto& r : regions) {
        auto next = table->with_region(std::move(r));
        if (!next)
            return std::unexpected(next.error());
        table = std::move(*next);
    }
    return table;
}

}  // namespace vusw
