// Chapter 03: the kernel behaviour 03-datagram/README.md claims, proved with raw sockets.
//   Ch03Semantics   SOCK_DGRAM: addresses, the return address (symlinks, credentials, O_PATH),
//                   boundaries, truncation, reliability, limits
//   Ch03SeqpacketSemantics   SOCK_SEQPACKET: connection-oriented, boundaries kept, EOF on close
// Every wait has a deadline; nothing sleeps.
#include <fcntl.h>
#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "harness.hpp"
#include "uds.hpp"

namespace {

constexpr socklen_t kPathOffset = offsetof(sockaddr_un, sun_path);
// The normal wait for one step (th::patience(): shorter when grading).
int wait_ms() {
    return static_cast<int>(th::patience().count());
}

uds::Fd make_socket(int type) {
    return uds::Fd{uds::check(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0), "socket")};
}

uds::Fd bound(const uds::Address& addr, int type = SOCK_DGRAM) {
    uds::Fd fd = make_socket(type);
    uds::check(::bind(fd.get(), addr.sockaddr_ptr(), addr.length()), "bind " + addr.str());
    return fd;
}

uds::Fd autobound() {
    return bound(uds::Address{});
}  // addrlen == sizeof(sa_family_t)

ssize_t send_to(int fd, std::string_view data, const uds::Address& to, int flags = 0) {
    return ::sendto(fd, data.data(), data.size(), flags | MSG_NOSIGNAL, to.sockaddr_ptr(),
                    to.length());
}

// One datagram, or "<timeout>" if none arrived in time.
std::string recv_one(int fd, int timeout_ms = -1) {
    if (timeout_ms < 0) timeout_ms = wait_ms();
    if (!th::readable(fd, timeout_ms)) return "<timeout>";
    std::string buf(1 << 20, '\0');
    ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n < 0) return "<error " + std::string(std::strerror(errno)) + ">";
    buf.resize(static_cast<std::size_t>(n));
    return buf;
}

int max_dgram_qlen() {
    std::ifstream f("/proc/sys/net/unix/max_dgram_qlen");
    int v = -1;
    f >> v;
    return v;
}

// Sends small datagrams with MSG_DONTWAIT until EAGAIN; returns how many got in.
int fill_queue(int sender, const uds::Address& to) {
    int n = 0;
    while (send_to(sender, "x", to, MSG_DONTWAIT) == 1)
        ++n;
    EXPECT_EQ(errno, EAGAIN);
    return n;
}

// ------------------------------------------------------------------ addresses

TEST(Ch03Semantics, AutobindPicksAFiveHexDigitAbstractName) {
    uds::Fd unbound = make_socket(SOCK_DGRAM);
    sockaddr_un sa{};
    socklen_t len = sizeof sa;
    ASSERT_EQ(::getsockname(unbound.get(), reinterpret_cast<sockaddr*>(&sa), &len), 0);
    EXPECT_EQ(len, sizeof(sa_family_t)) << "an unbound socket's name is just the family";

    uds::Fd a = autobound();
    len = sizeof sa;
    ASSERT_EQ(::getsockname(a.get(), reinterpret_cast<sockaddr*>(&sa), &len), 0);
    ASSERT_EQ(len, kPathOffset + 6) << "NUL + 5 hex digits";
    EXPECT_EQ(sa.sun_path[0], '\0');
    for (int i = 1; i <= 5; ++i)
        EXPECT_TRUE(std::isxdigit(sa.sun_path[i])) << sa.sun_path[i];
    // It is an ordinary abstract address: others can send to it.
    uds::Fd other = autobound();
    uds::Address a_addr = uds::local_address(a.get());
    ASSERT_EQ(send_to(other.get(), "to an autobound name", a_addr), 20);
    EXPECT_EQ(recv_one(a.get()), "to an autobound name");
}

TEST(Ch03Semantics, UnboundSenderArrivesWithAddrlenZeroAndCannotBeAnswered) {
    th::TempDir dir;
    uds::Address rx_addr = uds::Address::path(dir.file("rx.sock"));
    uds::Fd rx = bound(rx_addr);
    uds::Fd unbound = make_socket(SOCK_DGRAM);
    ASSERT_EQ(send_to(unbound.get(), "hello", rx_addr), 5) << "sending needs no address";

    ASSERT_TRUE(th::readable(rx.get(), wait_ms()));
    char buf[64];
    sockaddr_un from{};
    socklen_t fromlen = sizeof from;  // in: the buffer size; out: the sender's address length
    ssize_t n =
        ::recvfrom(rx.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &fromlen);
    ASSERT_EQ(n, 5);
    // Not sizeof(sa_family_t) (what getsockname says about the unbound socket itself): 0.
    EXPECT_EQ(fromlen, 0u) << "Linux reports no address at all for an unbound sender";

    // Answering "that address" cannot work: with addrlen 0, sendto has no destination...
    EXPECT_EQ(::sendto(rx.get(), "x", 1, MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&from), fromlen),
              -1);
    EXPECT_EQ(errno, ENOTCONN);
    // ...and the bare family (what getsockname shows for the sender) is not an address to send to.
    uds::Address unnamed;
    EXPECT_EQ(send_to(rx.get(), "x", unnamed), -1);
    EXPECT_EQ(errno, EINVAL);
}

TEST(Ch03Semantics, SendtoNeedsWritePermissionOnTheSocketFile) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to another user";
    th::TempDir dir;
    ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);  // others may search the directory
    uds::Address rx_addr = uds::Address::path(dir.file("rx.sock"));
    uds::Fd rx = bound(rx_addr);
    ASSERT_EQ(::chmod(dir.file("rx.sock").c_str(), 0755), 0);  // no write permission for others
    int rc = th::run_as_nobody([&] {
        uds::Fd s = make_socket(SOCK_DGRAM);
        if (send_to(s.get(), "x", rx_addr) != -1) return 1;
        return errno == EACCES ? 0 : 2;
    });
    EXPECT_EQ(rc, 0) << "1: sent anyway, 2: another error";
    ASSERT_EQ(::chmod(dir.file("rx.sock").c_str(), 0757), 0);  // now others may write
    rc = th::run_as_nobody([&] {
        uds::Fd s = make_socket(SOCK_DGRAM);
        return send_to(s.get(), "x", rx_addr) == 1 ? 0 : 1;
    });
    EXPECT_EQ(rc, 0);
}

TEST(Ch03Semantics, ConnectedSocketAcceptsOnlyItsPeer) {
    uds::Fd server = autobound(), client = autobound(), stranger = autobound();
    uds::Address server_addr = uds::local_address(server.get());
    uds::Address client_addr = uds::local_address(client.get());
    ASSERT_EQ(::connect(client.get(), server_addr.sockaddr_ptr(), server_addr.length()), 0);

    EXPECT_EQ(send_to(stranger.get(), "spam", client_addr), -1);
    EXPECT_EQ(errno, EPERM) << "the stranger is refused at once; nothing is queued";
    ASSERT_EQ(send_to(server.get(), "reply", client_addr), 5);
    EXPECT_EQ(recv_one(client.get()), "reply");
    // And the connected socket needs no address to send: send() goes to the peer.
    ASSERT_EQ(::send(client.get(), "request", 7, MSG_NOSIGNAL), 7);
    EXPECT_EQ(recv_one(server.get()), "request");
}

TEST(Ch03Semantics, ConnectReportsAMissingOrWrongPeerAtOnce) {
    th::TempDir dir;
    uds::Fd s = make_socket(SOCK_DGRAM);
    auto connect_errno = [&](const std::string& path) {
        uds::Address a = uds::Address::path(path);
        return ::connect(s.get(), a.sockaddr_ptr(), a.length()) == 0 ? 0 : errno;
    };
    EXPECT_EQ(connect_errno(dir.file("missing.sock")), ENOENT);
    { uds::Fd gone = bound(uds::Address::path(dir.file("stale.sock"))); }  // closed, file stays
    EXPECT_EQ(connect_errno(dir.file("stale.sock")), ECONNREFUSED);
    std::ofstream(dir.file("regular")) << "not a socket";
    EXPECT_EQ(connect_errno(dir.file("regular")), ECONNREFUSED);
    uds::Fd listener = bound(uds::Address::path(dir.file("stream.sock")), SOCK_STREAM);
    ASSERT_EQ(::listen(listener.get(), 1), 0);
    EXPECT_EQ(connect_errno(dir.file("stream.sock")), EPROTOTYPE);
}

TEST(Ch03Semantics, SendtoAVanishedPeerIsRefused) {
    th::TempDir dir;
    uds::Fd server = autobound();
    uds::Address gone_auto = [] {
        uds::Fd peer = autobound();
        return uds::local_address(peer.get());
    }();
    EXPECT_EQ(send_to(server.get(), "x", gone_auto), -1);
    EXPECT_EQ(errno, ECONNREFUSED);

    uds::Address gone_path = uds::Address::path(dir.file("peer.sock"));
    { uds::Fd peer = bound(gone_path); }  // closed; its file stays behind
    EXPECT_EQ(send_to(server.get(), "x", gone_path), -1);
    EXPECT_EQ(errno, ECONNREFUSED);
    ASSERT_EQ(::unlink(dir.file("peer.sock").c_str()), 0);
    EXPECT_EQ(send_to(server.get(), "x", gone_path), -1);
    EXPECT_EQ(errno, ENOENT);
}

// ------------------------------------------------------------------ the return address

TEST(Ch03Semantics, SendtoFollowsASymlinkInTheDestinationPath) {
    th::TempDir dir;
    uds::Address target_addr = uds::Address::path(dir.file("target.sock"));
    uds::Fd target = bound(target_addr);
    uds::Address p = uds::Address::path(dir.file("p.sock"));
    uds::Fd sender = bound(p);
    uds::Fd rx = autobound();
    ASSERT_EQ(send_to(sender.get(), "hi", uds::local_address(rx.get())), 2);
    ASSERT_TRUE(th::readable(rx.get(), wait_ms()));
    char buf[8];
    sockaddr_un sa{};
    socklen_t len = sizeof sa;
    ASSERT_EQ(::recvfrom(rx.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&sa), &len), 2);
    const uds::Address from = uds::Address::from_kernel(sa, len);
    EXPECT_EQ(from, p) << "the 'from' address is the name the sender bound: a path, nothing more";
    // The sender swaps its file for a symlink. The name in `from` now leads elsewhere.
    ASSERT_EQ(::unlink(p.name().c_str()), 0);
    ASSERT_EQ(::symlink(target_addr.name().c_str(), p.name().c_str()), 0);
    ASSERT_EQ(send_to(rx.get(), "reply", from), 5) << "sendto looks the path up again...";
    EXPECT_EQ(recv_one(target.get()), "reply") << "...follows the symlink: the reply lands here";
    EXPECT_EQ(recv_one(sender.get(), 0), "<timeout>") << "and not at the sender";
}

TEST(Ch03Semantics, OpathNofollowPinsTheFileAndProcFdReachesIt) {
    th::TempDir dir;
    uds::Address a_addr = uds::Address::path(dir.file("a.sock"));
    uds::Fd a = bound(a_addr);
    ASSERT_EQ(::symlink(a_addr.name().c_str(), dir.file("link").c_str()), 0);
    uds::Fd link{::open(dir.file("link").c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC)};
    ASSERT_TRUE(link.valid()) << std::strerror(errno);
    struct stat st {};
    ASSERT_EQ(::fstat(link.get(), &st), 0);
    EXPECT_TRUE(S_ISLNK(st.st_mode)) << "O_NOFOLLOW with O_PATH opens the symlink itself";

    uds::Fd pinned{::open(a_addr.name().c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC)};
    ASSERT_TRUE(pinned.valid()) << std::strerror(errno);
    ASSERT_EQ(::fstat(pinned.get(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode)) << "a socket file can be opened with O_PATH (not read)";
    // Another socket takes the path; the pinned descriptor still names the file we opened.
    ASSERT_EQ(::rename(a_addr.name().c_str(), dir.file("moved.sock").c_str()), 0);
    uds::Fd b = bound(a_addr);
    uds::Fd tx = autobound();
    uds::Address via = uds::Address::path("/proc/self/fd/" + std::to_string(pinned.get()));
    ASSERT_EQ(send_to(tx.get(), "pinned", via), 6) << std::strerror(errno);
    EXPECT_EQ(recv_one(a.get()), "pinned") << "/proc/self/fd/N reaches the file that was opened";
    EXPECT_EQ(recv_one(b.get(), 0), "<timeout>") << "not whatever is at the path now";
}

// Receives one datagram on a SO_PASSCRED socket; the credentials, or nothing.
std::optional<ucred> credentials_of_next(int rx) {
    if (!th::readable(rx, wait_ms())) return std::nullopt;
    char buf[64];
    iovec iov{buf, sizeof buf};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    if (::recvmsg(rx, &msg, 0) < 0) return std::nullopt;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
            ucred u{};
            std::memcpy(&u, CMSG_DATA(c), sizeof u);
            return u;
        }
    }
    return std::nullopt;
}

TEST(Ch03Semantics, PasscredAttachesTheSendersCredentialsWhichItCannotForge) {
    th::TempDir dir;
    uds::Address rx_addr = uds::Address::path(dir.file("rx.sock"));
    uds::Fd rx = bound(rx_addr);
    const int on = 1;
    ASSERT_EQ(::setsockopt(rx.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on), 0);
    uds::Fd tx = autobound();
    ASSERT_EQ(send_to(tx.get(), "who", rx_addr), 3);
    auto cred = credentials_of_next(rx.get());
    ASSERT_TRUE(cred.has_value()) << "with SO_PASSCRED, every datagram brings SCM_CREDENTIALS";
    EXPECT_EQ(cred->pid, ::getpid());
    EXPECT_EQ(cred->uid, ::getuid());
    EXPECT_EQ(cred->gid, ::getgid());
    if (::geteuid() != 0) GTEST_SKIP() << "the forging half needs root to switch to another user";
    ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
    ASSERT_EQ(::chmod(rx_addr.name().c_str(), 0666), 0);
    int rc = th::run_as_nobody([&] {
        uds::Fd s = autobound();
        // Claim to be root: the kernel checks what a sender puts in SCM_CREDENTIALS.
        ucred fake{::getpid(), 0, 0};
        char byte = 'x';
        iovec iov{&byte, 1};
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))] = {};
        msghdr msg{};
        msg.msg_name = const_cast<sockaddr*>(rx_addr.sockaddr_ptr());
        msg.msg_namelen = rx_addr.length();
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_CREDENTIALS;
        c->cmsg_len = CMSG_LEN(sizeof(ucred));
        std::memcpy(CMSG_DATA(c), &fake, sizeof fake);
        if (::sendmsg(s.get(), &msg, MSG_NOSIGNAL) != -1) return 1;
        if (errno != EPERM) return 2;
        return send_to(s.get(), "honest", rx_addr) == 6 ? 0 : 3;
    });
    ASSERT_EQ(rc, 0) << "1: the forged uid 0 was sent, 2: another error, 3: could not send";
    cred = credentials_of_next(rx.get());
    ASSERT_TRUE(cred.has_value());
    EXPECT_EQ(cred->uid, th::kNobody) << "what arrives is the sender's real uid";
}

TEST(Ch03Semantics, AReceiverConnectedToTheSenderHasNoQueueLimit) {
    uds::Fd tx = autobound();
    uds::Address tx_addr = uds::local_address(tx.get());
    uds::Fd stuck = autobound();  // connected to tx, never reads
    uds::Address stuck_addr = uds::local_address(stuck.get());
    ASSERT_EQ(::connect(stuck.get(), tx_addr.sockaddr_ptr(), tx_addr.length()), 0);
    const std::string block(4096, 'r');
    int queued = 0;
    while (queued < 10000 && send_to(tx.get(), block, stuck_addr, MSG_DONTWAIT) == 4096)
        ++queued;
    EXPECT_EQ(errno, EAGAIN);
    RecordProperty("datagrams_queued_for_a_connected_receiver", queued);
    EXPECT_GT(queued, max_dgram_qlen() + 1)
        << "max_dgram_qlen does not apply: the receiver is connected to the sender";
    int outq = -1;
    ASSERT_EQ(::ioctl(tx.get(), SIOCOUTQ, &outq), 0);
    int sndbuf = 0;
    socklen_t len = sizeof sndbuf;
    ASSERT_EQ(::getsockopt(tx.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, &len), 0);
    EXPECT_GT(outq, sndbuf / 2) << "the unread datagrams are charged to the sender's SO_SNDBUF";
    // So the sender cannot send to anybody else now, not even one small datagram.
    uds::Fd bystander = autobound();
    EXPECT_EQ(send_to(tx.get(), "x", uds::local_address(bystander.get()), MSG_DONTWAIT), -1);
    EXPECT_EQ(errno, EAGAIN) << "a bystander's datagram waits for the stuck receiver";
    stuck.reset();  // its queue is freed, and with it the sender's buffer
    EXPECT_EQ(send_to(tx.get(), "x", uds::local_address(bystander.get()), MSG_DONTWAIT), 1);
}

TEST(Ch03Semantics, ClosingTheServerDoesNotWakeAConnectedClient) {
    uds::Fd server = autobound(), client = autobound();
    uds::Address server_addr = uds::local_address(server.get());
    ASSERT_EQ(::connect(client.get(), server_addr.sockaddr_ptr(), server_addr.length()), 0);
    ASSERT_EQ(::send(client.get(), "request", 7, MSG_NOSIGNAL), 7);
    server.reset();  // the server dies without answering

    pollfd p{client.get(), POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 200), 0) << "no POLLIN, no POLLERR, no POLLHUP: only a timeout helps";
    EXPECT_EQ(::send(client.get(), "again", 5, MSG_NOSIGNAL), -1);
    EXPECT_EQ(errno, ECONNREFUSED) << "the next send finds out";
}

// ------------------------------------------------------------------ boundaries

TEST(Ch03Semantics, DatagramsKeepTheirBoundaries) {
    uds::Fd rx = autobound(), tx = autobound();
    uds::Address rx_addr = uds::local_address(rx.get());
    constexpr int kCount = 2000;
    auto payload = [](int i) {
        std::size_t size = static_cast<std::size_t>((i * 37) % 5000);  // 0 .. 4999 bytes
        return std::string(size, static_cast<char>('a' + i % 26));
    };
    std::thread sender([&] {
        for (int i = 0; i < kCount; ++i)
            if (send_to(tx.get(), payload(i), rx_addr) < 0) return;
    });
    int exact = 0;
    for (int i = 0; i < kCount; ++i)
        exact += recv_one(rx.get()) == payload(i);
    sender.join();
    EXPECT_EQ(exact, kCount) << "each recv returned exactly one whole datagram, in order";
}

TEST(Ch03Semantics, StreamSocketsMergeSeparateWritesForContrast) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    uds::Fd a{sv[0]}, b{sv[1]};
    ASSERT_EQ(::send(a.get(), "abc", 3, MSG_NOSIGNAL), 3);
    ASSERT_EQ(::send(a.get(), "def", 3, MSG_NOSIGNAL), 3);
    EXPECT_EQ(recv_one(b.get()), "abcdef") << "one read, two writes: a stream has no boundaries";
}

TEST(Ch03Semantics, EmptyDatagramIsADatagramNotEndOfFile) {
    uds::Fd rx = autobound(), tx = autobound();
    uds::Address rx_addr = uds::local_address(rx.get());
    ASSERT_EQ(send_to(tx.get(), "", rx_addr), 0);
    ASSERT_EQ(send_to(tx.get(), "after", rx_addr), 5);
    EXPECT_EQ(recv_one(rx.get()), "") << "recv returned 0: an empty datagram";
    EXPECT_EQ(recv_one(rx.get()), "after") << "and the socket goes on";
}

TEST(Ch03Semantics, MsgTruncReportsTheRealSizeAndTheRestIsDiscarded) {
    uds::Fd rx = autobound(), tx = autobound();
    uds::Address rx_addr = uds::local_address(rx.get());
    std::string big(100, 'b');
    ASSERT_EQ(send_to(tx.get(), big, rx_addr), 100);
    ASSERT_EQ(send_to(tx.get(), big, rx_addr), 100);
    ASSERT_EQ(send_to(tx.get(), "next", rx_addr), 4);
    ASSERT_TRUE(th::readable(rx.get(), wait_ms()));

    char buf[10];
    // Without MSG_TRUNC: recv says 10, as if the datagram had 10 bytes...
    iovec iov{buf, sizeof buf};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    EXPECT_EQ(::recvmsg(rx.get(), &msg, 0), 10);
    EXPECT_NE(msg.msg_flags & MSG_TRUNC, 0) << "...only msg_flags tells it was cut";
    // With MSG_TRUNC as a flag: the real length, though only 10 bytes were copied.
    EXPECT_EQ(::recv(rx.get(), buf, sizeof buf, MSG_TRUNC), 100);
    EXPECT_EQ(std::string(buf, sizeof buf), std::string(10, 'b'));
    // The other 90 bytes of each are gone: the next recv returns the next datagram.
    EXPECT_EQ(recv_one(rx.get()), "next");
}

TEST(Ch03Semantics, EmsgsizePastTheSendBuffer) {
    uds::Fd rx = autobound(), tx = autobound();
    uds::Address rx_addr = uds::local_address(rx.get());
    int sndbuf = 0;
    socklen_t len = sizeof sndbuf;
    ASSERT_EQ(::getsockopt(tx.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, &len), 0);
    auto limit = static_cast<std::size_t>(sndbuf) - 32;  // what af_unix.c allows
    RecordProperty("SO_SNDBUF", sndbuf);
    int wmem_default = -1;
    std::ifstream("/proc/sys/net/core/wmem_default") >> wmem_default;
    EXPECT_EQ(sndbuf, wmem_default) << "the default comes from net.core.wmem_default";

    EXPECT_EQ(send_to(tx.get(), std::string(limit, 'x'), rx_addr), static_cast<ssize_t>(limit));
    EXPECT_EQ(recv_one(rx.get()).size(), limit);
    EXPECT_EQ(send_to(tx.get(), std::string(limit + 1, 'x'), rx_addr), -1);
    EXPECT_EQ(errno, EMSGSIZE);

    // SO_SNDBUF is the knob; the kernel doubles the value you set (bookkeeping overhead).
    int want = 65536;
    ASSERT_EQ(::setsockopt(tx.get(), SOL_SOCKET, SO_SNDBUF, &want, sizeof want), 0);
    ASSERT_EQ(::getsockopt(tx.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, &len), 0);
    EXPECT_EQ(sndbuf, 2 * want);
    EXPECT_EQ(send_to(tx.get(), std::string(2 * 65536 - 31, 'x'), rx_addr), -1);
    EXPECT_EQ(errno, EMSGSIZE);
}

// ------------------------------------------------------------------ reliability

TEST(Ch03Semantics, FullQueueGivesEagainWithMsgDontwaitThenSucceedsAfterARead) {
    uds::Fd rx = autobound(), tx = autobound();
    uds::Address rx_addr = uds::local_address(rx.get());
    int queued = fill_queue(tx.get(), rx_addr);
    RecordProperty("datagrams_queued", queued);
    EXPECT_EQ(queued, max_dgram_qlen() + 1) << "the limit is /proc/sys/net/unix/max_dgram_qlen";
    EXPECT_EQ(send_to(tx.get(), "x", rx_addr, MSG_DONTWAIT), -1);
    EXPECT_EQ(errno, EAGAIN) << "nothing was dropped: the sender is told to wait";
    EXPECT_EQ(recv_one(rx.get()), "x");
    EXPECT_EQ(send_to(tx.get(), "y", rx_addr, MSG_DONTWAIT), 1) << "room again after one read";
}

TEST(Ch03Semantics, FullQueueBlocksABlockingSender) {
    uds::Fd rx = autobound(), tx = autobound();
    uds::Address rx_addr = uds::local_address(rx.get());
    fill_queue(tx.get(), rx_addr);
    // A blocking send now waits for the receiver. SO_SNDTIMEO bounds the wait so we can see it.
    timeval tv{0, 200 * 1000};
    ASSERT_EQ(::setsockopt(tx.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), 0);
    auto start = th::Clock::now();
    EXPECT_EQ(send_to(tx.get(), "x", rx_addr), -1);
    EXPECT_EQ(errno, EAGAIN);
    EXPECT_GE(th::Clock::now() - start, std::chrono::milliseconds(150)) << "it waited";
}

TEST(Ch03Semantics, PollOutFollowsThePeersQueueOnlyWhenConnected) {
    uds::Fd rx = autobound(), connected = autobound(), unconnected = autobound();
    uds::Address rx_addr = uds::local_address(rx.get());
    ASSERT_EQ(::connect(connected.get(), rx_addr.sockaddr_ptr(), rx_addr.length()), 0);
    fill_queue(connected.get(), rx_addr);
    pollfd p[2] = {{connected.get(), POLLOUT, 0}, {unconnected.get(), POLLOUT, 0}};
    ASSERT_EQ(::poll(p, 2, 0), 1);
    EXPECT_EQ(p[0].revents & POLLOUT, 0) << "connected: not writable while the peer is full";
    EXPECT_NE(p[1].revents & POLLOUT, 0) << "unconnected: 'writable', yet...";
    EXPECT_EQ(send_to(unconnected.get(), "x", rx_addr, MSG_DONTWAIT), -1);
    EXPECT_EQ(errno, EAGAIN) << "...sendto still fails";
    EXPECT_EQ(recv_one(rx.get()), "x");
    EXPECT_EQ(::poll(p, 1, wait_ms()), 1) << "connected: writable after one read";
}

TEST(Ch03Semantics, TenThousandDatagramsIntoASlowReceiverAllArriveInOrder) {
    uds::Fd rx = autobound(), tx = autobound();
    uds::Address rx_addr = uds::local_address(rx.get());
    constexpr int kCount = 10000;
    const int capacity = max_dgram_qlen() + 1;  // what the queue holds (see the EAGAIN test)
    ASSERT_GT(capacity, 1);

    std::mutex m;
    std::condition_variable cv;
    int sent = 0;  // guarded by m
    std::atomic<int> send_errno{0};
    std::thread sender([&] {
        for (int i = 0; i < kCount; ++i) {
            std::string msg = std::to_string(i);
            if (send_to(tx.get(), msg, rx_addr) != static_cast<ssize_t>(msg.size())) {
                send_errno = errno;
                return;
            }
            std::lock_guard lock(m);
            ++sent;
            cv.notify_all();
        }
    });
    // The slowest receiver possible: it reads only when the queue is completely full, i.e. the
    // sender is stuck in a blocking send. Nothing may be lost or reordered meanwhile.
    int in_order = 0, most_ahead = 0;
    for (int received = 0; received < kCount; ++received) {
        {
            std::unique_lock lock(m);
            bool full = cv.wait_for(lock, th::patience(), [&] {
                return sent == std::min(kCount, received + capacity) || send_errno != 0;
            });
            most_ahead = std::max(most_ahead, sent - received);
            if (!full || send_errno != 0) break;
        }
        in_order += recv_one(rx.get()) == std::to_string(received);
    }
    {
        std::lock_guard lock(m);
        most_ahead = std::max(most_ahead, sent - kCount);
    }
    sender.join();
    EXPECT_EQ(send_errno.load(), 0) << std::strerror(send_errno.load());
    EXPECT_EQ(in_order, kCount) << "every datagram arrived, in order";
    EXPECT_EQ(most_ahead, capacity) << "the sender never got further ahead than the queue holds";
}

// ------------------------------------------------------------------ SOCK_SEQPACKET

struct SeqpacketPair {
    uds::Fd client, server;
};

SeqpacketPair seqpacket_pair(const th::TempDir& dir) {
    uds::Address addr = uds::Address::path(dir.file("seq.sock"));
    uds::Fd listener = bound(addr, SOCK_SEQPACKET);
    uds::check(::listen(listener.get(), 1), "listen");
    uds::Fd client = make_socket(SOCK_SEQPACKET);
    uds::check(::connect(client.get(), addr.sockaddr_ptr(), addr.length()), "connect");
    uds::Fd server{uds::check(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC), "accept")};
    return {std::move(client), std::move(server)};
}

TEST(Ch03SeqpacketSemantics, KeepsMessageBoundaries) {
    th::TempDir dir;
    auto [client, server] = seqpacket_pair(dir);
    for (const char* m : {"one", "two", "three"})
        ASSERT_EQ(::send(client.get(), m, std::strlen(m), MSG_NOSIGNAL),
                  static_cast<ssize_t>(std::strlen(m)));
    EXPECT_EQ(recv_one(server.get()), "one") << "unlike a stream: not 'onetwothree'";
    EXPECT_EQ(recv_one(server.get()), "two");
    EXPECT_EQ(recv_one(server.get()), "three");
}

TEST(Ch03SeqpacketSemantics, IsConnectionOriented) {
    th::TempDir dir;
    uds::Address addr = uds::Address::path(dir.file("seq.sock"));
    uds::Fd not_listening = bound(addr, SOCK_SEQPACKET);
    uds::Fd s = make_socket(SOCK_SEQPACKET);
    EXPECT_EQ(::connect(s.get(), addr.sockaddr_ptr(), addr.length()), -1);
    EXPECT_EQ(errno, ECONNREFUSED) << "like a stream: it needs listen() on the other side";
    EXPECT_EQ(send_to(s.get(), "x", addr), -1);
    EXPECT_EQ(errno, ENOTCONN) << "no sendto() to an address: connect first";
}

TEST(Ch03SeqpacketSemantics, RecvReturnsZeroAtEndOfFileAfterTheLastMessage) {
    th::TempDir dir;
    auto [client, server] = seqpacket_pair(dir);
    ASSERT_EQ(::send(client.get(), "last words", 10, MSG_NOSIGNAL), 10);
    client.reset();
    EXPECT_EQ(recv_one(server.get()), "last words") << "queued messages are still delivered";
    char buf[16];
    ASSERT_TRUE(th::readable(server.get(), wait_ms()));
    EXPECT_EQ(::recv(server.get(), buf, sizeof buf, 0), 0) << "then 0: end of file, like a stream";
    EXPECT_EQ(::send(server.get(), "x", 1, MSG_NOSIGNAL), -1);
    EXPECT_EQ(errno, EPIPE);
}

TEST(Ch03SeqpacketSemantics, AnEmptyMessageAlsoReadsAsZero) {
    th::TempDir dir;
    auto [client, server] = seqpacket_pair(dir);
    ASSERT_EQ(::send(client.get(), "", 0, MSG_NOSIGNAL), 0);
    ASSERT_EQ(::send(client.get(), "more", 4, MSG_NOSIGNAL), 4);
    EXPECT_EQ(recv_one(server.get()), "") << "0, like end of file...";
    EXPECT_EQ(recv_one(server.get()), "more") << "...but the connection is still open";
}

TEST(Ch03SeqpacketSemantics, MsgTruncReportsTheRealSizeAndTheRestIsDiscarded) {
    th::TempDir dir;
    auto [client, server] = seqpacket_pair(dir);
    ASSERT_EQ(::send(client.get(), std::string(100, 'r').data(), 100, MSG_NOSIGNAL), 100);
    ASSERT_EQ(::send(client.get(), "next", 4, MSG_NOSIGNAL), 4);
    ASSERT_TRUE(th::readable(server.get(), wait_ms()));
    char buf[10];
    EXPECT_EQ(::recv(server.get(), buf, sizeof buf, MSG_TRUNC), 100);
    EXPECT_EQ(recv_one(server.get()), "next");
}

}  // namespace
