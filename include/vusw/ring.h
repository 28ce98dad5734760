// The rte_ring calls of the switch (PMD hand-off rings, loan return rings), with the
// ordering a race detector can see.
//
// A frame put on a ring by one core is read by another; the ring orders the two, but on
// x86 DPDK's ring uses plain accesses and compiler barriers (rte_ring_generic_pvt.h),
// which ThreadSanitizer cannot read as synchronisation: every enqueue/dequeue pair
// across cores would look like a race on the ring's head, tail and slots. In a
// ThreadSanitizer build the ring's own accesses are therefore not checked (DPDK's code,
// not ours), and the producer releases and the consumer acquires the ring's address, so
// what was written to a frame before its enqueue happens-before what is read after its
// dequeue, and races on the frames themselves are still found. Elsewhere these are the
// plain DPDK calls.
#pragma once

#include <rte_ring.h>

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VUSW_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) && !defined(VUSW_TSAN)
#define VUSW_TSAN 1
#endif

#ifdef VUSW_TSAN
#include <sanitizer/tsan_interface.h>
extern "C" {  // ThreadSanitizer's dynamic annotations (its runtime defines them)
void AnnotateIgnoreReadsBegin(const char* file, int line);
void AnnotateIgnoreReadsEnd(const char* file, int line);
void AnnotateIgnoreWritesBegin(const char* file, int line);
void AnnotateIgnoreWritesEnd(const char* file, int line);
}
#endif

namespace vusw {

// For its scope, the calling thread's accesses are not checked (in a ThreadSanitizer
// build; nothing otherwise).
class UncheckedRingAccess {
public:
#ifdef VUSW_TSAN
    UncheckedRingAccess()
    {
        AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
        AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
    }
    ~UncheckedRingAccess()
    {
        AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
        AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
    }
#else
    UncheckedRingAccess() {}
    ~UncheckedRingAccess() {}
#endif
    UncheckedRingAccess(const UncheckedRingAccess&) = delete;
    UncheckedRingAccess& operator=(const UncheckedRingAccess&) = delete;
};

inline unsigned ring_enqueue_burst(rte_ring* r, void* const* objs, unsigned n)
{
#ifdef VUSW_TSAN
    __tsan_release(r);
#endif
    UncheckedRingAccess unchecked;
    return rte_ring_enqueue_burst(r, objs, n, nullptr);
}

inline unsigned ring_dequeue_burst(rte_ring* r, void** objs, unsigned n)
{
    unsigned got;
    {
        UncheckedRingAccess unchecked;
        got = rte_ring_dequeue_burst(r, objs, n, nullptr);
    }
#ifdef VUSW_TSAN
    if (got > 0)
        __tsan_acquire(r);
#endif
    return got;
}

// Frames on the ring now (a snapshot: other cores keep adding).
inline unsigned ring_count(const rte_ring* r)
{
    UncheckedRingAccess unchecked;
    return rte_ring_count(r);
}

}  // namespace vusw
