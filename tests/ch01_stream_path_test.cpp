// Chapter 01 tests: the real server and client binaries (Ch01Contract, Ch01Server, Ch01Client,
// Ch01Interop), and the kernel behaviour 01-stream-path/README.md claims (Ch01Semantics).
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <memory>
#include <type_traits>

#include <gtest/gtest.h>

#include "harness.hpp"
#include "uds.hpp"

namespace {

const std::string kChapter = "01-stream-path";

class Ch01 : public ::testing::Test {
  protected:
    th::TempDir tmp;
    std::string sock = tmp.file("s.sock");
    uds::Address addr = uds::Address::path(sock);

    std::unique_ptr<th::Process> start_server() { return start_server_with({"-s", sock}); }
    std::unique_ptr<th::Process> start_server_with(const std::vector<std::string>& args,
                                                   th::Process::Options opts = {}) {
        auto p = std::make_unique<th::Process>(th::bin(kChapter, "server"), args, opts);
        EXPECT_TRUE(p->wait_stderr("listening on ")) << "server never got ready:\n" << p->err();
        return p;
    }
    th::Result client(std::vector<std::string> args, std::string_view input = {},
                      th::Process::Options opts = {}) {
        args.insert(args.begin(), {"-s", sock});
        return th::run(th::bin(kChapter, "client"), args, input, opts);
    }
    // One request/response over a raw socket, like any outside client would do it.
    std::string ask(std::string_view request) {
        uds::Fd c = th::connect_stream(addr);
        th::send_all(c.get(), request);
        ::shutdown(c.get(), SHUT_WR);
        return th::read_to_eof(c.get());
    }
};

// ------------------------------------------------------------------ the service contract
using Ch01Contract = Ch01;

TEST_F(Ch01Contract, ClientArgumentsAreRequestsAndRepliesArePrinted) {
    auto server = start_server();
    auto r = client({"hello, world", "你好 abc"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "HELLO, WORLD\n你好 ABC\n");
}

TEST_F(Ch01Contract, ClientReadsStdinLinesUntilEof) {
    auto server = start_server();
    auto r = client({}, "one\ntwo\n\nthree");  // the last line has no newline
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "ONE\nTWO\n\nTHREE\n");
}

TEST_F(Ch01Contract, Utf8CarriageReturnAndNulPassThroughUnchanged) {
    auto server = start_server();
    const char req[] = "你好 abc\r\0xyz\n";
    const char want[] = "你好 ABC\r\0XYZ\n";
    EXPECT_EQ(ask(std::string(req, sizeof req - 1)), std::string(want, sizeof want - 1));
}

TEST_F(Ch01Contract, RequestSplitAcrossWritesIsAnsweredOnceComplete) {
    auto server = start_server();
    uds::Fd c = th::connect_stream(addr);
    th::send_all(c.get(), "hel");
    EXPECT_FALSE(th::readable(c.get(), 100)) << "replied before the line was complete";
    th::send_all(c.get(), "lo wor");
    th::send_all(c.get(), "ld\n");
    EXPECT_EQ(th::read_line(c.get()), "HELLO WORLD\n");
}

TEST_F(Ch01Contract, ManyRequestsInOneWriteAreAnsweredInOrder) {
    auto server = start_server();
    std::string req, want;
    for (int i = 0; i < 2000; ++i) {
        req += "line " + std::to_string(i) + " abc\n";
        want += "LINE " + std::to_string(i) + " ABC\n";
    }
    EXPECT_EQ(ask(req), want);
}

TEST_F(Ch01Contract, FinalLineWithoutNewlineIsAnswered) {
    auto server = start_server();
    EXPECT_EQ(ask("first\ntail"), "FIRST\nTAIL\n");
}

TEST_F(Ch01Contract, LineOf4096BytesIsServed) {
    auto server = start_server();
    std::string line(4096, 'a');
    EXPECT_EQ(ask(line + "\n"), std::string(4096, 'A') + "\n");
}

TEST_F(Ch01Contract, OverlongLineGetsErrorAndCloseAndTheServerGoesOn) {
    auto server = start_server();
    uds::Fd c = th::connect_stream(addr);
    th::send_all(c.get(), "ok\n" + std::string(4097, 'a') + "\nnever answered\n");
    int err = 0;
    std::string got = th::read_to_eof(c.get(), th::Deadline{}, &err);
    EXPECT_EQ(got, "OK\nERROR line too long (max 4096 bytes)\n");
    EXPECT_EQ(ask("next\n"), "NEXT\n");
}

TEST_F(Ch01Contract, OverlongLineWithoutAnyNewlineIsRefusedToo) {
    auto server = start_server();
    uds::Fd c = th::connect_stream(addr);
    // The server may refuse and close before all of it is sent: EPIPE is fine here.
    const std::string big(100000, 'b');
    [[maybe_unused]] ssize_t n = ::send(c.get(), big.data(), big.size(), MSG_NOSIGNAL);
    EXPECT_EQ(th::read_to_eof(c.get()), "ERROR line too long (max 4096 bytes)\n");
}

TEST_F(Ch01Contract, HugeRequestFromTheClientBinaryGetsTheErrorLine) {
    auto server = start_server();
    auto r = client({std::string(100000, 'x')});  // one argv string may hold up to 128 KiB
    EXPECT_EQ(r.out, "ERROR line too long (max 4096 bytes)\n") << r.err;
    EXPECT_EQ(r.status, 0);
    EXPECT_EQ(ask("still here\n"), "STILL HERE\n");
}

// ------------------------------------------------------------------ the server
using Ch01Server = Ch01;

TEST_F(Ch01Server, ClientVanishingMidLineLeavesNoDescriptorBehind) {
    auto server = start_server();
    EXPECT_EQ(ask("warm up\n"), "WARM UP\n");
    // The server is iterative: once a later client is answered, it has finished with the
    // earlier ones, so its descriptor count is exact at that moment.
    uds::Fd probe = th::connect_stream(addr);
    th::send_all(probe.get(), "x\n");
    ASSERT_EQ(th::read_line(probe.get()), "X\n");
    const int with_one_client = th::count_fds(server->pid());
    probe.reset();
    for (int i = 0; i < 20; ++i) {
        uds::Fd c = th::connect_stream(addr);
        th::send_all(c.get(), "half a li");  // then vanish
    }
    for (int i = 0; i < 20; ++i) {  // and some that vanish with unread replies (ECONNRESET/EPIPE)
        uds::Fd c = th::connect_stream(addr);
        th::send_all(c.get(), std::string(3000, 'r') + "\n" + std::string(3000, 'r') + "\n");
    }
    uds::Fd last = th::connect_stream(addr);
    th::send_all(last.get(), "after\n");
    ASSERT_EQ(th::read_line(last.get()), "AFTER\n");
    EXPECT_EQ(th::count_fds(server->pid()), with_one_client);
    EXPECT_TRUE(server->running());
}

TEST_F(Ch01Server, LogsPeerCredentialsAndThatTheClientIsUnnamed) {
    auto server = start_server();
    EXPECT_EQ(ask("x\n"), "X\n");
    std::string want = "peer pid=" + std::to_string(::getpid()) +
                       " uid=" + std::to_string(::getuid()) + " gid=" + std::to_string(::getgid()) +
                       "; getsockname=" + sock + " getpeername=(unnamed)";
    EXPECT_TRUE(server->wait_stderr(want)) << server->err();
}

TEST_F(Ch01Server, StaleSocketFileIsRemovedAndTheServerStarts) {
    {
        uds::Fd s{::socket(AF_UNIX, SOCK_STREAM, 0)};
        ASSERT_EQ(::bind(s.get(), addr.sockaddr_ptr(), addr.length()), 0);
    }  // closed without unlink: a stale file, as after a crash
    auto server = start_server();
    EXPECT_NE(server->err().find("removed stale socket file " + sock), std::string::npos)
        << server->err();
    EXPECT_EQ(ask("fresh\n"), "FRESH\n");
}

TEST_F(Ch01Server, LiveServerIsNeverDisplaced) {
    auto first = start_server();
    struct stat before {};
    ASSERT_EQ(::lstat(sock.c_str(), &before), 0);
    auto second = th::run(th::bin(kChapter, "server"), {"-s", sock});
    EXPECT_EQ(second.status, 1);
    EXPECT_NE(second.err.find("server: bind " + sock + ": a server is already listening there"),
              std::string::npos)
        << second.err;
    struct stat after {};
    ASSERT_EQ(::lstat(sock.c_str(), &after), 0);
    EXPECT_EQ(before.st_ino, after.st_ino) << "the live server's socket file was replaced";
    EXPECT_EQ(ask("still mine\n"), "STILL MINE\n");
}

TEST_F(Ch01Server, PathThatIsNotASocketIsRefusedAndKept) {
    { uds::Fd f{::open(sock.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600)}; }
    auto r = th::run(th::bin(kChapter, "server"), {"-s", sock});
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("not a socket"), std::string::npos) << r.err;
    struct stat st {};
    ASSERT_EQ(::lstat(sock.c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode));
}

TEST_F(Ch01Server, PathTooLongIsRejectedWithExit2) {
    std::string longpath = "/tmp/" + std::string(103, 'p');  // 108 bytes
    auto r = th::run(th::bin(kChapter, "server"), {"-s", longpath});
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("108 bytes; the limit is 107"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("usage:"), std::string::npos);
}

class Ch01Signals : public Ch01, public ::testing::WithParamInterface<int> {};

TEST_P(Ch01Signals, StopsCleanlyUnlinksItsSocketAndExits0) {
    auto server = start_server();
    uds::Fd idle = th::connect_stream(addr);  // a client is connected and silent
    th::send_all(idle.get(), "x\n");
    ASSERT_EQ(th::read_line(idle.get()), "X\n");
    server->signal(GetParam());
    EXPECT_EQ(server->wait_exit(), 0) << server->err();
    EXPECT_NE(::access(sock.c_str(), F_OK), 0) << "socket file left behind";
    EXPECT_NE(server->err().find("stopping"), std::string::npos);
}

TEST_P(Ch01Signals, SignalRightAfterTheReadyLineIsNotLost) {
    // The signal may arrive before the server blocks in its first wait: it must not hang.
    for (int i = 0; i < 10; ++i) {
        auto server = start_server();
        server->signal(GetParam());
        ASSERT_EQ(server->wait_exit(), 0) << server->err();
    }
}

INSTANTIATE_TEST_SUITE_P(Term, Ch01Signals, ::testing::Values(SIGTERM, SIGINT),
                         [](const auto& p) { return p.param == SIGTERM ? "SIGTERM" : "SIGINT"; });

TEST_F(Ch01Server, DefaultAddressIsInThePrivatePerUserDirectory) {
    th::Process::Options env;
    env.env = {"XDG_RUNTIME_DIR=" + tmp.path()};
    auto server = start_server_with({}, env);  // no -s
    std::string want = tmp.path() + "/uds-tutorial/01-stream.sock";
    EXPECT_NE(server->err().find("listening on " + want), std::string::npos) << server->err();
    struct stat st {};
    ASSERT_EQ(::lstat((tmp.path() + "/uds-tutorial").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0700u);
    ASSERT_EQ(::lstat(want.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    auto r = th::run(th::bin(kChapter, "client"), {"default"}, {}, env);
    EXPECT_EQ(r.out, "DEFAULT\n") << r.err;
}

TEST_F(Ch01Server, UsageErrorsExit2AndHelpExits0) {
    auto bad = th::run(th::bin(kChapter, "server"), {"--bogus"});
    EXPECT_EQ(bad.status, 2);
    EXPECT_NE(bad.err.find("unknown option '--bogus'"), std::string::npos) << bad.err;
    auto extra = th::run(th::bin(kChapter, "server"), {"-s", sock, "extra"});
    EXPECT_EQ(extra.status, 2);
    auto empty = th::run(th::bin(kChapter, "server"), {"-s", "@"});
    EXPECT_EQ(empty.status, 2);
    auto help = th::run(th::bin(kChapter, "server"), {"--help"});
    EXPECT_EQ(help.status, 0);
    EXPECT_NE(help.out.find("usage: server"), std::string::npos);
}

TEST_F(Ch01Server, ManyClientsLeaveTheDescriptorCountWhereItWas) {
    auto server = start_server();
    EXPECT_EQ(ask("first\n"), "FIRST\n");
    uds::Fd probe = th::connect_stream(addr);
    th::send_all(probe.get(), "p\n");
    ASSERT_EQ(th::read_line(probe.get()), "P\n");
    const int baseline = th::count_fds(server->pid());
    probe.reset();
    for (int i = 0; i < 100; ++i)
        ASSERT_EQ(ask("n\n"), "N\n");
    probe = th::connect_stream(addr);
    th::send_all(probe.get(), "p\n");
    ASSERT_EQ(th::read_line(probe.get()), "P\n");
    EXPECT_EQ(th::count_fds(server->pid()), baseline);
}

// ------------------------------------------------------------------ the client
using Ch01Client = Ch01;

TEST_F(Ch01Client, NoServerGivesOneClearLineAndExit1) {
    auto r = client({"hi"});
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, "client: connect " + sock +
                         ": No such file or directory (is the server running? start it with: "
                         "01-stream-path/server -s " +
                         sock + ")\n");
}

TEST_F(Ch01Client, StaleSocketFileGivesConnectionRefused) {
    {
        uds::Fd s{::socket(AF_UNIX, SOCK_STREAM, 0)};
        ASSERT_EQ(::bind(s.get(), addr.sockaddr_ptr(), addr.length()), 0);
    }
    auto r = client({"hi"});
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("connect " + sock + ": Connection refused"), std::string::npos) << r.err;
}

TEST_F(Ch01Client, ServerThatHangsUpBeforeReplyingIsAnError) {
    uds::Fd listener{::socket(AF_UNIX, SOCK_STREAM, 0)};
    ASSERT_EQ(::bind(listener.get(), addr.sockaddr_ptr(), addr.length()), 0);
    ASSERT_EQ(::listen(listener.get(), 4), 0);
    th::Process c(th::bin(kChapter, "client"), {"-s", sock, "hello"});
    ASSERT_TRUE(th::readable(listener.get(), th::kPatience.count()));
    {
        uds::Fd conn{::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC)};
        EXPECT_EQ(th::read_line(conn.get()), "hello\n");
    }  // read the request, then hang up without replying
    EXPECT_EQ(c.wait_exit(), 1);
    EXPECT_NE(c.err().find("closed the connection"), std::string::npos) << c.err();
}

TEST_F(Ch01Client, UsageErrorsExit2) {
    auto r = th::run(th::bin(kChapter, "client"), {"--nope"});
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("usage: client"), std::string::npos);
    auto longp = th::run(th::bin(kChapter, "client"), {"-s", std::string(200, 'x'), "hi"});
    EXPECT_EQ(longp.status, 2);
}

// ------------------------------------------------------------------ outside peers
using Ch01Interop = Ch01;

TEST_F(Ch01Interop, PythonSocketModuleIsServed) {
    if (!th::have_program("python3")) GTEST_SKIP() << "python3 not installed";
    auto server = start_server();
    std::string script =
        "import socket,sys\n"
        "s=socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "s.connect(sys.argv[1])\n"
        "s.sendall('py 你好 abc\\nsecond'.encode())\n"
        "s.shutdown(socket.SHUT_WR)\n"
        "data=b''\n"
        "while True:\n"
        "    b=s.recv(4096)\n"
        "    if not b: break\n"
        "    data+=b\n"
        "sys.stdout.write(data.decode())\n";
    auto r = th::run("/usr/bin/env", {"python3", "-c", script, sock});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "PY 你好 ABC\nSECOND\n");
}

TEST_F(Ch01Interop, SocatIsServed) {
    if (!th::have_program("socat")) GTEST_SKIP() << "socat not installed";
    auto server = start_server();
    auto r = th::run("/usr/bin/env", {"socat", "-t5", "-", "UNIX-CONNECT:" + sock}, "via socat\n");
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "VIA SOCAT\n");
}

// ------------------------------------------------------------------ kernel semantics
// Each test here proves one sentence of 01-stream-path/README.md on this machine.
class Ch01Semantics : public Ch01 {
  protected:
    uds::Fd listener() {
        uds::Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
        EXPECT_EQ(::bind(s.get(), addr.sockaddr_ptr(), addr.length()), 0) << strerror(errno);
        EXPECT_EQ(::listen(s.get(), 8), 0);
        return s;
    }
    // A connected pair through a real listener: {client, accepted}.
    std::pair<uds::Fd, uds::Fd> connected_pair(const uds::Fd& l) {
        uds::Fd c = th::connect_stream(addr);
        uds::Fd a{::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC)};
        EXPECT_TRUE(a.valid());
        return {std::move(c), std::move(a)};
    }
};

TEST_F(Ch01Semantics, BindCreatesASocketFile) {
    uds::Fd l = listener();
    struct stat st {};
    ASSERT_EQ(::lstat(sock.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
}

TEST_F(Ch01Semantics, BindFailsWithEaddrinuseWhenThePathExists) {
    uds::Fd l = listener();
    uds::Fd again{::socket(AF_UNIX, SOCK_STREAM, 0)};
    EXPECT_EQ(::bind(again.get(), addr.sockaddr_ptr(), addr.length()), -1);
    EXPECT_EQ(errno, EADDRINUSE);
    // Any file at all blocks bind, not only sockets.
    auto file = uds::Address::path(tmp.file("plain"));
    { uds::Fd f{::open(file.name().c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600)}; }
    EXPECT_EQ(::bind(again.get(), file.sockaddr_ptr(), file.length()), -1);
    EXPECT_EQ(errno, EADDRINUSE);
}

TEST_F(Ch01Semantics, ClosingASocketLeavesItsFileBehind) {
    { uds::Fd l = listener(); }
    struct stat st {};
    EXPECT_EQ(::lstat(sock.c_str(), &st), 0) << "close() removed the file";
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
}

TEST_F(Ch01Semantics, ConnectToAStaleSocketFileIsRefused) {
    { uds::Fd l = listener(); }
    uds::Fd c{::socket(AF_UNIX, SOCK_STREAM, 0)};
    EXPECT_EQ(::connect(c.get(), addr.sockaddr_ptr(), addr.length()), -1);
    EXPECT_EQ(errno, ECONNREFUSED);
}

TEST_F(Ch01Semantics, ConnectToAMissingPathIsEnoent) {
    uds::Fd c{::socket(AF_UNIX, SOCK_STREAM, 0)};
    EXPECT_EQ(::connect(c.get(), addr.sockaddr_ptr(), addr.length()), -1);
    EXPECT_EQ(errno, ENOENT);
}

TEST_F(Ch01Semantics, ConnectNeedsWritePermissionOnTheSocketFileNotRead) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to an unprivileged uid";
    ASSERT_EQ(::chmod(tmp.path().c_str(), 0711), 0);  // others may search the directory
    uds::Fd l = listener();
    auto try_connect = [&] {
        uds::Fd c{::socket(AF_UNIX, SOCK_STREAM, 0)};
        return ::connect(c.get(), addr.sockaddr_ptr(), addr.length()) == 0 ? 0 : errno;
    };
    ASSERT_EQ(::chmod(sock.c_str(), 0755), 0);  // read, no write for others
    EXPECT_EQ(th::run_as_nobody(try_connect), EACCES);
    ASSERT_EQ(::chmod(sock.c_str(), 0722), 0);  // write, no read for others
    EXPECT_EQ(th::run_as_nobody(try_connect), 0);
}

TEST_F(Ch01Semantics, ConnectNeedsSearchPermissionOnTheDirectory) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to an unprivileged uid";
    uds::Fd l = listener();
    ASSERT_EQ(::chmod(sock.c_str(), 0777), 0);
    ASSERT_EQ(::chmod(tmp.path().c_str(), 0700), 0);  // no search permission for others
    auto try_connect = [&] {
        uds::Fd c{::socket(AF_UNIX, SOCK_STREAM, 0)};
        return ::connect(c.get(), addr.sockaddr_ptr(), addr.length()) == 0 ? 0 : errno;
    };
    EXPECT_EQ(th::run_as_nobody(try_connect), EACCES);
}

TEST_F(Ch01Semantics, RootBypassesSocketFilePermissions) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    uds::Fd l = listener();
    ASSERT_EQ(::chmod(sock.c_str(), 0000), 0);
    uds::Fd c{::socket(AF_UNIX, SOCK_STREAM, 0)};
    EXPECT_EQ(::connect(c.get(), addr.sockaddr_ptr(), addr.length()), 0) << strerror(errno);
}

TEST_F(Ch01Semantics, ConnectSucceedsBeforeAcceptUntilTheBacklogIsFull) {
    uds::Fd l{::socket(AF_UNIX, SOCK_STREAM, 0)};
    ASSERT_EQ(::bind(l.get(), addr.sockaddr_ptr(), addr.length()), 0);
    ASSERT_EQ(::listen(l.get(), 2), 0);
    std::vector<uds::Fd> clients;
    int err = 0;
    for (int i = 0; i < 10 && err == 0; ++i) {
        uds::Fd c{::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0)};
        if (::connect(c.get(), addr.sockaddr_ptr(), addr.length()) == 0)
            clients.push_back(std::move(c));
        else
            err = errno;
    }
    // Nobody called accept(), yet connections were made: they wait in the listen queue.
    EXPECT_GE(clients.size(), 2u);
    EXPECT_LE(clients.size(), 3u);  // Linux lets backlog + 1 in
    EXPECT_EQ(err, EAGAIN) << "a non-blocking connect to a full backlog fails with EAGAIN";
    // A blocking connect waits instead; with a send timeout it gives up with EAGAIN after it.
    uds::Fd blocking{::socket(AF_UNIX, SOCK_STREAM, 0)};
    timeval tv{0, 200000};
    ASSERT_EQ(::setsockopt(blocking.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), 0);
    auto t0 = th::Clock::now();
    EXPECT_EQ(::connect(blocking.get(), addr.sockaddr_ptr(), addr.length()), -1);
    EXPECT_EQ(errno, EAGAIN);
    EXPECT_GE(th::Clock::now() - t0, std::chrono::milliseconds(150)) << "it did not wait";
    // Accepting one makes room again.
    uds::Fd a{::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC)};
    ASSERT_TRUE(a.valid());
    uds::Fd c{::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0)};
    EXPECT_EQ(::connect(c.get(), addr.sockaddr_ptr(), addr.length()), 0) << strerror(errno);
}

TEST_F(Ch01Semantics, AcceptedSocketHasTheListenersNameAndTheClientIsUnnamed) {
    uds::Fd l = listener();
    uds::Fd c = th::connect_stream(addr);
    sockaddr_un peer{};
    socklen_t peer_len = sizeof peer;
    uds::Fd a{::accept4(l.get(), reinterpret_cast<sockaddr*>(&peer), &peer_len, SOCK_CLOEXEC)};
    ASSERT_TRUE(a.valid());
    // accept() reports the client's address: it never bound, so only the family is there.
    EXPECT_EQ(peer_len, sizeof(sa_family_t));
    // The accepted socket carries the listener's name; there is no new "port".
    EXPECT_EQ(uds::local_address(a.get()), addr);
    EXPECT_EQ(uds::peer_address(a.get()).length(), sizeof(sa_family_t));
    EXPECT_EQ(uds::peer_address(a.get()).str(), "(unnamed)");
    // And from the client's side: unnamed itself, connected to the path.
    EXPECT_EQ(uds::local_address(c.get()).kind(), uds::Address::Kind::Unnamed);
    EXPECT_EQ(uds::peer_address(c.get()), addr);
}

TEST_F(Ch01Semantics, TwoWritesCanArriveAsOneRead) {
    uds::Fd l = listener();
    auto [c, a] = connected_pair(l);
    ASSERT_EQ(::write(c.get(), "ab\n", 3), 3);
    ASSERT_EQ(::write(c.get(), "cd\n", 3), 3);
    char buf[64];
    ssize_t n = ::read(a.get(), buf, sizeof buf);
    EXPECT_EQ(std::string(buf, static_cast<size_t>(n > 0 ? n : 0)), "ab\ncd\n");
}

TEST_F(Ch01Semantics, OneWriteCanArriveInSeveralReads) {
    uds::Fd l = listener();
    auto [c, a] = connected_pair(l);
    ASSERT_EQ(::write(c.get(), "hello\n", 6), 6);
    char buf[4];
    EXPECT_EQ(::read(a.get(), buf, 4), 4);
    EXPECT_EQ(::read(a.get(), buf, 4), 2);
}

TEST_F(Ch01Semantics, ReadReturnsZeroAfterThePeerCloses) {
    uds::Fd l = listener();
    auto [c, a] = connected_pair(l);
    ASSERT_EQ(::write(c.get(), "x", 1), 1);
    c.reset();
    char buf[8];
    EXPECT_EQ(::read(a.get(), buf, sizeof buf), 1);  // data first
    EXPECT_EQ(::read(a.get(), buf, sizeof buf), 0);  // then end of file
}

TEST_F(Ch01Semantics, CloseWithUnreadDataResetsThePeer) {
    uds::Fd l = listener();
    auto [c, a] = connected_pair(l);
    ASSERT_EQ(::write(c.get(), "unread", 6), 6);
    a.reset();  // the server closes without reading what the client sent
    char buf[8];
    EXPECT_EQ(::read(c.get(), buf, sizeof buf), -1);
    EXPECT_EQ(errno, ECONNRESET);
}

TEST_F(Ch01Semantics, WritingToAClosedPeerGivesEpipeWithMsgNosignalAndKillsWithout) {
    uds::Fd l = listener();
    auto [c, a] = connected_pair(l);
    a.reset();
    auto child = [fd = c.get()](int flags) {  // (clang 14 cannot capture a structured binding)
        pid_t pid = ::fork();
        if (pid == 0) {
            std::signal(SIGPIPE, SIG_DFL);
            ssize_t n = ::send(fd, "x", 1, flags);
            ::_exit(n == -1 && errno == EPIPE ? 0 : 1);
        }
        int st = 0;
        ::waitpid(pid, &st, 0);
        return st;
    };
    int with = child(MSG_NOSIGNAL);
    ASSERT_TRUE(WIFEXITED(with));
    EXPECT_EQ(WEXITSTATUS(with), 0) << "send(MSG_NOSIGNAL) did not fail with EPIPE";
    int without = child(0);
    ASSERT_TRUE(WIFSIGNALED(without)) << "plain send did not raise SIGPIPE";
    EXPECT_EQ(WTERMSIG(without), SIGPIPE);
}

TEST_F(Ch01Semantics, BindAndAcceptTakeSockaddrAndSocklenT) {
    // The seed article shows struct sockaddr_un* and size_t; the real prototypes differ.
    static_assert(
        std::is_same_v<decltype(&::bind), int (*)(int, const sockaddr*, socklen_t) noexcept>);
    static_assert(std::is_same_v<decltype(&::connect), int (*)(int, const sockaddr*, socklen_t)>);
    static_assert(std::is_same_v<decltype(&::accept), int (*)(int, sockaddr*, socklen_t*)>);
    SUCCEED();
}

}  // namespace

// ------------------------------------------------------------------ one test per lesson step
// make grade-01 runs these (with the other Ch01 program tests) against a student's programs;
// the names say which step of server.cpp / client.cpp is missing or wrong.
namespace {

using Ch01Steps = Ch01;

TEST_F(Ch01Steps, ServerStep1to3_SocketBindListen_CreateTheSocketFile) {
    auto server = start_server();
    struct stat st {};
    ASSERT_EQ(::lstat(sock.c_str(), &st), 0) << "no file at " << sock << ": was bind() called?";
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    uds::Fd c{::socket(AF_UNIX, SOCK_STREAM, 0)};
    EXPECT_EQ(::connect(c.get(), addr.sockaddr_ptr(), addr.length()), 0)
        << "connect failed (" << strerror(errno) << "): was listen() called?";
}

TEST_F(Ch01Steps, ServerStep4_Accept_TakesTheConnection) {
    auto server = start_server();
    uds::Fd c = th::connect_stream(addr);
    EXPECT_TRUE(server->wait_stderr("accepted a connection")) << server->err();
}

TEST_F(Ch01Steps, ServerStep5_ReadAndSend_AnswerALine) {
    auto server = start_server();
    uds::Fd c = th::connect_stream(addr);
    th::send_all(c.get(), "step five\n");
    EXPECT_EQ(th::read_line(c.get()), "STEP FIVE\n");
}

TEST_F(Ch01Steps, ServerStep6_Close_ThenServesTheNextClient) {
    auto server = start_server();
    EXPECT_EQ(ask("first\n"), "FIRST\n");
    EXPECT_EQ(ask("second\n"), "SECOND\n");
}

TEST_F(Ch01Steps, ServerStep7_Unlink_RemovesItsSocketFileOnSigterm) {
    auto server = start_server();
    ASSERT_EQ(::access(sock.c_str(), F_OK), 0) << "no socket file to remove: do steps 1-3 first";
    server->signal(SIGTERM);
    EXPECT_EQ(server->wait_exit(), 0) << server->err();
    EXPECT_NE(::access(sock.c_str(), F_OK), 0) << "the socket file is still there";
}

// The client against a hand-written server, so each client step is checked on its own.
class Ch01ClientSteps : public Ch01 {
protected:
    uds::Fd listener{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    void SetUp() override {
        ASSERT_EQ(::bind(listener.get(), addr.sockaddr_ptr(), addr.length()), 0);
        ASSERT_EQ(::listen(listener.get(), 4), 0);
    }
    // Waits for the client's connection, giving up early if the client has already exited.
    uds::Fd accept_one(th::Process& client) {
        th::Deadline d;
        while (!th::readable(listener.get(), 100))
            if (d.expired() || !client.running()) return {};
        return uds::Fd{::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC)};
    }
};

TEST_F(Ch01ClientSteps, ClientStep1and2_SocketConnect_ReachTheServer) {
    th::Process c(th::bin(kChapter, "client"), {"-s", sock, "hello"});
    uds::Fd conn = accept_one(c);
    EXPECT_TRUE(conn.valid()) << "the client never connected:\n" << c.err();
}

TEST_F(Ch01ClientSteps, ClientStep3_Send_SendsTheRequestLine) {
    th::Process c(th::bin(kChapter, "client"), {"-s", sock, "hello"});
    uds::Fd conn = accept_one(c);
    ASSERT_TRUE(conn.valid()) << c.err();
    EXPECT_EQ(th::read_line(conn.get()), "hello\n") << c.err();
}

TEST_F(Ch01ClientSteps, ClientStep4_Read_PrintsTheReply) {
    th::Process c(th::bin(kChapter, "client"), {"-s", sock, "hello"});
    uds::Fd conn = accept_one(c);
    ASSERT_TRUE(conn.valid()) << c.err();
    ASSERT_EQ(th::read_line(conn.get()), "hello\n") << c.err();
    th::send_all(conn.get(), "HEL");  // in two pieces: the client must read until the newline
    th::send_all(conn.get(), "LO\n");
    EXPECT_EQ(c.wait_exit(), 0) << c.err();
    EXPECT_EQ(c.out(), "HELLO\n");
}

}  // namespace
