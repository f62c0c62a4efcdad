// beneath.hpp - open a file by a path another process chose, but never outside a root.
//
// Chapter 05's file broker and chapter 06's monitor open files *for* other processes, so a path
// like "../../etc/shadow", or a symlink planted in the tree that points at /etc, must not work.
// Checking the text of the path is not enough: symlinks are resolved by the kernel, during the
// open. So the lookup itself must be confined:
//   - openat2(2) with RESOLVE_BENEATH (Linux 5.6+): the kernel refuses any step of the lookup
//     that would leave the directory (.., absolute symlinks, symlinks whose target escapes), with
//     EXDEV. RESOLVE_NO_MAGICLINKS also refuses /proc/PID/fd/N style links.
//   - fallback for older kernels (openat2 gives ENOSYS): walk the path one component at a time
//     from the root's descriptor with openat(O_NOFOLLOW): every symlink is refused.
//     Stricter than openat2 (symlinks inside the root are refused too), but just as airtight.
// The lookup opens with O_PATH: a handle on the inode that reads nothing and opens nothing, so a
// FIFO, a device node or a socket is looked at (fstat) WITHOUT being opened - opening a device
// can have side effects (a tape rewinds, a terminal becomes ours), a FIFO can block. Only a
// regular file is then opened for reading, through the handle itself (/proc/self/fd/N: the very
// inode we checked, not whatever the path names a moment later).
//
// What confinement cannot see: a hard link. A second name for a file outside the root, made
// inside it (ln /secret root/x), IS the file; no lookup rule can tell it from a file that was
// always there. So regular files with more than one link are refused unless allow_hardlinks.
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
// O_DIRECTORY | O_NOFOLLOW, so a symlink there fails (ENOTDIR: the link itself is no directory);
// the last component with flags | O_NOFOLLOW (with O_PATH that gives a handle on the symlink
// itself, which the caller's fstat refuses). Returns -1 with errno set.
inline int open_by_walking(int root, const std::string& path, int flags) {
    uds::Fd dir;  // empty: we are still at `root`, which we do not own
    std::size_t start = 0;
    for (;;) {
        std::size_t slash = path.find('/', start);
        std::string part = path.substr(start, slash == std::string::npos ? slash : slash - start);
        int at = dir ? dir.get() : root;
        if (slash == std::string::npos)  // the last component: the file itself
            return openat(at, part.c_str(), flags | O_NOFOLLOW);
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

// The confined lookup, openat2 or the walk. Returns -1 with errno set.
inline int open_confined(int root, const std::string& path, int flags) {
    if (!g_use_fallback) {
        open_how how{};
        how.flags = static_cast<__u64>(flags);
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
        int fd = static_cast<int>(syscall(SYS_openat2, root, path.c_str(), &how, sizeof how));
        if (fd != -1 || errno != ENOSYS) return fd;
        g_use_fallback = true;  // a kernel older than 5.6: remember, fall back
        uds::log("openat2 is not available (ENOSYS): using the component-by-component walk");
    }
    return open_by_walking(root, path, flags);
}

// Opens `path` (relative to the directory descriptor `root`) read-only, if it is a regular file
// beneath the root (and, unless allow_hardlinks, has no other name).
inline Opened open_regular_file(int root, std::string_view path, bool allow_hardlinks = false) {
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

    // b. The confined lookup, with O_PATH: nothing is opened yet, whatever the path names.
    uds::Fd handle{open_confined(root, p, O_PATH | O_CLOEXEC)};
    if (!handle) return {{}, reason(errno)};

    // c. What is it? Only regular files are served: no directories, FIFOs, sockets, devices,
    //    and (the walk's O_NOFOLLOW handle) no symlinks.
    struct stat st {};
    uds::check(fstat(handle.get(), &st), "fstat");
    if (S_ISLNK(st.st_mode)) return {{}, reason(ELOOP)};
    if (!S_ISREG(st.st_mode)) return {{}, "not a regular file"};
    if (st.st_nlink > 1 && !allow_hardlinks)
        return {{},
                "the file has " + std::to_string(st.st_nlink) +
                    " names (hard links); one may be outside the root"};

    // d. Now open it for reading, through the handle: /proc/self/fd/N names exactly the inode
    //    we just checked. O_NOCTTY: never acquire a terminal.
    const int flags = O_RDONLY | O_NOCTTY | O_CLOEXEC;
    const std::string self = "/proc/self/fd/" + std::to_string(handle.get());
    uds::Fd file{open(self.c_str(), flags)};
    if (!file && errno == ENOENT) {
        // No /proc: look the path up again, with O_NONBLOCK (should a FIFO have been swapped in
        // meanwhile, it cannot block us), and accept only the inode we checked.
        file.reset(open_confined(root, p, flags | O_NONBLOCK));
        struct stat again {};
        if (file && (fstat(file.get(), &again) != 0 || again.st_dev != st.st_dev ||
                     again.st_ino != st.st_ino))
            return {{}, "the file changed while it was being opened"};
        if (file) uds::check(fcntl(file.get(), F_SETFL, 0), "fcntl F_SETFL");  // blocking again
    }
    if (!file) return {{}, reason(errno)};
    return {std::move(file), {}};
}

}  // namespace beneath
