// Common mistakes that no chapter's own tests show directly. Each test reproduces the symptom
// a learner sees, so README.md's "Common mistakes" table can point at it.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include <gtest/gtest.h>

#include "harness.hpp"
#include "uds.hpp"

namespace {

// SO_PEERCRED describes the peer of a *connection*. A datagram socket that only bind()s has no
// peer: the kernel answers with pid 0 and uid/gid -1, whoever sent the datagrams.
TEST(Mistakes, PeercredOnAnUnconnectedDatagramSocketIdentifiesNobody) {
    th::TempDir tmp;
    auto addr = uds::Address::path(tmp.file("d.sock"));
    uds::Fd server{::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
    ASSERT_EQ(::bind(server.get(), addr.sockaddr_ptr(), addr.length()), 0);
    uds::Fd sender{::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
    ASSERT_EQ(::sendto(sender.get(), "hi", 2, 0, addr.sockaddr_ptr(), addr.length()), 2);

    ucred cred{};
    socklen_t len = sizeof cred;
    ASSERT_EQ(::getsockopt(server.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len), 0);
    EXPECT_EQ(cred.pid, 0);
    EXPECT_EQ(cred.uid, static_cast<uid_t>(-1));
    EXPECT_EQ(cred.gid, static_cast<gid_t>(-1));
}

// The fix: ask for credentials per message. With SO_PASSCRED set on the receiver, every
// datagram arrives with an SCM_CREDENTIALS control message the kernel filled in.
TEST(Mistakes, ScmCredentialsIdentifyEachDatagramSender) {
    th::TempDir tmp;
    auto addr = uds::Address::path(tmp.file("d.sock"));
    uds::Fd server{::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
    ASSERT_EQ(::bind(server.get(), addr.sockaddr_ptr(), addr.length()), 0);
    int on = 1;
    ASSERT_EQ(::setsockopt(server.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on), 0);
    uds::Fd sender{::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
    ASSERT_EQ(::sendto(sender.get(), "hi", 2, 0, addr.sockaddr_ptr(), addr.length()), 2);

    char data[8];
    iovec iov{data, sizeof data};
    union {
        cmsghdr align;
        char buf[CMSG_SPACE(sizeof(ucred))];
    } control{};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    ASSERT_TRUE(th::readable(server.get(), 5000));
    ASSERT_EQ(::recvmsg(server.get(), &msg, 0), 2);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    ASSERT_NE(c, nullptr);
    ASSERT_EQ(c->cmsg_type, SCM_CREDENTIALS);
    ucred cred{};
    std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
    EXPECT_EQ(cred.pid, ::getpid());
    EXPECT_EQ(cred.uid, ::getuid());
}

}  // namespace
