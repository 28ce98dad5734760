// Guest memory made reachable by devices, so guest TX buffers can be lent to NICs.
//
// Every mapped guest region is registered as DPDK external memory (rte_extmem_register)
// with IOVA = virtual address, and DMA-mapped (rte_dev_dma_map) for every ethdev whose
// bus maps DMA itself (PCI devices under VFIO); virtual devices need the registration
// only. Regions are unregistered before they are unmapped, which happens only after the
// RCU grace period and the return of every buffer lent from them.
//
// Limits: in IOVA-as-PA mode nothing is registered (guest physical pages are not
// resolved), so nothing is lent. DPDK keeps at most RTE_MAX_MEMSEG_LISTS (128) memory
// lists, its own hugepage lists included: a region beyond that stays unregistered and
// its port copies instead of lending (logged, and visible as `mem_regions_dma`).
#pragma once

#include <cstddef>

#include "vusw/guest_memory.h"

namespace vusw {

class EalDmaRegistry final : public DmaRegistry {
public:
    // Control thread only, after rte_eal_init and after the NICs are probed.
    bool add(std::byte* base, std::size_t len, std::size_t page) override;
    void remove(std::byte* base, std::size_t len) override;

private:
    // Maps the range for every ethdev that needs it; on a failure unmaps what it mapped.
    bool map_devices(std::byte* base, std::size_t len);
    // Unmaps the range from the first `count` devices that had it mapped.
    void unmap_devices(std::byte* base, std::size_t len, unsigned count);
};

}  // namespace vusw
