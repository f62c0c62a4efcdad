// Chapter 02: the stream server on a Linux abstract name, and the kernel facts its README claims.
//
//   Ch02Contract   the real server and client binaries, driven like DESIGN §4 says
//   Ch02Peers      the SO_PEERCRED check, with peers that really run as another uid (nobody)
//   Ch02Interop    outside peers: Python's socket module and socat
//   Ch02Semantics  raw system calls: what the length does to a name, autobind, lifetime,
//                  permissions, network namespaces, the seed article's example
//
// Every name is unique per test (th::unique_abstract_name), so the suite can run shuffled,
// repeated and in parallel. Nothing sleeps: every wait is a poll with a deadline.
#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "harness.hpp"
#include "uds.hpp"

namespace {

using namespace std::string_literals;

constexpr socklen_t kOffset = offsetof(sockaddr_un, sun_path);

std::string server_bin() {
    return th::bin("02-stream-abstract", "server");
}
std::string client_bin() {
    return th::bin("02-stream-abstract", "client");
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

std::size_t count_of(const std::string& text, const std::string& part) {
    std::size_t n = 0;
    for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1))
        ++n;
    return n;
}

// Starts the chapter's server and waits for its "listening on" line.
std::unique_ptr<th::Process> start_server(const std::vector<std::string>& args) {
    auto p = std::make_unique<th::Process>(server_bin(), args);
    if (!p->wait_stderr("listening on"))
        ADD_FAILURE() << "the server did not say 'listening on'; its stderr:\n" << p->err();
    return p;
}

// An abstract address built by hand, the way any C program would: sun_path[0] = '\0', the
// name after it, and whatever length the caller chooses.
struct RawAddress {
    sockaddr_un sa{};
    socklen_t len = 0;
    [[nodiscard]] const sockaddr* ptr() const { return reinterpret_cast<const sockaddr*>(&sa); }
};

RawAddress raw_abstract(const std::string& name, socklen_t len) {
    RawAddress a;
    a.sa.sun_family = AF_UNIX;
    a.sa.sun_path[0] = '\0';
    std::memcpy(a.sa.sun_path + 1, name.data(), name.size());
    a.len = len;
    return a;
}
socklen_t exact_length(const std::string& name) {
    return static_cast<socklen_t>(kOffset + 1 + name.size());
}

// connect() with a raw address: 0, or the errno it failed with.
int try_connect(const RawAddress& a, uds::Fd* out = nullptr) {
    uds::Fd fd{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    if (!fd) return errno;
    if (::connect(fd.get(), a.ptr(), a.len) == -1) return errno;
    if (out != nullptr) *out = std::move(fd);
    return 0;
}
int try_connect(const uds::Address& a, uds::Fd* out = nullptr) {
    RawAddress r;
    std::memcpy(&r.sa, a.sockaddr_ptr(), a.length());
    r.len = a.length();
    return try_connect(r, out);
}

// One request, one reply line.
std::string ask(int fd, const std::string& request) {
    th::send_all(fd, request);
    return th::read_line(fd);
}

// The Path column of /proc/net/unix (NUL bytes of abstract names are printed as '@').
std::vector<std::string> proc_net_unix_paths() {
    std::ifstream in("/proc/net/unix");
    std::vector<std::string> paths;
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::string skip, path;
        for (int i = 0; i < 7; ++i)
            fields >> skip;  // Num RefCount Protocol Flags Type St Inode
        if (fields >> path) paths.push_back(path);
    }
    return paths;
}
std::size_t proc_lines_with_path(const std::string& path) {
    std::size_t n = 0;
    for (const auto& p : proc_net_unix_paths())
        n += p == path;
    return n;
}
std::size_t proc_lines_starting_with(const std::string& prefix) {
    std::size_t n = 0;
    for (const auto& p : proc_net_unix_paths())
        n += p.rfind(prefix, 0) == 0;
    return n;
}

// A client that autobinds (so the kernel gives it a unique name "@xxxxx") and connects. Its
// name shows up in the server's log as getpeername=@xxxxx, which tells us exactly when the
// server has taken this connection, and so has finished with every earlier one.
uds::Fd autobound_probe(const uds::Address& server, std::string* name) {
    uds::Fd fd{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    uds::check(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa_family_t)), "autobind");
    uds::check(::connect(fd.get(), server.sockaddr_ptr(), server.length()), "connect");
    *name = uds::local_address(fd.get()).str();
    return fd;
}

// Writes all of text into a pipe (th::send_all is for sockets).
void write_pipe(int fd, const std::string& text) {
    std::string_view rest = text;
    while (!rest.empty()) {
        ssize_t n = ::write(fd, rest.data(), rest.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        rest.remove_prefix(static_cast<std::size_t>(n));
    }
}

// Runs fn as uid/gid 65534 (th::run_as_nobody) and brings back a text it produced, for
// better failure messages. Returns fn's status (or -1), and fills text.
int as_nobody(const std::function<int(std::string&)>& fn, std::string* text) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return -1;
    uds::Fd r{p[0]}, w{p[1]};
    int rc = th::run_as_nobody([&] {
        std::string out;
        int status = fn(out);
        write_pipe(w.get(), out);
        return status;
    });
    w.reset();
    text->clear();
    char buf[4096];
    ssize_t n;
    while ((n = ::read(r.get(), buf, sizeof buf)) > 0)
        text->append(buf, static_cast<std::size_t>(n));
    return rc;
}

// Moves this process into a new network namespace: directly as root, else inside a new user
// namespace (where unprivileged users may create one). False when neither is allowed.
bool enter_new_netns() {
    return ::unshare(CLONE_NEWNET) == 0 || ::unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0;
}

// Runs fn in a forked child that first moves into a new network namespace. Returns fn's
// status, or -2 when the namespace could not be created.
int in_new_netns(const std::function<int()>& fn) {
    pid_t pid = ::fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (!enter_new_netns()) ::_exit(254);
        int rc = 255;
        try {
            rc = fn();
        } catch (...) {
        }
        ::_exit(rc & 0xff);
    }
    int st = 0;
    while (::waitpid(pid, &st, 0) == -1 && errno == EINTR) {
    }
    if (!WIFEXITED(st)) return -1;
    if (WEXITSTATUS(st) == 254) return -2;
    return WEXITSTATUS(st);
}

// The full path of a program on PATH ("" if there is none); posix_spawn needs a path.
std::string find_program(const std::string& name) {
    const char* path = std::getenv("PATH");
    std::istringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
        std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    return {};
}

// ================================================================= Ch02Contract

TEST(Ch02Contract, ServesTheUpcasingProtocolOverAnAbstractName) {
    const std::string name = th::unique_abstract_name("contract");
    auto server = start_server({"-s", "@" + name});
    EXPECT_TRUE(contains(server->err(), "listening on @" + name + "\n")) << server->err();
    const int baseline = th::count_fds(server->pid());

    // The chapter's client: each argument is one request.
    auto r = th::run(client_bin(), {"-s", "@" + name, "hello, world", "你好 abc"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "HELLO, WORLD\n你好 ABC\n");

    // With no arguments it reads stdin, and answers a last line without '\n' too.
    r = th::run(client_bin(), {"-s", "@" + name}, "one\ntwo\nthree");
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "ONE\nTWO\nTHREE\n");

    // A raw peer: requests split across writes, several in one write, a final unterminated line.
    {
        uds::Fd c = th::connect_stream(uds::Address::abstract(name));
        th::send_all(c.get(), "sp");
        th::send_all(c.get(), "lit\nmany\nat once\nnul\0byte\r\nlast"s);
        ASSERT_EQ(::shutdown(c.get(), SHUT_WR), 0);
        EXPECT_EQ(th::read_to_eof(c.get()), "SPLIT\nMANY\nAT ONCE\nNUL\0BYTE\r\nLAST\n"s);
    }
    // A line over 4096 bytes: the exact ERROR, the connection closed, the server goes on.
    {
        uds::Fd c = th::connect_stream(uds::Address::abstract(name));
        th::send_all(c.get(), std::string(5000, 'x') + "\n");
        int err = 0;
        EXPECT_EQ(th::read_to_eof(c.get(), th::Deadline{}, &err),
                  "ERROR line too long (max 4096 bytes)\n");
    }
    uds::Fd c = th::connect_stream(uds::Address::abstract(name));
    EXPECT_EQ(ask(c.get(), "still here\n"), "STILL HERE\n");
    c.reset();

    // Every connection's descriptor was closed: with one probe connection open, the server
    // holds exactly one descriptor more than when it started.
    std::string probe_name;
    uds::Fd probe = autobound_probe(uds::Address::abstract(name), &probe_name);
    ASSERT_TRUE(server->wait_stderr("getpeername=" + probe_name)) << server->err();
    EXPECT_EQ(th::count_fds(server->pid()), baseline + 1);
    probe.reset();

    server->signal(SIGTERM);
    EXPECT_EQ(server->wait_exit(), 0) << server->err();
}

TEST(Ch02Contract, AcceptedSocketCarriesTheNameAndAnUnboundClientIsUnnamed) {
    const std::string name = th::unique_abstract_name("names");
    auto server = start_server({"-s", "@" + name});
    uds::Fd c = th::connect_stream(uds::Address::abstract(name));
    EXPECT_EQ(ask(c.get(), "x\n"), "X\n");
    EXPECT_TRUE(server->wait_stderr("getsockname=@" + name + " getpeername=(unnamed)"))
        << server->err();
    // And our side sees the server's name, exactly as bound (no padding).
    EXPECT_EQ(uds::peer_address(c.get()), uds::Address::abstract(name));
    EXPECT_EQ(uds::local_address(c.get()).str(), "(unnamed)");
}

TEST(Ch02Contract, DefaultAddressIsThePerUserAbstractName) {
    // --help documents it...
    auto help = th::run(server_bin(), {"--help"});
    EXPECT_EQ(help.status, 0);
    EXPECT_TRUE(contains(help.out, "@uds-tutorial-UID-02")) << help.out;
    help = th::run(client_bin(), {"--help"});
    EXPECT_EQ(help.status, 0);
    EXPECT_TRUE(contains(help.out, "@uds-tutorial-UID-02")) << help.out;

    // ...and server and client use it. In a network namespace of their own, so this test can
    // never collide with your own server or with a parallel run of the suite.
    std::string expected = "listening on @uds-tutorial-<uid>-02";
    int rc = in_new_netns([&] {
        expected = "listening on @uds-tutorial-" + std::to_string(::geteuid()) + "-02\n";
        th::Process server(server_bin(), {});
        if (!server.wait_stderr(expected)) return 1;
        auto r = th::run(client_bin(), {"hi there"});
        if (r.status != 0) return 2;
        if (r.out != "HI THERE\n") return 3;
        return 0;
    });
    if (rc == -2) GTEST_SKIP() << "cannot create a network namespace here";
    EXPECT_EQ(rc, 0) << "1: no '" << expected << "'; 2: client failed; 3: wrong reply";
}

TEST(Ch02Contract, PeerWithAHandBuiltExactLengthAddressIsServed) {
    const std::string name = th::unique_abstract_name("exact");
    auto server = start_server({"-s", "@" + name});
    // offsetof(sun_path) + 1 + strlen(name): the leading NUL and the name, nothing more.
    uds::Fd c;
    ASSERT_EQ(try_connect(raw_abstract(name, exact_length(name)), &c), 0);
    EXPECT_EQ(ask(c.get(), "exact\n"), "EXACT\n");
}

TEST(Ch02Contract, NameInUseSecondServerExits1AndTheFirstKeepsServing) {
    const std::string name = th::unique_abstract_name("inuse");
    auto first = start_server({"-s", "@" + name});
    auto second = th::run(server_bin(), {"-s", "@" + name});
    EXPECT_EQ(second.status, 1);
    EXPECT_TRUE(contains(second.err, "server: bind @" + name + ": Address already in use"))
        << second.err;
    EXPECT_TRUE(contains(second.err, "never stale")) << second.err;
    EXPECT_FALSE(contains(second.err, "listening on")) << second.err;
    EXPECT_EQ(std::count(second.err.begin(), second.err.end(), '\n'), 1) << second.err;

    uds::Fd c = th::connect_stream(uds::Address::abstract(name));
    EXPECT_EQ(ask(c.get(), "first\n"), "FIRST\n");
    EXPECT_TRUE(first->running());
}

TEST(Ch02Contract, NameDisappearsWhenTheServerExits) {
    const std::string name = th::unique_abstract_name("gone");
    auto server = start_server({"-s", "@" + name});
    EXPECT_GE(proc_lines_with_path("@" + name), 1u);
    server->signal(SIGTERM);
    ASSERT_EQ(server->wait_exit(), 0) << server->err();
    EXPECT_TRUE(contains(server->err(), "stopping on")) << server->err();

    EXPECT_EQ(proc_lines_starting_with("@" + name), 0u);
    EXPECT_EQ(try_connect(uds::Address::abstract(name)), ECONNREFUSED);
    // Nothing was left behind: the same name can be bound again at once.
    auto again = start_server({"-s", "@" + name});
    EXPECT_TRUE(again->running());
}

TEST(Ch02Contract, NameIsFreeAgainEvenAfterTheServerIsKilled) {
    // SIGKILL gives the server no chance to clean up. With a path (chapter 01) that leaves a
    // stale file; with an abstract name the kernel frees the name with the last descriptor.
    const std::string name = th::unique_abstract_name("killed");
    auto server = start_server({"-s", "@" + name});
    server->signal(SIGKILL);
    EXPECT_EQ(server->wait_exit(), 128 + SIGKILL);
    EXPECT_EQ(proc_lines_starting_with("@" + name), 0u);
    auto again = start_server({"-s", "@" + name});
    uds::Fd c = th::connect_stream(uds::Address::abstract(name));
    EXPECT_EQ(ask(c.get(), "again\n"), "AGAIN\n");
}

TEST(Ch02Contract, ProcNetUnixShowsExactlyAtName) {
    const std::string name = th::unique_abstract_name("proc");
    auto server = start_server({"-s", "@" + name});
    EXPECT_EQ(proc_lines_with_path("@" + name), 1u);  // the listener
    // No padded variant ("@name@@@...") anywhere: the server bound exactly the name.
    EXPECT_EQ(proc_lines_starting_with("@" + name), 1u);
    // The accepted socket carries the listener's name too.
    uds::Fd c = th::connect_stream(uds::Address::abstract(name));
    EXPECT_EQ(ask(c.get(), "proc\n"), "PROC\n");
    EXPECT_EQ(proc_lines_with_path("@" + name), 2u);
}

TEST(Ch02Contract, NameOf107BytesIsServedAnd108IsAUsageError) {
    std::string base = th::unique_abstract_name("long");
    const std::string n107 = base + std::string(107 - base.size(), 'x');
    const std::string n108 = n107 + "y";
    ASSERT_EQ(n107.size(), 107u);

    auto server = start_server({"-s", "@" + n107});
    auto addr = uds::Address::abstract(n107);
    EXPECT_EQ(addr.length(), sizeof(sockaddr_un));  // 107 bytes fill sun_path exactly
    uds::Fd c = th::connect_stream(addr);
    EXPECT_EQ(ask(c.get(), "long\n"), "LONG\n");
    EXPECT_EQ(proc_lines_with_path("@" + n107), 2u);

    for (const auto& args : {std::vector<std::string>{server_bin(), "-s", "@" + n108},
                             std::vector<std::string>{client_bin(), "-s", "@" + n108, "x"}}) {
        auto r = th::run(args[0], {args.begin() + 1, args.end()});
        EXPECT_EQ(r.status, 2) << args[0];
        EXPECT_TRUE(contains(r.err, "abstract socket name is 108 bytes; the limit is 107"))
            << r.err;
        EXPECT_TRUE(contains(r.err, "usage:")) << r.err;
    }
}

TEST(Ch02Contract, EmptyNameAndBadOptionsAreUsageErrors) {
    for (const auto& program : {server_bin(), client_bin()}) {
        auto r = th::run(program, {"-s", "@"});
        EXPECT_EQ(r.status, 2) << program << r.err;
        EXPECT_TRUE(contains(r.err, "abstract socket name is empty")) << r.err;
        r = th::run(program, {"-s"});
        EXPECT_EQ(r.status, 2) << r.err;
        r = th::run(program, {"--bogus"});
        EXPECT_EQ(r.status, 2) << r.err;
    }
    const std::string name = "@" + th::unique_abstract_name("badopt");
    for (const char* bad : {"", "abc", "-1", "4294967295", "99999999999999999999", "1x"}) {
        auto r = th::run(server_bin(), {"-s", name, "--allow-uid", bad});
        EXPECT_EQ(r.status, 2) << "--allow-uid '" << bad << "': " << r.err;
        EXPECT_TRUE(contains(r.err, "--allow-uid must be a whole number")) << r.err;
    }
    auto r = th::run(server_bin(), {"-s", name, "extra"});
    EXPECT_EQ(r.status, 2) << r.err;
    r = th::run(server_bin(), {"--help"});
    EXPECT_EQ(r.status, 0);
    EXPECT_TRUE(contains(r.out, "--allow-uid UID") && contains(r.out, "--allow-any")) << r.out;
}

TEST(Ch02Contract, ClientWithNoServerExplainsAndExits1) {
    const std::string name = th::unique_abstract_name("noserver");
    auto r = th::run(client_bin(), {"-s", "@" + name, "hello"});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(contains(r.err, "client: connect @" + name + ": Connection refused")) << r.err;
    EXPECT_TRUE(contains(r.err, "is the server running?")) << r.err;
}

TEST(Ch02Contract, PathAddressWorksAsInChapter01) {
    // -s PATH: the server binds a socket file, replaces a stale one, and removes its own file
    // when it stops. The peer check applies all the same.
    th::TempDir tmp;
    const std::string path = tmp.file("02.sock");
    {  // leave a stale socket file behind: bound, never unlinked
        uds::Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
        auto a = uds::Address::path(path);
        ASSERT_EQ(::bind(s.get(), a.sockaddr_ptr(), a.length()), 0);
    }
    auto server = start_server({"-s", path});
    EXPECT_TRUE(contains(server->err(), "removed stale socket file")) << server->err();
    struct stat st {};
    ASSERT_EQ(::lstat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    auto r = th::run(client_bin(), {"-s", path, "by path"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "BY PATH\n");
    server->signal(SIGTERM);
    EXPECT_EQ(server->wait_exit(), 0) << server->err();
    EXPECT_NE(::access(path.c_str(), F_OK), 0) << "the server left its socket file behind";
}

// ================================================================= Ch02Peers

// What a peer running as nobody gets from the server: the first line, then the rest until EOF.
int nobody_asks(const uds::Address& addr, std::string& out) {
    uds::Fd c;
    int err = try_connect(addr, &c);
    if (err != 0) {
        out = std::string("connect: ") + std::strerror(err);
        return 1;
    }
    try {
        th::send_all(c.get(), "hello from nobody\n");
        ::shutdown(c.get(), SHUT_WR);  // no more requests: a served peer sees EOF after its reply
    } catch (const uds::SysError&) {   // the server may have refused and closed already
    }
    out = th::read_line(c.get());
    int read_err = 0;
    out += th::read_to_eof(c.get(), th::Deadline{}, &read_err);
    if (read_err != 0) out += std::string("[then ") + std::strerror(read_err) + "]";
    return 0;
}

TEST(Ch02Peers, AnotherUidIsRefusedByDefaultWithTheExactErrorLine) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a peer as another uid";
    const std::string name = th::unique_abstract_name("refuse");
    auto server = start_server({"-s", "@" + name});
    EXPECT_TRUE(contains(server->err(), "peer check: serving uid 0\n")) << server->err();
    const int baseline = th::count_fds(server->pid());
    const auto addr = uds::Address::abstract(name);

    std::string got;
    ASSERT_EQ(as_nobody([&](std::string& out) { return nobody_asks(addr, out); }, &got), 0) << got;
    EXPECT_EQ(got, "ERROR not allowed (uid 65534)\n");
    EXPECT_TRUE(server->wait_stderr("refused uid 65534")) << server->err();

    // The server goes on: its own uid is served, and the refused connection was closed.
    uds::Fd c = th::connect_stream(addr);
    EXPECT_EQ(ask(c.get(), "me\n"), "ME\n");
    c.reset();
    std::string probe_name;
    uds::Fd probe = autobound_probe(addr, &probe_name);
    ASSERT_TRUE(server->wait_stderr("getpeername=" + probe_name)) << server->err();
    EXPECT_EQ(th::count_fds(server->pid()), baseline + 1);
}

TEST(Ch02Peers, AllowUidServesThatUidAndStillServesOurOwn) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a peer as another uid";
    const std::string name = th::unique_abstract_name("allowuid");
    // Repeatable: both values are added to our own uid.
    auto server = start_server({"-s", "@" + name, "--allow-uid", "1", "--allow-uid", "65534"});
    EXPECT_TRUE(contains(server->err(), "peer check: serving uid 0, 1, 65534\n")) << server->err();
    const auto addr = uds::Address::abstract(name);
    std::string got;
    ASSERT_EQ(as_nobody([&](std::string& out) { return nobody_asks(addr, out); }, &got), 0) << got;
    EXPECT_EQ(got, "HELLO FROM NOBODY\n");
    uds::Fd c = th::connect_stream(addr);
    EXPECT_EQ(ask(c.get(), "root too\n"), "ROOT TOO\n");
}

TEST(Ch02Peers, AllowAnyServesEveryUid) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a peer as another uid";
    const std::string name = th::unique_abstract_name("allowany");
    auto server = start_server({"-s", "@" + name, "--allow-any"});
    EXPECT_TRUE(contains(server->err(), "peer check: serving any uid")) << server->err();
    const auto addr = uds::Address::abstract(name);
    std::string got;
    ASSERT_EQ(as_nobody([&](std::string& out) { return nobody_asks(addr, out); }, &got), 0) << got;
    EXPECT_EQ(got, "HELLO FROM NOBODY\n");
}

TEST(Ch02Peers, ARefusedPeerThatStaysConnectedHoldsTheServerOnlyBriefly) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a peer as another uid";
    const std::string name = th::unique_abstract_name("linger");
    auto server = start_server({"-s", "@" + name});
    const auto addr = uds::Address::abstract(name);
    std::string got;
    int rc = as_nobody(
        [&](std::string& out) {
            // A: refused; we read its line and its end of file, but keep it open.
            uds::Fd a;
            if (try_connect(addr, &a) != 0) return 1;
            int err = 0;
            out = th::read_to_eof(a.get(), th::Deadline{}, &err);
            if (err != 0) return 2;
            // B: the next connection is taken although A is still open (the server waits for
            // a refused peer to close for a moment only).
            uds::Fd b;
            if (try_connect(addr, &b) != 0) return 3;
            out += th::read_line(b.get(), th::Deadline{th::milliseconds{5000}});
            return 0;
        },
        &got);
    EXPECT_EQ(rc, 0) << got;
    EXPECT_EQ(got, "ERROR not allowed (uid 65534)\nERROR not allowed (uid 65534)\n");
}

TEST(Ch02Peers, TheChapterClientExplainsARefusalAndExits1) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a peer as another uid";
    const std::string name = th::unique_abstract_name("clientrefused");
    auto server = start_server({"-s", "@" + name});
    // nobody may not be able to reach the binary where it was built (a checkout under /root):
    // run a copy from a directory everyone can enter.
    th::TempDir tmp;
    ASSERT_EQ(::chmod(tmp.path().c_str(), 0755), 0);
    const std::string client = tmp.file("client");
    std::filesystem::copy_file(client_bin(), client);
    ASSERT_EQ(::chmod(client.c_str(), 0755), 0);
    std::string got;
    int rc = as_nobody(
        [&](std::string& out) {
            auto r = th::run(client, {"-s", "@" + name, "let me in"});
            out = r.out + "|" + r.err;
            return r.status;
        },
        &got);
    EXPECT_EQ(rc, 1) << got;
    EXPECT_TRUE(contains(got, "ERROR not allowed (uid 65534)\n|")) << got;
    EXPECT_TRUE(contains(got, "client: @" + name + ": the server refused us")) << got;
    EXPECT_TRUE(contains(got, "--allow-uid 65534 or --allow-any")) << got;
}

TEST(Ch02Peers, RefusedPeersThatMisbehaveNeverStopTheServer) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a peer as another uid";
    const std::string name = th::unique_abstract_name("rude");
    auto server = start_server({"-s", "@" + name});
    const auto addr = uds::Address::abstract(name);
    std::string got;
    // Connect and vanish at once; connect and never read; connect and send a flood.
    int rc = as_nobody(
        [&](std::string&) {
            for (int i = 0; i < 3; ++i) {
                uds::Fd c;
                if (try_connect(addr, &c) != 0) return 1;
            }
            uds::Fd silent;
            if (try_connect(addr, &silent) != 0) return 2;
            uds::Fd flood;
            if (try_connect(addr, &flood) != 0) return 3;
            std::string big(100000, 'z');
            ::send(flood.get(), big.data(), big.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            return 0;
        },
        &got);
    EXPECT_EQ(rc, 0);
    uds::Fd c = th::connect_stream(addr);
    EXPECT_EQ(ask(c.get(), "unharmed\n"), "UNHARMED\n");
    c.reset();
    std::string probe_name;
    uds::Fd probe = autobound_probe(addr, &probe_name);
    ASSERT_TRUE(server->wait_stderr("getpeername=" + probe_name)) << server->err();
    EXPECT_EQ(count_of(server->err(), "refused uid 65534"), 5u) << server->err();
    EXPECT_TRUE(server->running());
}

// ================================================================= Ch02Interop

TEST(Ch02Interop, PythonSocketConnectsWithNulPrefixedName) {
    const std::string python = find_program("python3");
    if (python.empty()) GTEST_SKIP() << "python3 is not installed";
    const std::string name = th::unique_abstract_name("python");
    auto server = start_server({"-s", "@" + name});
    // Python gives an abstract address as a string starting with NUL, and passes exactly
    // offsetof(sun_path) + its length to connect().
    const char* script = R"(
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect("\0" + sys.argv[1])
s.sendall("hello\n你好 abc\n".encode())
s.shutdown(socket.SHUT_WR)
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode() + repr(s.getpeername()) + "\n")
)";
    auto r = th::run(python, {"-c", script, name});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "HELLO\n你好 ABC\nb'\\x00" + name + "'\n");
}

TEST(Ch02Interop, SocatAbstractConnectTalksToTheServer) {
    const std::string socat = find_program("socat");
    if (socat.empty()) GTEST_SKIP() << "socat is not installed (apt-get install socat)";
    const std::string name = th::unique_abstract_name("socat");
    auto server = start_server({"-s", "@" + name});
    auto r = th::run(socat, {"-t", "10", "-", "ABSTRACT-CONNECT:" + name}, "hello\n你好 abc");
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "HELLO\n你好 ABC\n");
}

TEST(Ch02Interop, ClientTalksToSocatAbstractListen) {
    const std::string socat = find_program("socat");
    if (socat.empty()) GTEST_SKIP() << "socat is not installed (apt-get install socat)";
    const std::string name = th::unique_abstract_name("socatlisten");
    // socat as the server (an echo): it binds the exact length, like we do.
    th::Process listener(socat, {"-d", "-d", "ABSTRACT-LISTEN:" + name, "EXEC:cat"});
    ASSERT_TRUE(listener.wait_stderr("listening on")) << listener.err();
    EXPECT_EQ(proc_lines_with_path("@" + name), 1u);
    auto r = th::run(client_bin(), {"-s", "@" + name, "echoed by socat"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "echoed by socat\n");
}

// ================================================================= Ch02Semantics

TEST(Ch02Semantics, PeerUsingSizeofSockaddrUnGetsEconnrefused) {
    // The errata: with sizeof(struct sockaddr_un) the name is "\0name\0\0\0...": another name.
    const std::string name = th::unique_abstract_name("sizeofpeer");
    auto server = start_server({"-s", "@" + name});
    EXPECT_EQ(try_connect(raw_abstract(name, sizeof(sockaddr_un))), ECONNREFUSED);
    EXPECT_EQ(try_connect(raw_abstract(name, exact_length(name))), 0);
}

TEST(Ch02Semantics, SizeofBoundNameIsPaddedWithNulsAndOnlySizeofPeersFindIt) {
    const std::string name = th::unique_abstract_name("sizeofbind");
    uds::Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    auto padded = raw_abstract(name, sizeof(sockaddr_un));
    ASSERT_EQ(::bind(s.get(), padded.ptr(), padded.len), 0);
    ASSERT_EQ(::listen(s.get(), 4), 0);

    // The kernel kept all 108 bytes of sun_path as the name...
    auto bound = uds::local_address(s.get());
    EXPECT_EQ(bound.length(), sizeof(sockaddr_un));
    const std::string shown = "@" + name + std::string(107 - name.size(), '@');
    EXPECT_EQ(bound.str(), shown);
    // ...and that is what /proc/net/unix (and so ss) prints: the NULs as '@'.
    EXPECT_EQ(proc_lines_with_path(shown), 1u);
    EXPECT_EQ(proc_lines_with_path("@" + name), 0u);
    // A peer with the exact length asks for another name; only a sizeof peer finds it.
    EXPECT_EQ(try_connect(raw_abstract(name, exact_length(name))), ECONNREFUSED);
    EXPECT_EQ(try_connect(raw_abstract(name, sizeof(sockaddr_un))), 0);
    // Two different names: both can be bound at once.
    uds::Fd t{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    auto exact = raw_abstract(name, exact_length(name));
    EXPECT_EQ(::bind(t.get(), exact.ptr(), exact.len), 0);
}

TEST(Ch02Semantics, SizeofIsHarmlessForAPathBecauseAPathEndsAtItsNul) {
    // Why the sizeof mistake survives in so much code: for a path it does no harm. The kernel
    // reads a path only up to its NUL and stores the exact length itself.
    th::TempDir tmp;
    auto exact = uds::Address::path(tmp.file("p.sock"));
    RawAddress padded;
    std::memcpy(&padded.sa, exact.sockaddr_ptr(), exact.length());
    padded.len = sizeof(sockaddr_un);
    uds::Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    ASSERT_EQ(::bind(s.get(), padded.ptr(), padded.len), 0);
    ASSERT_EQ(::listen(s.get(), 4), 0);
    EXPECT_EQ(uds::local_address(s.get()), exact);  // offsetof + strlen + 1, not 110
    EXPECT_EQ(try_connect(exact), 0);
    EXPECT_EQ(try_connect(padded), 0);
}

TEST(Ch02Semantics, EveryByteCountedByTheLengthIsPartOfTheName) {
    // Same bytes in sun_path, different lengths: different names. The kernel never looks for
    // a terminating NUL in an abstract name, and NUL bytes inside it are ordinary bytes.
    const std::string name = th::unique_abstract_name("bytes");
    uds::Fd a{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    uds::Fd b{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    auto shorter = raw_abstract(name, exact_length(name) - 1);  // the last letter left out
    auto longer = raw_abstract(name, exact_length(name) + 1);   // one NUL more
    ASSERT_EQ(::bind(a.get(), shorter.ptr(), shorter.len), 0);
    ASSERT_EQ(::bind(b.get(), longer.ptr(), longer.len), 0);
    EXPECT_EQ(uds::local_address(a.get()).str(), "@" + name.substr(0, name.size() - 1));
    EXPECT_EQ(uds::local_address(b.get()).str(), "@" + name + "@");
    EXPECT_EQ(proc_lines_with_path("@" + name + "@"), 1u);
}

TEST(Ch02Semantics, BindingANameThatIsHeldGivesEaddrinuseForTheSameSocketType) {
    const std::string name = th::unique_abstract_name("held");
    auto addr = uds::Address::abstract(name);
    uds::Fd a{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    uds::Fd b{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    ASSERT_EQ(::bind(a.get(), addr.sockaddr_ptr(), addr.length()), 0);
    // Bound but not even listening: the name is taken all the same.
    EXPECT_EQ(::bind(b.get(), addr.sockaddr_ptr(), addr.length()), -1);
    EXPECT_EQ(errno, EADDRINUSE);
    // Linux keeps abstract names per socket type: a datagram socket may hold the same name
    // at the same time (a path cannot: there is only one file). Each type finds its own.
    uds::Fd d{::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
    EXPECT_EQ(::bind(d.get(), addr.sockaddr_ptr(), addr.length()), 0);
    uds::Fd sender{::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
    EXPECT_EQ(::sendto(sender.get(), "dgram", 5, 0, addr.sockaddr_ptr(), addr.length()), 5);
    char buf[16];
    EXPECT_EQ(::recv(d.get(), buf, sizeof buf, MSG_DONTWAIT), 5);
    ASSERT_EQ(::listen(a.get(), 4), 0);
    EXPECT_EQ(try_connect(addr), 0);
    EXPECT_EQ(proc_lines_with_path("@" + name), 3u);  // listener, queued connection, datagram
}

TEST(Ch02Semantics, NameVanishesWithTheLastDescriptor) {
    const std::string name = th::unique_abstract_name("lastfd");
    auto addr = uds::Address::abstract(name);
    uds::Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    ASSERT_EQ(::bind(s.get(), addr.sockaddr_ptr(), addr.length()), 0);
    ASSERT_EQ(::listen(s.get(), 4), 0);
    uds::Fd copy{::fcntl(s.get(), F_DUPFD_CLOEXEC, 0)};
    ASSERT_TRUE(copy.valid());
    s.reset();  // one descriptor closed: the socket, and its name, live on
    EXPECT_EQ(proc_lines_with_path("@" + name), 1u);
    EXPECT_EQ(try_connect(addr), 0);
    copy.reset();  // the last one: the kernel frees the name; nothing to unlink
    EXPECT_EQ(try_connect(addr), ECONNREFUSED);
    EXPECT_EQ(proc_lines_starting_with("@" + name), 0u);
    uds::Fd again{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    EXPECT_EQ(::bind(again.get(), addr.sockaddr_ptr(), addr.length()), 0);
}

TEST(Ch02Semantics, AutobindGivesNulPlusFiveHexDigits) {
    // bind() with addrlen == sizeof(sa_family_t): "pick a name for me".
    uds::Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    ASSERT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa_family_t)), 0);
    sockaddr_un got{};
    socklen_t len = sizeof got;
    ASSERT_EQ(::getsockname(s.get(), reinterpret_cast<sockaddr*>(&got), &len), 0);
    ASSERT_EQ(len, kOffset + 1 + 5);
    EXPECT_EQ(got.sun_path[0], '\0');
    const std::string digits(got.sun_path + 1, 5);
    EXPECT_EQ(digits.find_first_not_of("0123456789abcdef"), std::string::npos) << digits;
    EXPECT_EQ(proc_lines_with_path("@" + digits), 1u);
}

bool is_autobound(const uds::Address& a) {
    return a.kind() == uds::Address::Kind::Abstract && a.length() == kOffset + 1 + 5 &&
           a.name().find_first_not_of("0123456789abcdef") == std::string::npos;
}

TEST(Ch02Semantics, LengthFromStrlenOfSunPathAutobindsInstead) {
    // strlen(sun_path) of an abstract address is 0 (its first byte is NUL), so
    // offsetof(sun_path) + strlen(sun_path) == sizeof(sa_family_t): the kernel autobinds to a
    // random name, bind() succeeds, and nobody can find the server under the name you meant.
    const std::string name = th::unique_abstract_name("strlen");
    auto a = raw_abstract(name, 0);
    a.len = static_cast<socklen_t>(kOffset + std::strlen(a.sa.sun_path));
    ASSERT_EQ(a.len, sizeof(sa_family_t));
    uds::Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    ASSERT_EQ(::bind(s.get(), a.ptr(), a.len), 0);
    ASSERT_EQ(::listen(s.get(), 4), 0);
    auto bound = uds::local_address(s.get());
    EXPECT_TRUE(is_autobound(bound)) << bound.str();
    EXPECT_EQ(try_connect(uds::Address::abstract(name)), ECONNREFUSED);
}

TEST(Ch02Semantics, ConnectingWithSoPasscredAutobindsTheClient) {
    const std::string name = th::unique_abstract_name("passcred");
    auto addr = uds::Address::abstract(name);
    uds::Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    ASSERT_EQ(::bind(s.get(), addr.sockaddr_ptr(), addr.length()), 0);
    ASSERT_EQ(::listen(s.get(), 4), 0);
    uds::Fd plain{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    ASSERT_EQ(::connect(plain.get(), addr.sockaddr_ptr(), addr.length()), 0);
    EXPECT_EQ(uds::local_address(plain.get()).str(), "(unnamed)");
    uds::Fd c{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    int on = 1;
    ASSERT_EQ(::setsockopt(c.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on), 0);
    ASSERT_EQ(::connect(c.get(), addr.sockaddr_ptr(), addr.length()), 0);
    auto bound = uds::local_address(c.get());
    EXPECT_TRUE(is_autobound(bound)) << bound.str();
}

TEST(Ch02Semantics, ClosingWithUnreadDataResetsThePeerAfterItsQueuedData) {
    // What a refused client that had already sent its request sees: the server's line first,
    // then ECONNRESET instead of a clean end of file, because the server closed without
    // reading what was sent to it.
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    uds::Fd client{sv[0]}, server{sv[1]};
    th::send_all(client.get(), "a request the server never reads\n");
    th::send_all(server.get(), "ERROR not allowed (uid 65534)\n");
    server.reset();
    EXPECT_EQ(th::read_line(client.get()), "ERROR not allowed (uid 65534)\n");
    int err = 0;
    EXPECT_EQ(th::read_to_eof(client.get(), th::Deadline{}, &err), "");
    EXPECT_EQ(err, ECONNRESET);
    // Without unread data, the same close is a clean end of file.
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    client.reset(sv[0]);
    server.reset(sv[1]);
    th::send_all(server.get(), "bye\n");
    server.reset();
    EXPECT_EQ(th::read_to_eof(client.get(), th::Deadline{}, &err), "bye\n");
    EXPECT_EQ(err, 0);
}

TEST(Ch02Contract, ServerLogsTheNameOfAnAutoboundClient) {
    const std::string name = th::unique_abstract_name("autobind");
    auto server = start_server({"-s", "@" + name});
    std::string probe_name;
    uds::Fd probe = autobound_probe(uds::Address::abstract(name), &probe_name);
    ASSERT_EQ(probe_name.size(), 6u) << probe_name;  // "@" + five hex digits
    EXPECT_TRUE(server->wait_stderr("getpeername=" + probe_name + "\n")) << server->err();
    EXPECT_EQ(ask(probe.get(), "named\n"), "NAMED\n");
}

TEST(Ch02Semantics, OurAddressHelperAccepts107BytesAndRejects108) {
    const std::string base = th::unique_abstract_name("helper");
    const std::string n107 = base + std::string(107 - base.size(), 'h');
    auto a = uds::Address::abstract(n107);
    EXPECT_EQ(a.length(), sizeof(sockaddr_un));
    uds::Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    EXPECT_EQ(::bind(s.get(), a.sockaddr_ptr(), a.length()), 0);  // the kernel agrees
    EXPECT_THROW(uds::Address::abstract(n107 + "h"), uds::AddressError);
    EXPECT_THROW(uds::address_argument("@" + n107 + "h"), uds::UsageError);
    // There is no room for a 108th byte: the kernel refuses a longer addrlen with EINVAL.
    struct {
        sockaddr_un sa;
        char extra[8];
    } big{};
    big.sa.sun_family = AF_UNIX;
    std::memset(big.sa.sun_path + 1, 'h', sizeof big.sa.sun_path - 1);
    uds::Fd t{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    EXPECT_EQ(::bind(t.get(), reinterpret_cast<sockaddr*>(&big), sizeof(sockaddr_un) + 1), -1);
    EXPECT_EQ(errno, EINVAL);
}

TEST(Ch02Semantics, AbstractNamesHaveNoPermissionsSoAnyUidCanConnect) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a peer as another uid";
    // A root-owned listener on an abstract name: nobody connects without any check...
    const std::string name = th::unique_abstract_name("noperm");
    auto addr = uds::Address::abstract(name);
    uds::Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    ASSERT_EQ(::bind(s.get(), addr.sockaddr_ptr(), addr.length()), 0);
    ASSERT_EQ(::listen(s.get(), 4), 0);
    std::string text;
    EXPECT_EQ(as_nobody([&](std::string&) { return try_connect(addr); }, &text), 0);
    // ...while a path socket in a private (0700) directory keeps nobody out with EACCES.
    th::TempDir tmp;
    ASSERT_EQ(::chmod(tmp.path().c_str(), 0700), 0);
    auto path = uds::Address::path(tmp.file("private.sock"));
    uds::Fd p{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    ASSERT_EQ(::bind(p.get(), path.sockaddr_ptr(), path.length()), 0);
    ASSERT_EQ(::listen(p.get(), 4), 0);
    EXPECT_EQ(as_nobody([&](std::string&) { return try_connect(path); }, &text), EACCES);
}

TEST(Ch02Semantics, PeerCredentialsAreTheUidOfTheConnectingProcess) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a peer as another uid";
    const std::string name = th::unique_abstract_name("cred");
    auto addr = uds::Address::abstract(name);
    uds::Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    ASSERT_EQ(::bind(s.get(), addr.sockaddr_ptr(), addr.length()), 0);
    ASSERT_EQ(::listen(s.get(), 4), 0);
    std::string text;
    // The child connects and exits; its connection waits in the queue with its credentials.
    ASSERT_EQ(as_nobody([&](std::string&) { return try_connect(addr); }, &text), 0);
    uds::Fd conn{::accept4(s.get(), nullptr, nullptr, SOCK_CLOEXEC)};
    ASSERT_TRUE(conn.valid());
    ucred cred{};
    socklen_t len = sizeof cred;
    ASSERT_EQ(::getsockopt(conn.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len), 0);
    EXPECT_EQ(cred.uid, th::kNobody);
    EXPECT_EQ(cred.gid, th::kNobody);
    EXPECT_GT(cred.pid, 0);
}

TEST(Ch02Semantics, PeerCredentialsAreTakenAtConnectTime) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to change uid";
    // A child connects as root, then drops to nobody: the server still sees uid 0. The check
    // is about who opened the connection, not who uses it later.
    const std::string name = th::unique_abstract_name("credtime");
    auto addr = uds::Address::abstract(name);
    uds::Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    ASSERT_EQ(::bind(s.get(), addr.sockaddr_ptr(), addr.length()), 0);
    ASSERT_EQ(::listen(s.get(), 4), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        uds::Fd c{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
        if (::connect(c.get(), addr.sockaddr_ptr(), addr.length()) != 0) ::_exit(1);
        if (::setgid(th::kNobody) != 0 || ::setuid(th::kNobody) != 0) ::_exit(2);
        if (::send(c.get(), "x", 1, MSG_NOSIGNAL) != 1) ::_exit(3);  // sent as nobody
        ::_exit(0);
    }
    int st = 0;
    ASSERT_EQ(::waitpid(pid, &st, 0), pid);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
    uds::Fd conn{::accept4(s.get(), nullptr, nullptr, SOCK_CLOEXEC)};
    ASSERT_TRUE(conn.valid());
    ucred cred{};
    socklen_t len = sizeof cred;
    ASSERT_EQ(::getsockopt(conn.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len), 0);
    EXPECT_EQ(cred.uid, 0u);
    EXPECT_EQ(cred.pid, pid);
}

TEST(Ch02Semantics, AbstractNamesBelongToTheNetworkNamespace) {
    const std::string name = th::unique_abstract_name("netns");
    auto addr = uds::Address::abstract(name);
    th::TempDir tmp;
    auto path = uds::Address::path(tmp.file("shared.sock"));
    uds::Fd path_listener{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    ASSERT_EQ(::bind(path_listener.get(), path.sockaddr_ptr(), path.length()), 0);
    ASSERT_EQ(::listen(path_listener.get(), 4), 0);

    int to_parent[2], to_child[2];
    ASSERT_EQ(::pipe2(to_parent, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(to_child, O_CLOEXEC), 0);
    uds::Fd from_child{to_parent[0]}, child_w{to_parent[1]};
    uds::Fd parent_r{to_child[0]}, to_child_w{to_child[1]};
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        // In a new network namespace: bind the same abstract name, and try the path socket.
        to_child_w.reset();  // our copies of the parent's ends: keep only ours open
        from_child.reset();
        char report[2] = {'E', 0};
        if (enter_new_netns()) {
            uds::Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
            bool bound = ::bind(s.get(), addr.sockaddr_ptr(), addr.length()) == 0 &&
                         ::listen(s.get(), 4) == 0;
            report[0] = bound ? 'B' : 'F';
            report[1] = static_cast<char>(try_connect(path));
            write_pipe(child_w.get(), std::string(report, 2));
            char done;
            // Hold the name until the parent is done (it closes its end: read returns 0).
            [[maybe_unused]] ssize_t n = ::read(parent_r.get(), &done, 1);
        } else {
            write_pipe(child_w.get(), std::string(report, 2));
        }
        ::_exit(0);
    }
    child_w.reset();
    parent_r.reset();
    char report[2] = {};
    bool got = th::readable(from_child.get(), static_cast<int>(th::kPatience.count())) &&
               ::read(from_child.get(), report, 2) == 2;
    auto finish = [&] {
        to_child_w.reset();
        int st = 0;
        ::waitpid(pid, &st, 0);
    };
    if (got && report[0] == 'E') {
        finish();
        GTEST_SKIP() << "cannot create a network namespace here";
    }
    EXPECT_TRUE(got);
    EXPECT_EQ(report[0], 'B') << "the child could not bind the name in its namespace";
    // The child holds @name in its namespace; ours does not see it, and it is free here.
    EXPECT_EQ(try_connect(addr), ECONNREFUSED);
    uds::Fd mine{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    EXPECT_EQ(::bind(mine.get(), addr.sockaddr_ptr(), addr.length()), 0);
    // A path socket is found through the filesystem: the namespace does not matter.
    EXPECT_EQ(report[1], 0) << "connect to the path from the other namespace: "
                            << std::strerror(report[1]);
    finish();
}

// The seed article's abstract example, re-done in our own code: copy a C string whose first
// character is a stand-in into sun_path, overwrite that character with '\0', and compute the
// length as offsetof(sun_path) + strlen(string).
RawAddress seed_style(const std::string& text) {
    RawAddress a;
    a.sa.sun_family = AF_UNIX;
    std::memcpy(a.sa.sun_path, text.c_str(), text.size() + 1);
    a.sa.sun_path[0] = '\0';
    a.len = static_cast<socklen_t>(kOffset + std::strlen(text.c_str()));
    return a;
}

TEST(Ch02Semantics, SeedArticleExampleWorksOnlyBecauseItsFirstCharacterIsAStandIn) {
    const std::string name = th::unique_abstract_name("seed");
    // With a stand-in first character the arithmetic happens to come out right: strlen counts
    // the stand-in, which became the leading NUL, so the length is offsetof + 1 + name length.
    {
        auto a = seed_style("#" + name);
        EXPECT_EQ(a.len, exact_length(name));
        uds::Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
        ASSERT_EQ(::bind(s.get(), a.ptr(), a.len), 0);
        ASSERT_EQ(::listen(s.get(), 4), 0);
        EXPECT_EQ(uds::local_address(s.get()), uds::Address::abstract(name));
        EXPECT_EQ(try_connect(uds::Address::abstract(name)), 0);
    }
    // Without one, the first letter of the name is silently eaten.
    {
        auto a = seed_style(name);
        uds::Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
        ASSERT_EQ(::bind(s.get(), a.ptr(), a.len), 0);
        ASSERT_EQ(::listen(s.get(), 4), 0);
        EXPECT_EQ(uds::local_address(s.get()).str(), "@" + name.substr(1));
        EXPECT_EQ(try_connect(uds::Address::abstract(name)), ECONNREFUSED);
    }
    // And the article's bind example passes sizeof(struct sockaddr_un) instead of that length:
    // the name becomes "\0name\0\0...", which an exact-length peer cannot reach.
    {
        auto a = seed_style("#" + name);
        uds::Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
        ASSERT_EQ(::bind(s.get(), a.ptr(), sizeof(sockaddr_un)), 0);
        ASSERT_EQ(::listen(s.get(), 4), 0);
        EXPECT_EQ(uds::local_address(s.get()).length(), sizeof(sockaddr_un));
        EXPECT_EQ(try_connect(uds::Address::abstract(name)), ECONNREFUSED);
    }
}

}  // namespace
