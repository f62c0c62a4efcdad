// Chapter 06: what the kernel does, proved on this machine (not graded: no program of the
// chapter runs here). Each test backs a sentence of 06-socketpair/README.md or REFERENCE.md.
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ch06_support.hpp"
#include "harness.hpp"
#include "uds.hpp"

using namespace ch06;

namespace {

struct Pair {
    uds::Fd a, b;
    explicit Pair(int type = SOCK_SEQPACKET) {
        int sv[2];
        uds::check(::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv), "socketpair");
        a.reset(sv[0]);
        b.reset(sv[1]);
    }
};

std::string recv_text(int fd, std::size_t max = 4096, int* flags_out = nullptr) {
    std::string buf(max, '\0');
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    ssize_t n = ::recvmsg(fd, &msg, MSG_DONTWAIT);
    if (flags_out != nullptr) *flags_out = msg.msg_flags;
    if (n < 0) return "errno " + std::to_string(errno);
    buf.resize(static_cast<std::size_t>(n));
    return buf;
}

bool has_rdhup(int fd) {
    pollfd p{fd, POLLRDHUP, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & POLLRDHUP) != 0;
}

int fd_flags(int fd) {
    return ::fcntl(fd, F_GETFD);
}

// Runs fn in a forked child; returns its exit status, or 128 + signal.
int in_child(const std::function<int()>& fn) {
    pid_t pid = ::fork();
    if (pid == 0) {
        int rc = 100;
        try {
            rc = fn();
        } catch (...) {
        }
        ::_exit(rc);
    }
    int st = 0;
    ::waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

}  // namespace

// ---------------------------------------------------------------- socketpair
TEST(Ch06Semantics, SocketpairEndsAreConnectedAndUnnamed) {
    Pair p;
    for (int fd : {p.a.get(), p.b.get()}) {
        sockaddr_un addr{};
        socklen_t len = sizeof addr;
        ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
        EXPECT_EQ(len, sizeof(sa_family_t)) << "no name: only the family comes back";
        EXPECT_EQ(addr.sun_family, AF_UNIX);
        len = sizeof addr;
        ASSERT_EQ(::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0)
            << "connected from the start: getpeername works";
        EXPECT_EQ(len, sizeof(sa_family_t)) << "and the peer has no name either";
        unsigned long ino = socket_inode(fd_target(::getpid(), fd));
        UnixSocket s = unix_socket(ino);
        EXPECT_EQ(s.type, SOCK_SEQPACKET);
        EXPECT_EQ(s.state, 3) << "/proc/net/unix: connected";
        EXPECT_EQ(s.path, "") << "/proc/net/unix: no path, no abstract name";
    }
    ASSERT_EQ(::send(p.a.get(), "ping", 4, MSG_NOSIGNAL), 4);
    EXPECT_EQ(recv_text(p.b.get()), "ping");
    ASSERT_EQ(::send(p.b.get(), "pong", 4, MSG_NOSIGNAL), 4);
    EXPECT_EQ(recv_text(p.a.get()), "pong") << "both directions";
}

TEST(Ch06Semantics, SoPeercredOfASocketpairIsTheProcessThatCreatedIt) {
    Pair p;
    int rc = in_child([&] {
        ucred c{};
        socklen_t len = sizeof c;
        if (::getsockopt(p.b.get(), SOL_SOCKET, SO_PEERCRED, &c, &len) != 0) return 1;
        return c.pid == ::getppid() ? 0 : 2;  // the parent created it, even seen from the child
    });
    EXPECT_EQ(rc, 0);
}

// ---------------------------------------------------------------- SOCK_SEQPACKET
TEST(Ch06Semantics, SeqpacketKeepsMessageBoundariesAStreamDoesNot) {
    Pair seq(SOCK_SEQPACKET), stream(SOCK_STREAM);
    for (Pair* p : {&seq, &stream}) {
        ASSERT_EQ(::send(p->a.get(), "OPEN a", 6, MSG_NOSIGNAL), 6);
        ASSERT_EQ(::send(p->a.get(), "LIST", 4, MSG_NOSIGNAL), 4);
    }
    EXPECT_EQ(recv_text(seq.b.get()), "OPEN a") << "one recv, one message";
    EXPECT_EQ(recv_text(seq.b.get()), "LIST");
    EXPECT_EQ(recv_text(stream.b.get()), "OPEN aLIST") << "a stream merges them";
}

TEST(Ch06Semantics, SeqpacketCutsALongMessageSaysMsgTruncAndDropsTheRest) {
    Pair p;
    ASSERT_EQ(::send(p.a.get(), "OPEN abcdef", 11, MSG_NOSIGNAL), 11);
    ASSERT_EQ(::send(p.a.get(), "LIST", 4, MSG_NOSIGNAL), 4);
    int flags = 0;
    EXPECT_EQ(recv_text(p.b.get(), 4, &flags), "OPEN");
    EXPECT_NE(flags & MSG_TRUNC, 0) << "msg_flags says the message was longer";
    EXPECT_EQ(recv_text(p.b.get(), 100, &flags), "LIST") << "the rest of the first is gone";
    EXPECT_EQ(flags & MSG_TRUNC, 0);
}

TEST(Ch06Semantics, SeqpacketSendsAMessageWholeOrFailsWithEmsgsize) {
    Pair p;
    int sndbuf = 0;
    socklen_t len = sizeof sndbuf;
    ASSERT_EQ(::getsockopt(p.a.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, &len), 0);
    std::string big(static_cast<std::size_t>(sndbuf) * 2, 'x');
    errno = 0;
    EXPECT_EQ(::send(p.a.get(), big.data(), big.size(), MSG_NOSIGNAL | MSG_DONTWAIT), -1)
        << "never a short send";
    EXPECT_EQ(errno, EMSGSIZE);
}

TEST(Ch06Semantics, EmptyMessageAndEndOfFileBothRead0PollTellsThemApart) {
    Pair p;
    ASSERT_EQ(::send(p.a.get(), "", 0, MSG_NOSIGNAL), 0);
    EXPECT_EQ(recv_text(p.b.get()), "") << "an empty message reads as 0 bytes";
    EXPECT_FALSE(has_rdhup(p.b.get())) << "but the peer is still there";
    p.a.reset();
    EXPECT_EQ(recv_text(p.b.get()), "") << "end of file reads as 0 bytes too";
    EXPECT_TRUE(has_rdhup(p.b.get())) << "POLLRDHUP: this time it is end of file";
}

// ---------------------------------------------------------------- ends, deaths, half-close
TEST(Ch06Semantics, ShutdownWrGivesThePeerEofAndKeepsTheOtherDirection) {
    Pair p;
    ASSERT_EQ(::send(p.a.get(), "last request", 12, MSG_NOSIGNAL), 12);
    ASSERT_EQ(::shutdown(p.a.get(), SHUT_WR), 0);
    EXPECT_EQ(recv_text(p.b.get()), "last request") << "what was sent before still arrives";
    EXPECT_EQ(recv_text(p.b.get()), "") << "then end of file";
    EXPECT_TRUE(has_rdhup(p.b.get()));
    ASSERT_EQ(::send(p.b.get(), "late reply", 10, MSG_NOSIGNAL), 10)
        << "the other direction is still open";
    EXPECT_EQ(recv_text(p.a.get()), "late reply");
    errno = 0;
    EXPECT_EQ(::send(p.a.get(), "x", 1, MSG_NOSIGNAL), -1);
    EXPECT_EQ(errno, EPIPE) << "and the half-closed side can no longer send";
}

TEST(Ch06Semantics, APeerThatDiesClosesItsEndTheOtherSeesEof) {
    Pair p;
    pid_t pid = ::fork();
    if (pid == 0) {
        p.a.reset();
        ::pause();  // holds b until killed
        ::_exit(0);
    }
    p.b.reset();  // the child holds the only copy of b
    ::kill(pid, SIGKILL);
    int st;
    ::waitpid(pid, &st, 0);
    ASSERT_TRUE(th::readable(p.a.get(), 1000));
    EXPECT_EQ(recv_text(p.a.get()), "") << "end of file";
    EXPECT_TRUE(has_rdhup(p.a.get()));
}

TEST(Ch06Semantics, AnotherCopyOfTheEndKeepsEofAway) {
    Pair p;
    pid_t pid = ::fork();
    if (pid == 0) {
        ::pause();
        ::_exit(0);
    }
    // We did NOT close b: the child dies, but our copy of b keeps that end open.
    ::kill(pid, SIGKILL);
    int st;
    ::waitpid(pid, &st, 0);
    EXPECT_FALSE(th::readable(p.a.get(), 100)) << "no end of file: b is still open (in us)";
    p.b.reset();
    EXPECT_TRUE(th::readable(p.a.get(), 1000)) << "closing the last copy brings it";
    EXPECT_EQ(recv_text(p.a.get()), "");
}

TEST(Ch06Semantics, ClosingWithUnreadMessagesGivesThePeerEconnreset) {
    Pair p;
    ASSERT_EQ(::send(p.b.get(), "reply nobody read", 17, MSG_NOSIGNAL), 17);
    p.a.reset();  // a dies with b's message unread
    EXPECT_EQ(recv_text(p.b.get()), "errno " + std::to_string(ECONNRESET));
    EXPECT_EQ(recv_text(p.b.get()), "") << "after the reset: end of file";
}

TEST(Ch06Semantics, SendingToAClosedEndIsEpipeAndOnAStreamAlsoSigpipe) {
    for (int type : {SOCK_SEQPACKET, SOCK_STREAM}) {
        Pair p(type);
        p.b.reset();
        errno = 0;
        EXPECT_EQ(::send(p.a.get(), "x", 1, MSG_NOSIGNAL), -1);
        EXPECT_EQ(errno, EPIPE) << "with MSG_NOSIGNAL: an error we can handle";
        int rc = in_child([&] {
            ::signal(SIGPIPE, SIG_DFL);
            sigset_t pipe;
            sigemptyset(&pipe);
            sigaddset(&pipe, SIGPIPE);
            ::sigprocmask(SIG_UNBLOCK, &pipe, nullptr);
            return ::send(p.a.get(), "x", 1, 0) == -1 && errno == EPIPE ? 0 : 1;
        });
        if (type == SOCK_STREAM)
            EXPECT_EQ(rc, 128 + SIGPIPE) << "a stream: without MSG_NOSIGNAL, SIGPIPE kills";
        else
            EXPECT_EQ(rc, 0) << "SOCK_SEQPACKET (like datagrams): EPIPE, no signal";
    }
}

// ---------------------------------------------------------------- descriptors across exec
TEST(Ch06Semantics, Dup2ClearsCloseOnExecButNotOntoItself) {
    Pair p;
    ASSERT_NE(fd_flags(p.a.get()) & FD_CLOEXEC, 0) << "made with SOCK_CLOEXEC";
    uds::Fd spare{::open("/dev/null", O_RDONLY | O_CLOEXEC)};
    ASSERT_EQ(::dup2(p.a.get(), spare.get()), spare.get());
    EXPECT_EQ(fd_flags(spare.get()) & FD_CLOEXEC, 0) << "the copy made by dup2 has it cleared";
    EXPECT_NE(fd_flags(p.a.get()) & FD_CLOEXEC, 0) << "the original keeps it";
    ASSERT_EQ(::dup2(p.a.get(), p.a.get()), p.a.get());
    EXPECT_NE(fd_flags(p.a.get()) & FD_CLOEXEC, 0) << "dup2(fd, fd) does nothing at all";
    errno = 0;
    EXPECT_EQ(::dup3(p.a.get(), p.a.get(), 0), -1);
    EXPECT_EQ(errno, EINVAL) << "dup3 refuses the same number";
}

TEST(Ch06Semantics, ExecKeepsOnlyDescriptorsWithoutCloseOnExec) {
    uds::Fd kept{::open("/dev/null", O_RDONLY)};  // no close-on-exec
    uds::Fd dropped{::open("/dev/null", O_RDONLY | O_CLOEXEC)};
    ASSERT_TRUE(kept.valid() && dropped.valid());
    auto survives = [](int fd) {
        return th::run("/bin/sh", {"-c", "test -e /proc/$$/fd/" + std::to_string(fd)}).status == 0;
    };
    EXPECT_TRUE(survives(kept.get())) << "inherited through fork and exec";
    EXPECT_FALSE(survives(dropped.get())) << "closed by exec";
}

TEST(Ch06Semantics, CloseRangeClosesEverythingFromItsFirstNumberUp) {
    int rc = in_child([] {
        int a = ::open("/dev/null", O_RDONLY);
        int b = ::open("/dev/null", O_RDONLY);
        int low = std::min(a, b);
        if (::close_range(static_cast<unsigned>(low), ~0U, 0) != 0) return 1;
        for (int fd = low; fd < low + 64; ++fd)
            if (::fcntl(fd, F_GETFD) != -1) return 2;
        return ::fcntl(2, F_GETFD) != -1 ? 0 : 3;  // below the range: untouched
    });
    EXPECT_EQ(rc, 0);
}

// ---------------------------------------------------------------- sealed memory
TEST(Ch06Semantics, SealsRefuseWriteAndResizeWithEperm) {
    uds::Fd m = memfd_with("sealed listing\n", kAllSeals);
    EXPECT_EQ(::fcntl(m.get(), F_GET_SEALS), kAllSeals);
    errno = 0;
    EXPECT_EQ(::write(m.get(), "x", 1), -1);
    EXPECT_EQ(errno, EPERM) << "F_SEAL_WRITE";
    errno = 0;
    EXPECT_EQ(::pwrite(m.get(), "x", 1, 0), -1);
    EXPECT_EQ(errno, EPERM);
    errno = 0;
    EXPECT_EQ(::ftruncate(m.get(), 4), -1);
    EXPECT_EQ(errno, EPERM) << "F_SEAL_SHRINK";
    errno = 0;
    EXPECT_EQ(::ftruncate(m.get(), 1 << 20), -1);
    EXPECT_EQ(errno, EPERM) << "F_SEAL_GROW";
    errno = 0;
    EXPECT_EQ(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, m.get(), 0), MAP_FAILED);
    EXPECT_EQ(errno, EPERM) << "no writable shared mapping either";
    errno = 0;
    EXPECT_EQ(::fcntl(m.get(), F_ADD_SEALS, 0), -1);
    EXPECT_EQ(errno, EPERM) << "F_SEAL_SEAL: the seals themselves are final";
    void* ro = ::mmap(nullptr, 15, PROT_READ, MAP_SHARED, m.get(), 0);
    ASSERT_NE(ro, MAP_FAILED) << "a read-only mapping is fine";
    EXPECT_EQ(std::string(static_cast<const char*>(ro), 15), "sealed listing\n");
    ::munmap(ro, 15);
}

TEST(Ch06Semantics, MemfdWithoutAllowSealingComesSealedShut) {
    uds::Fd m{::memfd_create("plain", MFD_CLOEXEC)};
    ASSERT_TRUE(m.valid());
    EXPECT_EQ(::fcntl(m.get(), F_GET_SEALS), F_SEAL_SEAL);
    errno = 0;
    EXPECT_EQ(::fcntl(m.get(), F_ADD_SEALS, F_SEAL_WRITE), -1);
    EXPECT_EQ(errno, EPERM) << "no seal can be added: MFD_ALLOW_SEALING was needed";
    Pair p;
    errno = 0;
    EXPECT_EQ(::fcntl(p.a.get(), F_GET_SEALS), -1);
    EXPECT_EQ(errno, EINVAL) << "a socket (or a pipe, a tty) has no seals at all";
}

TEST(Ch06Semantics, SealWriteFailsWithEbusyWhileAWritableMappingExists) {
    uds::Fd m = memfd_with(std::string(4096, 'a'), 0);
    void* w = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, m.get(), 0);
    ASSERT_NE(w, MAP_FAILED);
    errno = 0;
    EXPECT_EQ(::fcntl(m.get(), F_ADD_SEALS, F_SEAL_WRITE), -1);
    EXPECT_EQ(errno, EBUSY) << "someone could still write through the mapping";
    ::munmap(w, 4096);
    EXPECT_EQ(::fcntl(m.get(), F_ADD_SEALS, F_SEAL_WRITE), 0) << "unmapped: now it works";
}

TEST(Ch06Semantics, UnsealedSharedMemoryChangesUnderItsReader) {
    uds::Fd m = memfd_with("OK    \n", 0);
    const auto* view =
        static_cast<const char*>(::mmap(nullptr, 7, PROT_READ, MAP_SHARED, m.get(), 0));
    ASSERT_NE(view, MAP_FAILED);
    EXPECT_EQ(std::string(view, 7), "OK    \n");
    ASSERT_EQ(::pwrite(m.get(), "EVIL  ", 6, 0), 6);  // the sender, after the reader checked
    EXPECT_EQ(std::string(view, 7), "EVIL  \n") << "the reader sees the change at once";
    ::munmap(const_cast<char*>(view), 7);
    int rc = in_child([&] {
        const auto* v = static_cast<const volatile char*>(
            ::mmap(nullptr, 8192, PROT_READ, MAP_SHARED, m.get(), 0));
        if (v == MAP_FAILED) return 1;
        ::signal(SIGBUS, SIG_DFL);                   // (a sanitizer would catch it)
        if (::ftruncate(m.get(), 0) != 0) return 2;  // the sender shrinks it
        return v[100] == 'x' ? 3 : 4;                // the reader touches a page that is gone
    });
    EXPECT_EQ(rc, 128 + SIGBUS) << "a shrunk buffer kills its reader with SIGBUS";
}

TEST(Ch06Semantics, SealsBelongToTheFileAndTravelWithTheDescriptor) {
    Pair p;
    uds::Fd m = memfd_with("listing\n", kAllSeals);
    int fd = m.get();
    char byte = 'x';
    iovec iov{&byte, 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        cmsghdr align;
    } control{};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
    ASSERT_EQ(::sendmsg(p.a.get(), &msg, MSG_NOSIGNAL), 1);
    ASSERT_EQ(::send(p.a.get(), "no descriptor", 13, MSG_NOSIGNAL), 13);
    m.reset();  // the message in flight keeps the memfd alive

    {
        std::vector<char> ctl(CMSG_SPACE(4 * sizeof(int)));
        char got[32];
        iovec riov{got, sizeof got};
        msghdr r{};
        r.msg_iov = &riov;
        r.msg_iovlen = 1;
        r.msg_control = ctl.data();
        r.msg_controllen = ctl.size();
        ASSERT_EQ(::recvmsg(p.b.get(), &r, MSG_CMSG_CLOEXEC), 1);
        cmsghdr* h = CMSG_FIRSTHDR(&r);
        ASSERT_NE(h, nullptr) << "the descriptor came with ITS message";
        int received = -1;
        std::memcpy(&received, CMSG_DATA(h), sizeof received);
        uds::Fd owner{received};
        EXPECT_EQ(::fcntl(received, F_GET_SEALS), kAllSeals) << "the receiver sees the seals";
        r.msg_controllen = ctl.size();
        ASSERT_EQ(::recvmsg(p.b.get(), &r, MSG_CMSG_CLOEXEC), 13);
        EXPECT_EQ(CMSG_FIRSTHDR(&r), nullptr) << "and the next message came without one";
    }
}

// ---------------------------------------------------------------- dropping privileges
TEST(Ch06Semantics, SetuidFirstThenSetgidIsRefused) {
    TH_NEED_ROOT();
    int rc = in_child([] {
        if (::setgroups(0, nullptr) != 0 || ::setuid(th::kNobody) != 0) return 1;
        errno = 0;
        if (::setgid(th::kNobody) != -1 || errno != EPERM) return 2;
        return ::getgid() == 0 ? 0 : 3;  // and the group stays root's
    });
    EXPECT_EQ(rc, 0) << "once the uid is not 0, the gid cannot change: setgid before setuid";
}

TEST(Ch06Semantics, SetgroupsAfterSetuidIsRefused) {
    TH_NEED_ROOT();
    int rc = in_child([] {
        if (::setgid(th::kNobody) != 0 || ::setuid(th::kNobody) != 0) return 1;
        errno = 0;
        if (::setgroups(0, nullptr) != -1 || errno != EPERM) return 2;
        gid_t groups[64];
        int n = ::getgroups(64, groups);
        return n > 0 ? 0 : 3;  // root's supplementary groups stayed (when root had any)
    });
    EXPECT_TRUE(rc == 0 || rc == 3) << "setgroups needs root: empty the groups first";
    EXPECT_NE(rc, 2);
}

TEST(Ch06Semantics, AfterSetuidThereIsNoWayBack) {
    TH_NEED_ROOT();
    int rc = in_child([] {
        if (::setgroups(0, nullptr) != 0 || ::setgid(th::kNobody) != 0 ||
            ::setuid(th::kNobody) != 0)
            return 1;
        uid_t r, e, s;
        ::getresuid(&r, &e, &s);
        if (r != th::kNobody || e != th::kNobody || s != th::kNobody) return 2;
        errno = 0;
        if (::setuid(0) != -1 || errno != EPERM) return 3;
        return ::seteuid(0) == -1 ? 0 : 4;
    });
    EXPECT_EQ(rc, 0) << "setuid as root sets all three uids: nothing left to go back to";
}

TEST(Ch06Semantics, SeteuidAloneCanBeUndone) {
    TH_NEED_ROOT();
    int rc = in_child([] {
        if (::seteuid(th::kNobody) != 0) return 1;
        return ::seteuid(0) == 0 ? 0 : 2;  // the saved uid is still 0
    });
    EXPECT_EQ(rc, 0) << "seteuid is not a drop: the saved uid brings root back";
}

TEST(Ch06Semantics, NoNewPrivsKeepsASetUserIdProgramFromGivingRootBack) {
    // The README: PR_SET_NO_NEW_PRIVS keeps set-user-ID programs from giving privileges back.
    TH_NEED_ROOT();
    const std::string id = std::filesystem::exists("/usr/bin/id") ? "/usr/bin/id" : "/bin/id";
    th::TempDir dir;
    ::chmod(dir.path().c_str(), 0755);
    const std::string suid = dir.file("id");
    std::filesystem::copy_file(id, suid);
    ASSERT_EQ(::chmod(suid.c_str(), 04755), 0) << "(test setup) a set-user-ID root copy of id";
    // The effective uid `id -u` reports, run as uid 65534, with or without no_new_privs:
    // 0 when it printed 0, 1 when it printed 65534.
    auto euid_seen = [&](bool no_new_privs) {
        return in_child([&] {
            if (::setgroups(0, nullptr) != 0 || ::setgid(th::kNobody) != 0 ||
                ::setuid(th::kNobody) != 0)
                return 10;
            if (no_new_privs && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return 11;
            int p[2];
            if (::pipe2(p, O_CLOEXEC) != 0) return 12;
            const pid_t c = ::fork();
            if (c == 0) {
                ::dup2(p[1], 1);
                ::execl(suid.c_str(), suid.c_str(), "-u", nullptr);
                ::_exit(127);
            }
            ::close(p[1]);
            std::string out;
            char buf[64];
            for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) > 0;)
                out.append(buf, static_cast<std::size_t>(n));
            int st = 0;
            ::waitpid(c, &st, 0);
            return out == "0\n" ? 0 : out == "65534\n" ? 1 : 13;
        });
    };
    const int without = euid_seen(false);
    if (without == 1) GTEST_SKIP() << "set-user-ID bits are ignored here (a nosuid mount?)";
    EXPECT_EQ(without, 0) << "without no_new_privs a set-user-ID root program runs as root";
    EXPECT_EQ(euid_seen(true), 1) << "with PR_SET_NO_NEW_PRIVS it keeps the caller's uid 65534";
}
