#include "socket_file.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <map>
#include <utility>

#include "error.hpp"
#include "fd.hpp"

namespace uds {

// The lock on PATH.lock. Removing the file while holding the lock, then closing, is safe because
// take() checks that the file it locked is still the one at the path.
struct SocketFile::Lock {
    Lock(std::string p, Fd f) : path(std::move(p)), fd(std::move(f)) {}
    Lock(const Lock&) = delete;
    Lock& operator=(const Lock&) = delete;
    std::string path;
    Fd fd;
    ~Lock() {
        struct stat at {
        }, held{};
        if (::lstat(path.c_str(), &at) == 0 && ::fstat(fd.get(), &held) == 0 &&
            at.st_dev == held.st_dev && at.st_ino == held.st_ino)
            ::unlink(path.c_str());
    }
};

namespace {

using Lock = SocketFile::Lock;

// Locks held by this process, by lock path: two SocketFiles of one process share one lock
// (flock() would make them exclude each other). Servers set up their socket on one thread.
std::map<std::string, std::weak_ptr<Lock>>& held_locks() {
    static std::map<std::string, std::weak_ptr<Lock>> locks;
    return locks;
}
// The lock remove_stale_socket_file took, waiting for the SocketFile made after the next bind().
std::shared_ptr<Lock> g_pending;

// A child made by fork() (chapter 04's fork model) shares the parent's open lock file; if it
// kept it, the path would stay claimed after the parent died for as long as a child lives. The
// child does not own the path: close its copies (without removing the file) right after fork.
extern "C" void drop_locks_in_child() {
    for (auto& [path, weak] : held_locks())
        if (auto lock = weak.lock()) {
            ::close(lock->fd.release());
            lock->path.clear();  // never remove the parent's lock file from here
        }
}

// One attempt: the lock, or nullptr if another process holds it.
std::shared_ptr<Lock> try_lock(const std::string& lock_path) {
    static const int registered = ::pthread_atfork(nullptr, nullptr, drop_locks_in_child);
    (void)registered;
    if (auto mine = held_locks()[lock_path].lock()) return mine;
    for (;;) {
        Fd fd{::open(lock_path.c_str(), O_RDONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644)};
        if (!fd) throw SysError(errno, "open lock file " + lock_path);
        if (::flock(fd.get(), LOCK_EX | LOCK_NB) == -1) {
            if (errno == EWOULDBLOCK || errno == EINTR) return nullptr;
            throw SysError(errno, "flock " + lock_path);
        }
        struct stat at {
        }, held{};
        check(::fstat(fd.get(), &held), "fstat " + lock_path);
        if (::lstat(lock_path.c_str(), &at) == 0 && at.st_dev == held.st_dev &&
            at.st_ino == held.st_ino) {
            auto lock = std::make_shared<Lock>(lock_path, std::move(fd));
            held_locks()[lock_path] = lock;
            return lock;
        }
        // We locked a lock file its last holder has just removed: open the current one.
    }
}

std::string lock_path_of(const Address& address) {
    return address.name() + ".lock";
}

}  // namespace

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

    // Claim the path first: while we hold its lock no other server can be between its bind()
    // and its listen() here, so "connect is refused" really means "stale".
    auto lock = try_lock(lock_path_of(address));
    Fd probe{check(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0), "socket")};
    if (::connect(probe.get(), address.sockaddr_ptr(), address.length()) == 0)
        throw Failure("bind " + path + ": a server is already listening there",
                      "stop it first, or choose another path with -s");
    int err = errno;
    if (!lock)
        throw Failure("bind " + path + ": another server is starting there (it holds " +
                          lock_path_of(address) + ")",
                      "stop it first, or choose another path with -s");
    if (err != ECONNREFUSED)
        throw SysError(err, "connect " + path + " (checking whether the socket file is stale)");
    // Nobody is listening: the file was left behind by a server that died without cleaning up.
    if (::unlink(path.c_str()) == -1 && errno != ENOENT)
        throw SysError(errno, "unlink stale socket file " + path);
    g_pending = std::move(lock);  // for the SocketFile made after the caller's next bind()
}

SocketFile::SocketFile(const Address& address) {
    if (address.kind() != Address::Kind::Path) return;
    std::string path = address.name();
    const std::string lock_path = lock_path_of(address);
    if (g_pending && g_pending->path == lock_path) {
        lock_ = std::move(g_pending);  // taken by remove_stale_socket_file before this bind()
    } else {
        // Our bind() worked at once. If the lock is busy, either a server whose stale-file removal
        // we slipped into is about to fail its own bind() and exit (wait for it), or another
        // server owns the path (it may have removed our fresh file as stale): give up.
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
        while (!(lock_ = try_lock(lock_path))) {
            if (std::chrono::steady_clock::now() >= deadline)
                throw Failure("bind " + path +
                                  ": another server is starting or serving there (it holds " +
                                  lock_path + ")",
                              "stop it first, or choose another path with -s");
            ::poll(nullptr, 0, 2);  // a lock has no descriptor to wait on: re-try every 2 ms
        }
    }
    struct stat st {};
    check(::lstat(path.c_str(), &st), "lstat " + path);
    path_ = std::move(path);
    dev_ = st.st_dev;
    ino_ = st.st_ino;
}

SocketFile::SocketFile(SocketFile&& other) noexcept
    : lock_(std::move(other.lock_)),
      path_(std::exchange(other.path_, {})),
      dev_(other.dev_),
      ino_(other.ino_) {}

SocketFile& SocketFile::operator=(SocketFile&& other) noexcept {
    if (this != &other) {
        unlink_if_ours();
        lock_ = std::move(other.lock_);
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
    // The socket file goes first, then the lock (its destructor removes PATH.lock when we were
    // its last user), so the path is never claimable while our file is still there.
    auto lock = std::move(lock_);
    if (path_.empty()) return false;
    std::string path = std::exchange(path_, {});
    struct stat st {};
    if (::lstat(path.c_str(), &st) == -1) return false;
    if (st.st_dev != dev_ || st.st_ino != ino_) return false;  // someone else's file now
    return ::unlink(path.c_str()) == 0;
}

}  // namespace uds
