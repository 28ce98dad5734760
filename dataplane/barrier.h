// Memory ordering the queues share with the guest's driver (dataplane-internal).
#pragma once

#include <atomic>
#include <cstdint>

namespace vusw {

// A ring word the driver publishes: what it wrote before it is visible after this load.
inline uint16_t load_acquire(const uint16_t* p)
{
    return std::atomic_ref<const uint16_t>(*p).load(std::memory_order_acquire);
}

// Orders our earlier stores before our later loads (the one ordering x86 does not give
// for free). A locked add to the stack does it, and costs about half an MFENCE; DPDK's
// rte_smp_mb() is the same instruction. It runs once per flushed ring per burst.
inline void store_load_barrier()
{
#if defined(__x86_64__)
    asm volatile("lock; addl $0, -128(%%rsp)" ::: "memory", "cc");
#else
    std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

}  // namespace vusw
