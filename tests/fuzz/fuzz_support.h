// What the fuzz targets share: failing loudly on a broken invariant, and guest memory
// regions backed by memfd.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "vusw/guest_memory.h"
#include "vusw/unique_fd.h"

namespace vusw::fuzz {

// A broken invariant is a finding: abort so libFuzzer keeps the input.
[[noreturn]] inline void violated(const char* what)
{
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
}

inline void expect(bool ok, const char* what)
{
    if (!ok)
        violated(what);
}

// A zeroed guest memory region of `size` bytes at guest address `gpa`, front-end address `uva`.
inline std::shared_ptr<const MappedRegion> region(uint64_t gpa, uint64_t size, uint64_t uva)
{
    UniqueFd fd(memfd_create("fuzz", MFD_CLOEXEC));
    if (!fd || ftruncate(fd.get(), off_t(size)) != 0)
        violated("memfd");
    auto r = MappedRegion::map(std::move(fd), RegionDesc{gpa, size, uva, 0});
    if (!r)
        violated("map");
    return *r;
}

}  // namespace vusw::fuzz
