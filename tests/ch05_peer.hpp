// tests/ch05_peer.hpp - what chapter 05's tests use to talk to the broker like any outside
// program would: raw sendmsg/recvmsg with SCM_RIGHTS, pipes to pass, and looks into another
// process's descriptor table (/proc/PID/fd, /proc/PID/fdinfo, pidfd_getfd).
//
// Written independently of the chapter's fdpass.hpp, so that the same tests grade a student's
// programs (whose fdpass.hpp may be wrong).
#pragma once

#include <fcntl.h>
#include <grp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "harness.hpp"
#include "uds.hpp"

namespace ch05t {

inline const std::string kChapter = "05-sendmsg-fds";

// Sends data with the given descriptors attached (none: a plain sendmsg). Returns sendmsg's result.
inline ssize_t send_fds(int sock, std::string_view data, const std::vector<int>& fds = {}) {
    iovec iov{const_cast<char*>(data.data()), data.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    std::vector<cmsghdr> control;  // cmsghdr elements: aligned, and room to spare
    if (!fds.empty()) {
        control.resize(CMSG_SPACE(fds.size() * sizeof(int)) / sizeof(cmsghdr) + 1);
        msg.msg_control = control.data();
        msg.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
        std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
    }
    return ::sendmsg(sock, &msg, MSG_NOSIGNAL);
}

struct Got {
    std::string data;
    std::vector<uds::Fd> fds;
    int flags = 0;  // msg_flags of the recvmsg calls, or'ed
};

// When grading (a short patience), a program that has left two requests unanswered is taken
// for one that hangs: later waits for a reply or a close are short, so that grading it still
// takes seconds. The normal suite keeps its full patience.
inline std::atomic<int>& missing_replies() {
    static std::atomic<int> n{0};
    return n;
}
inline bool gave_up_waiting() {
    return th::patience() < th::kPatience && missing_replies() >= 2;
}

// The deadline for a reply.
inline th::Deadline reply_deadline() {
    return gave_up_waiting() ? th::Deadline{th::milliseconds{250}} : th::Deadline{};
}

// A short deadline for what should already be true (a descriptor closed, a count back at its
// baseline): a wrong program fails in at most a second, so grading stays fast.
inline th::Deadline soon() {
    if (gave_up_waiting()) return th::Deadline{th::milliseconds{250}};
    return th::Deadline{std::min(th::patience(), th::milliseconds{1000})};
}

// One recvmsg (after waiting for readability) with room for `room` descriptors.
inline Got recv_once(int sock, std::size_t max_bytes, std::size_t room,
                     int flags = MSG_CMSG_CLOEXEC, th::Deadline d = reply_deadline()) {
    Got g;
    if (!th::readable(sock, d.remaining_ms())) {
        th::strike();  // (a program that hangs once usually hangs again: later waits are shorter)
        ++missing_replies();
        return g;
    }
    std::vector<char> buf(max_bytes);
    iovec iov{buf.data(), buf.size()};
    std::vector<cmsghdr> control(room > 0 ? CMSG_SPACE(room * sizeof(int)) / sizeof(cmsghdr) + 1
                                          : 0);
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.empty() ? nullptr : control.data();
    msg.msg_controllen = room > 0 ? CMSG_SPACE(room * sizeof(int)) : 0;
    ssize_t n = ::recvmsg(sock, &msg, flags);
    if (n < 0) return g;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            g.fds.emplace_back(fd);
        }
    }
    g.data.assign(buf.data(), static_cast<std::size_t>(n));
    g.flags = msg.msg_flags;
    return g;
}

// Reads one line byte by byte with recvmsg, collecting every descriptor on the way; stops at the
// newline, at EOF (the program closed the connection or exited) or at the deadline.
inline Got recv_line(int sock, th::Deadline d = reply_deadline()) {
    Got all;
    for (;;) {
        Got g = recv_once(sock, 1, 8, MSG_CMSG_CLOEXEC, d);
        for (auto& fd : g.fds)
            all.fds.push_back(std::move(fd));
        all.flags |= g.flags;
        if (g.data.empty()) return all;  // EOF or deadline
        all.data += g.data;
        if (g.data.back() == '\n') return all;
    }
}

// OPEN path on an open connection; the reply and whatever descriptors came with it.
inline Got open_file(int conn, const std::string& path, th::Deadline d = reply_deadline()) {
    const std::string req = "OPEN " + path + "\n";
    if (send_fds(conn, req) != static_cast<ssize_t>(req.size())) return {};
    return recv_line(conn, d);
}

struct Pipe {
    uds::Fd r, w;
    Pipe() {
        int p[2];
        uds::check(::pipe2(p, O_CLOEXEC), "pipe2");
        r.reset(p[0]);
        w.reset(p[1]);
    }
};

// True once the read end sees EOF (every write end closed, in every process) in time.
inline bool pipe_hits_eof(int r, th::Deadline d = soon()) {
    char buf[512];
    while (th::readable(r, d.remaining_ms())) {
        ssize_t n = ::read(r, buf, sizeof buf);
        if (n == 0) return true;
        if (n < 0) return false;
    }
    th::strike();
    return false;
}

// Everything a pipe holds until EOF (or the deadline).
inline std::string read_pipe(int r, th::Deadline d = soon()) {
    std::string out;
    char buf[512];
    for (;;) {
        if (!th::readable(r, d.remaining_ms())) {
            th::strike();
            break;
        }
        ssize_t n = ::read(r, buf, sizeof buf);
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

inline void write_file(const std::string& path, const std::string& content) {
    std::ofstream(path, std::ios::binary) << content;
}

inline std::string read_fd_from_start(int fd) {
    std::string out;
    char buf[4096];
    for (off_t off = 0;;) {
        ssize_t n = ::pread(fd, buf, sizeof buf, off);
        if (n <= 0) return out;
        out.append(buf, static_cast<std::size_t>(n));
        off += n;
    }
}

inline struct stat stat_of(int fd) {
    struct stat st {};
    uds::check(::fstat(fd, &st), "fstat");
    return st;
}

// The descriptor count of `pid` once it equals `expected` (or the deadline passed): a sanitizer
// build opens short-lived pipes of its own while threads start and end, so one reading can be
// off for a few microseconds. A real leak stays, and the test fails.
inline int settled_fds(pid_t pid, int expected, th::Deadline d = soon()) {
    int n = th::count_fds(pid);
    while (n != expected && !d.expired()) {
        th::readable(-1, 2);  // poll() ignores a negative descriptor: a 2 ms timed wait
        n = th::count_fds(pid);
    }
    if (n != expected) th::strike();
    return n;
}

// Whether descriptor fd of process pid has FD_CLOEXEC (fdinfo shows it as O_CLOEXEC in flags).
inline bool close_on_exec(pid_t pid, int fd) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/fdinfo/" + std::to_string(fd));
    std::string key;
    while (in >> key) {
        if (key == "flags:") {
            unsigned long flags = 0;
            in >> std::oct >> flags;
            return (flags & O_CLOEXEC) != 0;
        }
    }
    return false;
}

// The numbers under which `pid` holds sockets (from /proc/PID/fd: "socket:[inode]").
inline std::vector<int> socket_fds(pid_t pid) {
    std::vector<int> out;
    std::error_code ec;
    for (const auto& e :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
        std::error_code ec2;
        auto target = std::filesystem::read_symlink(e.path(), ec2).string();
        if (!ec2 && target.rfind("socket:", 0) == 0)
            out.push_back(std::stoi(e.path().filename().string()));
    }
    return out;
}

// The number under which process `pid` holds the open file `target`, or -1.
inline int fd_holding(pid_t pid, const struct stat& target) {
    std::error_code ec;
    for (const auto& e :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
        struct stat st {};
        if (::stat(e.path().c_str(), &st) == 0 && st.st_dev == target.st_dev &&
            st.st_ino == target.st_ino)
            return std::stoi(e.path().filename().string());
    }
    return -1;
}

// Waits until `pid` holds `target` (while `alive()` says the program runs); returns its number.
template <typename Alive>
int wait_holding(pid_t pid, const struct stat& target, Alive alive, th::Deadline d = soon()) {
    for (;;) {
        int fd = fd_holding(pid, target);
        if (fd >= 0 || !alive()) return fd;
        if (d.expired()) {
            th::strike();
            return fd;
        }
        th::readable(-1, 1);
    }
}

// A copy of another process's descriptor (pidfd_getfd, Linux 5.6+; allowed for a parent and for
// root). Invalid (errno set) when the kernel or the ptrace policy says no.
inline uds::Fd copy_of(pid_t pid, int fd) {
    uds::Fd pidfd{static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))};
    if (!pidfd) return {};
    return uds::Fd{static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), fd, 0))};
}

inline int sockopt(int fd, int level, int name) {
    int v = -1;
    socklen_t len = sizeof v;
    if (::getsockopt(fd, level, name, &v, &len) != 0) return -1;
    return v;
}

// The server's listening socket: its number in the server and a copy of it here.
struct Listener {
    int number = -1;
    uds::Fd copy;
    std::string why_not;  // when it could not be looked at
};
inline Listener find_listener(pid_t pid) {
    Listener l;
    for (int fd : socket_fds(pid)) {
        uds::Fd c = copy_of(pid, fd);
        if (!c) {
            l.why_not = std::string("pidfd_getfd: ") + std::strerror(errno);
            continue;
        }
        if (sockopt(c.get(), SOL_SOCKET, SO_ACCEPTCONN) == 1) {
            l.number = fd;
            l.copy = std::move(c);
            return l;
        }
    }
    if (l.why_not.empty()) l.why_not = "no listening socket";
    return l;
}

// Descriptors in flight are counted per user, for all of that user's processes together. The
// tests that fill that budget each run as a uid of their own (no account needs to exist), so
// that tests running at the same time in other processes (grading shards) cannot disturb them.
inline constexpr uid_t kFloodUid = 65531;      // Ch05Hostile.NeverReadingClients...
inline constexpr uid_t kInFlightUid = 65532;   // Ch05Hostile.ADescriptorTheKernelWillNotPass...
inline constexpr uid_t kSemanticsUid = 65533;  // Ch05Semantics.DescriptorsInFlight...

// Drops this (forked) process to uid/gid `uid` with RLIMIT_NOFILE `nofile`; false on failure.
inline bool become(uid_t uid, rlim_t nofile) {
    rlimit lim{nofile, nofile};
    return ::setrlimit(RLIMIT_NOFILE, &lim) == 0 && ::setgroups(0, nullptr) == 0 &&
           ::setgid(uid) == 0 && ::setuid(uid) == 0;
}

// A program named "server" in `dir` that runs the chapter's server through `wrapper` (for
// example setpriv ... --, or prlimit --nofile=N --): the harness knows a server by its ready
// line, "server: listening on ...", which names the program it started.
inline std::string wrapped_server(const th::TempDir& dir, const std::vector<std::string>& wrapper) {
    auto quote = [](const std::string& a) {
        std::string q = "'";
        for (char c : a)
            q += c == '\'' ? std::string("'\\''") : std::string(1, c);
        return q + "'";
    };
    std::string script = "#!/bin/sh\nexec";
    for (const std::string& w : wrapper)
        script += " " + quote(w);
    script += " " + quote(th::bin(kChapter, "server")) + " \"$@\"\n";
    const std::string path = dir.file("server");
    std::ofstream(path) << script;
    ::chmod(path.c_str(), 0755);
    return path;
}

// th::start_server, for servers started through a wrapper (setpriv, prlimit) too: once the
// chapter's server failed to get ready in this process, a wrapped start fails at once instead of
// waiting its own full readiness deadline.
inline std::unique_ptr<th::Process> start(const std::string& path,
                                          const std::vector<std::string>& args,
                                          th::Process::Options opts = {}) {
    static std::string never_ready;
    if (!never_ready.empty()) throw th::Abort(never_ready + " [in an earlier test]");
    const auto began = th::Clock::now();
    try {
        return th::start_server(path, args, "listening on", std::move(opts));
    } catch (const th::Abort& e) {
        // Only a real timeout (a program that exits right away is reported at once).
        if (th::Clock::now() - began >= th::milliseconds{400} &&
            std::string(e.what()).find("did not say") != std::string::npos)
            never_ready = e.what();
        throw;
    }
}

}  // namespace ch05t
