// One fd held back for refusing connections when fds run out (see fd_reserve.h).
#include "control/fd_reserve.h"

#include <sys/socket.h>
#include <fcntl.h>

#include <cerrno>

#include "vusw/unique_fd.h"

namespace vusw {
namespace {

UniqueFd& reserve()
{
    static UniqueFd fd;
    return fd;
}

}  // namespace

void take_fd_reserve()
{
    if (!reserve())
        reserve().reset(open("/dev/null", O_RDONLY | O_CLOEXEC));
}

bool out_of_fds(int err)
{
    return err == EMFILE || err == ENFILE;
}

bool shed_connection(int listen_fd)
{
    reserve().reset();
    const bool took = UniqueFd(accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC)).get() >= 0;  // and closed
    take_fd_reserve();
    return took;
}

}  // namespace vusw
