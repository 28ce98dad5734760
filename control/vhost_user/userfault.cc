// userfaultfd for postcopy: open, register, unregister.
#include "control/vhost_user/userfault.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace vusw::vhost_user {

Result<UniqueFd> open_userfault()
{
    UniqueFd fd(int(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK)));
    if (!fd)
        return fail("postcopy_unavailable", fmt::format("userfaultfd: {} (postcopy needs it; as root, or with "
                                                        "vm.unprivileged_userfaultfd=1)", strerror(errno)));
    uffdio_api api{};
    api.api = UFFD_API;
    if (ioctl(fd.get(), UFFDIO_API, &api) != 0)
        return fail("postcopy_unavailable", fmt::format("userfaultfd API handshake: {}", strerror(errno)));
    return fd;
}

bool userfault_available()
{
    static const bool available = open_userfault().has_value();
    return available;
}

Status register_missing(int uffd, std::span<std::byte> range)
{
    uffdio_register reg{};
    reg.range.start = uint64_t(uintptr_t(range.data()));
    reg.range.len = range.size();
    reg.mode = UFFDIO_REGISTER_MODE_MISSING;
    if (ioctl(uffd, UFFDIO_REGISTER, &reg) != 0)
        return fail("postcopy_register", fmt::format("userfaultfd register of {}+{:#x}: {}",
                                                     static_cast<void*>(range.data()), range.size(), strerror(errno)));
    return {};
}

void unregister(int uffd, std::span<std::byte> range)
{
    uffdio_range r{uint64_t(uintptr_t(range.data())), range.size()};
    (void)ioctl(uffd, UFFDIO_UNREGISTER, &r);  // a range already gone (region removed) is fine
}

}  // namespace vusw::vhost_user
