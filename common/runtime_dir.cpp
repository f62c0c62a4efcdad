#include "runtime_dir.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "error.hpp"
#include "fd.hpp"

namespace uds {

std::string runtime_dir_path(const char* xdg_runtime_dir, uid_t uid) {
    if (xdg_runtime_dir != nullptr && xdg_runtime_dir[0] == '/')
        return std::string(xdg_runtime_dir) + "/uds-tutorial";
    return "/tmp/uds-tutorial-" + std::to_string(uid);
}

void ensure_private_dir(const std::string& dir, uid_t uid) {
    if (::mkdir(dir.c_str(), 0700) == -1 && errno != EEXIST)
        throw SysError(errno, "mkdir " + dir, "set XDG_RUNTIME_DIR or pass -s PATH");
    struct stat st {};
    check(::lstat(dir.c_str(), &st), "lstat " + dir);
    if (S_ISLNK(st.st_mode))
        throw Failure("refusing " + dir + ": it is a symbolic link",
                      "someone may be trying to redirect your sockets; remove it or pass -s PATH");
    if (!S_ISDIR(st.st_mode))
        throw Failure("refusing " + dir + ": it is not a directory", "remove it or pass -s PATH");
    // Then open it without following a symlink and ask the open directory itself, so nothing
    // swapped in after the lstat can be chmod-ed by mistake.
    Fd d{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)};
    if (!d) throw SysError(errno, "open " + dir, "pass -s PATH");
    check(::fstat(d.get(), &st), "fstat " + dir);
    if (st.st_uid != uid)
        throw Failure("refusing " + dir + ": it is owned by uid " + std::to_string(st.st_uid) +
                          ", not by you (uid " + std::to_string(uid) + ")",
                      "another user created it first; pass -s PATH or set XDG_RUNTIME_DIR");
    if ((st.st_mode & 07777) != 0700) check(::fchmod(d.get(), 0700), "chmod 0700 " + dir);
}

std::string runtime_dir() {
    std::string dir = runtime_dir_path(std::getenv("XDG_RUNTIME_DIR"), ::geteuid());
    ensure_private_dir(dir, ::geteuid());
    return dir;
}

Address default_path_address(std::string_view file) {
    return Address::path(runtime_dir() + "/" + std::string(file));
}

}  // namespace uds
