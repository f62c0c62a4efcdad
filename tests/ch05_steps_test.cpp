// Chapter 05, one test per lesson step, in lesson order (make grade-05 runs them first, against a
// student's programs):
//
//   Ch05Steps        the server's steps S1-S8, with fdpass.hpp's receive side (rx1-rx4) after S5
//                    and its send side (tx2) after S6, driven over a raw socket
//   Ch05ClientSteps  the client's steps C1-C6 with tx2-tx3 after C3 and rx2/rx4 after C4,
//                    against a hand-written server
//
// Each test names the step it checks and says in th::why what was expected; the careless
// solutions each one catches are listed in 05-sendmsg-fds/REFERENCE.md.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ch05_peer.hpp"
#include "harness.hpp"
#include "uds.hpp"

namespace {

using namespace ch05t;

const std::string kHello = "hello, descriptor\n";

[[maybe_unused]] const bool kHints =
    th::hint_on_signal(SIGPIPE, "a send without MSG_NOSIGNAL (step tx3)") &&
    th::hint_on_signal(SIGSEGV,
                       "a crash: a bad pointer into the control buffer? (tx2, rx1, rx3)") &&
    th::hint_on_signal(SIGABRT, "an abort: an uncaught exception or a sanitizer report");

// ================================================================ the server's steps
class Ch05Steps : public ::testing::Test {
  protected:
    th::TempDir dir;
    std::string root = dir.file("root");
    std::string sock = dir.file("s.sock");
    std::unique_ptr<th::Process> server;

    void SetUp() override {
        ::mkdir(root.c_str(), 0755);
        ::mkdir((root + "/sub").c_str(), 0755);
        write_file(root + "/hello.txt", kHello);
        server = ch05t::start(th::bin(kChapter, "server"), {"-s", sock, "--root", root});
    }
    uds::Fd connect() { return th::connect_stream(uds::Address::path(sock)); }
    // One request (with descriptors attached) and its reply line.
    Got ask(int conn, std::string_view request, const std::vector<int>& fds = {}) {
        if (send_fds(conn, request, fds) != static_cast<ssize_t>(request.size())) return {};
        return recv_line(conn);
    }
    bool alive_and_connected(int conn) {
        char c;
        return server->running() && ::recv(conn, &c, 1, MSG_PEEK | MSG_DONTWAIT) != 0;
    }
    // The server's listening socket, or a skip when this machine does not let us look.
    Listener listener() {
        Listener l = find_listener(server->pid());
        return l;
    }
};

#define NEED_LISTENER(l)                                                                        \
    do {                                                                                        \
        if (!(l).copy && (l).why_not.rfind("pidfd_getfd", 0) == 0)                              \
            GTEST_SKIP() << "cannot look at the server's sockets here (" << (l).why_not << ")"; \
        ASSERT_TRUE((l).copy) << th::why("the server holds a listening socket (steps S1-S3)");  \
    } while (0)

TEST_F(Ch05Steps, S1_Socket_ListenerIsAnAfUnixStreamThatIsCloseOnExec) {
    Listener l = listener();
    NEED_LISTENER(l);
    EXPECT_EQ(sockopt(l.copy.get(), SOL_SOCKET, SO_DOMAIN), AF_UNIX)
        << th::why("the listening socket is AF_UNIX (step S1)");
    EXPECT_EQ(sockopt(l.copy.get(), SOL_SOCKET, SO_TYPE), SOCK_STREAM)
        << th::why("the listening socket is SOCK_STREAM (step S1)");
    EXPECT_TRUE(close_on_exec(server->pid(), l.number)) << th::why(
        "the listening socket is close-on-exec: SOCK_CLOEXEC in socket's type (step S1)");
}

TEST_F(Ch05Steps, S1a_Passcred_ListenerAsksForTheSendersCredentials) {
    Listener l = listener();
    NEED_LISTENER(l);
    EXPECT_EQ(sockopt(l.copy.get(), SOL_SOCKET, SO_PASSCRED), 1) << th::why(
        "setsockopt(SO_PASSCRED) on the listener, so every connection inherits it "
        "(step S1a)");
}

TEST_F(Ch05Steps, S2_Bind_ListenerHasTheGivenPathAndAStaleFileIsReplaced) {
    Listener l = listener();
    NEED_LISTENER(l);
    sockaddr_un sa{};
    socklen_t len = sizeof sa;
    ASSERT_EQ(::getsockname(l.copy.get(), reinterpret_cast<sockaddr*>(&sa), &len), 0);
    EXPECT_EQ(uds::Address::from_kernel(sa, len).str(), sock)
        << th::why("bind gives the socket the path of -s (step S2)");
    // A stale socket file (its server is gone) at another path: replaced, not refused.
    const std::string stale = dir.file("stale.sock");
    {
        uds::Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
        auto a = uds::Address::path(stale);
        ASSERT_EQ(::bind(s.get(), a.sockaddr_ptr(), a.length()), 0);
    }
    auto second = ch05t::start(th::bin(kChapter, "server"), {"-s", stale, "--root", root});
    EXPECT_TRUE(second->running())
        << th::why("a stale socket file is removed and bound again (step S2)");
}

TEST_F(Ch05Steps, S3_Listen_ClientsCanConnect) {
    Listener l = listener();
    NEED_LISTENER(l);
    EXPECT_EQ(sockopt(l.copy.get(), SOL_SOCKET, SO_ACCEPTCONN), 1)
        << th::why("listen() makes the socket accept connections (step S3)");
    uds::Fd conn = connect();
    EXPECT_TRUE(conn.valid()) << th::why("a client can connect (step S3)");
}

TEST_F(Ch05Steps, S4_Accept4_ConnectionIsCloseOnExec) {
    uds::Fd conn = connect();
    ASSERT_TRUE(server->wait_stderr("client 1: connected"))
        << th::why("the server accepts the connection and logs 'client 1: connected' (step S4)");
    Listener l = listener();
    int accepted = 0;
    for (int fd : socket_fds(server->pid())) {
        if (fd == l.number) continue;
        ++accepted;
        EXPECT_TRUE(close_on_exec(server->pid(), fd))
            << th::why("accept4 with SOCK_CLOEXEC: the connection is close-on-exec (step S4)");
    }
    EXPECT_GE(accepted, 1) << th::why("the server holds the accepted connection (step S4)");
}

TEST_F(Ch05Steps, S5_Recvmsg_AnswersEveryRequestLine) {
    uds::Fd conn = connect();
    Got g = ask(conn.get(), "HELLO\n");
    ASSERT_EQ(g.data.rfind("ERROR unknown request", 0), 0u)
        << th::why("an unknown request gets 'ERROR unknown request ...' (step S5 and rx1-rx4)");
    EXPECT_EQ(ask(conn.get(), "GREET\n").data.rfind("ERROR ", 0), 0u)
        << th::why("a second request on the same connection is answered too (step S5)");
    ASSERT_EQ(send_fds(conn.get(), "ONE\nTWO\n"), 8);
    EXPECT_EQ(recv_line(conn.get()).data.rfind("ERROR ", 0), 0u)
        << th::why("two requests in one write are two requests (step S5)");
    EXPECT_EQ(recv_line(conn.get()).data.rfind("ERROR ", 0), 0u)
        << th::why("two requests in one write get two replies (step S5)");
}

TEST_F(Ch05Steps, rx1_Buffers_OneDescriptorFitsBesideTheCredentials) {
    uds::Fd conn = connect();
    Pipe p;
    Got g = ask(conn.get(), "GREET\n", {p.w.get()});
    ASSERT_EQ(g.data, "OK\n") << th::why(
        "GREET with one descriptor works: the control buffer holds the credentials "
        "AND the descriptor, CMSG_SPACE of each (step rx1; rx3 walks past the "
        "credentials)");
    p.w.reset();
    EXPECT_NE(read_pipe(p.r.get()).find("hello"), std::string::npos)
        << th::why("the greeting arrives in the pipe we lent (steps rx1, S7)");
}

TEST_F(Ch05Steps, rx2_Recvmsg_ReceivedDescriptorIsCloseOnExec) {
    uds::Fd conn = connect();
    Pipe p;
    const struct stat target = stat_of(p.w.get());
    // Half a request: the server keeps the descriptor until the line is complete.
    ASSERT_EQ(send_fds(conn.get(), "GRE", {p.w.get()}), 3);
    int fd = wait_holding(server->pid(), target, [&] { return alive_and_connected(conn.get()); });
    ASSERT_GE(fd, 0) << th::why(
        "the server holds the descriptor that came with half a line "
        "(steps rx1-rx3)");
    EXPECT_TRUE(close_on_exec(server->pid(), fd)) << th::why(
        "recvmsg with MSG_CMSG_CLOEXEC: a received descriptor is close-on-exec "
        "(step rx2)");
    send_fds(conn.get(), "ET\n");
    recv_line(conn.get());
}

TEST_F(Ch05Steps, rx3_ControlMessages_GreetingNamesTheSendersPid) {
    uds::Fd conn = connect();
    Pipe p;
    Got g = ask(conn.get(), "GREET\n", {p.w.get()});
    ASSERT_EQ(g.data, "OK\n") << th::why("GREET with one descriptor works (steps rx1-rx3, S7)");
    p.w.reset();
    const std::string greeting = read_pipe(p.r.get());
    EXPECT_NE(greeting.find("pid " + std::to_string(::getpid()) + ","), std::string::npos)
        << th::why(
               "the greeting names the sender's pid from SCM_CREDENTIALS: walk every control "
               "message and copy the ucred (step rx3)");
    EXPECT_NE(greeting.find("(pid " + std::to_string(server->pid()) + ")"), std::string::npos)
        << th::why("the greeting names the server's own pid (step S7)");
}

TEST_F(Ch05Steps, rx4_Truncation_ClosesEverythingOnMsgCtrunc) {
    uds::Fd conn = connect();
    ASSERT_EQ(ask(conn.get(), "HELLO\n").data.rfind("ERROR ", 0), 0u)
        << th::why("the server answers requests (step S5) before this step can be checked");
    // Twelve descriptors with half a line: more than the server makes room for, so recvmsg
    // installs what fits and reports MSG_CTRUNC. Every one of them must be closed at once.
    std::vector<Pipe> pipes(12);
    std::vector<int> ends;
    for (auto& p : pipes)
        ends.push_back(p.w.get());
    ASSERT_EQ(send_fds(conn.get(), "GRE", ends), 3);
    for (auto& p : pipes)
        p.w.reset();
    th::Deadline d = soon();
    int open_still = 0;
    for (auto& p : pipes)
        open_still += pipe_hits_eof(p.r.get(), d) ? 0 : 1;
    EXPECT_EQ(open_still, 0) << th::why(
        "on MSG_CTRUNC close every descriptor that did arrive, "
        "at once (step rx4)");
    ASSERT_EQ(send_fds(conn.get(), "ET\n"), 3);
    EXPECT_EQ(recv_line(conn.get()).data.rfind("ERROR ", 0), 0u)
        << th::why("a GREET whose descriptors were cut off is refused with ERROR (steps rx4, S7)");
}

TEST_F(Ch05Steps, S6_Open_AnswersOkWithTheSize) {
    uds::Fd conn = connect();
    Got g = open_file(conn.get(), "hello.txt");
    ASSERT_EQ(g.data, "OK " + std::to_string(kHello.size()) + "\n")
        << th::why("OPEN answers 'OK <size>' (step S6, sent with tx1-tx3)");
    EXPECT_EQ(open_file(conn.get(), "missing.txt").data, "ERROR no such file\n")
        << th::why("a file that cannot be opened is answered 'ERROR <reason>' (step S6)");
}

TEST_F(Ch05Steps, tx2_ControlMessage_OpenReplyCarriesOneReadOnlyDescriptor) {
    uds::Fd conn = connect();
    Got g = open_file(conn.get(), "hello.txt");
    ASSERT_EQ(g.data.rfind("OK ", 0), 0u) << th::why("OPEN answers OK (step S6)");
    ASSERT_EQ(g.fds.size(), 1u) << th::why(
        "the OK line carries exactly one descriptor in a "
        "SCM_RIGHTS control message (step tx2)");
    EXPECT_EQ(read_fd_from_start(g.fds[0].get()), kHello)
        << th::why("the descriptor is the file that was asked for (steps tx2, S6)");
    EXPECT_EQ(::fcntl(g.fds[0].get(), F_GETFL) & O_ACCMODE, O_RDONLY)
        << th::why("the file is opened read-only (step S6)");
}

TEST_F(Ch05Steps, S6_Open_KeepsNoCopyOfTheFilesItSent) {
    uds::Fd conn = connect();
    ASSERT_TRUE(server->wait_stderr("client 1: connected"));
    const int baseline = th::count_fds(server->pid());
    for (int i = 0; i < 20; ++i)
        ASSERT_EQ(open_file(conn.get(), "hello.txt").fds.size(), 1u)
            << th::why("every OPEN is answered with a descriptor (steps S6, tx2)");
    EXPECT_EQ(settled_fds(server->pid(), baseline), baseline) << th::why(
        "close the server's copy of each file after sendmsg: the message holds its "
        "own reference (step S6)");
}

TEST_F(Ch05Steps, S6_Open_RefusalsAndVanishedClientsLeaveNoDescriptor) {
    const int baseline = th::count_fds(server->pid());
    {
        uds::Fd conn = connect();
        for (const char* path : {"sub", "missing", "sub/../hello.txt", "/etc/passwd"})
            ASSERT_EQ(open_file(conn.get(), path).data.rfind("ERROR ", 0), 0u)
                << th::why("a refused OPEN is answered ERROR (step S6)");
    }
    ASSERT_TRUE(server->wait_stderr("client 1: connection closed"));
    {  // Many OPENs, and gone before reading a single reply: the sends fail with EPIPE.
        uds::Fd conn = connect();
        std::string many;
        for (int i = 0; i < 30; ++i)
            many += "OPEN hello.txt\n";
        ASSERT_EQ(send_fds(conn.get(), many), static_cast<ssize_t>(many.size()));
        ASSERT_TRUE(server->wait_stderr("OPEN hello.txt: sent"));
    }
    ASSERT_TRUE(server->wait_stderr("client 2: connection closed"))
        << th::why("the server closes a connection whose client has gone (step S6)");
    EXPECT_EQ(settled_fds(server->pid(), baseline), baseline) << th::why(
        "a file that could not be sent is closed too, on every error path: keep it "
        "in a uds::Fd (step S6)");
}

TEST_F(Ch05Steps, S7_Greet_WritesIntoTheLentDescriptorAndClosesIt) {
    uds::Fd conn = connect();
    Pipe p;
    ASSERT_EQ(ask(conn.get(), "GREET\n", {p.w.get()}).data, "OK\n")
        << th::why("GREET with one descriptor is answered OK (step S7)");
    p.w.reset();
    const std::string greeting = read_pipe(p.r.get());
    EXPECT_EQ(greeting.rfind("hello ", 0), 0u)
        << th::why("the server writes a line starting 'hello ' into the descriptor (step S7)");
    EXPECT_EQ(greeting.empty() ? ' ' : greeting.back(), '\n')
        << th::why("the greeting is one whole line (step S7)");
    EXPECT_TRUE(pipe_hits_eof(p.r.get())) << th::why(
        "after the greeting our pipe reaches end of file: the server closed its copy "
        "(step S7)");
}

TEST_F(Ch05Steps, S7_Greet_AnythingButOneDescriptorIsAnErrorAndAllAreClosed) {
    uds::Fd conn = connect();
    ASSERT_EQ(ask(conn.get(), "GREET\n").data.rfind("ERROR ", 0), 0u)
        << th::why("GREET without a descriptor is answered ERROR (step S7)");
    Pipe a, b;
    EXPECT_EQ(ask(conn.get(), "GREET\n", {a.w.get(), b.w.get()}).data.rfind("ERROR ", 0), 0u)
        << th::why("GREET with two descriptors is answered ERROR (step S7)");
    a.w.reset();
    b.w.reset();
    th::Deadline d = soon();
    EXPECT_TRUE(pipe_hits_eof(a.r.get(), d) && pipe_hits_eof(b.r.get(), d))
        << th::why("both descriptors of a refused GREET are closed (step S7)");
    EXPECT_EQ(open_file(conn.get(), "hello.txt").fds.size(), 1u)
        << th::why("the connection goes on after an ERROR (step S7)");
}

TEST_F(Ch05Steps, S7_Greet_IntoABrokenPipeIsAnErrorReply) {
    uds::Fd conn = connect();
    Pipe p;
    p.r.reset();  // nobody will ever read
    Got g = ask(conn.get(), "GREET\n", {p.w.get()});
    ASSERT_EQ(g.data.rfind("ERROR ", 0), 0u)
        << th::why("a write that fails (EPIPE) is answered ERROR (step S7)");
    EXPECT_TRUE(server->running()) << th::why("the server survives the broken pipe (step S7)");
}

TEST_F(Ch05Steps, S8_Shutdown_SigtermRemovesTheSocketFileAndExitsZero) {
    server->signal(SIGTERM);
    EXPECT_EQ(server->wait_exit(), 0) << th::why("on SIGTERM the server exits with status 0 (S8)");
    struct stat st {};
    EXPECT_EQ(::lstat(sock.c_str(), &st), -1)
        << th::why("the server removes its socket file on SIGTERM (step S8)");
}

// ================================================================ the client's steps
class Ch05ClientSteps : public ::testing::Test {
  protected:
    th::TempDir dir;
    std::string sock = dir.file("s.sock");
    uds::Address addr = uds::Address::path(sock);
    uds::Fd listener{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};

    void SetUp() override {
        ASSERT_EQ(::bind(listener.get(), addr.sockaddr_ptr(), addr.length()), 0);
        ASSERT_EQ(::listen(listener.get(), 4), 0);
    }
    std::unique_ptr<th::Process> client(std::vector<std::string> args) {
        args.insert(args.begin(), {"-s", sock});
        return std::make_unique<th::Process>(th::bin(kChapter, "client"), args);
    }
    // Waits for the client's connection, giving up early if the client has already exited.
    uds::Fd accept_one(th::Process& c) {
        th::Deadline d;
        while (!th::readable(listener.get(), 20))
            if (d.expired() || !c.running()) return {};
        return uds::Fd{::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC)};
    }
    // A file the client can reach only through the descriptor: it has no name any more.
    uds::Fd unlinked_file(const std::string& content) {
        const std::string path = dir.file("secret.txt");
        write_file(path, content);
        uds::Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
        ::unlink(path.c_str());
        return fd;
    }
    // The client up to its first request: connected, and the request line read.
    uds::Fd first_request(th::Process& c, const std::string& expected) {
        uds::Fd conn = accept_one(c);
        EXPECT_TRUE(conn.valid()) << th::why("the client connects (steps C1, C2)");
        if (!conn) return conn;
        Got g = recv_line(conn.get());
        EXPECT_EQ(g.data, expected) << th::why("the client sends its request (step C3)");
        return conn;
    }
};

TEST_F(Ch05ClientSteps, C1_Socket_IsCloseOnExec) {
    auto c = client({"hello.txt"});
    uds::Fd conn = first_request(*c, "OPEN hello.txt\n");
    ASSERT_TRUE(conn.valid());
    const std::vector<int> sockets = socket_fds(c->pid());
    EXPECT_FALSE(sockets.empty()) << th::why("the client holds its socket (step C1)");
    for (int fd : sockets)
        EXPECT_TRUE(close_on_exec(c->pid(), fd))
            << th::why("the client's socket is close-on-exec: SOCK_CLOEXEC (step C1)");
    send_fds(conn.get(), "ERROR no\n");
}

TEST_F(Ch05ClientSteps, C2_Connect_ReachesTheServerOrSaysWhy) {
    auto c = client({"hello.txt"});
    uds::Fd conn = accept_one(*c);
    EXPECT_TRUE(conn.valid()) << th::why("the client connects to the -s address (step C2)");
    listener.reset();
    ::unlink(sock.c_str());
    auto r = th::run(th::bin(kChapter, "client"), {"-s", sock, "hello.txt"});
    EXPECT_EQ(r.status, 1) << th::why("no server: the client exits with status 1 (step C2)");
    EXPECT_NE(r.err.find("is the server running"), std::string::npos)
        << th::why("no server: the client's error asks 'is the server running?' (step C2)");
}

TEST_F(Ch05ClientSteps, C3_Sendmsg_SendsTheOpenRequestWithoutDescriptor) {
    auto c = client({"hello.txt"});
    uds::Fd conn = accept_one(*c);
    ASSERT_TRUE(conn.valid()) << th::why("the client connects (steps C1, C2)");
    Got g = recv_line(conn.get());
    EXPECT_EQ(g.data, "OPEN hello.txt\n")
        << th::why("the client sends 'OPEN <file>\\n' (step C3, with tx1-tx3)");
    EXPECT_TRUE(g.fds.empty()) << th::why("OPEN carries no descriptor (step C3)");
}

TEST_F(Ch05ClientSteps, tx2_ControlMessage_GreetHandsOverTheClientsStdout) {
    auto c = client({"--greet"});
    uds::Fd conn = accept_one(*c);
    ASSERT_TRUE(conn.valid()) << th::why("the client connects (steps C1, C2)");
    Got g = recv_line(conn.get());
    ASSERT_EQ(g.data, "GREET\n") << th::why("the client sends 'GREET\\n' (step C3)");
    ASSERT_EQ(g.fds.size(), 1u) << th::why(
        "GREET carries one descriptor in a SCM_RIGHTS control "
        "message (step tx2)");
    const std::string text = "written by the peer into the client's stdout\n";
    EXPECT_EQ(::write(g.fds[0].get(), text.data(), text.size()), static_cast<ssize_t>(text.size()))
        << th::why("the descriptor is the client's stdout, writable (step tx2)");
    g.fds.clear();
    ASSERT_EQ(send_fds(conn.get(), "OK\n"), 3);
    EXPECT_EQ(c->wait_exit(), 0) << th::why("after OK the client exits with status 0 (step C4)");
    EXPECT_NE(c->out().find(text), std::string::npos)
        << th::why("what we wrote appears on the client's stdout (step tx2)");
}

TEST_F(Ch05ClientSteps, tx3_Sendmsg_AServerThatLeftIsAnErrorNotSigpipe) {
    auto c = client({"a.txt", "b.txt"});
    uds::Fd conn = first_request(*c, "OPEN a.txt\n");
    ASSERT_TRUE(conn.valid());
    // We take no more requests: the client's next send fails (EPIPE, and SIGPIPE unless it sends
    // with MSG_NOSIGNAL). Then the reply it is waiting for.
    ASSERT_EQ(::shutdown(conn.get(), SHUT_RD), 0);
    ASSERT_EQ(send_fds(conn.get(), "ERROR no such file\n"), 19);
    const int status = c->wait_exit();
    EXPECT_EQ(status, 1) << th::why(
        "a send to a server that left fails with EPIPE and the client "
        "exits with status 1, not killed by SIGPIPE: MSG_NOSIGNAL "
        "(step tx3)");
}

TEST_F(Ch05ClientSteps, C4_Recvmsg_ReportsAnErrorReply) {
    auto c = client({"missing.txt"});
    uds::Fd conn = first_request(*c, "OPEN missing.txt\n");
    ASSERT_TRUE(conn.valid());
    ASSERT_EQ(send_fds(conn.get(), "ERROR no such file\n"), 19);
    EXPECT_EQ(c->wait_exit(), 1) << th::why(
        "an ERROR reply makes the client exit with status 1 (step C4)");
    EXPECT_NE(c->err().find("ERROR no such file"), std::string::npos)
        << th::why("the client reports the server's ERROR line (step C4, with rx1-rx4)");
}

TEST_F(Ch05ClientSteps, rx2_Recvmsg_ReceivedDescriptorIsCloseOnExec) {
    auto c = client({"hello.txt"});
    uds::Fd conn = first_request(*c, "OPEN hello.txt\n");
    ASSERT_TRUE(conn.valid());
    Pipe p;
    const struct stat target = stat_of(p.r.get());
    // Half a reply: the client keeps the descriptor while it waits for the rest of the line.
    ASSERT_EQ(send_fds(conn.get(), "OK 5", {p.r.get()}), 4);
    int fd = wait_holding(c->pid(), target, [&] { return c->running(); });
    ASSERT_GE(fd, 0) << th::why(
        "the client holds the descriptor that came with half a reply "
        "(steps rx1-rx3, C4)");
    EXPECT_TRUE(close_on_exec(c->pid(), fd)) << th::why(
        "recvmsg with MSG_CMSG_CLOEXEC: a received descriptor is close-on-exec "
        "(step rx2)");
    ASSERT_EQ(::write(p.w.get(), "12345", 5), 5);
    p.w.reset();
    send_fds(conn.get(), "\n");
    c->wait_exit();
}

TEST_F(Ch05ClientSteps, rx4_Truncation_ClosesEverythingOnMsgCtrunc) {
    auto c = client({"a.txt", "b.txt"});
    uds::Fd conn = first_request(*c, "OPEN a.txt\n");
    ASSERT_TRUE(conn.valid());
    // Twelve descriptors with half a reply: more than the client's control buffer holds.
    std::vector<Pipe> pipes(12);
    std::vector<int> ends;
    for (auto& p : pipes)
        ends.push_back(p.w.get());
    ASSERT_EQ(send_fds(conn.get(), "OK 5", ends), 4);
    for (auto& p : pipes)
        p.w.reset();
    th::Deadline d = soon();
    int open_still = 0;
    for (auto& p : pipes)
        open_still += pipe_hits_eof(p.r.get(), d) ? 0 : 1;
    EXPECT_EQ(open_still, 0) << th::why(
        "on MSG_CTRUNC close every descriptor that did arrive, "
        "at once (step rx4)");
    ASSERT_EQ(send_fds(conn.get(), "\n"), 1);
    EXPECT_EQ(recv_line(conn.get()).data, "OPEN b.txt\n") << th::why(
        "after a reply whose descriptors were cut off, the client goes on with the "
        "next file (step rx4, C4)");
    send_fds(conn.get(), "ERROR no such file\n");
    c->wait_exit();
}

TEST_F(Ch05ClientSteps, C5_Read_PrintsTheFileThroughTheReceivedDescriptor) {
    const std::string content = "only reachable through the descriptor\n";
    uds::Fd file = unlinked_file(content);
    auto c = client({"secret.txt"});
    uds::Fd conn = first_request(*c, "OPEN secret.txt\n");
    ASSERT_TRUE(conn.valid());
    const std::string reply = "OK " + std::to_string(content.size()) + "\n";
    ASSERT_EQ(send_fds(conn.get(), reply, {file.get()}), static_cast<ssize_t>(reply.size()));
    c->wait_exit();
    EXPECT_EQ(c->out(), content) << th::why(
        "the client prints the file, read through the "
        "descriptor it received (step C5)");
}

TEST_F(Ch05ClientSteps, C6_Close_ClosesEachReceivedDescriptorBeforeTheNextRequest) {
    uds::Fd file = unlinked_file(kHello);
    const struct stat target = stat_of(file.get());
    auto c = client({"a.txt", "b.txt"});
    uds::Fd conn = first_request(*c, "OPEN a.txt\n");
    ASSERT_TRUE(conn.valid());
    const std::string reply = "OK " + std::to_string(kHello.size()) + "\n";
    ASSERT_EQ(send_fds(conn.get(), reply, {file.get()}), static_cast<ssize_t>(reply.size()));
    ASSERT_EQ(recv_line(conn.get()).data, "OPEN b.txt\n")
        << th::why("after the first file the client asks for the next (steps C5, C6)");
    EXPECT_EQ(fd_holding(c->pid(), target), -1)
        << th::why("close the received descriptor before the next request (step C6)");
    ASSERT_EQ(::lseek(file.get(), 0, SEEK_SET), 0);  // the client's read moved the shared offset
    ASSERT_EQ(send_fds(conn.get(), reply, {file.get()}), static_cast<ssize_t>(reply.size()));
    EXPECT_EQ(c->wait_exit(), 0) << th::why("every file printed: exit status 0 (step C6)");
    EXPECT_EQ(c->out(), kHello + kHello) << th::why("both files are printed (steps C5, C6)");
}

}  // namespace
