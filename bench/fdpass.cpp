// bench/fdpass.cpp - handing a file to another process: send its descriptor, or copy its bytes?
//
//   fdpass [--quick] [--dir DIR]
//
// A file of each size is written into DIR (default $TMPDIR or /tmp), then handed from a parent
// to a forked child over an AF_UNIX stream socket in four ways:
//   copy      the parent read()s the file and write()s the bytes into the socket; the child
//             read()s them all (256 KiB at a time)
//   fd        the parent open()s the file and sends the descriptor with SCM_RIGHTS; the child
//             receives it and closes it without reading (the hand-over alone)
//   fd+read   as fd, then the child read()s the whole file through it (256 KiB at a time)
//   fd+mmap   as fd, then the child mmap()s the file and touches every page
// The clock runs in the parent from before open() until the child's one-byte "done" comes back.
// The file stays in the page cache (it was just written, and one warm-up pass reads it), so this
// measures memory and system calls, not the disk. Sizes that do not fit the free space (statvfs,
// what df shows) are skipped; the file is deleted after each size.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <csignal>
#include <cstring>
#include <string>
#include <vector>

#include "bench.hpp"

namespace {

constexpr std::size_t kChunk = 256 << 10;
constexpr std::uint64_t kSlack = 512ull << 20;  // leave this much disk free at least

enum class Method : std::uint32_t { Copy, Fd, FdRead, FdMmap, Quit };
constexpr std::array<const char*, 4> kMethodNames = {
    "copy through the socket", "fd only (SCM_RIGHTS)", "fd + read()", "fd + mmap()"};
struct Cmd {
    Method method;
    std::uint32_t pad;
    std::uint64_t size;
};

// ---- SCM_RIGHTS, written out (chapter 05 teaches it step by step) ----

// Sends `cmd` as the ordinary bytes and, when fd >= 0, one descriptor as ancillary data.
void send_cmd(int sock, const Cmd& cmd, int fd) {
    iovec iov{const_cast<Cmd*>(&cmd),
              sizeof cmd};  // at least one data byte must go with a descriptor
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    union {  // a cmsghdr-aligned control buffer sized with CMSG_SPACE (not CMSG_LEN)
        cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctrl{};
    if (fd >= 0) {
        msg.msg_control = ctrl.buf;
        msg.msg_controllen = sizeof ctrl.buf;
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    ssize_t n = uds::check(sendmsg(sock, &msg, MSG_NOSIGNAL), "sendmsg");
    if (static_cast<std::size_t>(n) != sizeof cmd) throw uds::Failure("sendmsg: short write");
}

// Receives one Cmd and the descriptor that came with it (if any). Every received descriptor is
// owned by a uds::Fd at once, so no error path can leak one.
Cmd recv_cmd(int sock, uds::Fd& fd_out) {
    Cmd cmd{};
    iovec iov{&cmd, sizeof cmd};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    union {
        cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * 4)];
    } ctrl{};
    msg.msg_control = ctrl.buf;
    msg.msg_controllen = sizeof ctrl.buf;
    ssize_t n = uds::check(recvmsg(sock, &msg, MSG_CMSG_CLOEXEC), "recvmsg");
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            fd_out.reset(fd);  // keeps the last one; any earlier extra one is closed
        }
    }
    if (msg.msg_flags & MSG_CTRUNC) throw uds::Failure("recvmsg: descriptors were truncated");
    if (n == 0) throw uds::Failure("recvmsg: the parent went away");
    // A stream may deliver the rest of the command in a later read.
    if (static_cast<std::size_t>(n) < sizeof cmd)
        bench::read_full(sock, reinterpret_cast<char*>(&cmd) + n,
                         sizeof cmd - static_cast<std::size_t>(n), "command");
    return cmd;
}

void read_everything(int fd, std::uint64_t size, char* buf, const char* what) {
    for (std::uint64_t left = size; left > 0;) {
        ssize_t r = read(fd, buf, std::min<std::uint64_t>(left, kChunk));
        if (r == 0) throw uds::Failure(std::string(what) + ": early end of file");
        if (r < 0) {
            if (errno == EINTR) continue;
            throw uds::SysError(errno, std::string("read ") + what);
        }
        left -= static_cast<std::uint64_t>(r);
    }
}

[[noreturn]] void child_main(int sock) {
    try {
        bench::Buffer buf(kChunk);
        for (;;) {
            uds::Fd fd;
            Cmd c = recv_cmd(sock, fd);
            if (c.method == Method::Quit) _exit(0);
            if (c.method != Method::Copy && !fd) throw uds::Failure("no descriptor arrived");
            volatile char sink = 0;
            switch (c.method) {
                case Method::Copy:
                    read_everything(sock, c.size, buf.data(), "socket");
                    break;
                case Method::Fd:
                    break;
                case Method::FdRead:
                    read_everything(fd.get(), c.size, buf.data(), "file");
                    break;
                case Method::FdMmap: {
                    void* p = mmap(nullptr, c.size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
                    if (p == MAP_FAILED) throw uds::SysError(errno, "mmap");
                    const auto* bytes = static_cast<const char*>(p);
                    for (std::uint64_t off = 0; off < c.size; off += 4096)
                        sink = bytes[off];
                    munmap(p, c.size);
                    break;
                }
                case Method::Quit:
                    break;
            }
            (void)sink;
            fd.reset();
            char done = 1;
            bench::write_full(sock, &done, 1, "socket");
        }
    } catch (const std::exception& e) {
        uds::log("child: " + uds::describe(e));
        _exit(1);
    }
}

// One hand-over, timed in the parent; returns seconds.
double hand_over(int sock, Method m, const std::string& path, std::uint64_t size,
                 bench::Buffer& buf) {
    std::uint64_t t0 = bench::now_ns();
    uds::Fd file{uds::check(open(path.c_str(), O_RDONLY | O_CLOEXEC), "open " + path)};
    Cmd c{m, 0, size};
    if (m == Method::Copy) {
        send_cmd(sock, c, -1);
        for (std::uint64_t left = size; left > 0;) {
            ssize_t r = read(file.get(), buf.data(), std::min<std::uint64_t>(left, kChunk));
            if (r <= 0) throw uds::SysError(r == 0 ? EIO : errno, "read " + path);
            bench::write_full(sock, buf.data(), static_cast<std::size_t>(r), "socket");
            left -= static_cast<std::uint64_t>(r);
        }
    } else {
        send_cmd(sock, c, file.get());
    }
    file.reset();  // our copy; the child's descriptor keeps the open file alive
    char done = 0;
    bench::read_full(sock, &done, 1, "socket (did the child fail?)");
    return static_cast<double>(bench::now_ns() - t0) / 1e9;
}

std::string time_name(double secs) {
    if (secs < 1e-3) return bench::num(secs * 1e6) + " µs";
    if (secs < 1) return bench::num(secs * 1e3) + " ms";
    return bench::num(secs) + " s";
}

void write_file(const std::string& path, std::uint64_t size, bench::Buffer& buf) {
    uds::Fd f{uds::check(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600),
                         "open " + path)};
    for (std::uint64_t left = size; left > 0;) {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left, kChunk));
        bench::write_full(f.get(), buf.data(), n, path.c_str());
        left -= n;
    }
}

int run(int argc, char** argv) {
    bool quick = false;
    const char* tmp = std::getenv("TMPDIR");
    std::string dir = tmp && *tmp ? tmp : "/tmp";
    uds::Cli cli("fdpass", "[--quick] [--dir DIR]",
                 "Hands a file to a child process by sending its descriptor (SCM_RIGHTS) or by\n"
                 "copying its bytes through an AF_UNIX stream socket, for 1 KiB .. 1 GiB.");
    cli.option('q', "quick", "", "sizes up to 64 MiB, fewer repetitions",
               [&](const std::string&) { quick = true; });
    cli.option('d', "dir", "DIR", "where the temporary file goes (default $TMPDIR or /tmp)",
               [&](const std::string& v) { dir = v; });
    if (!cli.parse(argc, argv).empty()) throw uds::UsageError("no arguments expected");
    std::signal(SIGPIPE, SIG_IGN);  // a dead child shows up as EPIPE, not as our death

    std::vector<std::uint64_t> sizes = {1 << 10, 16 << 10, 256 << 10, 4 << 20, 64 << 20};
    if (!quick) sizes.insert(sizes.end(), {256ull << 20, 1ull << 30});
    const int reps = quick ? 3 : 5;

    int sv[2];
    uds::check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), "socketpair");
    uds::Fd parent{sv[0]}, child{sv[1]};
    pid_t pid = uds::check(fork(), "fork");
    if (pid == 0) {
        parent.reset();
        child_main(child.get());
    }
    child.reset();

    std::string path = dir + "/uds-bench-fdpass-" + std::to_string(getpid());
    bench::Buffer buf(kChunk, 'f');
    bench::heading("Handing a file to another process: descriptor vs copy");
    bench::Table t(
        {"file size", kMethodNames[0], kMethodNames[1], kMethodNames[2], kMethodNames[3]});
    std::vector<std::string> skipped;
    for (std::uint64_t size : sizes) {
        struct statvfs vfs {};
        uds::check(statvfs(dir.c_str(), &vfs), "statvfs " + dir);
        std::uint64_t avail = static_cast<std::uint64_t>(vfs.f_bavail) * vfs.f_frsize;
        if (size + kSlack > avail) {
            skipped.push_back(bench::size_name(size) + " (only " +
                              bench::size_name(avail >> 20 << 20) + " free in " + dir + ")");
            continue;
        }
        std::vector<std::vector<double>> secs(4);
        try {
            write_file(path, size, buf);
            int n = size >= (256ull << 20) ? 3 : reps;
            for (int rep = -1; rep < n; ++rep)  // rep -1: warm-up
                for (int k = 0; k < 4; ++k) {   // interleaved, rotating which goes first
                    auto m = static_cast<Method>((k + rep + 1) % 4);
                    double s = hand_over(parent.get(), m, path, size, buf);
                    if (rep >= 0) secs[static_cast<std::size_t>(m)].push_back(s);
                }
        } catch (...) {
            unlink(path.c_str());
            throw;
        }
        unlink(path.c_str());
        double copy = bench::median(secs[0]);
        std::vector<std::string> row{bench::size_name(size)};
        for (std::size_t k = 0; k < 4; ++k) {
            double m = bench::median(secs[k]);
            row.push_back(time_name(m) + bench::ratio(m / copy));
        }
        t.row(row);
    }
    t.print();

    Cmd quit{Method::Quit, 0, 0};
    send_cmd(parent.get(), quit, -1);
    int status = 0;
    uds::check(waitpid(pid, &status, 0), "waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        throw uds::Failure("the receiving child failed");

    std::printf(
        "Median of %d hand-overs per size (3 from 256 MiB up), after one warm-up, methods "
        "interleaved; (×) = time / copy time; (1/N) = N times faster than the copy. The file was "
        "in the page cache: this is memory "
        "and system calls, not disk. `fd only` does not touch the data: its cost does not "
        "grow with the file.%s%s\n\n",
        reps, skipped.empty() ? "" : " Skipped (not enough free space): ",
        [&] {
            std::string s;
            for (const auto& k : skipped)
                s += (s.empty() ? "" : ", ") + k;
            return s;
        }()
            .c_str());
    if (quick) std::printf("Quick mode: sizes up to 64 MiB (the full run goes to 1 GiB).\n\n");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("fdpass", argc, argv, run);
}
