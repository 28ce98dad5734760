// Test helper: memfd-backed guest memory regions.
#pragma once

#include <cstdint>
#include <memory>

#include "vusw/guest_memory.h"

namespace vusw::test {

// A sealed-size memfd of `bytes` (zero-filled).
UniqueFd make_memfd(uint64_t bytes);

// Maps a fresh memfd of `size` bytes as the region {gpa, size, uva, offset 0}.
// Fails the current test if mapping fails.
std::shared_ptr<const MappedRegion> make_region(uint64_t gpa, uint64_t size, uint64_t uva);

}  // namespace vusw::test
