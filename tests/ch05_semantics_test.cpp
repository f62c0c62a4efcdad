// Chapter 05: what the kernel does - every claim the lesson makes about SCM_RIGHTS, control
// messages and the confinement flags, proven on socketpairs in this process (no chapter code,
// so these tests are not graded).
#include <fcntl.h>
#include <grp.h>
#include <linux/openat2.h>
#include <linux/sockios.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ch05_peer.hpp"
#include "harness.hpp"
#include "uds.hpp"

namespace {

using namespace ch05t;

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

// strace shows msg_flags=MSG_CMSG_CLOEXEC after every recvmsg of the chapter: Linux copies that
// flag of the call into msg_flags before receiving, and adds MSG_CTRUNC only if something was cut.
TEST(Ch05Semantics, RecvmsgReportsMsgCmsgCloexecInMsgFlags) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    uds::Fd a{sv[0]}, b{sv[1]};
    Pipe p;
    ASSERT_EQ(send_fds(a.get(), "x", {p.w.get()}), 1);
    Got g = recv_once(b.get(), 16, 1);
    ASSERT_EQ(g.fds.size(), 1u);
    EXPECT_EQ(g.flags, MSG_CMSG_CLOEXEC);  // and no MSG_CTRUNC: everything fit
}

// ---------------------------------------------------------------- why CMSG_LEN "works" alone
// The kernel fits as many descriptors as (msg_controllen - sizeof(cmsghdr)) / sizeof(int)
// (scm_detach_fds): a buffer of CMSG_LEN(n * sizeof(int)) holds n. So a receiver that only ever
// gets one SCM_RIGHTS message cannot tell CMSG_LEN from CMSG_SPACE - only a second control
// message (BufferSizedWithCmsgLenLosesTheSecondMessage) shows the difference.
TEST(Ch05Semantics, CmsgLenIsEnoughForALoneScmRightsMessage) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    uds::Fd a{sv[0]}, b{sv[1]};
    Pipe p;
    ASSERT_EQ(send_fds(a.get(), "x", {p.w.get()}), 1);
    char byte;
    iovec iov{&byte, 1};
    std::vector<cmsghdr> storage(4);
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = storage.data();
    msg.msg_controllen = CMSG_LEN(sizeof(int));
    ASSERT_EQ(::recvmsg(b.get(), &msg, MSG_CMSG_CLOEXEC), 1);
    EXPECT_EQ(msg.msg_flags & MSG_CTRUNC, 0);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    ASSERT_NE(c, nullptr);
    int fd;
    std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
    uds::Fd received{fd};
    EXPECT_TRUE(received.valid());
}

TEST(Ch05Semantics, CredentialsComeOnlyToAReceiverWithSoPasscredAndBeforeTheDescriptors) {
    for (bool passcred : {false, true}) {
        int sv[2];
        ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        uds::Fd a{sv[0]}, b{sv[1]};
        int on = passcred ? 1 : 0;
        ASSERT_EQ(::setsockopt(b.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on), 0);
        Pipe p;
        ASSERT_EQ(send_fds(a.get(), "x", {p.w.get()}), 1);
        char byte;
        iovec iov{&byte, 1};
        std::vector<cmsghdr> storage(16);
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = storage.data();
        msg.msg_controllen = storage.size() * sizeof(cmsghdr);
        ASSERT_EQ(::recvmsg(b.get(), &msg, MSG_CMSG_CLOEXEC), 1);
        std::vector<int> types;
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
            types.push_back(c->cmsg_type);
            if (c->cmsg_type != SCM_RIGHTS) continue;
            int fd;
            std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
            ::close(fd);
        }
        if (passcred)
            EXPECT_EQ(types, (std::vector<int>{SCM_CREDENTIALS, SCM_RIGHTS}));
        else
            EXPECT_EQ(types, (std::vector<int>{SCM_RIGHTS})) << "the sender cannot add them";
    }
}

TEST(Ch05Semantics, AcceptedConnectionInheritsSoPasscredFromTheListener) {
    auto addr = uds::Address::abstract(th::unique_abstract_name("passcred"));
    uds::Fd listener{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    int on = 1;
    ASSERT_EQ(::setsockopt(listener.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on), 0);
    ASSERT_EQ(::bind(listener.get(), addr.sockaddr_ptr(), addr.length()), 0);
    ASSERT_EQ(::listen(listener.get(), 1), 0);
    uds::Fd client = th::connect_stream(addr);
    ASSERT_EQ(send_fds(client.get(), "x"), 1);  // sent before accept: credentials still come
    uds::Fd conn{::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC)};
    EXPECT_EQ(sockopt(conn.get(), SOL_SOCKET, SO_PASSCRED), 1);
    char byte;
    iovec iov{&byte, 1};
    std::vector<cmsghdr> storage(8);
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = storage.data();
    msg.msg_controllen = storage.size() * sizeof(cmsghdr);
    ASSERT_EQ(::recvmsg(conn.get(), &msg, 0), 1);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    ASSERT_NE(c, nullptr);
    ASSERT_EQ(c->cmsg_type, SCM_CREDENTIALS);
    ucred cred{};
    std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
    EXPECT_EQ(cred.pid, ::getpid());
}

// ---------------------------------------------------------------- descriptors in flight
// SIOCOUTQ on an AF_UNIX stream: the bytes we sent that the peer has not read yet (the memory
// of the messages in its queue is charged to us until it reads them).
TEST(Ch05Semantics, SiocoutqCountsWhatThePeerHasNotReadYet) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    uds::Fd a{sv[0]}, b{sv[1]};
    int unread = -1;
    ASSERT_EQ(::ioctl(a.get(), SIOCOUTQ, &unread), 0);
    EXPECT_EQ(unread, 0);
    Pipe p;
    ASSERT_EQ(send_fds(a.get(), "OK 5\n", {p.w.get()}), 5);
    ASSERT_EQ(::ioctl(a.get(), SIOCOUTQ, &unread), 0);
    EXPECT_GT(unread, 0) << "in the peer's queue, charged to us";
    Got part = recv_once(b.get(), 2, 1);
    ASSERT_EQ(part.data, "OK");
    ASSERT_EQ(::ioctl(a.get(), SIOCOUTQ, &unread), 0);
    EXPECT_GT(unread, 0) << "a message half read is still there";
    Got rest = recv_once(b.get(), 16, 1);
    ASSERT_EQ(rest.data, " 5\n");
    ASSERT_EQ(::ioctl(a.get(), SIOCOUTQ, &unread), 0);
    EXPECT_EQ(unread, 0) << "read to its end: gone";
}

// Descriptors sent and not yet received are "in flight"; the kernel charges them to the user
// who sent them and refuses more than that user's RLIMIT_NOFILE (unless CAP_SYS_RESOURCE).
TEST(Ch05Semantics, DescriptorsInFlightAreLimitedPerSendingUser) {
    TH_NEED_ROOT();
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0)
        ::_exit([] {
            if (!become(kSemanticsUid, 1024)) return 10;
            int sv[2];
            if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 11;
            uds::Fd a{sv[0]}, b{sv[1]};
            Pipe p;
            const std::vector<int> many(253, p.w.get());  // the same descriptor 253 times
            int in_flight = 0;
            for (int i = 0; i < 20; ++i) {
                if (send_fds(a.get(), "x", many) != 1) break;
                in_flight += 253;
            }
            if (errno != ETOOMANYREFS) return 12;
            if (in_flight <= 1024 - 253 || in_flight > 1024 + 253) return 13;
            // Another socket of the same user is refused too: the count is per user.
            int sv2[2];
            if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv2) != 0) return 14;
            uds::Fd c{sv2[0]}, d{sv2[1]};
            if (send_fds(c.get(), "y", {p.w.get()}) != -1 || errno != ETOOMANYREFS) return 15;
            // Received (or dropped with their socket), they are no longer in flight.
            b.reset();
            a.reset();
            if (send_fds(c.get(), "y", {p.w.get()}) != 1) return 16;
            return 0;
        }());
    int st = 0;
    ASSERT_EQ(::waitpid(pid, &st, 0), pid);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "step " << WEXITSTATUS(st);
}

// ---------------------------------------------------------------- the lookup
// O_PATH gives a handle without opening the file: a FIFO does not block, and inotify sees no
// IN_OPEN (nor would a device driver's open() run).
TEST(Ch05Semantics, OPathLooksAtAFileWithoutOpeningIt) {
    th::TempDir dir;
    const std::string fifo = dir.file("fifo");
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
    uds::Fd in{::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)};
    ASSERT_GE(::inotify_add_watch(in.get(), fifo.c_str(), IN_OPEN), 0);
    {
        uds::Fd handle{::open(fifo.c_str(), O_PATH | O_CLOEXEC)};  // no writer: returns at once
        ASSERT_TRUE(handle);
        EXPECT_TRUE(S_ISFIFO(stat_of(handle.get()).st_mode));
        char buf;
        EXPECT_EQ(::read(handle.get(), &buf, 1), -1) << "a handle reads nothing";
        EXPECT_EQ(errno, EBADF);
    }
    alignas(inotify_event) char events[256];
    EXPECT_EQ(::read(in.get(), events, sizeof events), -1) << "no IN_OPEN event";
    uds::Fd opened{::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)};
    EXPECT_GT(::read(in.get(), events, sizeof events), 0) << "a real open is an IN_OPEN event";
}

TEST(Ch05Semantics, ReopeningAHandleThroughProcOpensTheSameInode) {
    th::TempDir dir;
    write_file(dir.file("f"), "f");
    uds::Fd handle{::open(dir.file("f").c_str(), O_PATH | O_CLOEXEC)};
    ASSERT_TRUE(handle);
    // The name is replaced by another file: the handle still names the inode we looked at.
    ASSERT_EQ(::rename(dir.file("f").c_str(), dir.file("old").c_str()), 0);
    write_file(dir.file("f"), "other");
    const std::string self = "/proc/self/fd/" + std::to_string(handle.get());
    uds::Fd file{::open(self.c_str(), O_RDONLY | O_CLOEXEC)};
    ASSERT_TRUE(file);
    EXPECT_EQ(read_fd_from_start(file.get()), "f");
    EXPECT_EQ(::fcntl(file.get(), F_GETFL) & O_ACCMODE, O_RDONLY);
}

TEST(Ch05Semantics, AHardLinkIsTheSameFileUnderAnotherName) {
    th::TempDir dir;
    ASSERT_EQ(::mkdir(dir.file("root").c_str(), 0755), 0);
    write_file(dir.file("secret"), "secret\n");
    ASSERT_EQ(::link(dir.file("secret").c_str(), dir.file("root/innocent").c_str()), 0);
    uds::Fd root{::open(dir.file("root").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)};
    open_how how{};
    how.flags = O_RDONLY | O_CLOEXEC;
    how.resolve = RESOLVE_BENEATH;
    uds::Fd f{static_cast<int>(::syscall(SYS_openat2, root.get(), "innocent", &how, sizeof how))};
    if (!f && errno == ENOSYS) GTEST_SKIP() << "no openat2";
    ASSERT_TRUE(f) << "RESOLVE_BENEATH has nothing to refuse: the name is inside";
    EXPECT_EQ(read_fd_from_start(f.get()), "secret\n");
    EXPECT_EQ(stat_of(f.get()).st_nlink, 2u) << "only the link count tells";
}

// ---------------------------------------------------------------- closing politely
TEST(Ch05Semantics, ClosingWithUnreadDataResetsThePeerAndDrainingFirstDoesNot) {
    for (bool drain : {false, true}) {
        int sv[2];
        ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        uds::Fd server{sv[0]}, client{sv[1]};
        ASSERT_EQ(send_fds(client.get(), "OPEN x\n"), 7);  // the request it never answers
        ASSERT_EQ(send_fds(server.get(), "ERROR server busy\n"), 18);
        if (drain) {
            ASSERT_EQ(::shutdown(server.get(), SHUT_WR), 0);
            char sink[64];
            ASSERT_EQ(::recv(server.get(), sink, sizeof sink, MSG_DONTWAIT), 7);
        }
        server.reset();
        int err = 0;
        EXPECT_EQ(th::read_to_eof(client.get(), th::Deadline{}, &err), "ERROR server busy\n");
        EXPECT_EQ(err, drain ? 0 : ECONNRESET) << (drain ? "drained: EOF" : "unread: reset");
    }
}

}  // namespace
