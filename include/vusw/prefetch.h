// Cache prefetch hints for lines another core (a guest) last wrote.
#pragma once

namespace vusw {

// Fetches the line in exclusive state, ready for our store: a read prefetch brings it
// in shared state, and the store then pays a second cross-core round trip to upgrade
// it. PREFETCHW executes as a NOP on x86 CPUs without it, so it needs no -march.
inline void prefetch_for_write(const void* p)
{
#if defined(__x86_64__)
    asm volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)));
#else
    __builtin_prefetch(p, 1, 3);
#endif
}

}  // namespace vusw
