// tests/fuzz/ch05_beneath.cpp - chapter 05's path confinement: no input may ever open a file
// outside the root (common/beneath.hpp, which chapters 05 and 06 use).
//
// LLVMFuzzerInitialize builds a small tree full of traps in a private temporary directory:
//   TMP/outside.txt                  a file the broker must never hand out
//   TMP/root/a.txt, root/sub/b.txt   the only regular files beneath the root
//   TMP/root/up -> ..  abs -> /etc  esc -> ../outside.txt  abs_file -> TMP/outside.txt
//   TMP/root/in -> a.txt (a symlink that stays inside)  fifo (a FIFO: must not block)  sub/ (a dir)
// Each input is a path given to beneath::open_regular_file(root, path). Input byte 0, bit 0,
// selects the openat2 way or the component-by-component fallback. Asserted: when a descriptor
// comes back it is a regular file whose (device, inode) is one of the files beneath the root,
// read-only; otherwise there is a reason; and no descriptor is left open either way.
// A hang (the FIFO) is caught by libFuzzer's -timeout.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "beneath.hpp"

namespace {

std::string g_tmp;
int g_root = -1;
std::set<std::pair<dev_t, ino_t>> g_inside;  // the regular files beneath the root

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "ch05_beneath: %s\n", what.c_str());
    std::abort();
}

void must(bool ok, const char* what) {
    if (!ok) fail(std::string("setup: ") + what);
}

void write_file(const std::string& path, const char* text) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    must(fd >= 0, "create file");
    must(::write(fd, text, std::strlen(text)) >= 0, "write file");
    ::close(fd);
}

void remember(const std::string& path) {
    struct stat st {};
    must(::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode), "lstat inside file");
    g_inside.insert({st.st_dev, st.st_ino});
}

int count_fds() {
    DIR* d = ::opendir("/proc/self/fd");
    int n = 0;
    while (dirent* e = ::readdir(d))
        if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    return n - 1;
}

void cleanup() {
    const std::string r = g_tmp + "/root";
    for (const char* f : {"a.txt", "sub/b.txt", "up", "abs", "esc", "abs_file", "in", "fifo"})
        ::unlink((r + "/" + f).c_str());
    ::rmdir((r + "/sub").c_str());
    ::rmdir(r.c_str());
    ::unlink((g_tmp + "/outside.txt").c_str());
    ::rmdir(g_tmp.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    char tmpl[] = "/tmp/uds-fuzz05-XXXXXX";
    must(::mkdtemp(tmpl) != nullptr, "mkdtemp");
    g_tmp = tmpl;
    const std::string r = g_tmp + "/root";
    must(::mkdir(r.c_str(), 0755) == 0, "mkdir root");
    must(::mkdir((r + "/sub").c_str(), 0755) == 0, "mkdir sub");
    write_file(g_tmp + "/outside.txt", "secret\n");
    write_file(r + "/a.txt", "a\n");
    write_file(r + "/sub/b.txt", "b\n");
    must(::symlink("..", (r + "/up").c_str()) == 0, "symlink up");
    must(::symlink("/etc", (r + "/abs").c_str()) == 0, "symlink abs");
    must(::symlink("../outside.txt", (r + "/esc").c_str()) == 0, "symlink esc");
    must(::symlink((g_tmp + "/outside.txt").c_str(), (r + "/abs_file").c_str()) == 0, "symlink");
    must(::symlink("a.txt", (r + "/in").c_str()) == 0, "symlink in");
    must(::mkfifo((r + "/fifo").c_str(), 0644) == 0, "mkfifo");
    remember(r + "/a.txt");
    remember(r + "/sub/b.txt");
    g_root = ::open(r.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    must(g_root >= 0, "open root");
    std::atexit(cleanup);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    beneath::g_use_fallback = (data[0] & 1) != 0;
    const std::string_view path(reinterpret_cast<const char*>(data + 1), size - 1);
    const int before = count_fds();
    {
        beneath::Opened o = beneath::open_regular_file(g_root, path);
        if (o.fd) {
            struct stat st {};
            if (::fstat(o.fd.get(), &st) != 0) fail("fstat of the returned descriptor");
            if (!S_ISREG(st.st_mode)) fail("a descriptor that is not a regular file");
            if (g_inside.count({st.st_dev, st.st_ino}) == 0)
                fail("opened a file outside the root: '" + std::string(path) + "'");
            int fl = ::fcntl(o.fd.get(), F_GETFL);
            if ((fl & O_ACCMODE) != O_RDONLY) fail("a descriptor that is not read-only");
            if ((fl & O_NONBLOCK) != 0) fail("O_NONBLOCK left on the client's descriptor");
            if (!o.error.empty()) fail("both a descriptor and an error");
        } else if (o.error.empty()) {
            fail("neither a descriptor nor a reason");
        }
    }
    if (count_fds() != before) fail("a descriptor leaked");
    return 0;
}
