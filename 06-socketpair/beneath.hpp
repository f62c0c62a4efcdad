// 06-socketpair/beneath.hpp - open a file by a path the worker chose, but never outside a root.
// (Chapter 05's confinement, taken along so that this chapter builds on its own.)
//
// The monitor opens files *for* a worker that may have been taken over, so a path like
// "../../etc/shadow", or a symlink in the tree that points at /etc, must not work. Checking the
// text of the path is not enough: symlinks are resolved by the kernel, during the open. So the
// lookup itself is confined:
//   - openat2(2) with RESOLVE_BENEATH (Linux 5.6+): the kernel refuses any step of the lookup
//     that would leave the directory (.., absolute symlinks, symlinks whose target escapes), with
//     EXDEV. RESOLVE_NO_MAGICLINKS also refuses /proc/PID/fd/N style links.
//   - fallback for older kernels (openat2 gives ENOSYS): walk the path one component at a time
//     from the root's descriptor with openat(O_NOFOLLOW): every symlink is refused.
// The lookup opens with O_PATH: it finds the file without opening it for reading, so a FIFO or a
// device node is refused before anything happens to it. Only a regular file with a single name
// (a hard link to a file elsewhere would smuggle that file in) is then opened for reading.
// Before all that, the text is checked: no NUL, not empty, not too long, not absolute, no "..".
#pragma once

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>

#include "uds.hpp"

namespace beneath {

inline constexpr std::size_t kMaxPath = 1024;  // bytes; the kernel's own PATH_MAX is 4096

// Either an open descriptor or the reason there is none (the text after "ERROR ").
struct Opened {
    uds::Fd fd;
    std::string error;
};

// Set when the kernel has no openat2 (or by --no-openat2, to try the fallback on a new kernel).
inline std::atomic<bool> g_use_fallback{false};

inline std::string reason(int err) {
    switch (err) {
        case EXDEV:
            return "path leads outside the root";
        case ELOOP:
            return "symbolic links are not followed here";
        case ENOENT:
            return "no such file";
        case ENOTDIR:
            return "a component of the path is not a directory";
        case EACCES:
            return "permission denied";
        case ENAMETOOLONG:
            return "a path component is too long";
        default:
            return std::string("cannot open: ") + std::strerror(err);
    }
}

// The portable walk: every directory on the way is opened relative to the previous one with
// O_DIRECTORY | O_NOFOLLOW, so a symlink there fails; the last component with O_NOFOLLOW too.
// Returns -1 with errno set.
inline int open_by_walking(int root, const std::string& path, int flags) {
    uds::Fd dir;  // empty: we are still at `root`, which we do not own
    std::size_t start = 0;
    for (;;) {
        std::size_t slash = path.find('/', start);
        std::string part = path.substr(start, slash == std::string::npos ? slash : slash - start);
        int at = dir ? dir.get() : root;
        if (slash == std::string::npos) {  // the last component: the file itself
            int fd = openat(at, part.c_str(), flags | O_NOFOLLOW);
            struct stat st {};  // O_PATH | O_NOFOLLOW opens a symlink itself: refuse it
            if (fd >= 0 && fstat(fd, &st) == 0 && S_ISLNK(st.st_mode)) {
                close(fd);
                errno = ELOOP;
                return -1;
            }
            return fd;
        }
        start = slash + 1;
        if (part.empty() || part == ".") continue;  // "a//b", "./a"
        int next = openat(at, part.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next == -1) {
            struct stat st {};  // say "symlink" rather than "not a directory" when it is one
            if (errno == ENOTDIR && fstatat(at, part.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                S_ISLNK(st.st_mode))
                errno = ELOOP;
            return -1;
        }
        dir.reset(next);
    }
}

// Opens `path` (relative to the directory descriptor `root`) read-only, if it is a regular file
// beneath the root.
inline Opened open_regular_file(int root, std::string_view path) {
    // a. The text: cheap checks with clear messages (the kernel would refuse most of these too).
    if (path.empty()) return {{}, "missing path (usage: OPEN <relative path>)"};
    if (path.find('\0') != std::string_view::npos) return {{}, "path contains a NUL byte"};
    if (path.size() > kMaxPath) return {{}, "path too long (max 1024 bytes)"};
    if (path.front() == '/') return {{}, "absolute paths are not allowed"};
    for (std::size_t start = 0;;) {  // any ".." component, anywhere
        std::size_t slash = path.find('/', start);
        if (path.substr(start, slash - start) == "..") return {{}, "'..' is not allowed"};
        if (slash == std::string_view::npos) break;
        start = slash + 1;
    }
    const std::string p(path);  // NUL-terminated for the kernel

    // b. The confined lookup, with O_PATH: nothing is opened for reading yet.
    const int flags = O_PATH | O_CLOEXEC;
    int fd = -1;
    if (!g_use_fallback) {
        open_how how{};
        how.flags = static_cast<__u64>(flags);
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
        fd = static_cast<int>(syscall(SYS_openat2, root, p.c_str(), &how, sizeof how));
        if (fd == -1 && errno == ENOSYS) {  // a kernel older than 5.6: remember, fall back
            g_use_fallback = true;
            uds::log("openat2 is not available (ENOSYS): using the component-by-component walk");
        }
    }
    if (g_use_fallback) fd = open_by_walking(root, p, flags);
    if (fd == -1) return {{}, reason(errno)};
    uds::Fd found{fd};

    // c. What did we find? Only regular files are served: no directories, FIFOs, sockets or
    //    devices; and only a file with one name (a hard link could lead to any file of the
    //    filesystem, wherever its other name is).
    struct stat st {};
    uds::check(fstat(found.get(), &st), "fstat");
    if (!S_ISREG(st.st_mode)) return {{}, "not a regular file"};
    if (st.st_nlink > 1) return {{}, "hard links are not served"};

    // d. Now open that very inode for reading: /proc/self/fd/N of an O_PATH descriptor leads to
    //    the inode itself (no second lookup of the path, so nothing can be swapped in between).
    const std::string again = "/proc/self/fd/" + std::to_string(found.get());
    uds::Fd file{open(again.c_str(), O_RDONLY | O_NOCTTY | O_CLOEXEC)};
    if (!file) return {{}, reason(errno)};
    return {std::move(file), {}};
}

}  // namespace beneath
