#include "socket_file.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "error.hpp"
#include "fd.hpp"

namespace uds {

void remove_stale_socket_file(const Address& address, int type) {
    const std::string path = address.name();
    struct stat st {};
    if (::lstat(path.c_str(), &st) == -1) {
        if (errno == ENOENT) return;  // gone meanwhile: just bind again
        throw SysError(errno, "lstat " + path);
    }
    if (!S_ISSOCK(st.st_mode))
        throw Failure("bind " + path + ": the path exists and is not a socket",
                      "refusing to remove it; choose another path with -s");

    Fd probe{check(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0), "socket")};
    if (::connect(probe.get(), address.sockaddr_ptr(), address.length()) == 0)
        throw Failure("bind " + path + ": a server is already listening there",
                      "stop it first, or choose another path with -s");
    int err = errno;
    if (err != ECONNREFUSED)
        throw SysError(err, "connect " + path + " (checking whether the socket file is stale)");
    // Nobody is listening: the file was left behind by a server that died without cleaning up.
    check(::unlink(path.c_str()), "unlink stale socket file " + path);
}

SocketFile::SocketFile(const Address& address) {
    if (address.kind() != Address::Kind::Path) return;
    struct stat st {};
    std::string path = address.name();
    check(::lstat(path.c_str(), &st), "lstat " + path);
    path_ = std::move(path);
    dev_ = st.st_dev;
    ino_ = st.st_ino;
}

SocketFile::SocketFile(SocketFile&& other) noexcept
    : path_(std::exchange(other.path_, {})), dev_(other.dev_), ino_(other.ino_) {}

SocketFile& SocketFile::operator=(SocketFile&& other) noexcept {
    if (this != &other) {
        unlink_if_ours();
        path_ = std::exchange(other.path_, {});
        dev_ = other.dev_;
        ino_ = other.ino_;
    }
    return *this;
}

SocketFile::~SocketFile() {
    unlink_if_ours();
}

bool SocketFile::unlink_if_ours() noexcept {
    if (path_.empty()) return false;
    std::string path = std::exchange(path_, {});
    struct stat st {};
    if (::lstat(path.c_str(), &st) == -1) return false;
    if (st.st_dev != dev_ || st.st_ino != ino_) return false;  // someone else's file now
    return ::unlink(path.c_str()) == 0;
}

}  // namespace uds
