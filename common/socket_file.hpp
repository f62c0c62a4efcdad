// socket_file.hpp - the filesystem side of a path-bound socket: stale files and clean-up.
//
// bind() creates the socket file and fails with EADDRINUSE if *anything* already exists at
// the path. Unlinking blindly before bind() is the classic mistake: if a server is still
// running there, it loses its name and keeps running unreachable. So on EADDRINUSE we ask:
//   - not a socket?                        refuse (it is somebody's file)
//   - a socket and connect() succeeds?     a live server owns it: refuse, touch nothing
//   - a socket and connect() is refused?   nobody listens: a stale file, remove it, bind again
//
// Those questions alone have a race: a server that has just bound (file there, listen() not yet
// called) also answers ECONNREFUSED, and two servers starting together on a stale file can both
// remove "the stale file", the second removing the first one's fresh socket (the first then
// serves on an unreachable, unlinked socket). So a path is also claimed with a lock file beside
// it, PATH.lock, held with flock() from right after bind() until the server exits:
//   - remove_stale_socket_file takes the lock before it looks (busy: someone is starting or
//     serving there, refuse), keeps it, and the SocketFile made after the second bind() adopts it
//   - a SocketFile made after a first bind() that simply worked takes the lock too; if it is busy
//     a moment (a server whose stale-file removal we slipped into is failing its own bind) it
//     waits up to 2 s; still busy means another server owns the path: refuse
// The kernel drops a flock() when its holder dies, so a SIGKILLed server leaves no stale lock.
// The lock file is removed by its holder (while holding it) when the server exits; a waiter that
// then gets the lock on the removed file notices (its inode is no longer at the path) and retries.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "address.hpp"

namespace uds {

// Call after bind() failed with EADDRINUSE on a path address. Returns after removing a stale
// socket file (the caller then binds again, and makes a SocketFile, which keeps the path's lock
// this call took); throws uds::Failure when it must not be removed.
// type is the socket type the server uses (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET).
void remove_stale_socket_file(const Address& address, int type);

// Remembers which file bind() created (device + inode), so that on exit the server removes
// its own socket file and never one that another server has since put at the same path.
class SocketFile {
  public:
    SocketFile() = default;
    // Call right after a successful bind() to a path address; for other kinds it does nothing.
    // Takes (or adopts) the path's lock; throws uds::Failure if another server holds it.
    explicit SocketFile(const Address& address);
    SocketFile(const SocketFile&) = delete;
    SocketFile& operator=(const SocketFile&) = delete;
    SocketFile(SocketFile&& other) noexcept;
    SocketFile& operator=(SocketFile&& other) noexcept;
    ~SocketFile();  // unlink_if_ours(), errors ignored

    // unlink() the path if it is still the file our bind() created, then give up the path's lock.
    // Returns true if the socket file was removed.
    bool unlink_if_ours() noexcept;

    struct Lock;  // PATH.lock, flock()ed (socket_file.cpp)

  private:
    std::shared_ptr<Lock> lock_;
    std::string path_;
    dev_t dev_ = 0;
    ino_t ino_ = 0;
};

}  // namespace uds
