// Postcopy live migration's page faults (vhost-user "Postcopy"; Linux userfaultfd).
//
// On the destination, guest memory arrives after the guest (and the switch) already run.
// The back-end opens a userfaultfd, hands it to QEMU (POSTCOPY_ADVISE) and registers its
// mappings of guest memory with it (POSTCOPY_LISTEN, and every region mapped while
// listening). A PMD core touching a page that has not arrived then sleeps in the kernel
// until QEMU, which reads the fault from that fd, has placed the page and wakes it; the
// control thread and the other cores keep running.
#pragma once

#include <cstddef>
#include <span>

#include "vusw/result.h"
#include "vusw/unique_fd.h"

namespace vusw::vhost_user {

// Whether this kernel lets us open a userfaultfd (decides whether PAGEFAULT is offered).
bool userfault_available();
// A new userfaultfd (API handshake done), close-on-exec and non-blocking.
Result<UniqueFd> open_userfault();
// Faults on missing pages of `range` (page aligned) go to `uffd` from now on / no more.
Status register_missing(int uffd, std::span<std::byte> range);
void unregister(int uffd, std::span<std::byte> range);

}  // namespace vusw::vhost_user
