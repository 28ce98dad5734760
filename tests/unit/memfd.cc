#include "tests/unit/memfd.h"

#include <sys/mman.h>
#include <unistd.h>

#include <doctest/doctest.h>

namespace vusw::test {

UniqueFd make_memfd(uint64_t bytes)
{
    UniqueFd fd(memfd_create("vusw-unit", MFD_CLOEXEC));
    REQUIRE(fd.valid());
    REQUIRE(ftruncate(fd.get(), off_t(bytes)) == 0);
    return fd;
}

std::shared_ptr<const MappedRegion> make_region(uint64_t gpa, uint64_t size, uint64_t uva)
{
    auto region = MappedRegion::map(make_memfd(size), RegionDesc{gpa, size, uva, 0});
    REQUIRE_MESSAGE(region.has_value(), (region ? "" : region.error().detail));
    return *region;
}

}  // namespace vusw::test
