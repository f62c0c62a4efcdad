// Chapter 03: one test per lesson step, so that a failing name says which step is missing.
//   Ch03Steps        03-datagram/server, step by step (socket+bind, recvmsg, sendto, unlink)
//   Ch03ClientSteps  03-datagram/client against a datagram peer written here, so each client
//                    step is checked without the reference server
// make grade-03 STUDENT=DIR runs these (with Ch03Contract) against a student's programs
// (03-datagram/exercise/ is the starter). A program that stops early (the starter stops at its
// first missing step) is noticed at once: no test waits out its deadline for a dead program.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "harness.hpp"
#include "uds.hpp"

namespace {

const std::string kChapter = "03-datagram";

uds::Fd dgram() {
    return uds::Fd{uds::check(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), "socket")};
}
uds::Fd bound(const uds::Address& addr) {
    uds::Fd fd = dgram();
    uds::check(::bind(fd.get(), addr.sockaddr_ptr(), addr.length()), "bind " + addr.str());
    return fd;
}

// sendto with a bounded wait (should a queue be full); "" on success, else why it failed.
std::string send_to(int fd, std::string_view data, const uds::Address& to) {
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (::sendto(fd, data.data(), data.size(), MSG_NOSIGNAL, to.sockaddr_ptr(), to.length()) != -1)
        return "";
    return "sendto " + to.str() + ": " + std::strerror(errno);
}

// One datagram for fd, and who sent it. Waits in short slices and gives up as soon as `program`
// (the other side) has exited with nothing queued: "<nothing>" then, or after the deadline.
std::string receive(int fd, th::Process& program, uds::Address* from = nullptr) {
    th::Deadline d;
    while (!th::readable(fd, 100)) {
        if (!program.running() && !th::readable(fd, 0)) return "<nothing>";
        if (d.expired()) return "<nothing>";
    }
    std::string buf(1 << 16, '\0');
    sockaddr_un sa{};
    socklen_t len = sizeof sa;
    ssize_t n = ::recvfrom(fd, buf.data(), buf.size(), MSG_DONTWAIT,
                           reinterpret_cast<sockaddr*>(&sa), &len);
    if (n < 0) return "<error " + std::string(std::strerror(errno)) + ">";
    if (from != nullptr) *from = uds::Address::from_kernel(sa, len);
    buf.resize(static_cast<std::size_t>(n));
    return buf;
}

// ------------------------------------------------------------------ the server, step by step

class Ch03Steps : public ::testing::Test {
  protected:
    th::TempDir dir;
    uds::Address addr = uds::Address::path(dir.file("s.sock"));
    std::unique_ptr<th::Process> server;

    // Use with ASSERT_NO_FATAL_FAILURE: the test stops here if the server never got ready.
    void start_server() {
        server = std::make_unique<th::Process>(th::bin(kChapter, "server"),
                                               std::vector<std::string>{"-s", addr.str()});
        ASSERT_TRUE(server->wait_stderr("bound to " + addr.str() + "\n"))
            << "the server did not say 'bound to " << addr.str() << "':\n"
            << server->err();
    }
};

TEST_F(Ch03Steps, ServerStep1and2_SocketBind_CreateADatagramSocketFile) {
    ASSERT_NO_FATAL_FAILURE(start_server());
    struct stat st {};
    ASSERT_EQ(::lstat(addr.name().c_str(), &st), 0)
        << "no file at " << addr.str() << ": was bind() called?";
    EXPECT_TRUE(S_ISSOCK(st.st_mode)) << "not a socket file";
    // connect() on a datagram socket only checks that a datagram socket is bound there.
    uds::Fd probe = dgram();
    errno = 0;
    EXPECT_EQ(::connect(probe.get(), addr.sockaddr_ptr(), addr.length()), 0)
        << std::strerror(errno)
        << " (EPROTOTYPE: the server's socket is not SOCK_DGRAM; ECONNREFUSED: not bound)";
}

TEST_F(Ch03Steps, ServerStep2_Bind_RemovesAStaleSocketFileButNeverALiveOne) {
    { uds::Fd gone = bound(addr); }  // closed: its file stays behind, stale
    ASSERT_NO_FATAL_FAILURE(start_server());
    uds::Fd probe = dgram();
    EXPECT_EQ(::connect(probe.get(), addr.sockaddr_ptr(), addr.length()), 0)
        << "the stale file was not replaced by a live socket: " << server->err();

    uds::Address live_addr = uds::Address::path(dir.file("live.sock"));
    uds::Fd live = bound(live_addr);
    auto r = th::run(th::bin(kChapter, "server"), {"-s", live_addr.str()});
    EXPECT_EQ(r.status, 1) << "a live socket's path must be refused: " << r.err;
    uds::Fd sender = dgram();
    EXPECT_EQ(send_to(sender.get(), "still mine", live_addr), "")
        << "the live socket's file was removed";
}

TEST_F(Ch03Steps, ServerStep3_Recvmsg_TakesOneWholeDatagramAtATime) {
    ASSERT_NO_FATAL_FAILURE(start_server());
    // From an unbound socket: the server can receive and log these without replying.
    uds::Fd unbound = dgram();
    ASSERT_EQ(send_to(unbound.get(), "hello", addr), "");
    ASSERT_EQ(send_to(unbound.get(), "two words", addr), "");
    EXPECT_TRUE(server->wait_stderr("9 bytes from (unnamed)")) << server->err();
    EXPECT_NE(server->err().find("5 bytes from (unnamed)"), std::string::npos)
        << "one recvmsg, one datagram, whole:\n"
        << server->err();
}

TEST_F(Ch03Steps, ServerStep3_RecvmsgWithMsgTrunc_ReportsTheRealSizeOfALongDatagram) {
    ASSERT_NO_FATAL_FAILURE(start_server());
    uds::Fd unbound = dgram();
    ASSERT_EQ(send_to(unbound.get(), std::string(5000, 'x'), addr), "");
    ASSERT_EQ(send_to(unbound.get(), "next", addr), "");
    EXPECT_TRUE(server->wait_stderr("4 bytes from (unnamed)")) << server->err();
    EXPECT_NE(server->err().find("5000 bytes from (unnamed)"), std::string::npos)
        << "recvmsg returns the real size of a 5000-byte datagram only with the MSG_TRUNC flag:\n"
        << server->err();
}

TEST_F(Ch03Steps, ServerStep4_Sendto_RepliesToTheSendersAddress) {
    ASSERT_NO_FATAL_FAILURE(start_server());
    uds::Address a_addr = uds::Address::path(dir.file("a.sock"));
    uds::Fd a = bound(a_addr);
    uds::Fd b = bound(uds::Address{});  // autobound
    ASSERT_EQ(send_to(a.get(), "from a", addr), "");
    ASSERT_EQ(send_to(b.get(), "from b", addr), "");
    uds::Address from;
    ASSERT_EQ(receive(a.get(), *server, &from), "FROM A") << server->err();
    EXPECT_EQ(from, addr) << "the reply comes from the server's bound address";
    EXPECT_EQ(receive(b.get(), *server, &from), "FROM B") << server->err();
    ASSERT_EQ(send_to(a.get(), std::string(4097, 'x'), addr), "");
    EXPECT_EQ(receive(a.get(), *server), "ERROR datagram too long (max 4096 bytes)")
        << server->err();
}

TEST_F(Ch03Steps, ServerStep5_Unlink_RemovesItsSocketFileOnSigterm) {
    ASSERT_NO_FATAL_FAILURE(start_server());
    ASSERT_EQ(::access(addr.name().c_str(), F_OK), 0)
        << "no socket file to remove: do steps 1 and 2 first";
    server->signal(SIGTERM);
    EXPECT_EQ(server->wait_exit(), 0) << server->err();
    EXPECT_NE(::access(addr.name().c_str(), F_OK), 0) << "the socket file is still there";
}

// ------------------------------------------------------------------ the client, step by step

// The test plays the server: a datagram socket bound to `addr` that the client sends to.
class Ch03ClientSteps : public ::testing::Test {
  protected:
    th::TempDir dir;
    uds::Address addr = uds::Address::path(dir.file("s.sock"));
    uds::Fd peer = bound(addr);

    std::unique_ptr<th::Process> client(std::vector<std::string> args) {
        std::vector<std::string> all{"-s", addr.str()};
        all.insert(all.end(), args.begin(), args.end());
        return std::make_unique<th::Process>(th::bin(kChapter, "client"), all);
    }
    // The client's next request, and the address it came from.
    std::string request(th::Process& c, uds::Address* from = nullptr) {
        return receive(peer.get(), c, from);
    }
    void reply(std::string_view text, const uds::Address& to) {
        EXPECT_EQ(send_to(peer.get(), text, to), "");
    }
};

TEST_F(Ch03ClientSteps, ClientStep1and2_SocketBind_SendsFromAnAutoboundAddress) {
    auto c = client({"hello"});
    uds::Address from;
    ASSERT_NE(request(*c, &from), "<nothing>") << "no datagram arrived:\n" << c->err();
    ASSERT_EQ(from.kind(), uds::Address::Kind::Abstract)
        << "it came from " << from.str() << ": bind() the socket (autobind) before sending";
    const std::string name = from.name();
    ASSERT_EQ(name.size(), 5u) << from.str() << ": autobind gives @ + 5 hex digits";
    for (char ch : name)
        EXPECT_TRUE(std::isxdigit(static_cast<unsigned char>(ch))) << from.str();
}

TEST_F(Ch03ClientSteps, ClientStep2_Bind_WithBindPathSendsFromThatPath) {
    const std::string mine = dir.file("client.sock");
    auto c = client({"--bind", mine, "hello"});
    uds::Address from;
    ASSERT_NE(request(*c, &from), "<nothing>") << "no datagram arrived:\n" << c->err();
    EXPECT_EQ(from, uds::Address::path(mine)) << "it came from " << from.str();
    reply("HELLO", from);
    EXPECT_EQ(c->wait_exit(), 0) << c->err();
    EXPECT_NE(::access(mine.c_str(), F_OK), 0) << "the client leaves its --bind file behind";
}

TEST_F(Ch03ClientSteps, ClientStep3_Connect_ReportsAMissingServerAtOnce) {
    const std::string missing = dir.file("missing.sock");
    auto r = th::run(th::bin(kChapter, "client"), {"-s", missing, "hello"});
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_NE(r.err.find("client: connect " + missing + ": " + std::strerror(ENOENT)),
              std::string::npos)
        << "connect() reports a missing server before anything is sent:\n"
        << r.err;
}

TEST_F(Ch03ClientSteps, ClientStep3_Connect_AcceptsDatagramsOnlyFromTheServer) {
    auto c = client({"hello"});
    uds::Address from;
    ASSERT_EQ(request(*c, &from), "hello") << c->err();
    ASSERT_NE(from.kind(), uds::Address::Kind::Unnamed) << "no address to answer: do step 2 first";
    // A stranger cannot slip a fake reply in: the connected socket refuses it.
    uds::Fd stranger = bound(uds::Address{});
    EXPECT_EQ(send_to(stranger.get(), "FAKE", from),
              "sendto " + from.str() + ": " + std::strerror(EPERM))
        << "the client's socket is not connect()ed to the server";
    reply("HELLO", from);
    EXPECT_EQ(c->wait_exit(), 0) << c->err();
    EXPECT_EQ(c->out(), "HELLO\n");
}

TEST_F(Ch03ClientSteps, ClientStep4_Send_SendsEachMessageAsOneDatagram) {
    // One client per message, and no replies: this checks send() alone (not bind, not recv).
    for (const std::string message : {"hello world", "", "a\tb\nc"}) {
        auto c = client({message});
        EXPECT_EQ(request(*c), message) << "one message, one datagram, nothing added:\n"
                                        << c->err();
    }
}

TEST_F(Ch03ClientSteps, ClientStep5_Recv_PrintsEachReplyDatagram) {
    auto c = client({"one", "two"});
    uds::Address from;
    ASSERT_EQ(request(*c, &from), "one") << c->err();
    ASSERT_NE(from.kind(), uds::Address::Kind::Unnamed) << "no address to answer: do step 2 first";
    reply("ONE\nLINE", from);  // a newline inside is just a byte of the datagram
    ASSERT_EQ(request(*c), "two") << "the client did not take the first reply:\n" << c->err();
    reply("", from);  // an empty reply is a reply, not end of file
    EXPECT_EQ(c->wait_exit(), 0) << c->err();
    EXPECT_EQ(c->out(), "ONE\nLINE\n\n");
}

}  // namespace
