// Guest memory as the switch sees it.
//
// A front-end shares guest RAM as file-backed regions (SET_MEM_TABLE / ADD_MEM_REG).
// Each region is mapped once into a MappedRegion, which owns its fd and mapping and
// releases both exactly once. A MemTable is an immutable snapshot of the regions of one
// port; the control thread builds a new table for every change and publishes it by RCU
// (see mem_publisher.h). The only door from a guest address to host memory is
// translate(gpa, len) (translate_uva for ring addresses in front-end virtual addresses),
// which checks the whole range, never just its first byte.
#pragma once

#include <cstddef>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "vusw/result.h"
#include "vusw/unique_fd.h"

namespace vusw {

// Guest-physical address: what descriptors carry.
struct GuestPhysAddr {
    uint64_t value;
};

// Front-end (QEMU process) virtual address: what SET_VRING_ADDR carries.
struct FrontendAddr {
    uint64_t value;
};

// One region as the front-end describes it (vhost-user VhostUserMemoryRegion).
struct RegionDesc {
    uint64_t gpa;
    uint64_t size;
    uint64_t uva;
    uint64_t mmap_offset;
};

// Our memory slot limit, reported by GET_MAX_MEM_SLOTS (front-ends allow up to 509).
inline constexpr std::size_t kMaxMemSlots = 509;

// Makes mapped guest memory reachable by devices (DMA), so that its buffers may be lent
// to mbufs without a copy. The daemon installs one once DPDK runs (guest_dma.h); without
// one, or when add() fails, a region is still switched, but by copying.
class DmaRegistry {
public:
    virtual ~DmaRegistry() = default;
    // [base, base+len) is aligned to `page` (a power of two); false: not reachable.
    virtual bool add(std::byte* base, std::size_t len, std::size_t page) = 0;
    virtual void remove(std::byte* base, std::size_t len) = 0;
};
// Used by regions mapped from now on; the registry must outlive them.
void set_dma_registry(DmaRegistry* registry);

class MappedRegion {
public:
    // Maps `size` bytes at `mmap_offset` of `fd` (shared, read/write). Validates the
    // description (non-zero size, no overflow, within the file) first. Without `dma` the
    // region is not registered for device DMA (postcopy: nothing may touch the pages
    // before they arrived, and a DMA mapping would pin them).
    static Result<std::shared_ptr<const MappedRegion>> map(UniqueFd fd, const RegionDesc& desc, bool dma = true);
    ~MappedRegion();
    MappedRegion(const MappedRegion&) = delete;
    MappedRegion& operator=(const MappedRegion&) = delete;

    const RegionDesc& desc() const { return desc_; }
    std::byte* host() const { return host_; }
    // The whole mapping, page aligned (it may begin before host()).
    std::span<std::byte> mapping() const { return {static_cast<std::byte*>(mmap_base_), mmap_length_}; }
    // Registered with the DmaRegistry: buffers in it may be lent (zero copy).
    bool dma() const { return dma_ != nullptr; }

private:
    MappedRegion(UniqueFd fd, const RegionDesc& desc, void* base, std::size_t length, std::byte* host);

    UniqueFd fd_;
    RegionDesc desc_;
    void* mmap_base_;
    std::size_t mmap_length_;
    std::byte* host_;
    DmaRegistry* dma_ = nullptr;  // the registry that holds the mapping, if any
};

class MemTable {
public:
    MemTable() = default;

    // Guest buffers of this snapshot currently lent to mbufs (zero copy). Written only by
    // the owning PMD core; the snapshot is freed only once it is zero (see rcu.h).
    std::atomic<uint32_t>& loans() const { return loans_.n; }

    // The contiguous host bytes for [gpa, gpa+len), or nullptr unless the whole range
    // lies inside one region. len == 0 is rejected.
    std::byte* translate(GuestPhysAddr gpa, uint64_t len) const noexcept;
    std::byte* translate_uva(FrontendAddr uva, uint64_t len) const noexcept;

    // The longest contiguous prefix of [gpa, gpa+len) inside one region (for buffers that
    // span regions, walked segment by segment); empty if gpa itself is unmapped.
    std::span<std::byte> translate_prefix(GuestPhysAddr gpa, uint64_t len) const noexcept;

    // The guest-physical address of host byte `host` (a pointer translate() gave), or of
    // front-end address `uva`; false if no region holds it. Dirty-page logging only: a
    // linear scan (the hot path keeps host pointers, not guest addresses).
    bool host_to_gpa(const std::byte* host, uint64_t& gpa) const noexcept;
    bool uva_to_gpa(FrontendAddr uva, uint64_t& gpa) const noexcept;

    std::size_t region_count() const { return hot_.size(); }
    // Regions registered for DMA, and whether all are (then buffers may be lent).
    std::size_t dma_region_count() const { return dma_regions_; }
    bool lendable() const { return !hot_.empty() && dma_regions_ == hot_.size(); }
    const std::vector<std::shared_ptr<const MappedRegion>>& regions() const { return owners_; }

    // New tables; this one is never changed (it may be in use by PMD cores).
    Result<std::unique_ptr<MemTable>> with_region(std::shared_ptr<const MappedRegion> region) const;
    // The region with exactly this gpa, uva and size (mmap_offset is ignored), or nullptr.
    const std::shared_ptr<const MappedRegion>* find(const RegionDesc& desc) const;
    bool contains(const RegionDesc& desc) const { return find(desc) != nullptr; }
    // Removes the region whose gpa, uva and size all match (mmap_offset is ignored, spec
    // "REM_MEM_REG"). Anything else is an error that removes nothing.
    Result<std::unique_ptr<MemTable>> without_region(const RegionDesc& desc) const;
    static Result<std::unique_ptr<MemTable>> from_regions(std::vector<std::shared_ptr<const MappedRegion>> regions);

private:
    struct Hot {  // lookup data, kept dense for the PMD's scans
        uint64_t gpa;
        uint64_t gpa_last;  // inclusive, so a region ending at 2^64 cannot overflow
        uint64_t uva;
        uint64_t uva_last;
        std::byte* host;
    };
    const Hot* find_gpa(uint64_t gpa) const noexcept;
    void rebuild_hot();

    struct LoanCount {  // a new table starts with no loans, also when copied
        mutable std::atomic<uint32_t> n{0};
        LoanCount() = default;
        LoanCount(const LoanCount&) {}
        LoanCount& operator=(const LoanCount&) { return *this; }
    };

    std::vector<std::shared_ptr<const MappedRegion>> owners_;  // sorted by gpa
    std::vector<Hot> hot_;
    std::size_t dma_regions_ = 0;
    LoanCount loans_;
};

}  // namespace vusw
