// Chapter 02, step by step: make grade-02 runs these first, in this order, against a student's
// programs. Each test can fail for one step only, and says which one (th::why).
//
//   Ch02Steps        the real server (S1..S7), driven by raw peers from this process
//   Ch02ClientSteps  the real client (C1..C4), against a listener written here, so that each
//                    client step is checked on its own
//
// They check what the kernel got, not what a helper would have done: the name in
// /proc/net/unix, the length getpeername returns, the close-on-exec flag in
// /proc/PID/fdinfo, and how a program ended (a SIGPIPE death is reported with its step).
// The server tests after S2a connect to whatever name the server really bound, so a wrong
// length fails S2a only, not every later step as well.
//
// Peers of another uid: as root, real ones (uid 65534, nobody). Without root, a stand-in: the
// server under test gets its SO_PEERCRED answers rewritten to uid 4242 (see ch02_support.hpp),
// so the peer check (S4b) is graded for students who are not root, too.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ch02_support.hpp"
#include "harness.hpp"
#include "uds.hpp"

namespace {

using namespace ch02;
using namespace std::string_literals;

const bool kSigpipeHint =
    th::hint_on_signal(SIGPIPE, "send with MSG_NOSIGNAL (server step S5b, client step C3)");

class Ch02Steps : public ::testing::Test {
  protected:
    const std::string name = th::unique_abstract_name("steps");
    const std::string at_name = "@" + name;
    std::unique_ptr<th::Process> server;

    void start(std::vector<std::string> extra = {}, th::Process::Options opts = {}) {
        extra.insert(extra.begin(), {"-s", at_name});
        server = th::start_server(server_bin(), extra, "listening on", std::move(opts));
    }
    // The server's listening socket (or, before S3, any named socket it holds).
    [[nodiscard]] std::optional<HeldSocket> server_socket() const {
        std::optional<HeldSocket> named;
        for (const auto& s : unix_sockets_of(server->pid())) {
            if (s.entry.listening()) return s;
            if (!s.entry.path.empty() && !named) named = s;
        }
        return named;
    }
    // The address the server really bound: exactly @name if S2a is right, else whatever it did
    // bind, so that the later steps can still be checked.
    [[nodiscard]] RawAddress bound_address() const {
        auto s = server_socket();
        return s && !s->entry.path.empty() ? raw_from_proc(s->entry.path) : raw_abstract(name);
    }
    [[nodiscard]] uds::Fd connect_to_server() {
        uds::Fd c;
        int err = try_connect(bound_address(), &c);
        if (err != 0)
            throw th::Abort("connect " + at_name + ": " + std::strerror(err) +
                            ": the server is not listening (steps S1-S3)" + ended(*server));
        return c;
    }
    // One request line on a new connection: the first reply line.
    [[nodiscard]] std::string ask_line(std::string_view request) {
        uds::Fd c = connect_to_server();
        th::send_all(c.get(), request);
        return th::read_line(c.get());
    }
    // One request, then our end closed: everything the server sends back until it closes.
    [[nodiscard]] std::string ask(std::string_view request) {
        uds::Fd c = connect_to_server();
        th::send_all(c.get(), request);
        ::shutdown(c.get(), SHUT_WR);
        return th::read_to_eof(c.get());
    }
};

TEST_F(Ch02Steps, S1_Socket_IsAnAfUnixStreamSocketThatIsCloseOnExec) {
    start();
    ASSERT_TRUE(server->running())
        << th::why("the server must keep running once it is ready" + ended(*server));
    auto s = server_socket();
    ASSERT_TRUE(s.has_value()) << th::why(
        "the server holds no AF_UNIX socket with a name: socket(AF_UNIX, ...) (step S1)" +
        ended(*server));
    EXPECT_TRUE(s->entry.stream()) << th::why(
        "the server's socket is not SOCK_STREAM: socket(AF_UNIX, SOCK_STREAM, 0) (step S1)");
    EXPECT_EQ(cloexec(server->pid(), s->fd), std::optional<bool>{true}) << th::why(
        "the listening socket is not close-on-exec: add SOCK_CLOEXEC to socket()'s type "
        "(step S1)");
}

TEST_F(Ch02Steps, S2a_Name_TheKernelGotExactlyAtName) {
    start();
    ASSERT_TRUE(server->running())
        << th::why("the server must keep running once it is ready" + ended(*server));
    auto s = server_socket();
    const std::string got = s ? s->entry.path : "";
    EXPECT_EQ(name_problem(got, name), "") << th::why(name_problem(got, name) + ended(*server))
                                           << "\nthe kernel got: " << short_name(got);
    // No padded or shortened twin anywhere, and no socket file either.
    EXPECT_EQ(proc_exactly(at_name), 1u)
        << th::why("/proc/net/unix must show exactly one socket named " + at_name + " (step S2a)" +
                   ended(*server));
}

TEST_F(Ch02Steps, S2a_Name_APeerWithTheExactLengthReachesIt) {
    start();
    ASSERT_TRUE(server->running())
        << th::why("the server must keep running once it is ready" + ended(*server));
    // Built by hand as any C program would: offsetof(sun_path) + 1 + strlen(name).
    uds::Fd c;
    const int err = try_connect(raw_abstract(name), &c);
    auto s = server_socket();
    const std::string problem = name_problem(s ? s->entry.path : "", name);
    ASSERT_EQ(err, 0) << th::why("a peer using the exact length gets " +
                                 std::string(std::strerror(err)) + ": " +
                                 (problem.empty() ? "the name is right, but nobody listens on it "
                                                    "(step S3)"
                                                  : problem) +
                                 ended(*server));
    // And the kernel reports the server's name with that exact length.
    sockaddr_un sa{};
    socklen_t len = sizeof sa;
    ASSERT_EQ(::getpeername(c.get(), reinterpret_cast<sockaddr*>(&sa), &len), 0);
    EXPECT_EQ(len, kOffset + 1 + name.size()) << th::why(
        "getpeername's length must be offsetof(sockaddr_un, sun_path) + 1 + name "
        "length (step S2a)");
}

TEST_F(Ch02Steps, S2a_Name_APathIsBoundWithItsNul) {
    // -s PATH works as in chapter 01: the path and its NUL, offsetof + strlen + 1.
    th::TempDir tmp;
    const std::string path = tmp.file("s2.sock");
    server = th::start_server(server_bin(), {"-s", path});
    uds::Fd c;
    const int err = try_connect(raw_path(path), &c);
    ASSERT_EQ(err, 0) << th::why("with -s PATH a peer gets " + std::string(std::strerror(err)) +
                                 ": copy the path into sun_path, with the length "
                                 "offsetof(sockaddr_un, sun_path) + length + 1 (step S2a)");
    sockaddr_un sa{};
    socklen_t len = sizeof sa;
    ASSERT_EQ(::getpeername(c.get(), reinterpret_cast<sockaddr*>(&sa), &len), 0);
    EXPECT_EQ(std::string(sa.sun_path), path)
        << th::why("the server must bind the path it was given (step S2a)");
}

TEST_F(Ch02Steps, S3_Listen_ClientsCanConnectBeforeTheyAreAccepted) {
    start();
    ASSERT_TRUE(server->running())
        << th::why("the server must keep running once it is ready" + ended(*server));
    auto s = server_socket();
    ASSERT_TRUE(s.has_value()) << th::why("the server holds no named socket (steps S1-S2b)" +
                                          ended(*server));
    EXPECT_TRUE(s->entry.listening())
        << th::why("the server's socket is not listening: call listen() after bind (step S3)");
    // While one client is connected, more can connect: they wait in the listen queue.
    uds::Fd first = connect_to_server();
    for (int i = 0; i < 3; ++i) {
        uds::Fd more;
        EXPECT_EQ(try_connect(bound_address(), &more), 0) << th::why(
            "connect must succeed while the server is busy: the backlog queues "
            "clients (step S3)");
    }
}

TEST_F(Ch02Steps, S4_Accept4_TheConnectionIsCloseOnExec) {
    start();
    uds::Fd c = connect_to_server();
    th::send_all(c.get(), "accept\n");
    ASSERT_EQ(th::read_line(c.get()), "ACCEPT\n")
        << th::why("no reply: accept4 the connection (step S4), then serve it" + ended(*server));
    // Still connected: the server holds the accepted socket now.
    int accepted = 0;
    for (const auto& s : unix_sockets_of(server->pid())) {
        if (s.entry.listening()) continue;
        ++accepted;
        EXPECT_EQ(cloexec(server->pid(), s.fd), std::optional<bool>{true}) << th::why(
            "the accepted socket is not close-on-exec: accept4(listener, nullptr, "
            "nullptr, SOCK_CLOEXEC) (step S4)");
    }
    EXPECT_GE(accepted, 1) << th::why("the server holds no accepted socket (step S4)");
}

TEST_F(Ch02Steps, S4a_PeerCredentials_TheLogShowsTheRealPidUidGid) {
    start();
    uds::Fd c = connect_to_server();
    th::send_all(c.get(), "who\n");
    (void)th::read_line(c.get());
    // We are the peer: the kernel recorded our pid, uid and gid when we called connect().
    const std::string want = "peer pid=" + std::to_string(::getpid()) +
                             " uid=" + std::to_string(::geteuid()) +
                             " gid=" + std::to_string(::getegid());
    EXPECT_TRUE(server->wait_stderr(want))
        << th::why("the log must show '" + want +
                   "': getsockopt(conn, SOL_SOCKET, SO_PEERCRED) "
                   "(step S4a)" +
                   ended(*server));
}

// A peer of another uid connects and sends nothing: exactly the refusal line, then at once
// the end of the stream (the server closed, and waited for nothing).
TEST_F(Ch02Steps, S4b_PeerCheck_RefusesAnotherUidAtOnceWithTheExactLine) {
    auto other = other_uid();
    if (!other) GTEST_SKIP() << kNeedOtherUid;
    start({}, other->server_options);
    if (!stand_in_works(*other, *server)) GTEST_SKIP() << kStandInNotLoaded;
    const RawAddress addr = bound_address();
    const std::string line = "ERROR not allowed (uid " + std::to_string(other->uid) + ")\n";
    // 0: the exact line, then end of file within 300 ms; 1: connect failed; 2: another answer
    // or none; 3: reset instead of a clean end; 4: no end of file (the server kept it open).
    const int rc = as_other_peer(*other, [&] {
        uds::Fd c;
        if (try_connect(addr, &c) != 0) return 1;
        if (th::read_line(c.get()) != line) return 2;
        int err = 0;
        std::string rest = th::read_to_eof(c.get(), th::Deadline{th::milliseconds{300}}, &err);
        if (err != 0) return 3;
        if (!rest.empty()) return 2;
        return th::readable(c.get(), 0) ? 0 : 4;  // at end of file a socket stays readable
    });
    static const char* const what[] = {"", "it could not connect", "it got another answer, or none",
                                       "the connection was reset", "the server kept it open"};
    EXPECT_EQ(rc, 0) << th::why(
        "uid " + std::to_string(other->uid) + " must get exactly '" +
        line.substr(0, line.size() - 1) + "\\n' and the end of the stream at once, but " +
        (rc >= 1 && rc <= 4 ? what[rc] : "the peer failed") +
        ": compare SO_PEERCRED's uid with the policy, refuse() and close (step S4b)" +
        ended(*server));
    // And it goes back to accept4: our own uid is still served.
    EXPECT_EQ(ask_line("still me\n"), "STILL ME\n") << th::why(
        "after a refusal the server must serve the next client (step S4b)" + ended(*server));
}

TEST_F(Ch02Steps, S4b_PeerCheck_AllowUidServesThatUid) {
    auto other = other_uid();
    if (!other) GTEST_SKIP() << kNeedOtherUid;
    start({"--allow-uid", std::to_string(other->uid)}, other->server_options);
    if (!stand_in_works(*other, *server)) GTEST_SKIP() << kStandInNotLoaded;
    const RawAddress addr = bound_address();
    const int rc = as_other_peer(*other, [&] {
        uds::Fd c;
        if (try_connect(addr, &c) != 0) return 1;
        th::send_all(c.get(), "allowed\n");
        return th::read_line(c.get()) == "ALLOWED\n" ? 0 : 2;
    });
    EXPECT_EQ(rc, 0) << th::why("with --allow-uid " + std::to_string(other->uid) +
                                " a peer of that uid must be served (step S4b)" + ended(*server));
}

TEST_F(Ch02Steps, S5a_Read_TwoLinesInOneWriteAreTwoReplies) {
    start();
    EXPECT_EQ(ask("one\ntwo\n"), "ONE\nTWO\n") << th::why(
        "two lines sent in one write must get two replies, nothing more: a read may "
        "hold many lines; answer each complete line (step S5a)" +
        ended(*server));
}

TEST_F(Ch02Steps, S5a_Read_ALineInTwoWritesIsOneReply) {
    start();
    uds::Fd c = connect_to_server();
    th::send_all(c.get(), "hel");
    // Half a line: a server that takes one read() for one message answers it now.
    EXPECT_FALSE(th::readable(c.get(), 150)) << th::why(
        "the server answered half a line: one read() is not one message; collect "
        "bytes until '\\n' (step S5a)");
    th::send_all(c.get(), "lo\n");
    EXPECT_EQ(th::read_line(c.get()), "HELLO\n")
        << th::why("a line sent in two writes must get one reply (step S5a)" + ended(*server));
}

TEST_F(Ch02Steps, S5a_Read_ALastLineWithoutNewlineIsAnswered) {
    start();
    EXPECT_EQ(ask("first\nlast"), "FIRST\nLAST\n") << th::why(
        "when read() returns 0, a last line without '\\n' is answered too "
        "(framer.take_rest, step S5a)" +
        ended(*server));
}

TEST_F(Ch02Steps, S5a_Read_ALineOver4096BytesGetsTheErrorLine) {
    start();
    uds::Fd c = connect_to_server();
    try {
        th::send_all(c.get(), std::string(5000, 'x') + "\n");
    } catch (const uds::SysError&) {  // the server may refuse and close before we are done
    }
    int err = 0;
    EXPECT_EQ(th::read_to_eof(c.get(), th::Deadline{}, &err), uds::kLineTooLong) << th::why(
        "a line over 4096 bytes gets exactly 'ERROR line too long (max 4096 bytes)' "
        "and the connection is closed (step S5a)" +
        ended(*server));
}

TEST_F(Ch02Steps, S5b_Send_AClientThatLeftCostsAnErrorNotTheServer) {
    start();
    // A is being served; B connects behind it, sends a line and leaves at once. When A is done
    // the server reads B's line and sends the reply to a client that is gone: EPIPE.
    uds::Fd a = connect_to_server();
    th::send_all(a.get(), "a\n");
    ASSERT_EQ(th::read_line(a.get()), "A\n") << th::why("no reply (steps S4-S5)" + ended(*server));
    {
        uds::Fd b = connect_to_server();
        th::send_all(b.get(), "gone\n");
    }
    a.reset();
    EXPECT_EQ(ask_line("after\n"), "AFTER\n") << th::why(
        "a client that left before its reply must not stop the server: send with "
        "MSG_NOSIGNAL, and treat EPIPE as this client's end (step S5b)" +
        ended(*server));
    EXPECT_TRUE(server->running()) << th::why(
        "the server died replying to a client that had left (step S5b)" + ended(*server));
}

TEST_F(Ch02Steps, S6_Close_EveryConnectionIsClosedAndTheNextOneServed) {
    start();
    const int baseline = th::count_fds(server->pid());
    for (const char* word : {"first\n", "second\n", "third\n"})
        ASSERT_EQ(ask_line(word), uds::upcase(word)) << th::why(
            "each client in turn must be served (step S6: back to accept4)" + ended(*server));
    // With one client connected the server holds one descriptor more than when it started.
    uds::Fd c = connect_to_server();
    th::send_all(c.get(), "count\n");
    ASSERT_EQ(th::read_line(c.get()), "COUNT\n") << th::why("no reply" + ended(*server));
    EXPECT_EQ(th::count_fds(server->pid()), baseline + 1) << th::why(
        "the server keeps descriptors of finished clients: close each connection "
        "(step S6)");
}

TEST_F(Ch02Steps, S7_Close_SigtermEndsTheServerAndFreesTheName) {
    start();
    server->signal(SIGTERM);
    EXPECT_EQ(server->wait_exit(), 0)
        << th::why("on SIGTERM the server must stop and exit 0 (step S7)" + ended(*server));
    EXPECT_EQ(proc_starting_with(at_name), 0u)
        << th::why("the name must be gone once the server has exited (step S7)");
    // Nothing to clean up: the same name can be bound again at once.
    uds::Fd again{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    const RawAddress a = raw_abstract(name);
    EXPECT_EQ(::bind(again.get(), a.ptr(), a.len), 0)
        << th::why("the name must be free again after the server exits (step S7)");
}

// ================================================================= the client, step by step

// The client against a listener of ours on the exact name. Decoys on the names a wrong length
// would reach tell the test which mistake the client made.
class Ch02ClientSteps : public ::testing::Test {
  protected:
    const std::string name = th::unique_abstract_name("csteps");
    uds::Fd listener = listen_on(raw_abstract(name));
    uds::Fd padded = listen_on(raw_abstract(name, sizeof(sockaddr_un)));  // the sizeof mistake
    uds::Fd one_nul = listen_on(raw_abstract(name + '\0'));  // the length counted a NUL too

    [[nodiscard]] std::unique_ptr<th::Process> client(std::vector<std::string> args) const {
        args.insert(args.begin(), {"-s", "@" + name});
        return std::make_unique<th::Process>(client_bin(), args);
    }
    // The client's connection, accepted (an invalid Fd if it never came); why it did not come.
    uds::Fd accept_one(th::Process& c, std::string* why_not = nullptr) {
        th::Deadline d;
        for (;;) {
            if (th::readable(listener.get(), 20))
                return uds::Fd{::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC)};
            std::string wrong;
            if (th::readable(padded.get(), 0))
                wrong =
                    "the client reached the name padded with NULs: connect's length was "
                    "sizeof(sockaddr_un); pass offsetof(sockaddr_un, sun_path) + 1 + name "
                    "length (step C2)";
            else if (th::readable(one_nul.get(), 0))
                wrong =
                    "the client reached the name plus one NUL: the length must not count a "
                    "trailing NUL (step C2)";
            if (!wrong.empty() || d.expired() || !c.running()) {
                if (why_not != nullptr)
                    *why_not = !wrong.empty() ? wrong
                                              : "the client never reached the server's name: "
                                                "connect with the exact length (steps C1-C2)" +
                                                    ended(c);
                return {};
            }
        }
    }
};

TEST_F(Ch02ClientSteps, C1_Socket_IsCloseOnExec) {
    auto c = client({});  // no MESSAGE: it reads stdin, so it stays connected while we look
    std::string why_not;
    uds::Fd conn = accept_one(*c, &why_not);
    ASSERT_TRUE(conn.valid()) << th::why(why_not);
    int sockets = 0;
    for (const auto& s : unix_sockets_of(c->pid())) {
        ++sockets;
        EXPECT_EQ(cloexec(c->pid(), s.fd), std::optional<bool>{true})
            << th::why("the client's socket is not close-on-exec: SOCK_CLOEXEC (step C1)");
    }
    EXPECT_GE(sockets, 1) << th::why("the client holds no AF_UNIX socket (step C1)");
}

TEST_F(Ch02ClientSteps, C2_Connect_ReachesTheExactName) {
    auto c = client({"hello"});
    std::string why_not;
    uds::Fd conn = accept_one(*c, &why_not);
    EXPECT_TRUE(conn.valid()) << th::why(why_not);
}

TEST_F(Ch02ClientSteps, C2a_ServerCheck_RefusesAServerOfAnotherUidBeforeSendingAnything) {
    // Our listener runs as us; the client is told to trust only uid 4242.
    auto c = client({"--server-uid", std::to_string(kFakeUid), "secret"});
    std::string why_not;
    uds::Fd conn = accept_one(*c, &why_not);
    ASSERT_TRUE(conn.valid()) << th::why(why_not);
    send_quietly(conn.get(), "SECRET\n");  // a forged reply, in case it asks anyway
    const int status = c->wait_exit();
    const std::string got = th::read_to_eof(conn.get(), th::Deadline{th::milliseconds{500}});
    EXPECT_EQ(got, "") << th::why("the client sent its request to a server running as uid " +
                                  std::to_string(::geteuid()) + " although --server-uid " +
                                  std::to_string(kFakeUid) +
                                  ": check SO_PEERCRED before sending (step C2a)");
    EXPECT_EQ(status, 1) << th::why("a server of another uid: the client must exit 1 (step C2a)");
    EXPECT_EQ(c->out(), "") << th::why(
        "the client must print no reply from such a server (step C2a)");
    EXPECT_TRUE(contains(c->err(), "uid " + std::to_string(::geteuid())))
        << th::why("the client's message must name the uid that holds the name (step C2a)");
}

TEST_F(Ch02ClientSteps, C2a_ServerCheck_RefusesASquatterRunningAsNobody) {
    // A squatter: listen() records the credentials every client will see, so a child of
    // another uid binds and listens on a socket of ours, then we answer as the squatter would.
    // As root the child runs as nobody; else the client gets the SO_PEERCRED stand-in, which
    // shows it the squatter (not this test process) as uid 4242.
    auto other = other_uid();
    if (!other) GTEST_SKIP() << kNeedOtherUid;
    const std::string squat = th::unique_abstract_name("squat");
    uds::Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    const RawAddress a = raw_abstract(squat);
    ASSERT_EQ(as_other_peer(*other,
                            [&] {
                                return ::bind(s.get(), a.ptr(), a.len) == 0 &&
                                               ::listen(s.get(), 4) == 0
                                           ? 0
                                           : 1;
                            }),
              0);
    th::TempDir tmp;
    th::Process::Options opts = other->server_options;  // for the client, this time
    if (!other->library.empty()) opts.env.push_back("UDS_FAKE_MARK=" + tmp.file("loaded"));
    th::Process c(client_bin(), {"-s", "@" + squat, "my password"}, opts);
    th::Deadline d;
    bool arrived = false;
    while (!arrived && c.running() && !d.expired())
        arrived = th::readable(s.get(), 20);
    uds::Fd conn;
    if (arrived || th::readable(s.get(), 0))
        conn.reset(::accept4(s.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (conn) send_quietly(conn.get(), "MY PASSWORD\n");  // the forged reply
    const int status = c.wait_exit();
    const std::string got =
        conn ? th::read_to_eof(conn.get(), th::Deadline{th::milliseconds{500}}) : "";
    if (!other->library.empty() && ::access(tmp.file("loaded").c_str(), F_OK) != 0)
        GTEST_SKIP() << "need root: the SO_PEERCRED stand-in did not load into the client";
    const std::string uid = std::to_string(other->uid);
    EXPECT_EQ(got, "") << th::why("the client sent its request to a squatter running as uid " +
                                  uid +
                                  ": a name is not an identity; check SO_PEERCRED (step C2a)");
    EXPECT_EQ(status, 1) << th::why("the client must refuse a squatter and exit 1 (step C2a)");
    EXPECT_EQ(c.out(), "") << th::why("the client printed the squatter's forged reply (step C2a)");
    EXPECT_EQ(count_of(c.err(), "\n"), 1u) << th::why("one clear line on stderr (step C2a)");
    EXPECT_TRUE(contains(c.err(), "uid " + uid))
        << th::why("the client's message must name the squatter's uid (step C2a)");
}

TEST_F(Ch02ClientSteps, C3_Send_SendsTheRequestLine) {
    auto c = client({"hello"});
    std::string why_not;
    uds::Fd conn = accept_one(*c, &why_not);
    ASSERT_TRUE(conn.valid()) << th::why(why_not);
    EXPECT_EQ(th::read_line(conn.get()), "hello\n")
        << th::why("the server must receive the request line 'hello\\n' (step C3)" + ended(*c));
}

TEST_F(Ch02ClientSteps, C3_Send_AServerThatClosedCostsAnErrorNotASignal) {
    auto c = client({});  // reads stdin: it sends only when we write a line
    std::string why_not;
    uds::Fd conn = accept_one(*c, &why_not);
    ASSERT_TRUE(conn.valid()) << th::why(why_not);
    conn.reset();  // the server goes away before the request
    c->write_stdin("anyone there?\n");
    c->close_stdin();
    const int status = c->wait_exit();
    EXPECT_EQ(status, 1) << th::why(
        "a server that closed must make the client say so and exit 1, "
        "not kill it: send with MSG_NOSIGNAL (step C3)" +
        ended(*c));
    EXPECT_FALSE(c->err().empty()) << th::why("the client must say what went wrong (step C3)");
}

TEST_F(Ch02ClientSteps, C4_Read_PrintsAReplyThatArrivesInPieces) {
    auto c = client({"hello"});
    std::string why_not;
    uds::Fd conn = accept_one(*c, &why_not);
    ASSERT_TRUE(conn.valid()) << th::why(why_not);
    ASSERT_EQ(th::read_line(conn.get()), "hello\n") << th::why("no request (step C3)" + ended(*c));
    th::send_all(conn.get(), "HEL");
    // Half a line: a client that takes one read() for the reply prints it now.
    (void)c->wait_stdout("HEL", th::Deadline{th::milliseconds{150}});
    th::send_all(conn.get(), "LO\n");
    EXPECT_EQ(c->wait_exit(), 0) << th::why("the client must exit 0 after its reply" + ended(*c));
    EXPECT_EQ(c->out(), "HELLO\n")
        << th::why("a reply that arrives in two pieces is one line: read until '\\n' (step C4)");
}

TEST_F(Ch02ClientSteps, C4_Read_TwoRepliesInOneReadAreTwoLines) {
    auto c = client({"a\nb"});  // one MESSAGE of two lines: two requests, two replies
    std::string why_not;
    uds::Fd conn = accept_one(*c, &why_not);
    ASSERT_TRUE(conn.valid()) << th::why(why_not);
    ASSERT_EQ(th::read_line(conn.get()), "a\n") << th::why("no request (step C3)" + ended(*c));
    th::send_all(conn.get(), "A\nB\n");
    EXPECT_EQ(c->wait_exit(), 0) << th::why("the client must exit 0 after its replies" + ended(*c));
    EXPECT_EQ(c->out(), "A\nB\n") << th::why(
        "two replies in one read are two lines, each printed once (step C4)");
}

TEST_F(Ch02ClientSteps, C4_Read_AServerThatClosesBeforeReplyingIsAnError) {
    auto c = client({"hello"});
    std::string why_not;
    uds::Fd conn = accept_one(*c, &why_not);
    ASSERT_TRUE(conn.valid()) << th::why(why_not);
    ASSERT_EQ(th::read_line(conn.get()), "hello\n") << th::why("no request (step C3)" + ended(*c));
    conn.reset();
    EXPECT_EQ(c->wait_exit(), 1) << th::why(
        "read() returning 0 before the reply is an error: exit "
        "1 with a message (step C4)" +
        ended(*c));
    EXPECT_EQ(c->out(), "") << th::why("no reply came, so none may be printed (step C4)");
}

TEST_F(Ch02ClientSteps, C4_Read_ReportsARefusalAndExits1) {
    auto c = client({"let me in"});
    std::string why_not;
    uds::Fd conn = accept_one(*c, &why_not);
    ASSERT_TRUE(conn.valid()) << th::why(why_not);
    ASSERT_EQ(th::read_line(conn.get()), "let me in\n")
        << th::why("no request (step C3)" + ended(*c));
    th::send_all(conn.get(), "ERROR not allowed (uid 65534)\n");
    ::shutdown(conn.get(), SHUT_WR);
    EXPECT_EQ(c->wait_exit(), 1) << th::why("a refusal must end the client with exit 1" +
                                            ended(*c));
    EXPECT_EQ(c->out(), "ERROR not allowed (uid 65534)\n")
        << th::why("the client prints the refusal it got (step C4)");
    EXPECT_TRUE(contains(c->err(), "refused"))
        << th::why("the client must explain the refusal on stderr");
}

}  // namespace
