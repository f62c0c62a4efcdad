// Chapter 05: passing descriptors with SCM_RIGHTS, and the confined file broker.
//
//   Ch05Semantics    what the kernel does (socketpairs in this process, no chapter code)
//   Ch05Contract     the real server and client, driven like any outside program would
//   Ch05Confinement  the attack list, against both lookups (openat2 and the portable walk)
//
// The sendmsg/recvmsg helpers below are the tests' own, written independently of the chapter's
// fdpass.hpp, so that they also grade a student's server.
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "harness.hpp"
#include "uds.hpp"

namespace {

const std::string kChapter = "05-sendmsg-fds";

// --------------------------------------------------------------- raw sendmsg / recvmsg
// Sends data with the given descriptors attached (none: a plain sendmsg). Returns sendmsg's result.
ssize_t send_fds(int sock, std::string_view data, const std::vector<int>& fds) {
    iovec iov{const_cast<char*>(data.data()), data.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    std::vector<char> control;  // vector storage comes from operator new: suitably aligned
    if (!fds.empty()) {
        control.assign(CMSG_SPACE(fds.size() * sizeof(int)), 0);
        msg.msg_control = control.data();
        msg.msg_controllen = control.size();
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
    int flags = 0;  // msg_flags of the last recvmsg
};

// One recvmsg (after waiting for readability) with room for `room` descriptors.
Got recv_once(int sock, std::size_t max_bytes, std::size_t room, int flags = MSG_CMSG_CLOEXEC,
              th::Deadline d = th::Deadline{}) {
    Got g;
    if (!th::readable(sock, d.remaining_ms())) return g;
    std::vector<char> buf(max_bytes);
    iovec iov{buf.data(), buf.size()};
    std::vector<char> control(room > 0 ? CMSG_SPACE(room * sizeof(int)) : 0);
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.empty() ? nullptr : control.data();
    msg.msg_controllen = control.size();
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

// Reads one reply line byte by byte with recvmsg, collecting every descriptor on the way.
Got recv_line(int sock, th::Deadline d = th::Deadline{}) {
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
bool pipe_hits_eof(int r, th::Deadline d = th::Deadline{}) {
    char buf[256];
    while (th::readable(r, d.remaining_ms())) {
        ssize_t n = ::read(r, buf, sizeof buf);
        if (n == 0) return true;
        if (n < 0) return false;
    }
    return false;
}

void write_file(const std::string& path, const std::string& content) {
    std::ofstream(path, std::ios::binary) << content;
}

std::string read_fd_from_start(int fd) {
    std::string out;
    char buf[4096];
    off_t off = 0;
    for (;;) {
        ssize_t n = ::pread(fd, buf, sizeof buf, off);
        if (n <= 0) return out;
        out.append(buf, static_cast<std::size_t>(n));
        off += n;
    }
}

// The server's descriptor count, once it equals `expected` (or the deadline passed): a
// sanitizer build opens short-lived pipes of its own while threads start and end, so one
// reading can be off for a few microseconds. A real leak stays, and the test fails.
int settled_fds(pid_t pid, int expected, th::Deadline d = th::Deadline{th::milliseconds{3000}}) {
    int n = th::count_fds(pid);
    while (n != expected && !d.expired())
        n = th::count_fds(pid);
    return n;
}

// --------------------------------------------------------------- the broker under test
const std::string kHello = "hello, descriptor\n";
const std::string kUtf8 = "你好，世界 — Grüße\n";

class Broker {
  public:
    explicit Broker(std::vector<std::string> extra = {}) {
        root = dir.file("root");
        outside = dir.file("outside");
        ::mkdir(root.c_str(), 0755);
        ::mkdir(outside.c_str(), 0755);
        ::mkdir((root + "/sub").c_str(), 0755);
        write_file(root + "/hello.txt", kHello);
        write_file(root + "/utf8.txt", kUtf8);
        write_file(root + "/sub/inner.txt", "inner\n");
        write_file(outside + "/secret.txt", "secret\n");
        sock = dir.file("broker.sock");
        std::vector<std::string> args{"-s", sock, "--root", root};
        args.insert(args.end(), extra.begin(), extra.end());
        proc = std::make_unique<th::Process>(th::bin(kChapter, "server"), args);
        ready = proc->wait_stderr("listening on " + sock);
    }
    [[nodiscard]] uds::Address addr() const { return uds::Address::path(sock); }
    uds::Fd connect() const { return th::connect_stream(addr()); }
    [[nodiscard]] pid_t pid() const { return proc->pid(); }
    // The server logs "client N: connection closed" after it closed that connection.
    bool closed(int n) {
        return proc->wait_stderr("client " + std::to_string(n) + ": connection closed");
    }

    th::TempDir dir;
    std::string root, outside, sock;
    std::unique_ptr<th::Process> proc;
    bool ready = false;
};

// OPEN path on an open connection; returns the reply and whatever descriptors came with it.
Got open_file(int conn, const std::string& path) {
    std::string req = "OPEN " + path + "\n";
    EXPECT_EQ(send_fds(conn, req, {}), static_cast<ssize_t>(req.size()));
    return recv_line(conn);
}

// ================================================================ Ch05Semantics
TEST(Ch05Semantics, ReceivedFdHasNewNumberButSameOpenFileAndOffset) {
    th::TempDir dir;
    write_file(dir.file("f"), "0123456789");
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    uds::Fd a{sv[0]}, b{sv[1]};
    uds::Fd file{::open(dir.file("f").c_str(), O_RDONLY | O_CLOEXEC)};
    ASSERT_TRUE(file);
    ASSERT_EQ(send_fds(a.get(), "x", {file.get()}), 1);
    Got g = recv_once(b.get(), 16, 1);
    ASSERT_EQ(g.fds.size(), 1u);
    int mine = file.get(), theirs = g.fds[0].get();
    EXPECT_NE(mine, theirs) << "a new number in the receiver's table";
    struct stat s1 {
    }, s2{};
    ASSERT_EQ(::fstat(mine, &s1), 0);
    ASSERT_EQ(::fstat(theirs, &s2), 0);
    EXPECT_EQ(s1.st_dev, s2.st_dev);
    EXPECT_EQ(s1.st_ino, s2.st_ino);
    // The same open file description: one offset, one set of status flags.
    ASSERT_EQ(::lseek(mine, 4, SEEK_SET), 4);
    EXPECT_EQ(::lseek(theirs, 0, SEEK_CUR), 4);
    char c = 0;
    ASSERT_EQ(::read(theirs, &c, 1), 1);
    EXPECT_EQ(c, '4');
    EXPECT_EQ(::lseek(mine, 0, SEEK_CUR), 5);
    ASSERT_EQ(::fcntl(theirs, F_SETFL, O_NONBLOCK), 0);
    EXPECT_NE(::fcntl(mine, F_GETFL) & O_NONBLOCK, 0) << "status flags are shared too";
    // The descriptor flag FD_CLOEXEC is per descriptor: MSG_CMSG_CLOEXEC set it on ours only.
    EXPECT_NE(::fcntl(theirs, F_GETFD) & FD_CLOEXEC, 0);
}

TEST(Ch05Semantics, SenderMayCloseItsCopyRightAfterSendmsg) {
    th::TempDir dir;
    write_file(dir.file("f"), "still here");
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    uds::Fd a{sv[0]}, b{sv[1]};
    {
        uds::Fd file{::open(dir.file("f").c_str(), O_RDONLY | O_CLOEXEC)};
        ASSERT_EQ(send_fds(a.get(), "x", {file.get()}), 1);
    }  // closed before the receiver even called recvmsg: the message holds its own reference
    Got g = recv_once(b.get(), 16, 1);
    ASSERT_EQ(g.fds.size(), 1u);
    EXPECT_EQ(read_fd_from_start(g.fds[0].get()), "still here");
}

TEST(Ch05Semantics, WithoutMsgCmsgCloexecTheReceivedFdIsInheritedByExec) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    uds::Fd a{sv[0]}, b{sv[1]};
    Pipe p;
    ASSERT_EQ(send_fds(a.get(), "x", {p.w.get()}), 1);
    Got g = recv_once(b.get(), 16, 1, 0);  // flags 0: no MSG_CMSG_CLOEXEC
    ASSERT_EQ(g.fds.size(), 1u);
    EXPECT_EQ(::fcntl(g.fds[0].get(), F_GETFD) & FD_CLOEXEC, 0) << "would leak across exec";
}

TEST(Ch05Semantics, ZeroDataBytesSendNothingOnAStream) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    uds::Fd a{sv[0]}, b{sv[1]};
    Pipe p;
    // sendmsg with no data byte but a descriptor: Linux returns 0 and sends nothing at all.
    EXPECT_EQ(send_fds(a.get(), "", {p.w.get()}), 0);
    p.w.reset();
    EXPECT_TRUE(pipe_hits_eof(p.r.get())) << "no reference to the pipe is in flight";
    // Prove the queue is empty without waiting: the next real byte is the first thing received.
    ASSERT_EQ(send_fds(a.get(), "z", {}), 1);
    Got g = recv_once(b.get(), 16, 4);
    EXPECT_EQ(g.data, "z");
    EXPECT_TRUE(g.fds.empty());
}

TEST(Ch05Semantics, ZeroByteDatagramDoesCarryDescriptors) {
    // The contrast: a datagram (or seqpacket) socket has messages, and an empty one is a message.
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
    uds::Fd a{sv[0]}, b{sv[1]};
    Pipe p;
    EXPECT_EQ(send_fds(a.get(), "", {p.w.get()}), 0);
    Got g = recv_once(b.get(), 16, 1);
    EXPECT_EQ(g.data, "");
    EXPECT_EQ(g.fds.size(), 1u);
}

TEST(Ch05Semantics, CtruncDropsTheRestAndWeCloseWhatArrived) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    uds::Fd a{sv[0]}, b{sv[1]};
    std::vector<Pipe> pipes(4);
    std::vector<int> ws;
    for (auto& p : pipes)
        ws.push_back(p.w.get());
    ASSERT_EQ(send_fds(a.get(), "x", ws), 1);
    for (auto& p : pipes)
        p.w.reset();
    const int before = th::count_fds();
    // A control buffer of CMSG_SPACE(sizeof(int)): meant for one descriptor. The kernel fills
    // it as far as it goes: on 64-bit Linux the alignment padding holds a second int.
    const std::size_t fit = (CMSG_SPACE(sizeof(int)) - CMSG_LEN(0)) / sizeof(int);
    ASSERT_LT(fit, pipes.size());
    if (sizeof(std::size_t) == 8) {
        EXPECT_EQ(fit, 2u) << "64-bit: the padding holds a second int";
    }
    Got g = recv_once(b.get(), 16, 1);
    EXPECT_NE(g.flags & MSG_CTRUNC, 0);
    EXPECT_EQ(g.data, "x") << "the data byte still arrives";
    EXPECT_EQ(g.fds.size(), fit) << "the kernel installed what fit";
    EXPECT_EQ(th::count_fds(), before + static_cast<int>(fit));
    // The ones that did not fit were never installed: their pipes see EOF already.
    for (std::size_t i = fit; i < pipes.size(); ++i)
        EXPECT_TRUE(pipe_hits_eof(pipes[i].r.get())) << i;
    g.fds.clear();  // what a correct receiver does on MSG_CTRUNC: close what it got
    for (std::size_t i = 0; i < fit; ++i)
        EXPECT_TRUE(pipe_hits_eof(pipes[i].r.get())) << i;
    EXPECT_EQ(th::count_fds(), before);
}

// Two control messages arrive together (SCM_CREDENTIALS, then SCM_RIGHTS). Each one occupies
// CMSG_SPACE bytes of the buffer; a buffer sized with CMSG_LEN is too short for the second.
struct CredsAndFd {
    int flags = -1;
    std::size_t fds = 0;
    std::vector<int> types;  // cmsg_type of each control message, in order
};
CredsAndFd receive_creds_and_one_fd(std::size_t controllen) {
    int sv[2];
    CredsAndFd out;
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return out;
    uds::Fd a{sv[0]}, b{sv[1]};
    int on = 1;
    ::setsockopt(b.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on);
    Pipe p;
    if (send_fds(a.get(), "x", {p.w.get()}) != 1) return out;
    char byte;
    iovec iov{&byte, 1};
    std::vector<cmsghdr> storage(8);  // aligned, and big enough for any controllen used here
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = storage.data();
    msg.msg_controllen = controllen;
    if (::recvmsg(b.get(), &msg, MSG_CMSG_CLOEXEC) != 1) return out;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        out.types.push_back(c->cmsg_type);
        if (c->cmsg_type != SCM_RIGHTS) continue;
        for (std::size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            ::close(fd);
            ++out.fds;
        }
    }
    out.flags = msg.msg_flags;
    return out;
}

TEST(Ch05Semantics, BufferSizedWithCmsgLenLosesTheSecondMessage) {
    CredsAndFd space =
        receive_creds_and_one_fd(CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(sizeof(int)));
    EXPECT_EQ(space.flags & MSG_CTRUNC, 0);
    EXPECT_EQ(space.fds, 1u);
    EXPECT_EQ(space.types, (std::vector<int>{SCM_CREDENTIALS, SCM_RIGHTS}))
        << "two control messages, credentials first: stopping at the first loses the descriptor";
    CredsAndFd len = receive_creds_and_one_fd(CMSG_LEN(sizeof(ucred)) + CMSG_LEN(sizeof(int)));
    EXPECT_NE(len.flags & MSG_CTRUNC, 0);
    EXPECT_EQ(len.fds, 0u) << "the descriptor did not fit after the padded credentials";
}

TEST(Ch05Semantics, CmsgFirsthdrDoesNotAlignTheBuffer) {
    // CMSG_FIRSTHDR returns the buffer's own address: an odd-placed char array gives a
    // misaligned cmsghdr*, and every access through it is undefined behaviour.
    alignas(cmsghdr) char raw[64];
    msghdr msg{};
    msg.msg_control = raw + 1;
    msg.msg_controllen = 48;
    auto addr = reinterpret_cast<std::uintptr_t>(CMSG_FIRSTHDR(&msg));
    EXPECT_NE(addr % alignof(cmsghdr), 0u);
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        cmsghdr align;
    } control;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(CMSG_FIRSTHDR(&msg)) % alignof(cmsghdr), 0u);
}

TEST(Ch05Semantics, SoPeercredNamesTheConnectingProcess) {
    auto addr = uds::Address::abstract(th::unique_abstract_name("peercred"));
    uds::Fd listener{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    ASSERT_EQ(::bind(listener.get(), addr.sockaddr_ptr(), addr.length()), 0);
    ASSERT_EQ(::listen(listener.get(), 1), 0);
    uds::Fd client = th::connect_stream(addr);
    uds::Fd conn{::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC)};
    ucred cred{};
    socklen_t len = sizeof cred;
    ASSERT_EQ(::getsockopt(conn.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len), 0);
    EXPECT_EQ(cred.pid, ::getpid());
    EXPECT_EQ(cred.uid, ::geteuid());
    EXPECT_EQ(cred.gid, ::getegid());
}

TEST(Ch05Semantics, MoreThan253FdsIsEinval) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    uds::Fd a{sv[0]}, b{sv[1]};
    std::vector<int> fds(254, a.get());  // the same descriptor many times is allowed
    errno = 0;
    EXPECT_EQ(send_fds(a.get(), "x", fds), -1);
    EXPECT_EQ(errno, EINVAL) << "SCM_MAX_FD is 253";
    fds.resize(253);
    EXPECT_EQ(send_fds(a.get(), "x", fds), 1);
    Got g = recv_once(b.get(), 16, 253);
    EXPECT_EQ(g.fds.size(), 253u);
    EXPECT_EQ(g.flags & MSG_CTRUNC, 0);
}

TEST(Ch05Semantics, FdsArriveWithTheLastBytesOfARead) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    uds::Fd a{sv[0]}, b{sv[1]};
    Pipe p1, p2;
    ASSERT_EQ(send_fds(a.get(), "A\n", {}), 2);
    ASSERT_EQ(send_fds(a.get(), "B\n", {p1.w.get()}), 2);
    ASSERT_EQ(send_fds(a.get(), "C\n", {p2.w.get()}), 2);
    ASSERT_EQ(send_fds(a.get(), "D\n", {}), 2);
    // Plain bytes before a descriptor-carrying send may be merged into the same read, but the
    // read stops right after the bytes that carried descriptors.
    Got g1 = recv_once(b.get(), 100, 4);
    EXPECT_EQ(g1.data, "A\nB\n");
    EXPECT_EQ(g1.fds.size(), 1u);
    Got g2 = recv_once(b.get(), 100, 4);
    EXPECT_EQ(g2.data, "C\n");
    EXPECT_EQ(g2.fds.size(), 1u);
    Got g3 = recv_once(b.get(), 100, 4);
    EXPECT_EQ(g3.data, "D\n");
    EXPECT_TRUE(g3.fds.empty());
}

TEST(Ch05Semantics, PlainReadDiscardsAttachedDescriptors) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    uds::Fd a{sv[0]}, b{sv[1]};
    Pipe p;
    const int before = th::count_fds();
    ASSERT_EQ(send_fds(a.get(), "GREET\n", {p.w.get()}), 6);
    p.w.reset();
    char buf[16];
    ASSERT_EQ(::read(b.get(), buf, sizeof buf), 6);  // read(): no control buffer
    EXPECT_TRUE(pipe_hits_eof(p.r.get())) << "the kernel closed the descriptor nobody took";
    EXPECT_EQ(th::count_fds(), before - 1);  // minus the write end we closed
}

TEST(Ch05Semantics, ScmCredentialsAreFilledInByTheKernel) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    uds::Fd a{sv[0]}, b{sv[1]};
    int on = 1;
    ASSERT_EQ(::setsockopt(b.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on), 0);
    ASSERT_EQ(send_fds(a.get(), "x", {}), 1);  // the sender attaches nothing
    char byte;
    iovec iov{&byte, 1};
    union {
        char buf[CMSG_SPACE(sizeof(ucred))];
        cmsghdr align;
    } control{};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    ASSERT_EQ(::recvmsg(b.get(), &msg, 0), 1);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->cmsg_level, SOL_SOCKET);
    EXPECT_EQ(c->cmsg_type, SCM_CREDENTIALS);
    ucred cred{};
    std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
    EXPECT_EQ(cred.pid, ::getpid());
    EXPECT_EQ(cred.uid, ::geteuid());
    EXPECT_EQ(cred.gid, ::getegid());
}

TEST(Ch05Semantics, UnprivilegedSenderCannotClaimAnotherPid) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to drop to nobody";
    int rc = th::run_as_nobody([] {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 10;
        uds::Fd a{sv[0]}, b{sv[1]};
        char byte = 'x';
        iovec iov{&byte, 1};
        union {
            char buf[CMSG_SPACE(sizeof(ucred))];
            cmsghdr align;
        } control{};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof control.buf;
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_CREDENTIALS;
        c->cmsg_len = CMSG_LEN(sizeof(ucred));
        ucred fake{1, 0, 0};  // "I am init, uid 0"
        std::memcpy(CMSG_DATA(c), &fake, sizeof fake);
        if (::sendmsg(a.get(), &msg, 0) != -1) return 11;
        return errno == EPERM ? 0 : 12;
    });
    EXPECT_EQ(rc, 0) << "sendmsg with forged SCM_CREDENTIALS must fail with EPERM";
}

// What the kernel does with the confinement flags the broker relies on.
int openat2_errno(int dirfd, const std::string& path, std::uint64_t resolve) {
    open_how how{};
    how.flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC;
    how.resolve = resolve;
    int fd = static_cast<int>(::syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how));
    if (fd >= 0) {
        ::close(fd);
        return 0;
    }
    return errno;
}

TEST(Ch05Semantics, Openat2ResolveBeneathRefusesEveryEscape) {
    th::TempDir dir;
    const std::string root = dir.file("root");
    ASSERT_EQ(::mkdir(root.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((root + "/sub").c_str(), 0755), 0);
    write_file(root + "/f", "f");
    write_file(dir.file("secret"), "s");
    ASSERT_EQ(::symlink(dir.file("secret").c_str(), (root + "/abs").c_str()), 0);
    ASSERT_EQ(::symlink("../secret", (root + "/rel").c_str()), 0);
    ASSERT_EQ(::symlink("..", (root + "/sub/up").c_str()), 0);
    ASSERT_EQ(::symlink("f", (root + "/inside").c_str()), 0);
    ASSERT_EQ(::symlink("/proc/self/fd/0", (root + "/magic").c_str()), 0);
    uds::Fd rootfd{::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    const std::uint64_t beneath = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    if (openat2_errno(rootfd.get(), "f", beneath) == ENOSYS) GTEST_SKIP() << "no openat2";
    EXPECT_EQ(openat2_errno(rootfd.get(), "f", beneath), 0);
    EXPECT_EQ(openat2_errno(rootfd.get(), "inside", beneath), 0) << "links that stay inside work";
    EXPECT_EQ(openat2_errno(rootfd.get(), "sub/../f", beneath), 0) << ".. that stays inside works";
    EXPECT_EQ(openat2_errno(rootfd.get(), "../secret", beneath), EXDEV);
    EXPECT_EQ(openat2_errno(rootfd.get(), dir.file("secret"), beneath), EXDEV) << "absolute";
    EXPECT_EQ(openat2_errno(rootfd.get(), "abs", beneath), EXDEV);
    EXPECT_EQ(openat2_errno(rootfd.get(), "rel", beneath), EXDEV);
    EXPECT_EQ(openat2_errno(rootfd.get(), "sub/up/../secret", beneath), EXDEV);
    EXPECT_EQ(openat2_errno(rootfd.get(), "magic", RESOLVE_NO_MAGICLINKS), ELOOP)
        << "RESOLVE_NO_MAGICLINKS alone refuses /proc/self/fd/N";
    EXPECT_EQ(openat2_errno(rootfd.get(), std::string(256, 'x'), beneath), ENAMETOOLONG);
    EXPECT_EQ(openat2_errno(rootfd.get(), "../secret", 0), 0) << "without RESOLVE_BENEATH";
}

TEST(Ch05Semantics, NofollowRefusesSymlinksAndNonblockOpensAFifoAtOnce) {
    th::TempDir dir;
    write_file(dir.file("f"), "f");
    ASSERT_EQ(::symlink("f", dir.file("link").c_str()), 0);
    ASSERT_EQ(::mkdir(dir.file("d").c_str(), 0755), 0);
    ASSERT_EQ(::symlink("d", dir.file("dlink").c_str()), 0);
    uds::Fd d{::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    errno = 0;
    EXPECT_EQ(::openat(d.get(), "link", O_RDONLY | O_NOFOLLOW | O_CLOEXEC), -1);
    EXPECT_EQ(errno, ELOOP);
    EXPECT_EQ(::openat(d.get(), "dlink", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), -1);
    EXPECT_EQ(errno, ENOTDIR) << "refused too, but O_DIRECTORY speaks first: not a directory";
    // A FIFO with no writer: O_NONBLOCK makes the open return at once; fstat then tells.
    ASSERT_EQ(::mkfifo(dir.file("fifo").c_str(), 0644), 0);
    uds::Fd fifo{::openat(d.get(), "fifo", O_RDONLY | O_NONBLOCK | O_CLOEXEC)};
    ASSERT_TRUE(fifo);
    struct stat st {};
    ASSERT_EQ(::fstat(fifo.get(), &st), 0);
    EXPECT_TRUE(S_ISFIFO(st.st_mode));
}

// ================================================================ Ch05Contract
TEST(Ch05Contract, OpenReturnsExactlyOneReadOnlyDescriptorWithTheContent) {
    Broker b;
    ASSERT_TRUE(b.ready) << b.proc->err();
    uds::Fd conn = b.connect();
    for (const auto& [path, content] :
         {std::pair{"hello.txt", kHello}, {"utf8.txt", kUtf8}, {"sub/inner.txt", "inner\n"}}) {
        Got g = open_file(conn.get(), path);
        EXPECT_EQ(g.data, "OK " + std::to_string(content.size()) + "\n") << path;
        ASSERT_EQ(g.fds.size(), 1u) << path;
        int fd = g.fds[0].get();
        EXPECT_EQ(::fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
        EXPECT_EQ(::write(fd, "x", 1), -1) << "read-only";
        EXPECT_NE(::fcntl(fd, F_GETFD) & FD_CLOEXEC, 0) << "MSG_CMSG_CLOEXEC";
        EXPECT_EQ(read_fd_from_start(fd), content);
        struct stat st {};
        ASSERT_EQ(::fstat(fd, &st), 0);
        EXPECT_EQ(static_cast<std::size_t>(st.st_size), content.size());
    }
}

TEST(Ch05Contract, ReceivedDescriptorIsTheServersOpenFile) {
    Broker b;
    ASSERT_TRUE(b.ready);
    uds::Fd conn = b.connect();
    Got g1 = open_file(conn.get(), "hello.txt");
    ASSERT_EQ(g1.fds.size(), 1u);
    struct stat via_fd {
    }, via_path{};
    ASSERT_EQ(::fstat(g1.fds[0].get(), &via_fd), 0);
    ASSERT_EQ(::stat((b.root + "/hello.txt").c_str(), &via_path), 0);
    EXPECT_EQ(via_fd.st_dev, via_path.st_dev);
    EXPECT_EQ(via_fd.st_ino, via_path.st_ino);
    // Each OPEN is a new open(): a fresh open file description with its own offset at 0.
    ASSERT_EQ(::lseek(g1.fds[0].get(), 3, SEEK_SET), 3);
    Got g2 = open_file(conn.get(), "hello.txt");
    ASSERT_EQ(g2.fds.size(), 1u);
    EXPECT_EQ(::lseek(g2.fds[0].get(), 0, SEEK_CUR), 0);
}

TEST(Ch05Contract, GreetWritesIntoThePipeWePassAndClosesItsCopy) {
    Broker b;
    ASSERT_TRUE(b.ready);
    uds::Fd conn = b.connect();
    Pipe p;
    ASSERT_EQ(send_fds(conn.get(), "GREET\n", {p.w.get()}), 6);
    p.w.reset();
    Got reply = recv_line(conn.get());
    EXPECT_EQ(reply.data, "OK\n");
    EXPECT_TRUE(reply.fds.empty());
    std::string greeting;
    char buf[512];
    ssize_t n;
    while (th::readable(p.r.get(), th::kPatience.count()) &&
           (n = ::read(p.r.get(), buf, sizeof buf)) > 0)
        greeting.append(buf, static_cast<std::size_t>(n));  // ends at EOF: server closed its copy
    EXPECT_NE(greeting.find(std::to_string(b.pid())), std::string::npos) << greeting;
    EXPECT_EQ(greeting.back(), '\n');
}

TEST(Ch05Contract, GreetWithoutDescriptorIsAnErrorAndTheConnectionGoesOn) {
    Broker b;
    ASSERT_TRUE(b.ready);
    uds::Fd conn = b.connect();
    th::send_all(conn.get(), "GREET\n");
    Got reply = recv_line(conn.get());
    EXPECT_EQ(reply.data.rfind("ERROR ", 0), 0u) << reply.data;
    EXPECT_EQ(open_file(conn.get(), "hello.txt").fds.size(), 1u);
}

TEST(Ch05Contract, GreetWithTooManyDescriptorsClosesThemAll) {
    Broker b;
    ASSERT_TRUE(b.ready);
    const int baseline = th::count_fds(b.pid());
    uds::Fd conn = b.connect();
    // 2 (more than one) and 6 (more than the server's control buffer holds: MSG_CTRUNC).
    for (std::size_t count : {2u, 6u}) {
        std::vector<Pipe> pipes(count);
        std::vector<int> ws;
        for (auto& p : pipes)
            ws.push_back(p.w.get());
        ASSERT_EQ(send_fds(conn.get(), "GREET\n", ws), 6);
        for (auto& p : pipes)
            p.w.reset();
        Got reply = recv_line(conn.get());
        EXPECT_EQ(reply.data.rfind("ERROR ", 0), 0u) << reply.data;
        for (auto& p : pipes)
            EXPECT_TRUE(pipe_hits_eof(p.r.get())) << count << " descriptors";
    }
    conn.reset();
    ASSERT_TRUE(b.closed(1));
    EXPECT_EQ(settled_fds(b.pid(), baseline), baseline);
}

TEST(Ch05Contract, GreetIntoAPipeWithNoReaderGetsEpipeNotSigpipe) {
    Broker b;
    ASSERT_TRUE(b.ready);
    uds::Fd conn = b.connect();
    Pipe p;
    p.r.reset();  // nobody will ever read: write() raises SIGPIPE unless it is ignored
    ASSERT_EQ(send_fds(conn.get(), "GREET\n", {p.w.get()}), 6);
    Got reply = recv_line(conn.get());
    EXPECT_EQ(reply.data.rfind("ERROR ", 0), 0u) << reply.data;
    EXPECT_NE(reply.data.find(std::strerror(EPIPE)), std::string::npos) << reply.data;
    EXPECT_TRUE(b.proc->running()) << "the server survived";
    EXPECT_EQ(open_file(conn.get(), "hello.txt").fds.size(), 1u);
}

TEST(Ch05Contract, GreetIntoAReadOnlyDescriptorIsAnError) {
    Broker b;
    ASSERT_TRUE(b.ready);
    uds::Fd conn = b.connect();
    uds::Fd ro{::open((b.root + "/hello.txt").c_str(), O_RDONLY | O_CLOEXEC)};
    ASSERT_EQ(send_fds(conn.get(), "GREET\n", {ro.get()}), 6);
    Got reply = recv_line(conn.get());
    EXPECT_NE(reply.data.find(std::strerror(EBADF)), std::string::npos) << reply.data;
    EXPECT_EQ(read_fd_from_start(ro.get()), kHello) << "and the file is untouched";
}

TEST(Ch05Contract, SixtyFifthClientIsTurnedAway) {
    Broker b;
    ASSERT_TRUE(b.ready);
    std::vector<uds::Fd> clients;
    for (int i = 0; i < 64; ++i)
        clients.push_back(b.connect());
    ASSERT_TRUE(b.proc->wait_stderr("client 64: connected"));
    uds::Fd extra = b.connect();
    EXPECT_EQ(th::read_to_eof(extra.get()), "ERROR server busy\n");
    EXPECT_EQ(open_file(clients.back().get(), "hello.txt").fds.size(), 1u);
}

TEST(Ch05Contract, DescriptorsAttachedToOtherRequestsAreClosed) {
    Broker b;
    ASSERT_TRUE(b.ready);
    const int baseline = th::count_fds(b.pid());
    uds::Fd conn = b.connect();
    for (std::string req : {"OPEN hello.txt\n", "HELLO\n", "OPEN /etc/passwd\n"}) {
        Pipe p;
        ASSERT_EQ(send_fds(conn.get(), req, {p.w.get()}), static_cast<ssize_t>(req.size()));
        p.w.reset();
        Got reply = recv_line(conn.get());
        EXPECT_FALSE(reply.data.empty()) << req;
        // The kernel side: the pipe's write end was only still open in the server.
        EXPECT_TRUE(pipe_hits_eof(p.r.get())) << req;
    }
    conn.reset();
    ASSERT_TRUE(b.closed(1));
    EXPECT_EQ(settled_fds(b.pid(), baseline), baseline);
}

TEST(Ch05Contract, ALineSentInPiecesCannotHoardDescriptors) {
    Broker b;
    ASSERT_TRUE(b.ready);
    const int baseline = th::count_fds(b.pid());
    uds::Fd conn = b.connect();
    // One unfinished line, sent in 10 pieces with 4 descriptors each.
    std::vector<Pipe> pipes(40);
    for (std::size_t piece = 0; piece < 10; ++piece) {
        std::vector<int> ws;
        for (std::size_t i = 0; i < 4; ++i)
            ws.push_back(pipes[piece * 4 + i].w.get());
        ASSERT_EQ(send_fds(conn.get(), "x", ws), 1);
        for (std::size_t i = 0; i < 4; ++i)
            pipes[piece * 4 + i].w.reset();
    }
    // The server keeps at most a few for the line in progress and closes the rest at once.
    th::Deadline d;
    int closed_early = 0;
    for (std::size_t i = 4; i < pipes.size(); ++i)
        closed_early += pipe_hits_eof(pipes[i].r.get(), d);
    EXPECT_EQ(closed_early, 36);
    th::send_all(conn.get(), "\n");
    EXPECT_EQ(recv_line(conn.get()).data.rfind("ERROR", 0), 0u);
    for (std::size_t i = 0; i < 4; ++i)
        EXPECT_TRUE(pipe_hits_eof(pipes[i].r.get())) << i;
    EXPECT_EQ(settled_fds(b.pid(), baseline + 1), baseline + 1);
}

TEST(Ch05Contract, DescriptorBelongsToTheLineItArrivesWith) {
    Broker b;
    ASSERT_TRUE(b.ready);
    uds::Fd conn = b.connect();
    Pipe p;
    // Two plain requests, then GREET with the pipe, all before the server reads anything.
    th::send_all(conn.get(), "OPEN hello.txt\nNOPE\n");
    ASSERT_EQ(send_fds(conn.get(), "GREET\n", {p.w.get()}), 6);
    p.w.reset();
    Got r1 = recv_line(conn.get());
    EXPECT_EQ(r1.data, "OK " + std::to_string(kHello.size()) + "\n");
    EXPECT_EQ(r1.fds.size(), 1u);
    EXPECT_EQ(recv_line(conn.get()).data.rfind("ERROR unknown", 0), 0u);
    EXPECT_EQ(recv_line(conn.get()).data, "OK\n") << "the pipe went with GREET, not OPEN";
    // A GREET line split over two sendmsg calls, the descriptor on the second part.
    Pipe q;
    th::send_all(conn.get(), "GRE");
    ASSERT_EQ(send_fds(conn.get(), "ET\n", {q.w.get()}), 3);
    q.w.reset();
    EXPECT_EQ(recv_line(conn.get()).data, "OK\n");
}

TEST(Ch05Contract, UnknownRequestGetsErrorAndOverlongLineClosesTheConnection) {
    Broker b;
    ASSERT_TRUE(b.ready);
    uds::Fd conn = b.connect();
    th::send_all(conn.get(), "LIST\n");
    EXPECT_EQ(recv_line(conn.get()).data.rfind("ERROR ", 0), 0u);
    EXPECT_EQ(open_file(conn.get(), "hello.txt").fds.size(), 1u);
    th::send_all(conn.get(), "OPEN " + std::string(5000, 'a') + "\n");
    EXPECT_EQ(recv_line(conn.get()).data, std::string(uds::kLineTooLong));
    EXPECT_EQ(th::read_to_eof(conn.get()), "") << "and the connection is closed";
    uds::Fd other = b.connect();
    EXPECT_EQ(open_file(other.get(), "hello.txt").fds.size(), 1u) << "the server goes on";
}

TEST(Ch05Contract, UnterminatedLastRequestIsAnswered) {
    Broker b;
    ASSERT_TRUE(b.ready);
    uds::Fd conn = b.connect();
    th::send_all(conn.get(), "OPEN hello.txt");
    ASSERT_EQ(::shutdown(conn.get(), SHUT_WR), 0);
    Got g = recv_line(conn.get());
    EXPECT_EQ(g.data.rfind("OK ", 0), 0u);
    EXPECT_EQ(g.fds.size(), 1u);
}

TEST(Ch05Contract, ThousandRequestsLeaveTheServerAtItsDescriptorBaseline) {
    Broker b;
    ASSERT_TRUE(b.ready);
    const int baseline = th::count_fds(b.pid());
    uds::Fd conn = b.connect();
    for (int i = 0; i < 1000; ++i) {
        Got g = open_file(conn.get(), i % 2 ? "hello.txt" : "utf8.txt");
        ASSERT_EQ(g.fds.size(), 1u) << "request " << i;
    }
    // Requests are served in order: once this reply is here, every OPEN before it is finished.
    th::send_all(conn.get(), "PING\n");
    EXPECT_EQ(recv_line(conn.get()).data.rfind("ERROR", 0), 0u);
    EXPECT_EQ(settled_fds(b.pid(), baseline + 1), baseline + 1) << "only the connection itself";
    conn.reset();
    ASSERT_TRUE(b.closed(1));
    EXPECT_EQ(settled_fds(b.pid(), baseline), baseline);
}

TEST(Ch05Contract, SlowClientsDoNotBlockOthers) {
    Broker b;
    ASSERT_TRUE(b.ready);
    const int baseline = th::count_fds(b.pid());
    // Client 1 sends half a line and stalls.
    uds::Fd half = b.connect();
    th::send_all(half.get(), "OPEN hel");
    // Client 2 sends many requests and never reads a reply: the server's sendmsg to it blocks.
    uds::Fd deaf = b.connect();
    std::string many;
    for (int i = 0; i < 3000; ++i)
        many += "OPEN hello.txt\n";
    ASSERT_EQ(::send(deaf.get(), many.data(), many.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(many.size()));
    // Client 3 is served anyway.
    uds::Fd conn = b.connect();
    Got g = open_file(conn.get(), "hello.txt");
    EXPECT_EQ(g.fds.size(), 1u);
    Pipe p;
    ASSERT_EQ(send_fds(conn.get(), "GREET\n", {p.w.get()}), 6);
    EXPECT_EQ(recv_line(conn.get()).data, "OK\n");
    // Everyone leaves; the descriptors in flight to the deaf client are released by the kernel.
    half.reset();
    deaf.reset();
    conn.reset();
    for (int n = 1; n <= 3; ++n)
        ASSERT_TRUE(b.closed(n)) << b.proc->err();
    EXPECT_EQ(settled_fds(b.pid(), baseline), baseline);
}

TEST(Ch05Contract, DefaultAddressLogsAndCleansUpOnSigterm) {
    th::TempDir dir;
    const std::string runtime = dir.file("run");
    ::mkdir(runtime.c_str(), 0700);
    const std::string expected = runtime + "/uds-tutorial/05-fd-broker.sock";
    th::Process server(th::bin(kChapter, "server"), {"--root", dir.path()},
                       {{"XDG_RUNTIME_DIR=" + runtime}, {}});
    ASSERT_TRUE(server.wait_stderr("listening on " + expected)) << server.err();
    struct stat st {};
    ASSERT_EQ(::lstat(expected.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    server.signal(SIGTERM);
    EXPECT_EQ(server.wait_exit(), 0);
    EXPECT_EQ(::lstat(expected.c_str(), &st), -1) << "the server removed its socket file";
}

TEST(Ch05Contract, DefaultRootIsTheChaptersFilesDirectory) {
    // files/ next to the server binary, or (a sanitizer build under build/) the source tree's.
    const std::string server = th::bin(kChapter, "server");
    std::string files = server.substr(0, server.rfind('/')) + "/files";
    struct stat st {};
    if (::stat(files.c_str(), &st) != 0) files = kChapter + "/files";
    ASSERT_EQ(::stat(files.c_str(), &st), 0) << files;
    std::string name, content;
    for (const auto& e : std::filesystem::directory_iterator(files)) {
        if (!e.is_regular_file()) continue;
        name = e.path().filename().string();
        std::ifstream in(e.path(), std::ios::binary);
        content.assign(std::istreambuf_iterator<char>(in), {});
        break;
    }
    ASSERT_FALSE(name.empty()) << "files/ ships at least one file";
    th::TempDir dir;
    const std::string sock = dir.file("s.sock");
    th::Process p(server, {"-s", sock});
    ASSERT_TRUE(p.wait_stderr("listening on " + sock)) << p.err();
    uds::Fd conn = th::connect_stream(uds::Address::path(sock));
    Got g = open_file(conn.get(), name);
    ASSERT_EQ(g.fds.size(), 1u) << g.data;
    EXPECT_EQ(read_fd_from_start(g.fds[0].get()), content);
}

TEST(Ch05Contract, StaleSocketFileIsReplacedAndLiveServerIsNot) {
    th::TempDir dir;
    const std::string sock = dir.file("s.sock");
    {  // a socket file nobody listens on
        uds::Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
        auto a = uds::Address::path(sock);
        ASSERT_EQ(::bind(s.get(), a.sockaddr_ptr(), a.length()), 0);
    }
    th::Process server(th::bin(kChapter, "server"), {"-s", sock, "--root", dir.path()});
    ASSERT_TRUE(server.wait_stderr("listening on " + sock)) << server.err();
    auto second = th::run(th::bin(kChapter, "server"), {"-s", sock, "--root", dir.path()});
    EXPECT_EQ(second.status, 1);
    EXPECT_NE(second.err.find("already listening"), std::string::npos) << second.err;
}

TEST(Ch05Contract, BadArgumentsAreUsageErrors) {
    EXPECT_EQ(th::run(th::bin(kChapter, "server"), {"--bogus"}).status, 2);
    EXPECT_EQ(th::run(th::bin(kChapter, "client"), {}).status, 2);
    EXPECT_EQ(th::run(th::bin(kChapter, "client"), {"--greet", "x"}).status, 2);
    auto missing = th::run(th::bin(kChapter, "server"), {"-s", "@x", "--root", "/nonexistent/x"});
    EXPECT_EQ(missing.status, 1);
    EXPECT_NE(missing.err.find("/nonexistent/x"), std::string::npos) << missing.err;
}

TEST(Ch05Contract, ClientPrintsFilesAndLogsItsOwnDescriptorNumber) {
    Broker b;
    ASSERT_TRUE(b.ready);
    auto r = th::run(th::bin(kChapter, "client"), {"-s", b.sock, "hello.txt", "utf8.txt"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, kHello + kUtf8);
    EXPECT_NE(r.err.find("hello.txt: received descriptor"), std::string::npos) << r.err;
    auto bad = th::run(th::bin(kChapter, "client"), {"-s", b.sock, "../x", "hello.txt"});
    EXPECT_EQ(bad.status, 1);
    EXPECT_EQ(bad.out, kHello) << "the other files are still printed";
    EXPECT_NE(bad.err.find("ERROR"), std::string::npos);
}

TEST(Ch05Contract, ClientGreetLetsTheServerWriteToItsStdout) {
    Broker b;
    ASSERT_TRUE(b.ready);
    auto r = th::run(th::bin(kChapter, "client"), {"-s", b.sock, "--greet"});
    EXPECT_EQ(r.status, 0) << r.err;
    // The client itself never writes to stdout: this line came from the server's write().
    EXPECT_NE(r.out.find("pid " + std::to_string(b.pid())), std::string::npos) << r.out;
}

TEST(Ch05Contract, ClientClosesEveryReceivedDescriptorUnderValgrind) {
    if (!th::have_program("valgrind")) GTEST_SKIP() << "valgrind not installed";
    Broker b;
    ASSERT_TRUE(b.ready);
    for (std::vector<std::string> args :
         {std::vector<std::string>{"hello.txt", "utf8.txt"}, std::vector<std::string>{"--greet"}}) {
        std::vector<std::string> cmd{"valgrind", "--track-fds=yes", th::bin(kChapter, "client"),
                                     "-s", b.sock};
        cmd.insert(cmd.end(), args.begin(), args.end());
        auto r = th::run("/usr/bin/env", cmd, {}, {}, th::Deadline{th::milliseconds{60000}});
        // Not the client's fault: a sanitizer build, or debug info this valgrind cannot read
        // (valgrind 3.19 and clang's DWARF 5).
        if (r.err.find("ASan runtime") != std::string::npos ||
            r.err.find("I can't recover") != std::string::npos)
            GTEST_SKIP() << "this build of the client cannot run under this valgrind";
        ASSERT_EQ(r.status, 0) << r.err;
        // Every descriptor open at exit beyond 0-2 must be one the client inherited.
        std::size_t at = 0;
        int extra = 0;
        while ((at = r.err.find("Open file descriptor ", at)) != std::string::npos) {
            int fd = std::atoi(r.err.c_str() + at + 21);
            std::size_t next_line = r.err.find('\n', at) + 1;
            bool inherited = r.err.compare(r.err.find_first_not_of("=0123456789 ", next_line), 23,
                                           "<inherited from parent>") == 0;
            if (fd > 2 && !inherited) ++extra;
            at = next_line;
        }
        EXPECT_EQ(extra, 0) << r.err;
        EXPECT_NE(r.err.find("FILE DESCRIPTORS"), std::string::npos) << r.err;
    }
}

TEST(Ch05Contract, ClientWithoutServerExplains) {
    th::TempDir dir;
    auto r = th::run(th::bin(kChapter, "client"), {"-s", dir.file("none.sock"), "hello.txt"});
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("is the server running"), std::string::npos) << r.err;
}

TEST(Ch05Contract, PythonClientOpensAndGreetsWithRecvFdsAndSendFds) {
    if (!th::have_program("python3")) GTEST_SKIP() << "python3 not installed";
    Broker b;
    ASSERT_TRUE(b.ready);
    const char* script = R"PY(
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
def reply():
    data, fds = b"", []
    while not data.endswith(b"\n"):
        msg, got, flags, addr = socket.recv_fds(s, 1, 4)
        if not msg: break
        data += msg
        fds += got
    return data, fds
s.sendall(b"OPEN utf8.txt\n")
line, fds = reply()
assert line.startswith(b"OK "), line
assert len(fds) == 1, fds
content = b""
while True:
    chunk = os.read(fds[0], 65536)
    if not chunk: break
    content += chunk
os.close(fds[0])
assert len(content) == int(line[3:]), (content, line)
sys.stdout.write("content=" + content.decode("utf-8"))
r, w = os.pipe()
socket.send_fds(s, [b"GREET\n"], [w])
os.close(w)
line, fds = reply()
assert line == b"OK\n" and not fds, line
greeting = b""
while True:
    chunk = os.read(r, 4096)
    if not chunk: break
    greeting += chunk
sys.stdout.write("greeting=" + greeting.decode())
)PY";
    auto r = th::run("/usr/bin/env", {"python3", "-c", script, b.sock});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("content=" + kUtf8), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("greeting=hello"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(std::to_string(b.pid())), std::string::npos) << r.out;
}

// ================================================================ Ch05Confinement
// Every attack: an ERROR line, no descriptor, and the server still answers the next request.
class Ch05Confinement : public ::testing::TestWithParam<bool> {
  protected:
    void SetUp() override {
        broker = std::make_unique<Broker>(GetParam() ? std::vector<std::string>{"--no-openat2"}
                                                     : std::vector<std::string>{});
        ASSERT_TRUE(broker->ready) << broker->proc->err();
        baseline = th::count_fds(broker->pid());
        conn = broker->connect();
    }
    void TearDown() override {
        if (!broker || !broker->ready) return;
        conn.reset();
        ASSERT_TRUE(broker->closed(1));
        EXPECT_EQ(settled_fds(broker->pid(), baseline), baseline);
    }
    // Sends OPEN <path> (raw bytes, so NULs may be inside) and expects a refusal.
    void expect_refused(const std::string& path) {
        Got g = open_file(conn.get(), path);
        EXPECT_EQ(g.data.rfind("ERROR ", 0), 0u) << "path: " << path << " reply: " << g.data;
        EXPECT_TRUE(g.fds.empty()) << "path: " << path;
        Got ok = open_file(conn.get(), "hello.txt");
        EXPECT_EQ(ok.fds.size(), 1u) << "still responsive after " << path;
    }
    std::unique_ptr<Broker> broker;
    uds::Fd conn;
    int baseline = 0;
};

TEST_P(Ch05Confinement, AbsolutePath) {
    expect_refused("/etc/passwd");
    expect_refused(broker->root + "/hello.txt");  // even when it names a file inside the root
}

TEST_P(Ch05Confinement, DotDotEscapes) {
    expect_refused("..");
    expect_refused("../outside/secret.txt");
    expect_refused("sub/../../outside/secret.txt");
    expect_refused("sub/..");
}

TEST_P(Ch05Confinement, SymlinkToAFileOutside) {
    ASSERT_EQ(
        ::symlink((broker->outside + "/secret.txt").c_str(), (broker->root + "/abs-link").c_str()),
        0);
    ASSERT_EQ(::symlink("../outside/secret.txt", (broker->root + "/rel-link").c_str()), 0);
    expect_refused("abs-link");
    expect_refused("rel-link");
}

TEST_P(Ch05Confinement, SymlinkedDirectoryLeadingOutside) {
    ASSERT_EQ(::symlink(broker->outside.c_str(), (broker->root + "/out").c_str()), 0);
    ASSERT_EQ(::symlink("../../outside", (broker->root + "/sub/up").c_str()), 0);
    expect_refused("out/secret.txt");
    expect_refused("sub/up/secret.txt");
}

TEST_P(Ch05Confinement, DeviceThroughASymlink) {
    ASSERT_EQ(::symlink("/dev/null", (broker->root + "/null").c_str()), 0);
    expect_refused("null");
    ASSERT_EQ(::symlink("/proc/self/fd/0", (broker->root + "/magic").c_str()), 0);
    expect_refused("magic");
}

TEST_P(Ch05Confinement, FifoIsRefusedWithoutBlocking) {
    ASSERT_EQ(::mkfifo((broker->root + "/fifo").c_str(), 0644), 0);
    expect_refused("fifo");  // with no writer, a blocking open() would hang here forever
}

TEST_P(Ch05Confinement, DirectoriesAndSocketsAreNotRegularFiles) {
    expect_refused("sub");
    expect_refused(".");
    expect_refused("");
    uds::Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    auto a = uds::Address::path(broker->root + "/a.sock");
    ASSERT_EQ(::bind(s.get(), a.sockaddr_ptr(), a.length()), 0);
    expect_refused("a.sock");
}

TEST_P(Ch05Confinement, NulByteInThePath) {
    expect_refused(std::string("hello.txt\0.png", 14));
    expect_refused(std::string("\0", 1));
}

TEST_P(Ch05Confinement, OverlongPathAndComponent) {
    expect_refused(std::string(1025, 'a'));  // longer than the broker's limit
    expect_refused(std::string(256, 'b'));   // one component longer than NAME_MAX
    std::string deep;
    for (int i = 0; i < 300; ++i)
        deep += "a/";  // 600 bytes of nonexistent directories
    expect_refused(deep + "x");
}

TEST_P(Ch05Confinement, SymlinkInsideTheRoot) {
    ASSERT_EQ(::symlink("hello.txt", (broker->root + "/alias").c_str()), 0);
    Got g = open_file(conn.get(), "alias");
    if (GetParam()) {  // the portable walk refuses every symlink
        EXPECT_EQ(g.data.rfind("ERROR ", 0), 0u) << g.data;
        EXPECT_TRUE(g.fds.empty());
    } else {  // openat2 + RESOLVE_BENEATH follows links that stay beneath the root
        EXPECT_EQ(g.data, "OK " + std::to_string(kHello.size()) + "\n");
        EXPECT_EQ(g.fds.size(), 1u);
    }
}

INSTANTIATE_TEST_SUITE_P(Ch05, Ch05Confinement, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& p) {
                             return p.param ? "Walk" : "Openat2";
                         });

}  // namespace
