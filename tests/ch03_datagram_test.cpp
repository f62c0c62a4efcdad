// Chapter 03: the datagram service contract (DESIGN.md section 4), with the real binaries.
//   Ch03Contract  03-datagram/server and client, driven like any outside program would:
//                 raw sockets bound to a path or autobound, Python, socat
// The programs come from th::bin("03-datagram", ...), so UDS_BIN_DIR grades your own.
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

#include "harness.hpp"
#include "uds.hpp"

namespace {

const std::string kChapter = "03-datagram";
constexpr int kWaitMs = static_cast<int>(th::kPatience.count());
const std::string kTooLong = "ERROR datagram too long (max 4096 bytes)";

std::string server_bin() {
    return th::bin(kChapter, "server");
}
std::string client_bin() {
    return th::bin(kChapter, "client");
}

std::unique_ptr<th::Process> start_server(const std::string& addr, th::Process::Options opts = {}) {
    std::vector<std::string> args;
    if (!addr.empty()) args = {"-s", addr};
    auto p = std::make_unique<th::Process>(server_bin(), args, std::move(opts));
    // The ready line; nothing before it may contain "bound to" (DESIGN.md section 4).
    if (!p->wait_stderr(addr.empty() ? "bound to " : "bound to " + addr + "\n"))
        throw std::runtime_error("the server did not say 'bound to': " + p->err());
    return p;
}

uds::Fd dgram() {
    return uds::Fd{uds::check(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), "socket")};
}
uds::Fd bound(const uds::Address& addr) {
    uds::Fd fd = dgram();
    uds::check(::bind(fd.get(), addr.sockaddr_ptr(), addr.length()), "bind " + addr.str());
    return fd;
}
uds::Fd autobound() {
    return bound(uds::Address{});
}

void send_to(int fd, std::string_view data, const uds::Address& to) {
    // A bounded wait, should the server's queue be full: every socket call has a deadline.
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    uds::check(::sendto(fd, data.data(), data.size(), MSG_NOSIGNAL, to.sockaddr_ptr(), to.length()),
               "sendto " + to.str());
}

// One datagram and who sent it; "<timeout>" if none came in time.
std::string recv_from(int fd, uds::Address* from = nullptr, int timeout_ms = kWaitMs) {
    if (!th::readable(fd, timeout_ms)) return "<timeout>";
    std::string buf(1 << 18, '\0');
    sockaddr_un sa{};
    socklen_t len = sizeof sa;
    ssize_t n = ::recvfrom(fd, buf.data(), buf.size(), MSG_DONTWAIT,
                           reinterpret_cast<sockaddr*>(&sa), &len);
    if (n < 0) return "<error " + std::string(std::strerror(errno)) + ">";
    if (from != nullptr) *from = uds::Address::from_kernel(sa, len);
    buf.resize(static_cast<std::size_t>(n));
    return buf;
}

std::string ask(int fd, std::string_view request, const uds::Address& server) {
    send_to(fd, request, server);
    return recv_from(fd);
}

std::size_t count(const std::string& hay, std::string_view needle) {
    std::size_t n = 0;
    for (auto pos = hay.find(needle); pos != std::string::npos; pos = hay.find(needle, pos + 1))
        ++n;
    return n;
}

// Every file and directory under dir, relative to it.
std::set<std::string> tree(const std::string& dir) {
    std::set<std::string> out;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
        out.insert(std::filesystem::relative(e.path(), dir).string());
    return out;
}

bool is_socket_file(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

// SIGSTOP and wait until the process really is stopped (waitid WSTOPPED, no polling).
void pause_process(th::Process& p) {
    ASSERT_EQ(::kill(p.pid(), SIGSTOP), 0);
    siginfo_t info{};
    ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(p.pid()), &info, WSTOPPED), 0);
}

// ------------------------------------------------------------------ the server

TEST(Ch03Contract, ServerSaysBoundToAndRemovesItsFileOnSigterm) {
    th::TempDir dir;
    std::string path = dir.file("s.sock");
    auto server = start_server(path);
    EXPECT_NE(server->err().find("bound to " + path + "\n"), std::string::npos) << server->err();
    EXPECT_TRUE(is_socket_file(path));
    server->signal(SIGTERM);
    EXPECT_EQ(server->wait_exit(), 0);
    EXPECT_FALSE(std::filesystem::exists(path)) << "the server removes its own socket file";
}

TEST(Ch03Contract, DefaultAddressIsInTheRuntimeDir) {
    th::TempDir dir;
    th::Process::Options env{{"XDG_RUNTIME_DIR=" + dir.path()}, {}};
    std::string expected = dir.path() + "/uds-tutorial/03-datagram.sock";
    auto server = start_server("", env);
    EXPECT_NE(server->err().find("bound to " + expected), std::string::npos) << server->err();
    auto r = th::run(client_bin(), {"default"}, {}, env);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "DEFAULT\n");
}

TEST(Ch03Contract, RepliesToARawPeerBoundToAPath) {
    th::TempDir dir;
    uds::Address server_addr = uds::Address::path(dir.file("s.sock"));
    auto server = start_server(server_addr.str());
    uds::Address me = uds::Address::path(dir.file("peer.sock"));
    uds::Fd peer = bound(me);
    send_to(peer.get(), "Hello, datagram world", server_addr);
    uds::Address from;
    EXPECT_EQ(recv_from(peer.get(), &from), "HELLO, DATAGRAM WORLD");
    EXPECT_EQ(from, server_addr) << "the reply comes from the server's address";
    EXPECT_TRUE(server->wait_stderr("21 bytes from " + me.str())) << server->err();
}

TEST(Ch03Contract, RepliesToAnAutoboundRawPeerAndOnAnAbstractAddress) {
    std::string name = "@" + th::unique_abstract_name("ch03");
    uds::Address server_addr = uds::Address::parse(name);
    auto server = start_server(name);
    EXPECT_TRUE(server->wait_stderr("bound to " + name));
    uds::Fd peer = autobound();
    EXPECT_EQ(ask(peer.get(), "autobound", server_addr), "AUTOBOUND");
    EXPECT_TRUE(server->wait_stderr("9 bytes from " + uds::local_address(peer.get()).str()));
}

TEST(Ch03Contract, EmptyBinaryAndUtf8DatagramsAreServedByteForByte) {
    th::TempDir dir;
    uds::Address server_addr = uds::Address::path(dir.file("s.sock"));
    auto server = start_server(server_addr.str());
    uds::Fd peer = autobound();
    EXPECT_EQ(ask(peer.get(), "", server_addr), "") << "empty in, empty out";
    const std::string binary("a\0b\r\nz\xff\x7f{`", 11);
    EXPECT_EQ(ask(peer.get(), binary, server_addr), std::string("A\0B\r\nZ\xff\x7f{`", 11));
    EXPECT_EQ(ask(peer.get(), "你好 abc", server_addr), "你好 ABC");
    EXPECT_EQ(ask(peer.get(), "a\nb", server_addr), "A\nB") << "a newline is just a byte here";
}

TEST(Ch03Contract, OversizedDatagramsGetTheErrorAndNothingIsCutSilently) {
    th::TempDir dir;
    uds::Address server_addr = uds::Address::path(dir.file("s.sock"));
    auto server = start_server(server_addr.str());
    uds::Fd peer = autobound();
    EXPECT_EQ(ask(peer.get(), std::string(4096, 'm'), server_addr), std::string(4096, 'M'));
    EXPECT_EQ(ask(peer.get(), std::string(4097, 'm'), server_addr), kTooLong) << "exact, no \\n";
    EXPECT_EQ(ask(peer.get(), std::string(100000, 'm'), server_addr), kTooLong);
    EXPECT_EQ(ask(peer.get(), "still here", server_addr), "STILL HERE");
    EXPECT_TRUE(server->wait_stderr("100000 bytes from")) << "the log gives the real size";
}

TEST(Ch03Contract, UnboundSenderIsExplainedInTheLogAndTheServerGoesOn) {
    th::TempDir dir;
    uds::Address server_addr = uds::Address::path(dir.file("s.sock"));
    auto server = start_server(server_addr.str());
    uds::Fd unbound = dgram();
    send_to(unbound.get(), "anyone?", server_addr);
    ASSERT_TRUE(server->wait_stderr("autobind")) << server->err();
    EXPECT_NE(server->err().find("7 bytes from (unnamed) (msg_namelen 0): cannot reply"),
              std::string::npos)
        << server->err();
    EXPECT_NE(server->err().find("bind()"), std::string::npos) << "says how to fix it";
    EXPECT_EQ(recv_from(unbound.get(), nullptr, 0), "<timeout>") << "nothing could come back";
    uds::Fd peer = autobound();
    EXPECT_EQ(ask(peer.get(), "next", server_addr), "NEXT");
    EXPECT_TRUE(server->running());
}

TEST(Ch03Contract, ServerGoesOnAfterSendersVanishBeforeTheirReply) {
    th::TempDir dir;
    uds::Address server_addr = uds::Address::path(dir.file("s.sock"));
    auto server = start_server(server_addr.str());
    pause_process(*server);  // so every sender below is gone before the server reads
    {
        uds::Fd autob = autobound();
        send_to(autob.get(), "auto", server_addr);
    }
    {
        uds::Fd by_path = bound(uds::Address::path(dir.file("left.sock")));  // file stays
        send_to(by_path.get(), "left", server_addr);
    }
    {
        uds::Fd by_path = bound(uds::Address::path(dir.file("gone.sock")));
        send_to(by_path.get(), "gone", server_addr);
        ::unlink(dir.file("gone.sock").c_str());
    }
    ASSERT_EQ(::kill(server->pid(), SIGCONT), 0);
    uds::Fd peer = autobound();
    EXPECT_EQ(ask(peer.get(), "survivor", server_addr), "SURVIVOR");
    ASSERT_TRUE(server->wait_stderr("8 bytes from " + uds::local_address(peer.get()).str()));
    EXPECT_EQ(count(server->err(), "has gone away"), 3u) << server->err();
    EXPECT_TRUE(server->running());
}

TEST(Ch03Contract, ServerDropsRepliesToAPeerThatDoesNotReadAndServesOthers) {
    th::TempDir dir;
    uds::Address server_addr = uds::Address::path(dir.file("s.sock"));
    auto server = start_server(server_addr.str());
    uds::Address stuck_addr = uds::Address::path(dir.file("stuck.sock"));
    uds::Fd stuck = bound(stuck_addr);  // sends, never reads
    for (int i = 0; i < 40; ++i)
        send_to(stuck.get(), "r", server_addr);
    send_to(stuck.get(), "the end", server_addr);
    ASSERT_TRUE(server->wait_stderr("7 bytes from " + stuck_addr.str())) << server->err();
    EXPECT_NE(server->err().find("no room"), std::string::npos) << server->err();
    uds::Fd other = autobound();
    EXPECT_EQ(ask(other.get(), "me too", server_addr), "ME TOO") << "others are still served";
}

TEST(Ch03Contract, AStuckConnectedPeerCanFillTheServersSendBufferUntilItCloses) {
    th::TempDir dir;
    uds::Address server_addr = uds::Address::path(dir.file("s.sock"));
    auto server = start_server(server_addr.str());
    uds::Address stuck_addr = uds::Address::path(dir.file("stuck.sock"));
    uds::Fd stuck = bound(stuck_addr);
    // Connected to the server, its queue is exempt from max_dgram_qlen for the server's
    // replies: they pile up until they fill the *server's* send buffer (SO_SNDBUF).
    ASSERT_EQ(::connect(stuck.get(), server_addr.sockaddr_ptr(), server_addr.length()), 0);
    for (int i = 0; i < 100; ++i)
        send_to(stuck.get(), std::string(4096, 'r'), server_addr);
    send_to(stuck.get(), "the end", server_addr);
    ASSERT_TRUE(server->wait_stderr("7 bytes from " + stuck_addr.str())) << server->err();

    uds::Address bystander_addr = uds::Address::path(dir.file("bystander.sock"));
    uds::Fd bystander = bound(bystander_addr);
    send_to(bystander.get(), "abc", server_addr);
    EXPECT_TRUE(
        server->wait_stderr("3 bytes from " + bystander_addr.str() + ": sendto failed: no room"))
        << "an innocent client's reply is dropped too:\n"
        << server->err();
    stuck.reset();  // its queue is freed, and with it the server's send buffer
    EXPECT_EQ(ask(bystander.get(), "abc", server_addr), "ABC");
    EXPECT_TRUE(server->running());
}

TEST(Ch03Contract, ServerDescriptorCountStaysFlat) {
    th::TempDir dir;
    uds::Address server_addr = uds::Address::path(dir.file("s.sock"));
    auto server = start_server(server_addr.str());
    const int baseline = th::count_fds(server->pid());
    ASSERT_GT(baseline, 0);
    for (int i = 0; i < 50; ++i) {
        uds::Fd peer = autobound();
        send_to(peer.get(), std::string(static_cast<std::size_t>(i * 100), 'x'), server_addr);
        uds::Fd unbound = dgram();
        send_to(unbound.get(), "unbound", server_addr);
        uds::Fd vanishing = autobound();
        send_to(vanishing.get(), "bye", server_addr);
    }
    // Descriptors attached to a datagram (SCM_RIGHTS) must not end up in the server.
    uds::Fd peer = autobound();
    int pipefd[2];
    ASSERT_EQ(::pipe2(pipefd, O_CLOEXEC), 0);
    uds::Fd pr{pipefd[0]}, pw{pipefd[1]};
    for (int i = 0; i < 20; ++i) {
        char byte = 'f';
        iovec iov{&byte, 1};
        alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))] = {};
        msghdr msg{};
        msg.msg_name = const_cast<sockaddr*>(server_addr.sockaddr_ptr());
        msg.msg_namelen = server_addr.length();
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(2 * sizeof(int));
        int fds[2] = {pr.get(), pw.get()};
        std::memcpy(CMSG_DATA(c), fds, sizeof fds);
        ASSERT_EQ(::sendmsg(peer.get(), &msg, MSG_NOSIGNAL), 1);
        EXPECT_EQ(recv_from(peer.get()), "F");
    }
    EXPECT_EQ(ask(peer.get(), "last", server_addr), "LAST");  // everything before is done
    EXPECT_EQ(th::count_fds(server->pid()), baseline);
}

TEST(Ch03Contract, ServerHandlesATakenPath) {
    th::TempDir dir;
    // A regular file: refused and left alone.
    std::string file = dir.file("file");
    std::ofstream(file) << "precious";
    auto r = th::run(server_bin(), {"-s", file});
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("not a socket"), std::string::npos) << r.err;
    EXPECT_EQ(std::filesystem::file_size(file), 8u);
    // A live datagram socket: refused, its file untouched.
    uds::Address live_addr = uds::Address::path(dir.file("live.sock"));
    uds::Fd live = bound(live_addr);
    r = th::run(server_bin(), {"-s", live_addr.str()});
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("already"), std::string::npos) << r.err;
    EXPECT_TRUE(is_socket_file(live_addr.str()));
    // A stale socket file (its socket is closed): removed, and the server starts.
    live.reset();
    auto server = start_server(live_addr.str());
    EXPECT_NE(server->err().find("removed stale socket file"), std::string::npos);
    EXPECT_EQ(count(server->err(), "bound to"), 1u) << "only the ready line says it";
    uds::Fd peer = autobound();
    EXPECT_EQ(ask(peer.get(), "fresh", live_addr), "FRESH") << server->err();
}

TEST(Ch03Contract, PythonClientsBoundToAPathOrAutoboundGetCorrectReplies) {
    if (!th::have_program("python3")) GTEST_SKIP() << "python3 is not installed";
    th::TempDir dir;
    std::string server_path = dir.file("s.sock");
    auto server = start_server(server_path);
    const std::string script = R"py(
import socket, sys
server, mode, tmp = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(tmp + "/py.sock" if mode == "path" else "")   # "" = autobind
s.settimeout(10)
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
    for (std::string mode : {"path", "autobind"}) {
        auto r = th::run("/usr/bin/env", {"python3", "-c", script, server_path, mode, dir.path()});
        EXPECT_EQ(r.status, 0) << mode << ": " << r.out << r.err;
        EXPECT_EQ(r.out.rfind("ok ", 0), 0u) << r.out;
    }
    EXPECT_TRUE(server->wait_stderr("from " + dir.file("py.sock")));
}

TEST(Ch03Contract, SocatClientGetsAReply) {
    if (!th::have_program("socat")) GTEST_SKIP() << "socat is not installed";
    th::TempDir dir;
    std::string server_path = dir.file("s.sock");
    auto server = start_server(server_path);
    th::Process socat("/usr/bin/env",
                      {"socat", "-t", "30", "-",
                       "UNIX-SENDTO:" + server_path + ",bind=" + dir.file("socat.sock")});
    socat.write_stdin("hello from socat");
    EXPECT_TRUE(socat.wait_stdout("HELLO FROM SOCAT")) << socat.out() << socat.err();
}

// ------------------------------------------------------------------ the client

TEST(Ch03Contract, ClientPrintsEachReplyOnItsOwnLine) {
    th::TempDir dir;
    std::string path = dir.file("s.sock");
    auto server = start_server(path);
    auto r = th::run(client_bin(), {"-s", path, "hello", "你好 abc", "", "x y"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "HELLO\n你好 ABC\n\nX Y\n");
    EXPECT_EQ(r.err, "");
}

TEST(Ch03Contract, ClientSendsEachStdinLineWithoutItsNewline) {
    th::TempDir dir;
    std::string path = dir.file("s.sock");
    auto server = start_server(path);
    auto r = th::run(client_bin(), {"-s", path}, "one\ntwo\n\nlast line without newline");
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "ONE\nTWO\n\nLAST LINE WITHOUT NEWLINE\n");
    EXPECT_TRUE(server->wait_stderr("25 bytes from"));
    EXPECT_EQ(count(server->err(), "3 bytes from"), 2u) << "'one' and 'two', no '\\n' sent";
    r = th::run(client_bin(), {"-s", path}, std::string(5000, 'z') + "\n");
    EXPECT_EQ(r.status, 0) << "the ERROR reply is a reply: " << r.err;
    EXPECT_EQ(r.out, kTooLong + "\n");
}

TEST(Ch03Contract, ClientLeavesNoFilesBehind) {
    th::TempDir dir;
    th::Process::Options env{{"XDG_RUNTIME_DIR=" + dir.path()}, {}};
    auto server = start_server("", env);
    const auto before = tree(dir.path());
    auto r = th::run(client_bin(), {"autobound"}, {}, env);
    EXPECT_EQ(r.out, "AUTOBOUND\n") << r.err;
    std::string mine = dir.file("client.sock");
    r = th::run(client_bin(), {"--bind", mine, "by path"}, {}, env);
    EXPECT_EQ(r.out, "BY PATH\n") << r.err;
    EXPECT_TRUE(server->wait_stderr("7 bytes from " + mine)) << "it did use the path";
    r = th::run(client_bin(), {"--bind", mine, "-s", dir.file("missing"), "x"}, {}, env);
    EXPECT_EQ(r.status, 1) << "a failed connect also cleans up";
    EXPECT_EQ(tree(dir.path()), before);
}

TEST(Ch03Contract, ClientRemovesItsBindFileWhenStoppedBySigintOrSigterm) {
    th::TempDir dir;
    uds::Address silent_addr = uds::Address::path(dir.file("silent.sock"));
    uds::Fd silent = bound(silent_addr);  // receives, never answers
    for (int sig : {SIGINT, SIGTERM}) {
        for (bool from_stdin : {false, true}) {
            SCOPED_TRACE(std::string(strsignal(sig)) + (from_stdin ? ", reading stdin" : ""));
            std::string mine = dir.file("client.sock");
            std::vector<std::string> args{"-v",        "-s", silent_addr.str(), "--bind", mine,
                                          "--timeout", "60"};
            if (!from_stdin) args.push_back("waiting for a reply");
            th::Process client(client_bin(), args);
            if (from_stdin) {
                ASSERT_TRUE(client.wait_stderr("connected to")) << client.err();
            } else {
                EXPECT_EQ(recv_from(silent.get()), "waiting for a reply");
            }
            EXPECT_TRUE(is_socket_file(mine));
            client.signal(sig);
            EXPECT_EQ(client.wait_exit(), 128 + sig) << "it dies of the signal: " << client.err();
            EXPECT_FALSE(std::filesystem::exists(mine)) << client.err();
        }
    }
}

TEST(Ch03Contract, TwoClientsCannotBindTheSamePath) {
    th::TempDir dir;
    std::string server_path = dir.file("s.sock");
    auto server = start_server(server_path);
    std::string shared = dir.file("client.sock");  // a "fixed" client path
    uds::Fd first = bound(uds::Address::path(shared));
    auto r = th::run(client_bin(), {"-s", server_path, "--bind", shared, "second"});
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("bind " + shared + ": " + std::strerror(EADDRINUSE)), std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("leave --bind out to autobind"), std::string::npos) << r.err;
    EXPECT_TRUE(is_socket_file(shared)) << "the other client's file is left alone";
}

TEST(Ch03Contract, ClientTimesOutWithAClearError) {
    th::TempDir dir;
    uds::Address silent_addr = uds::Address::path(dir.file("silent.sock"));
    uds::Fd silent = bound(silent_addr);
    auto r = th::run(client_bin(), {"-s", silent_addr.str(), "--timeout", "1", "hello?"});
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("no reply within 1 s"), std::string::npos) << r.err;
    EXPECT_EQ(recv_from(silent.get()), "hello?");
}

TEST(Ch03Contract, ClientExplainsWhyItCannotReachTheServer) {
    th::TempDir dir;
    struct Case {
        std::string path, hint;
    };
    std::ofstream(dir.file("regular")) << "x";
    { uds::Fd gone = bound(uds::Address::path(dir.file("stale.sock"))); }
    uds::Fd stream{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    uds::Address stream_addr = uds::Address::path(dir.file("stream.sock"));
    ASSERT_EQ(::bind(stream.get(), stream_addr.sockaddr_ptr(), stream_addr.length()), 0);
    ASSERT_EQ(::listen(stream.get(), 1), 0);
    for (const Case& c : {Case{dir.file("missing"), "is the server running?"},
                          Case{dir.file("regular"), "not a socket"},
                          Case{dir.file("stale.sock"), "nobody is bound there"},
                          Case{dir.file("stream.sock"), "stream"}}) {
        auto r = th::run(client_bin(), {"-s", c.path, "x"});
        EXPECT_EQ(r.status, 1) << c.path;
        EXPECT_NE(r.err.find("client: connect " + c.path + ": "), std::string::npos) << r.err;
        EXPECT_NE(r.err.find(c.hint), std::string::npos) << r.err;
        EXPECT_EQ(count(r.err, "\n"), 1u) << "one line: " << r.err;
    }
}

TEST(Ch03Contract, ClientReportsAMessageTooBigForTheSendBuffer) {
    th::TempDir dir;
    uds::Address silent_addr = uds::Address::path(dir.file("silent.sock"));
    uds::Fd silent = bound(silent_addr);
    auto r = th::run(client_bin(), {"-s", silent_addr.str()}, std::string(300000, 'b') + "\n");
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find(std::strerror(EMSGSIZE)), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("SO_SNDBUF"), std::string::npos) << r.err;
}

TEST(Ch03Contract, BadArgumentsAreUsageErrors) {
    th::TempDir dir;
    for (const std::vector<std::string>& args : {std::vector<std::string>{"--timeout", "0", "x"},
                                                 {"--timeout", "soon", "x"},
                                                 {"--bind", std::string(200, 'p'), "x"},
                                                 {"--bogus"}}) {
        auto r = th::run(client_bin(), args);
        EXPECT_EQ(r.status, 2) << r.err;
        EXPECT_NE(r.err.find("usage: client"), std::string::npos) << r.err;
    }
    auto r = th::run(server_bin(), {"-s", dir.file("s.sock"), "extra"});
    EXPECT_EQ(r.status, 2) << r.err;
    r = th::run(client_bin(), {"--help"});
    EXPECT_EQ(r.status, 0);
    EXPECT_NE(r.out.find("--timeout"), std::string::npos);
}

}  // namespace
