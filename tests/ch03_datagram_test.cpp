// Chapter 03: the datagram service contract, with the real binaries.
//   Ch03Contract  03-datagram/server and client, driven like any outside program would:
//                 raw sockets bound to a path or autobound, Python, socat
// The programs come from th::bin("03-datagram", ...), so make grade-03 grades your own.
// (The steps are in ch03_steps_test.cpp, the hostile peers in ch03_hostile_test.cpp.)
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ch03_peers.hpp"
#include "harness.hpp"
#include "uds.hpp"

namespace {

using namespace ch03;

// Every file and directory under dir, relative to it.
std::set<std::string> tree(const std::string& dir) {
    std::set<std::string> out;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
        out.insert(std::filesystem::relative(e.path(), dir).string());
    return out;
}

// SIGSTOP and wait until the process really is stopped (waitid WSTOPPED, no polling).
void pause_process(th::Process& p) {
    uds::check(::kill(p.pid(), SIGSTOP), "test setup: kill");
    siginfo_t info{};
    uds::check(::waitid(P_PID, static_cast<id_t>(p.pid()), &info, WSTOPPED), "waitid");
}

// The first line of a program's stderr, for context (never the whole log).
std::string first_line(const std::string& text) {
    return "\n  said: " + text.substr(0, std::min<std::size_t>(text.find('\n'), 200));
}

class Ch03Contract : public ::testing::Test {
  protected:
    th::TempDir dir;
    uds::Address addr = uds::Address::path(dir.file("s.sock"));
};

// ------------------------------------------------------------------ the server

TEST_F(Ch03Contract, DefaultAddressIsInTheRuntimeDir) {
    th::Process::Options env{{"XDG_RUNTIME_DIR=" + dir.path()}, {}};
    const std::string expected = dir.path() + "/uds-tutorial/03-datagram.sock";
    auto server = th::start_server(server_bin(), {}, "bound to " + expected, env);
    auto r = th::run(client_bin(), {"default"}, {}, env);
    EXPECT_EQ(r.status, 0) << th::why("with no -s both programs use the per-user default path")
                           << first_line(r.err);
    EXPECT_EQ(r.out, "DEFAULT\n") << th::why("the client printed the reply");
}

TEST_F(Ch03Contract, EmptyBinaryAndUtf8DatagramsAreServedByteForByte) {
    auto server = start_server(addr);
    uds::Fd peer = autobound();
    ASSERT_EQ(ask(peer.get(), "", addr), "") << th::why("an empty datagram gets an empty reply");
    const std::string binary("a\0b\r\nz\xff\x7f{`", 11);
    EXPECT_EQ(ask(peer.get(), binary, addr), std::string("A\0B\r\nZ\xff\x7f{`", 11))
        << th::why("only a-z change; every other byte comes back as it was");
    EXPECT_EQ(ask(peer.get(), "你好 abc", addr), "你好 ABC") << th::why("UTF-8 is left alone");
    EXPECT_EQ(ask(peer.get(), "a\nb", addr), "A\nB")
        << th::why("a newline is just a byte of the datagram");
}

TEST_F(Ch03Contract, OversizedDatagramsGetTheErrorAndNothingIsCutSilently) {
    auto server = start_server(addr);
    uds::Fd peer = autobound();
    ASSERT_EQ(ask(peer.get(), std::string(4097, 'm'), addr), kTooLong)
        << th::why("the error reply is exactly the text, without a newline");
    EXPECT_EQ(ask(peer.get(), std::string(100000, 'm'), addr).substr(0, 60), kTooLong)
        << th::why("a 100000-byte datagram gets the error reply");
    EXPECT_EQ(ask(peer.get(), "still here", addr), "STILL HERE")
        << th::why("the server goes on after an oversized datagram");
    EXPECT_TRUE(server->wait_stderr("100000 bytes from"))
        << th::why("the log gives the real size of the datagram");
}

TEST_F(Ch03Contract, ServerGoesOnAfterSendersVanishBeforeTheirReply) {
    auto server = start_server(addr);
    pause_process(*server);  // so every sender below is gone before the server reads
    {
        uds::Fd autob = autobound();
        ASSERT_EQ(send_to(autob.get(), "auto", addr), "")
            << th::why("the server's queue takes a datagram");
    }
    {
        uds::Fd by_path = bound(uds::Address::path(dir.file("left.sock")));  // file stays
        ASSERT_EQ(send_to(by_path.get(), "left", addr), "")
            << th::why("the server's queue takes a datagram");
    }
    {
        uds::Fd by_path = bound(uds::Address::path(dir.file("gone.sock")));
        ASSERT_EQ(send_to(by_path.get(), "gone", addr), "")
            << th::why("the server's queue takes a datagram");
        ::unlink(dir.file("gone.sock").c_str());
    }
    uds::check(::kill(server->pid(), SIGCONT), "test setup: kill");
    uds::Fd peer = autobound();
    ASSERT_EQ(ask(peer.get(), "survivor", addr), "SURVIVOR")
        << th::why("a sender that vanished before its reply does not stop the server");
    ASSERT_TRUE(server->wait_stderr("8 bytes from " + uds::local_address(peer.get()).str()))
        << th::why("each datagram is logged");
    EXPECT_EQ(count(server->err(), "has gone away"), 3u) << th::why(
        "each vanished sender is logged as gone: closed autobound, closed path, "
        "removed path");
    EXPECT_TRUE(server->running()) << th::why("the server is still running");
}

TEST_F(Ch03Contract, ServerDescriptorCountStaysFlat) {
    auto server = start_server(addr);
    uds::Fd peer = autobound();
    ASSERT_EQ(ask(peer.get(), "first", addr), "FIRST") << th::why("the server answers");
    const int baseline = th::count_fds(server->pid());
    uds::Address path_addr = uds::Address::path(dir.file("p.sock"));
    for (int i = 0; i < 50; ++i) {
        uds::Fd a = autobound();
        ASSERT_EQ(send_to(a.get(), std::string(static_cast<std::size_t>(i * 100), 'x'), addr), "")
            << th::why("the server's queue takes a datagram");
        uds::Fd unbound = make_socket();
        ASSERT_EQ(send_to(unbound.get(), "unbound", addr), "")
            << th::why("the server's queue takes a datagram");
        uds::Fd by_path = bound(path_addr);  // checked through an O_PATH descriptor
        ASSERT_EQ(send_to(by_path.get(), "path", addr), "")
            << th::why("the server's queue takes a datagram");
        ASSERT_EQ(recv_from(by_path.get()), "PATH")
            << th::why("a sender bound to a path is answered");
        ::unlink(path_addr.name().c_str());
    }
    ASSERT_EQ(ask(peer.get(), "last", addr), "LAST") << th::why("the server answers");  // all done
    EXPECT_EQ(th::count_fds(server->pid()), baseline)
        << th::why("the server holds as many descriptors after 150 datagrams as before");
}

TEST_F(Ch03Contract, ServerHandlesATakenPath) {
    // A regular file: refused and left alone.
    std::string file = dir.file("file");
    std::ofstream(file) << "precious";
    auto r = th::run(server_bin(), {"-s", file});
    EXPECT_EQ(r.status, 1) << th::why("a path that is not a socket is refused, exit 1");
    EXPECT_NE(r.err.find("not a socket"), std::string::npos)
        << th::why("the message says the path is not a socket") << first_line(r.err);
    EXPECT_EQ(std::filesystem::file_size(file), 8u) << th::why("the file is left alone");
    // A live datagram socket: refused, its file untouched.
    uds::Address live_addr = uds::Address::path(dir.file("live.sock"));
    uds::Fd live = bound(live_addr);
    r = th::run(server_bin(), {"-s", live_addr.str()});
    EXPECT_EQ(r.status, 1) << th::why("a live socket's path is refused, exit 1");
    EXPECT_NE(r.err.find("already"), std::string::npos)
        << th::why("the message says a server is already there") << first_line(r.err);
    EXPECT_TRUE(is_socket_file(live_addr.str())) << th::why("the live socket's file is untouched");
    // A stale socket file (its socket is closed): removed, and the server starts.
    live.reset();
    auto server = start_server(live_addr);
    EXPECT_NE(server->err().find("removed stale socket file"), std::string::npos)
        << th::why("the server says it removed a stale socket file");
    EXPECT_EQ(count(server->err(), "bound to"), 1u) << th::why("only the ready line says it");
    uds::Fd peer = autobound();
    EXPECT_EQ(ask(peer.get(), "fresh", live_addr), "FRESH")
        << th::why("the server serves on the path it took over");
}

TEST_F(Ch03Contract, PythonClientsBoundToAPathOrAutoboundGetCorrectReplies) {
    if (!th::have_program("python3")) GTEST_SKIP() << "python3 is not installed";
    auto server = start_server(addr);
    const std::string script = R"py(
import socket, sys
server, mode, tmp, wait = sys.argv[1:5]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(tmp + "/py.sock" if mode == "path" else "")   # "" = autobind
s.settimeout(float(wait))
def up(b): return bytes(c - 32 if 97 <= c <= 122 else c for c in b)
for msg in [b"hello", b"", "你好 abc".encode(), b"a\x00b\r\nz\xff", b"q" * 4096, b"q" * 4097]:
    s.sendto(msg, server)
    data, addr = s.recvfrom(65536)
    want = up(msg) if len(msg) <= 4096 else b"ERROR datagram too long (max 4096 bytes)"
    if data != want or addr != server:
        print("wrong reply", msg[:20], data[:50], addr)
        sys.exit(1)
name = s.getsockname()
if mode == "autobind" and not (isinstance(name, bytes) and name[:1] == b"\0" and len(name) == 6):
    print("not autobound:", name)
    sys.exit(1)
print("ok", name)
)py";
    const std::string wait = std::to_string(patience_ms() / 1000.0);
    for (std::string mode : {"path", "autobind"}) {
        auto r =
            th::run("/usr/bin/env", {"python3", "-c", script, addr.str(), mode, dir.path(), wait});
        EXPECT_EQ(r.status, 0) << th::why("a Python client (" + mode + ") gets correct replies")
                               << first_line(r.out + r.err);
    }
    EXPECT_TRUE(server->wait_stderr("from " + dir.file("py.sock")))
        << th::why("the server logs the Python client's path");
}

TEST_F(Ch03Contract, SocatClientGetsAReply) {
    if (!th::have_program("socat")) GTEST_SKIP() << "socat is not installed";
    auto server = start_server(addr);
    th::Process socat(
        "/usr/bin/env",
        {"socat", "-t", "30", "-", "UNIX-SENDTO:" + addr.str() + ",bind=" + dir.file("c.sock")});
    socat.write_stdin("hello from socat");
    EXPECT_TRUE(socat.wait_stdout("HELLO FROM SOCAT"))
        << th::why("socat bound to a path gets its reply") << first_line(socat.err());
}

// ------------------------------------------------------------------ the client

TEST_F(Ch03Contract, ClientPrintsEachReplyOnItsOwnLine) {
    auto server = start_server(addr);
    auto r = th::run(client_bin(), {"-s", addr.str(), "hello", "你好 abc", "", "x y"});
    EXPECT_EQ(r.status, 0) << th::why("every reply arrived: exit 0") << first_line(r.err);
    EXPECT_EQ(r.out, "HELLO\n你好 ABC\n\nX Y\n") << th::why("each reply on its own line");
    EXPECT_EQ(r.err, "") << th::why("nothing on stderr without -v");
}

TEST_F(Ch03Contract, ClientVerboseLinesComeBeforeTheRepliesOnOnePipe) {
    auto server = start_server(addr);
    // stdout and stderr into one pipe, as `client -v ... 2>&1 | less` or a demo does.
    auto r =
        th::run("/bin/sh", {"-c", "exec \"$0\" -v -s \"$1\" hello 2>&1", client_bin(), addr.str()});
    EXPECT_EQ(r.status, 0) << th::why("every reply arrived: exit 0") << first_line(r.out);
    const auto bound_at = r.out.find("client: bound to @");
    const auto connected_at = r.out.find("client: connected to " + addr.str());
    const auto reply_at = r.out.find("HELLO\n");
    EXPECT_TRUE(bound_at < connected_at && connected_at < reply_at && reply_at != std::string::npos)
        << th::why("-v says which addresses are used, before the replies it describes")
        << first_line(r.out);
}

TEST_F(Ch03Contract, ClientSendsEachStdinLineWithoutItsNewline) {
    auto server = start_server(addr);
    auto r = th::run(client_bin(), {"-s", addr.str()}, "one\ntwo\n\nlast line without newline");
    EXPECT_EQ(r.status, 0) << th::why("every reply arrived: exit 0") << first_line(r.err);
    EXPECT_EQ(r.out, "ONE\nTWO\n\nLAST LINE WITHOUT NEWLINE\n")
        << th::why("each line of stdin is one request; a last line without newline counts");
    EXPECT_TRUE(server->wait_stderr("25 bytes from"))
        << th::why("the last line, without its newline, is 25 bytes");
    EXPECT_EQ(count(server->err(), "3 bytes from"), 2u)
        << th::why("'one' and 'two' are sent without their newline");
    r = th::run(client_bin(), {"-s", addr.str()}, std::string(5000, 'z') + "\n");
    EXPECT_EQ(r.status, 0) << th::why("the ERROR reply is a reply: exit 0") << first_line(r.err);
    EXPECT_EQ(r.out, kTooLong + "\n") << th::why("the client prints the ERROR reply");
}

TEST_F(Ch03Contract, ClientLeavesNoFilesBehind) {
    th::Process::Options env{{"XDG_RUNTIME_DIR=" + dir.path()}, {}};
    const std::string path = dir.path() + "/uds-tutorial/03-datagram.sock";
    auto server = th::start_server(server_bin(), {}, "bound to " + path, env);
    const auto before = tree(dir.path());
    auto r = th::run(client_bin(), {"autobound"}, {}, env);
    EXPECT_EQ(r.out, "AUTOBOUND\n")
        << th::why("an autobound client gets its reply") << first_line(r.err);
    std::string mine = dir.file("client.sock");
    r = th::run(client_bin(), {"--bind", mine, "by path"}, {}, env);
    EXPECT_EQ(r.out, "BY PATH\n") << th::why("a client with --bind PATH gets its reply")
                                  << first_line(r.err);
    EXPECT_TRUE(server->wait_stderr("7 bytes from " + mine))
        << th::why("the client with --bind sent from that path");
    r = th::run(client_bin(), {"--bind", mine, "-s", dir.file("missing"), "x"}, {}, env);
    EXPECT_EQ(r.status, 1) << th::why("no server: exit 1");
    EXPECT_EQ(tree(dir.path()), before) << th::why(
        "an autobound client makes no file, and a --bind file is removed, also after "
        "a failed connect");
}

TEST_F(Ch03Contract, ClientRemovesItsBindFileWhenStoppedBySigintOrSigterm) {
    uds::Fd silent = bound(addr);  // receives, never answers
    for (int sig : {SIGINT, SIGTERM}) {
        for (bool from_stdin : {false, true}) {
            SCOPED_TRACE(std::string(strsignal(sig)) + (from_stdin ? ", reading stdin" : ""));
            std::string mine = dir.file("client.sock");
            std::vector<std::string> args{"-v", "-s",        addr.str(), "--bind",
                                          mine, "--timeout", "60"};
            if (!from_stdin) args.push_back("waiting for a reply");
            th::Process client(client_bin(), args);
            if (from_stdin) {
                ASSERT_TRUE(client.wait_stderr("connected to"))
                    << th::why("with -v the client says it is connected")
                    << first_line(client.err());
            } else {
                ASSERT_EQ(recv_while(silent.get(), client), "waiting for a reply")
                    << th::why("the client sends its message");
            }
            EXPECT_TRUE(is_socket_file(mine)) << th::why("the client's --bind file exists");
            client.signal(sig);
            EXPECT_EQ(client.wait_exit(), 128 + sig)
                << th::why("a client stopped by a signal cleans up, then dies of that signal");
            EXPECT_FALSE(std::filesystem::exists(mine))
                << th::why("a client stopped by a signal removes its --bind file");
        }
    }
}

TEST_F(Ch03Contract, TwoClientsCannotBindTheSamePath) {
    auto server = start_server(addr);
    std::string shared = dir.file("client.sock");  // a "fixed" client path
    uds::Fd first = bound(uds::Address::path(shared));
    auto r = th::run(client_bin(), {"-s", addr.str(), "--bind", shared, "second"});
    EXPECT_EQ(r.status, 1) << th::why("a --bind path that is taken is an error, exit 1");
    EXPECT_NE(r.err.find("bind " + shared + ": " + std::strerror(EADDRINUSE)), std::string::npos)
        << th::why("the message names bind, the path and EADDRINUSE") << first_line(r.err);
    EXPECT_NE(r.err.find("leave --bind out to autobind"), std::string::npos)
        << th::why("the message suggests autobind") << first_line(r.err);
    EXPECT_TRUE(is_socket_file(shared)) << th::why("the other client's file is left alone");
}

TEST_F(Ch03Contract, ClientExplainsWhyItCannotReachTheServer) {
    struct Case {
        std::string path, hint;
    };
    std::ofstream(dir.file("regular")) << "x";
    { uds::Fd gone = bound(uds::Address::path(dir.file("stale.sock"))); }
    uds::Fd stream = bound(uds::Address::path(dir.file("stream.sock")), SOCK_STREAM);
    uds::check(::listen(stream.get(), 1), "listen");
    for (const Case& c : {Case{dir.file("missing"), "is the server running?"},
                          Case{dir.file("regular"), "not a socket"},
                          Case{dir.file("stale.sock"), "nobody is bound there"},
                          Case{dir.file("stream.sock"), "stream"}}) {
        auto r = th::run(client_bin(), {"-s", c.path, "x"});
        EXPECT_EQ(r.status, 1) << th::why("no datagram server at the path: exit 1");
        EXPECT_NE(r.err.find("client: connect " + c.path + ": "), std::string::npos)
            << th::why("the message names connect and the path") << first_line(r.err);
        EXPECT_NE(r.err.find(c.hint), std::string::npos)
            << th::why("the message says what is at the path: " + c.hint) << first_line(r.err);
        EXPECT_EQ(count(r.err, "\n"), 1u) << th::why("one line");
    }
}

TEST_F(Ch03Contract, ClientReportsAMessageTooBigForTheSendBuffer) {
    uds::Fd silent = bound(addr);
    auto r = th::run(client_bin(), {"-s", addr.str()}, std::string(300000, 'b') + "\n");
    EXPECT_EQ(r.status, 1) << th::why("a datagram over the send buffer cannot be sent: exit 1");
    EXPECT_NE(r.err.find(std::strerror(EMSGSIZE)), std::string::npos)
        << th::why("the message gives EMSGSIZE") << first_line(r.err);
    EXPECT_NE(r.err.find("SO_SNDBUF"), std::string::npos)
        << th::why("the message names SO_SNDBUF") << first_line(r.err);
}

TEST_F(Ch03Contract, BadArgumentsAreUsageErrors) {
    for (const std::vector<std::string>& args : {std::vector<std::string>{"--timeout", "0", "x"},
                                                 {"--timeout", "soon", "x"},
                                                 {"--bind", std::string(200, 'p'), "x"},
                                                 {"--bind", "", "x"},
                                                 {"-s", "", "x"},
                                                 {"--bogus"}}) {
        auto r = th::run(client_bin(), args);
        EXPECT_EQ(r.status, 2) << th::why("a bad or empty option value is a usage error, exit 2")
                               << first_line(r.err);
        EXPECT_NE(r.err.find("usage: client"), std::string::npos)
            << th::why("a usage error prints the usage");
    }
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"-s", addr.str(), "extra"}, {"-s", ""}, {"--socket="}}) {
        auto r = th::run(server_bin(), args);
        EXPECT_EQ(r.status, 2) << th::why(
                                      "-s '' (an unset variable) is a usage error, never the "
                                      "default address; so is an extra argument")
                               << first_line(r.err);
    }
    auto r = th::run(client_bin(), {"--help"});
    EXPECT_EQ(r.status, 0) << th::why("--help exits 0");
    EXPECT_NE(r.out.find("--timeout"), std::string::npos) << th::why("--help lists --timeout");
}

}  // namespace
