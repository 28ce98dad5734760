// Accepting connections when the daemon is out of file descriptors.
//
// accept() failing with EMFILE or ENFILE leaves the connection queued and the listening
// socket readable, so a level-triggered event loop would call the accept handler again
// at once, for ever: the control thread spins. One fd is held in reserve for the whole
// daemon (control thread only): giving it back lets the caller take the connection and
// close it at once (the peer sees a clean hang-up rather than a hang); then the reserve
// is taken again. Used by the vhost-user sockets and the control socket.
#pragma once

namespace vusw {

// Takes the reserve, at start-up while fds are plenty (later calls do nothing).
void take_fd_reserve();

// True if `err` (an accept() errno) means the daemon or the system is out of fds.
bool out_of_fds(int err);

// After accept() on `listen_fd` failed for want of fds: takes the queued connection
// with the reserve and closes it. False if even that failed: the caller must stop
// watching the socket for a while instead of spinning.
bool shed_connection(int listen_fd);

}  // namespace vusw
