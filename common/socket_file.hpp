// socket_file.hpp - the filesystem side of a path-bound socket: stale files and clean-up.
//
// bind() creates the socket file and fails with EADDRINUSE if *anything* already exists at
// the path. Unlinking blindly before bind() is the classic mistake: if a server is still
// running there, it loses its name and keeps running unreachable. So on EADDRINUSE we ask:
//   - not a socket?                        refuse (it is somebody's file)
//   - a socket and connect() succeeds?     a live server owns it: refuse, touch nothing
//   - a socket and connect() is refused?   nobody listens: a stale file, remove it, bind again
#pragma once

#include <sys/types.h>

#include <string>

#include "address.hpp"

namespace uds {

// Call after bind() failed with EADDRINUSE on a path address. Returns after removing a stale
// socket file (the caller then binds again); throws uds::Failure when it must not be removed.
// type is the socket type the server uses (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET).
void remove_stale_socket_file(const Address& address, int type);

// Remembers which file bind() created (device + inode), so that on exit the server removes
// its own socket file and never one that another server has since put at the same path.
class SocketFile {
  public:
    SocketFile() = default;
    // Call right after a successful bind() to a path address; for other kinds it does nothing.
    explicit SocketFile(const Address& address);
    SocketFile(const SocketFile&) = delete;
    SocketFile& operator=(const SocketFile&) = delete;
    SocketFile(SocketFile&& other) noexcept;
    SocketFile& operator=(SocketFile&& other) noexcept;
    ~SocketFile();  // unlink_if_ours(), errors ignored

    // unlink() the path if it is still the file our bind() created. Returns true if removed.
    bool unlink_if_ours() noexcept;

  private:
    std::string path_;
    dev_t dev_ = 0;
    ino_t ino_ = 0;
};

}  // namespace uds
