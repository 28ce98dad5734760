// Registration of guest memory with DPDK for device DMA (see guest_dma.h).
// rte_dev_dma_map/unmap are still experimental in DPDK 22.11.
#define ALLOW_EXPERIMENTAL_API 1
#include "vusw/guest_dma.h"

#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_memory.h>

#include <algorithm>
#include <vector>

#include "vusw/log.h"

namespace vusw {
namespace {

// The devices of all ethdev ports, each once (a device may own several ports).
std::vector<rte_device*> ethdev_devices()
{
    std::vector<rte_device*> devices;
    uint16_t port = 0;
    RTE_ETH_FOREACH_DEV(port)
    {
        rte_eth_dev_info info{};
        if (rte_eth_dev_info_get(port, &info) != 0 || info.device == nullptr)
            continue;
        if (std::find(devices.begin(), devices.end(), info.device) == devices.end())
            devices.push_back(info.device);
    }
    return devices;
}

}  // namespace

bool EalDmaRegistry::map_devices(std::byte* base, std::size_t len)
{
    unsigned mapped = 0;
    for (rte_device* dev : ethdev_devices()) {
        if (rte_dev_dma_map(dev, base, uint64_t(uintptr_t(base)), len) == 0) {
            ++mapped;
            continue;
        }
        if (rte_errno == ENOTSUP)  // a virtual device: it reaches the memory by address
            continue;
        log_limited(LogLevel::warn, "guest memory: DMA map failed",
                    "guest memory {}+{:#x}: DMA map for device {} failed: {}; frames from it are copied",
                    static_cast<void*>(base), len, rte_dev_name(dev), rte_strerror(rte_errno));
        unmap_devices(base, len, mapped);
        return false;
    }
    return true;
}

void EalDmaRegistry::unmap_devices(std::byte* base, std::size_t len, unsigned count)
{
    // Devices keep their order while ports exist (NICs are opened once at start-up).
    for (rte_device* dev : ethdev_devices()) {
        if (count == 0)
            return;
        if (rte_dev_dma_unmap(dev, base, uint64_t(uintptr_t(base)), len) == 0)
            --count;
    }
}

bool EalDmaRegistry::add(std::byte* base, std::size_t len, std::size_t page)
{
    if (rte_eal_iova_mode() != RTE_IOVA_VA)
        return false;  // logged once at start-up by the daemon
    // IOVA = VA, page by page, so rte_mem_virt2iova() also answers for guest buffers.
    std::vector<rte_iova_t> iovas(len / page);
    for (std::size_t i = 0; i < iovas.size(); ++i)
        iovas[i] = rte_iova_t(uintptr_t(base) + i * page);
    if (rte_extmem_register(base, len, iovas.data(), unsigned(iovas.size()), page) != 0) {
        log_limited(LogLevel::warn, "guest memory: DMA registration failed",
                    "guest memory {}+{:#x}: cannot register it for DMA: {}{}; frames from its port are copied, not lent",
                    static_cast<void*>(base), len, rte_strerror(rte_errno),
                    rte_errno == ENOSPC ? " (DPDK's 128 memory lists are used up: fewer, larger guest memory regions help)"
                                        : "");
        return false;
    }
    if (!map_devices(base, len)) {
        rte_extmem_unregister(base, len);
        return false;
    }
    return true;
}

void EalDmaRegistry::remove(std::byte* base, std::size_t len)
{
    unmap_devices(base, len, ~0u);
    if (rte_extmem_unregister(base, len) != 0)
        log(LogLevel::warn, "guest memory {}+{:#x}: DMA unregistration failed: {}", static_cast<void*>(base), len,
            rte_strerror(rte_errno));
}

}  // namespace vusw
