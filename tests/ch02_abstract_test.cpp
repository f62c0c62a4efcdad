// Chapter 02: the stream server on a Linux abstract name, and the kernel facts its README claims.
//
//   Ch02Contract   the real server and client binaries, driven as the chapter's README says
//   Ch02Peers      peers of another uid: the SO_PEERCRED check, refused floods, squatters
//                  (as root with real peers of uid 65534, else with the stand-in of
//                  ch02_support.hpp where a test can use one)
//   Ch02Interop    outside peers: Python's socket module and socat
//   Ch02Semantics  raw system calls: what the length does to a name, autobind, lifetime,
//                  permissions, network namespaces, the seed article's example
//
// Every name is unique per test (th::unique_abstract_name), so the suite can run shuffled,
// repeated and in parallel. Nothing sleeps to synchronise: every wait is a poll with a deadline.
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "ch02_support.hpp"
#include "harness.hpp"
#include "uds.hpp"

namespace {

using namespace ch02;
using namespace std::string_literals;

socklen_t exact_length(const std::string& name) {
    return static_cast<socklen_t>(kOffset + 1 + name.size());
}
int try_connect(const uds::Address& a, uds::Fd* out = nullptr) {
    RawAddress r;
    std::memcpy(&r.sa, a.sockaddr_ptr(), a.length());
    r.len = a.length();
    return ch02::try_connect(r, out);
}
using ch02::try_connect;

std::unique_ptr<th::Process> start_server(const std::vector<std::string>& args,
                                          th::Process::Options opts = {}) {
    return th::start_server(server_bin(), args, "listening on", std::move(opts));
}

// Runs a program that must end at once (a usage error, --help). A program that does not end
// stops the test right there: one that never exits must not cost every later call its wait.
th::Result run_short(const std::string& program, const std::vector<std::string>& args) {
    auto r = th::run(program, args);
    if (r.status == -1)
        throw th::Abort("the " + program.substr(program.rfind('/') + 1) +
                        " did not exit; it should have, at once (a usage error or --help)");
    return r;
}

// One request, one reply line.
std::string ask(int fd, const std::string& request) {
    th::send_all(fd, request);
    return th::read_line(fd);
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

// The same for a peer of another uid (real or stand-in, see ch02_support.hpp).
int as_peer(const OtherUid& other, const std::function<int(std::string&)>& fn, std::string* text) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return -1;
    uds::Fd r{p[0]}, w{p[1]};
    const pid_t pid = fork_as(other, [&] {
        r.reset();
        std::string out;
        int status = fn(out);
        write_pipe(w.get(), out);
        return status;
    });
    w.reset();
    text->clear();
    char buf[4096];
    ssize_t n;
    while (th::readable(r.get(), static_cast<int>(th::patience().count())) &&
           (n = ::read(r.get(), buf, sizeof buf)) > 0)
        text->append(buf, static_cast<std::size_t>(n));
    return pid < 0 ? -1 : wait_child(pid);
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

// CPU time (user + system, in clock ticks) a process has used so far; -1 if unknown.
long cpu_ticks(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto paren = stat.rfind(')');
    if (paren == std::string::npos) return -1;
    std::istringstream f(stat.substr(paren + 2));
    std::string field;
    long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && f >> field; ++i) {  // fields 14 and 15 of stat(5)
        if (i == 14) utime = std::stol(field);
        if (i == 15) stime = std::stol(field);
    }
    return utime + stime;
}

// The lowest descriptor number a process does not use: a limit at that number leaves it none.
int lowest_free_fd(pid_t pid) {
    std::vector<bool> used(4096);
    std::error_code ec;
    for (const auto& e :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
        int n = std::atoi(e.path().filename().c_str());
        if (n >= 0 && n < 4096) used[static_cast<std::size_t>(n)] = true;
    }
    int fd = 0;
    while (fd < 4096 && used[static_cast<std::size_t>(fd)])
        ++fd;
    return fd;
}

// ================================================================= Ch02Contract

TEST(Ch02Contract, ServesTheUpcasingProtocolOverAnAbstractName) {
    const std::string name = th::unique_abstract_name("contract");
    auto server = start_server({"-s", "@" + name});
    EXPECT_TRUE(contains(server->err(), "listening on @" + name + "\n"))
        << th::why("the server says 'listening on @NAME' once it is ready");
    const int baseline = th::count_fds(server->pid());

    // The chapter's client: each argument is one request.
    auto r = th::run(client_bin(), {"-s", "@" + name, "hello, world", "你好 abc"});
    ASSERT_EQ(r.status, 0) << th::why("the client exits 0 when every reply arrived" +
                                      ended(*server))
                           << "\n"
                           << r.err;
    EXPECT_EQ(r.out, "HELLO, WORLD\n你好 ABC\n")
        << th::why("each MESSAGE comes back upper-cased (ASCII only), one line each");

    // With no arguments it reads stdin, and answers a last line without '\n' too.
    r = th::run(client_bin(), {"-s", "@" + name}, "one\ntwo\nthree");
    EXPECT_EQ(r.status, 0) << th::why("the client reads requests from stdin") << "\n" << r.err;
    EXPECT_EQ(r.out, "ONE\nTWO\nTHREE\n") << th::why("every line of stdin is one request");

    // A raw peer: requests split across writes, several in one write, a final unterminated line.
    {
        uds::Fd c = th::connect_stream(uds::Address::abstract(name));
        th::send_all(c.get(), "sp");
        th::send_all(c.get(), "lit\nmany\nat once\nnul\0byte\r\nlast"s);
        ASSERT_EQ(::shutdown(c.get(), SHUT_WR), 0);
        EXPECT_EQ(th::read_to_eof(c.get()), "SPLIT\nMANY\nAT ONCE\nNUL\0BYTE\r\nLAST\n"s)
            << th::why(
                   "split, merged and unterminated lines are each answered; NUL and \\r "
                   "come back unchanged (step S5a)");
    }
    // A line over 4096 bytes: the exact ERROR, the connection closed, the server goes on.
    {
        uds::Fd c = th::connect_stream(uds::Address::abstract(name));
        send_quietly(c.get(), std::string(5000, 'x') + "\n");
        int err = 0;
        EXPECT_EQ(th::read_to_eof(c.get(), th::Deadline{}, &err),
                  "ERROR line too long (max 4096 bytes)\n")
            << th::why("a line over 4096 bytes gets the ERROR line and the connection closes");
    }
    uds::Fd c = th::connect_stream(uds::Address::abstract(name));
    EXPECT_EQ(ask(c.get(), "still here\n"), "STILL HERE\n")
        << th::why("the server goes on after a client broke the rules");
    c.reset();

    // Every connection's descriptor was closed: with one probe connection open, the server
    // holds exactly one descriptor more than when it started.
    std::string probe_name;
    uds::Fd probe = autobound_probe(uds::Address::abstract(name), &probe_name);
    ASSERT_TRUE(server->wait_stderr("getpeername=" + probe_name))
        << th::why("the server logs each connection it serves with getpeername=" + ended(*server));
    EXPECT_EQ(th::count_fds(server->pid()), baseline + 1)
        << th::why("every finished connection's descriptor is closed (step S6)");
    probe.reset();

    server->signal(SIGTERM);
    EXPECT_EQ(server->wait_exit(), 0) << th::why("SIGTERM ends the server with status 0");
}

TEST(Ch02Contract, AcceptedSocketCarriesTheNameAndAnUnboundClientIsUnnamed) {
    const std::string name = th::unique_abstract_name("names");
    auto server = start_server({"-s", "@" + name});
    uds::Fd c = th::connect_stream(uds::Address::abstract(name));
    ASSERT_EQ(ask(c.get(), "x\n"), "X\n") << th::why("the server answers" + ended(*server));
    EXPECT_TRUE(server->wait_stderr("getsockname=@" + name + " getpeername=(unnamed)")) << th::why(
        "the log shows getsockname=@NAME getpeername=(unnamed): the accepted socket "
        "has the listener's name, a client that never bound has none");
    // And our side sees the server's name, exactly as bound (no padding).
    EXPECT_EQ(uds::peer_address(c.get()), uds::Address::abstract(name))
        << th::why("getpeername on the client gives the server's exact name (step S2a)");
    EXPECT_EQ(uds::local_address(c.get()).str(), "(unnamed)") << th::why("the client is unnamed");
}

TEST(Ch02Contract, DefaultAddressIsThePerUserAbstractName) {
    // --help documents it...
    auto help = run_short(server_bin(), {"--help"});
    EXPECT_EQ(help.status, 0) << th::why("server --help exits 0");
    EXPECT_TRUE(contains(help.out, "@uds-tutorial-UID-02"))
        << th::why("server --help names the default @uds-tutorial-UID-02");
    help = run_short(client_bin(), {"--help"});
    EXPECT_EQ(help.status, 0) << th::why("client --help exits 0");
    EXPECT_TRUE(contains(help.out, "@uds-tutorial-UID-02"))
        << th::why("client --help names the default @uds-tutorial-UID-02");

    // ...and server and client use it. In a network namespace of their own, so this test can
    // never collide with your own server or with a parallel run of the suite.
    std::string expected = "listening on @uds-tutorial-<uid>-02";
    int rc = in_new_netns([&] {
        expected = "listening on @uds-tutorial-" + std::to_string(::geteuid()) + "-02\n";
        th::Process server(server_bin(), {});
        if (!server.wait_stderr(expected)) return 1;
        auto r = run_short(client_bin(), {"hi there"});
        if (r.status != 0) return 2;
        if (r.out != "HI THERE\n") return 3;
        return 0;
    });
    if (rc == -2) GTEST_SKIP() << "cannot create a network namespace here";
    EXPECT_EQ(rc, 0) << th::why(
        "without -s, both use @uds-tutorial-UID-02 (1: the server did "
        "not listen there; 2: the client failed; 3: wrong reply)");
}

TEST(Ch02Contract, EmptyOrUnusableArgumentsAreUsageErrors) {
    for (const auto& program : {server_bin(), client_bin()}) {
        const std::string who = program.substr(program.rfind('/') + 1);
        auto r = run_short(program, {"-s", ""});
        EXPECT_EQ(r.status, 2) << th::why(who +
                                          " -s '' is a usage error (exit 2), never the "
                                          "default name: an unset variable must not pick it");
        EXPECT_TRUE(contains(r.err, "socket path is empty"))
            << th::why(who + " -s '' says the address is empty");
        r = run_short(program, {"-s", "@"});
        EXPECT_EQ(r.status, 2) << th::why(who + " -s @ (an empty name) is a usage error");
        EXPECT_TRUE(contains(r.err, "abstract socket name is empty"))
            << th::why(who + " -s @ says the name is empty");
        r = run_short(program, {"-s"});
        EXPECT_EQ(r.status, 2) << th::why(who + " -s without a value is a usage error");
        r = run_short(program, {"--bogus"});
        EXPECT_EQ(r.status, 2) << th::why(who + " rejects an unknown option with exit 2");
    }
    const std::string name = "@" + th::unique_abstract_name("badopt");
    for (const char* bad : {"", "abc", "-1", "4294967295", "99999999999999999999", "1x"}) {
        auto r = run_short(server_bin(), {"-s", name, "--allow-uid", bad});
        EXPECT_EQ(r.status, 2) << th::why("--allow-uid '" + std::string(bad) +
                                          "' is a usage error");
        EXPECT_TRUE(contains(r.err, "--allow-uid must be a whole number"))
            << th::why("a bad --allow-uid says what a uid must be");
        r = run_short(client_bin(), {"-s", name, "--server-uid", bad, "x"});
        EXPECT_EQ(r.status, 2) << th::why("--server-uid '" + std::string(bad) +
                                          "' is a usage error");
    }
    for (const char* bad : {"", "0", "-1", "x", "86401"}) {
        auto r = run_short(server_bin(), {"-s", name, "--idle-timeout", bad});
        EXPECT_EQ(r.status, 2) << th::why("--idle-timeout '" + std::string(bad) +
                                          "' is a usage error (1 to 86400 seconds)");
    }
    auto r = run_short(server_bin(), {"-s", name, "extra"});
    EXPECT_EQ(r.status, 2) << th::why("the server takes no arguments besides options");
    r = run_short(server_bin(), {"--help"});
    EXPECT_EQ(r.status, 0) << th::why("--help exits 0");
    EXPECT_TRUE(contains(r.out, "--allow-uid UID") && contains(r.out, "--allow-any") &&
                contains(r.out, "--idle-timeout SECONDS") && contains(r.out, "default 30"))
        << th::why("server --help documents --allow-uid, --allow-any and --idle-timeout (30 s)");
    r = run_short(client_bin(), {"--help"});
    EXPECT_TRUE(contains(r.out, "--server-uid UID"))
        << th::why("client --help documents --server-uid");
}

TEST(Ch02Contract, PeerWithAHandBuiltExactLengthAddressIsServed) {
    const std::string name = th::unique_abstract_name("exact");
    auto server = start_server({"-s", "@" + name});
    // offsetof(sun_path) + 1 + strlen(name): the leading NUL and the name, nothing more.
    uds::Fd c;
    ASSERT_EQ(try_connect(raw_abstract(name, exact_length(name)), &c), 0) << th::why(
        "a peer using offsetof(sun_path) + 1 + name length reaches the server (step S2a)");
    EXPECT_EQ(ask(c.get(), "exact\n"), "EXACT\n") << th::why("and is served" + ended(*server));
}

TEST(Ch02Contract, NameInUseSecondServerExits1AndTheFirstKeepsServing) {
    const std::string name = th::unique_abstract_name("inuse");
    auto first = start_server({"-s", "@" + name});
    auto second = th::run(server_bin(), {"-s", "@" + name});
    EXPECT_EQ(second.status, 1) << th::why("a second server on a held name exits 1");
    EXPECT_TRUE(contains(second.err, "server: bind @" + name + ": Address already in use"))
        << th::why("it says bind failed with EADDRINUSE");
    EXPECT_TRUE(contains(second.err, "never stale"))
        << th::why("it says an abstract name is never stale (nothing to remove)");
    EXPECT_FALSE(contains(second.err, "listening on")) << th::why("it never says it is listening");
    EXPECT_EQ(std::count(second.err.begin(), second.err.end(), '\n'), 1)
        << th::why("one line on stderr");

    uds::Fd c = th::connect_stream(uds::Address::abstract(name));
    EXPECT_EQ(ask(c.get(), "first\n"), "FIRST\n") << th::why("the first server keeps serving");
    EXPECT_TRUE(first->running()) << th::why("the first server keeps running");
}

TEST(Ch02Contract, NameDisappearsWhenTheServerExits) {
    const std::string name = th::unique_abstract_name("gone");
    auto server = start_server({"-s", "@" + name});
    EXPECT_GE(proc_exactly("@" + name), 1u) << th::why("/proc/net/unix shows the name");
    server->signal(SIGTERM);
    ASSERT_EQ(server->wait_exit(), 0) << th::why("SIGTERM ends the server with status 0 (step S7)");
    EXPECT_TRUE(contains(server->err(), "stopping on")) << th::why("it logs why it stops");

    EXPECT_EQ(proc_starting_with("@" + name), 0u) << th::why("the name is gone with the server");
    EXPECT_EQ(try_connect(uds::Address::abstract(name)), ECONNREFUSED)
        << th::why("connect to a name nobody holds gives ECONNREFUSED");
    // Nothing was left behind: the same name can be bound again at once.
    auto again = start_server({"-s", "@" + name});
    EXPECT_TRUE(again->running()) << th::why("a new server gets the same name at once");
}

TEST(Ch02Contract, NameIsFreeAgainEvenAfterTheServerIsKilled) {
    // SIGKILL gives the server no chance to clean up. With a path (chapter 01) that leaves a
    // stale file; with an abstract name the kernel frees the name with the last descriptor.
    const std::string name = th::unique_abstract_name("killed");
    auto server = start_server({"-s", "@" + name});
    server->signal(SIGKILL);
    EXPECT_EQ(server->wait_exit(), 128 + SIGKILL) << th::why("the server is killed");
    EXPECT_EQ(proc_starting_with("@" + name), 0u) << th::why("the kernel freed the name");
    auto again = start_server({"-s", "@" + name});
    uds::Fd c = th::connect_stream(uds::Address::abstract(name));
    EXPECT_EQ(ask(c.get(), "again\n"), "AGAIN\n") << th::why("a new server serves on that name");
}

TEST(Ch02Contract, ProcNetUnixShowsExactlyAtName) {
    const std::string name = th::unique_abstract_name("proc");
    auto server = start_server({"-s", "@" + name});
    EXPECT_EQ(proc_exactly("@" + name), 1u) << th::why("one socket named exactly @NAME (step S2a)");
    // No padded variant ("@name@@@...") anywhere: the server bound exactly the name.
    EXPECT_EQ(proc_starting_with("@" + name), 1u)
        << th::why("no NUL-padded twin of the name (step S2a)");
    // The accepted socket carries the listener's name too.
    uds::Fd c = th::connect_stream(uds::Address::abstract(name));
    ASSERT_EQ(ask(c.get(), "proc\n"), "PROC\n") << th::why("the server answers" + ended(*server));
    EXPECT_EQ(proc_exactly("@" + name), 2u)
        << th::why("while a client is connected the accepted socket shows the name too");
}

TEST(Ch02Contract, NameOf107BytesIsServedAnd108IsAUsageError) {
    std::string base = th::unique_abstract_name("long");
    const std::string n107 = base + std::string(107 - base.size(), 'x');
    const std::string n108 = n107 + "y";
    ASSERT_EQ(n107.size(), 107u);

    auto server = start_server({"-s", "@" + n107});
    auto addr = uds::Address::abstract(n107);
    EXPECT_EQ(addr.length(), sizeof(sockaddr_un)) << th::why("107 bytes fill sun_path exactly");
    uds::Fd c = th::connect_stream(addr);
    ASSERT_EQ(ask(c.get(), "long\n"), "LONG\n")
        << th::why("a 107-byte name is served" + ended(*server));
    EXPECT_EQ(proc_exactly("@" + n107), 2u) << th::why("the 107-byte name is bound exactly");

    for (const auto& args : {std::vector<std::string>{server_bin(), "-s", "@" + n108},
                             std::vector<std::string>{client_bin(), "-s", "@" + n108, "x"}}) {
        auto r = th::run(args[0], {args.begin() + 1, args.end()});
        EXPECT_EQ(r.status, 2) << th::why("a 108-byte name is a usage error (exit 2)");
        EXPECT_TRUE(contains(r.err, "abstract socket name is 108 bytes; the limit is 107"))
            << th::why("it says the name is 108 bytes and the limit is 107");
        EXPECT_TRUE(contains(r.err, "usage:")) << th::why("and shows the usage");
    }
}

TEST(Ch02Contract, ClientWithNoServerExplainsAndExits1) {
    const std::string name = th::unique_abstract_name("noserver");
    auto r = th::run(client_bin(), {"-s", "@" + name, "hello"});
    EXPECT_EQ(r.status, 1) << th::why("no server: the client exits 1");
    EXPECT_TRUE(contains(r.err, "client: connect @" + name + ": Connection refused"))
        << th::why("it says connect failed with ECONNREFUSED (never ENOENT: there is no file)");
    EXPECT_TRUE(contains(r.err, "is the server running?")) << th::why("with a hint");
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
    EXPECT_TRUE(contains(server->err(), "removed stale socket file"))
        << th::why("with -s PATH a stale socket file is replaced, as in chapter 01");
    struct stat st {};
    ASSERT_EQ(::lstat(path.c_str(), &st), 0) << th::why("the socket file exists");
    EXPECT_TRUE(S_ISSOCK(st.st_mode)) << th::why("and is a socket");
    auto r = th::run(client_bin(), {"-s", path, "by path"});
    ASSERT_EQ(r.status, 0) << th::why("the client connects by path and is served" + ended(*server))
                           << "\n"
                           << r.err;
    EXPECT_EQ(r.out, "BY PATH\n") << th::why("and is served");
    server->signal(SIGTERM);
    EXPECT_EQ(server->wait_exit(), 0) << th::why("SIGTERM ends the server with status 0");
    EXPECT_NE(::access(path.c_str(), F_OK), 0)
        << th::why("the server removes its own socket file when it stops");
}

TEST(Ch02Contract, ServerLogsTheNameOfAnAutoboundClient) {
    const std::string name = th::unique_abstract_name("autobind");
    auto server = start_server({"-s", "@" + name});
    std::string probe_name;
    uds::Fd probe = autobound_probe(uds::Address::abstract(name), &probe_name);
    ASSERT_EQ(probe_name.size(), 6u) << th::why("an autobound name is @ and five hex digits");
    EXPECT_TRUE(server->wait_stderr("getpeername=" + probe_name + "\n"))
        << th::why("the log shows the autobound client's name" + ended(*server));
    EXPECT_EQ(ask(probe.get(), "named\n"), "NAMED\n") << th::why("and serves it");
}

// A name a peer chooses must not forge a log line: every byte it controls is escaped.
TEST(Ch02Contract, APeersNameCannotForgeALogLine) {
    const std::string name = th::unique_abstract_name("forge");
    auto server = start_server({"-s", "@" + name});
    th::TempDir tmp;
    // A path with a newline, a fake ready line and a terminal escape in it.
    const std::string evil = tmp.file("x\nserver: listening on @fake\n\x1b[2J");
    uds::Fd c{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    const RawAddress mine = raw_path(evil);
    ASSERT_EQ(::bind(c.get(), mine.ptr(), mine.len), 0);
    const RawAddress to = raw_abstract(name);
    ASSERT_EQ(::connect(c.get(), to.ptr(), to.len), 0)
        << th::why("the server is listening (steps S1-S3)");
    ASSERT_EQ(ask(c.get(), "forged?\n"), "FORGED?\n")
        << th::why("the peer is served" + ended(*server));
    c.reset();
    EXPECT_TRUE(server->wait_stderr("connection closed")) << th::why("the server logs the end");
    EXPECT_FALSE(contains(server->err(), "\nserver: listening on @fake"))
        << th::why("a newline in a peer's name must not start a log line: escape it");
    EXPECT_FALSE(contains(server->err(), "\x1b"))
        << th::why("a terminal escape in a peer's name must be escaped in the log");
    EXPECT_EQ(count_of("\n" + server->err(), "\nserver: listening on"), 1u)
        << th::why("exactly one line starts with 'server: listening on': the server's own");
}

// Before: one idle client held the one-at-a-time server forever. An idle deadline gives the
// slot back: the starved client is served once the idle one times out.
TEST(Ch02Contract, AnIdleClientIsClosedAndTheWaitingOneServed) {
    const std::string name = th::unique_abstract_name("idle");
    auto server = start_server({"-s", "@" + name, "--idle-timeout", "1"});
    uds::Fd idle = th::connect_stream(uds::Address::abstract(name));
    ASSERT_EQ(ask(idle.get(), "then nothing\n"), "THEN NOTHING\n")
        << th::why("the first client is served" + ended(*server));
    // The idle client is being served (it has not closed), so this one waits in the queue.
    uds::Fd starved = th::connect_stream(uds::Address::abstract(name));
    th::send_all(starved.get(), "my turn\n");
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(th::read_line(starved.get(), th::Deadline{th::patience() + th::milliseconds{1000}}),
              "MY TURN\n")
        << th::why(
               "a client waiting behind an idle one is served once the idle one times out "
               "(--idle-timeout 1)" +
               ended(*server));
    const auto waited =
        std::chrono::duration_cast<th::milliseconds>(std::chrono::steady_clock::now() - t0);
    EXPECT_GE(waited.count(), 500) << th::why("the idle client is given its whole second");
    int err = 0;
    EXPECT_EQ(th::read_to_eof(idle.get(), th::Deadline{th::milliseconds{500}}, &err), "")
        << th::why("the idle client's connection has been closed");
    EXPECT_TRUE(server->wait_stderr("sent nothing for 1 s"))
        << th::why("the server logs why it closed the idle client");
}

// A client that sends but never reads its replies: once they fill its socket buffer the
// server's send() would block forever. SO_SNDTIMEO turns that into an error after the idle
// timeout, and the next client is served.
TEST(Ch02Contract, AClientThatNeverReadsIsClosedAndTheWaitingOneServed) {
    const std::string name = th::unique_abstract_name("noread");
    auto server = start_server({"-s", "@" + name, "--idle-timeout", "1"});
    uds::Fd hog = th::connect_stream(uds::Address::abstract(name));
    // Requests until nothing more goes in (the server stopped reading: its replies are stuck).
    const std::string lines = [] {
        std::string s;
        for (int i = 0; i < 64; ++i)
            s += std::string(63, 'r') + "\n";
        return s;
    }();
    th::Deadline fill{th::milliseconds{3000}};
    while (!fill.expired()) {
        ssize_t n = ::send(hog.get(), lines.data(), lines.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) break;
        // Full: wait briefly in case the server reads more, else it is stuck.
        pollfd p{hog.get(), POLLOUT, 0};
        if (::poll(&p, 1, 100) == 0) break;
    }
    uds::Fd starved = th::connect_stream(uds::Address::abstract(name));
    th::send_all(starved.get(), "my turn\n");
    ASSERT_EQ(th::read_line(starved.get(), th::Deadline{th::patience() + th::milliseconds{1000}}),
              "MY TURN\n")
        << th::why(
               "a client waiting behind one that never reads is served once the server's "
               "send has waited --idle-timeout (SO_SNDTIMEO)" +
               ended(*server));
    EXPECT_TRUE(server->wait_stderr("read none of its replies for 1 s"))
        << th::why("the server logs why it closed the client that did not read");
}

// Before: the server died at its next log line when stderr was a pipe whose reader had gone
// (`server 2>&1 | head -1`). It must go on serving, and still stop cleanly on SIGTERM.
TEST(Ch02Contract, TheServerOutlivesItsLogReader) {
    th::TempDir tmp;
    const std::string path = tmp.file("02.sock");
    auto server = start_server({"-s", path});
    server->close_stderr();
    for (const std::string word : {"one", "two"}) {
        auto r = th::run(client_bin(), {"-s", path, word});
        ASSERT_EQ(r.out, uds::upcase(word) + "\n")
            << th::why("a server nobody reads the log of goes on serving" + ended(*server));
    }
    EXPECT_TRUE(server->running())
        << th::why("a failed log write must not end the server" + ended(*server));
    server->signal(SIGTERM);
    EXPECT_EQ(server->wait_exit(), 0) << th::why("SIGTERM still ends it with status 0");
    EXPECT_NE(::access(path.c_str(), F_OK), 0) << th::why("and it still removes its socket file");
}

// accept4 fails with EMFILE when the server has no descriptor left. The server must neither
// exit nor spin: it says so once, tries again now and then, and serves once a descriptor is
// free (here: once we raise its limit again).
TEST(Ch02Contract, OutOfDescriptorsTheServerWaitsWithoutSpinningThenServes) {
    const std::string name = th::unique_abstract_name("emfile");
    auto server = start_server({"-s", "@" + name});
    rlimit old{};
    ASSERT_EQ(::prlimit(server->pid(), RLIMIT_NOFILE, nullptr, &old), 0);
    const rlimit none{static_cast<rlim_t>(lowest_free_fd(server->pid())), old.rlim_max};
    ASSERT_EQ(::prlimit(server->pid(), RLIMIT_NOFILE, &none, nullptr), 0);
    uds::Fd c = th::connect_stream(uds::Address::abstract(name));
    th::send_all(c.get(), "patience\n");
    EXPECT_TRUE(server->wait_stderr("Too many open files"))
        << th::why("the server says accept4 failed for want of descriptors" + ended(*server));
    const long before = cpu_ticks(server->pid());
    const bool answered = th::readable(c.get(), 500);
    const long used = cpu_ticks(server->pid()) - before;
    EXPECT_FALSE(answered) << th::why("no descriptor, no connection");
    EXPECT_TRUE(server->running())
        << th::why("EMFILE on accept4 must not end the server" + ended(*server));
    EXPECT_LE(used, 15) << th::why(
        "while it has no descriptor the server must not spin on "
        "accept4 (it used " +
        std::to_string(used) + " ticks of CPU in 0.5 s)");
    ASSERT_EQ(::prlimit(server->pid(), RLIMIT_NOFILE, &old, nullptr), 0);
    EXPECT_EQ(th::read_line(c.get()), "PATIENCE\n")
        << th::why("once a descriptor is free the waiting client is served" + ended(*server));
    EXPECT_EQ(count_of(server->err(), "Too many open files"), 1u)
        << th::why("the server says it once, not every 100 ms");
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
    send_quietly(c.get(), "hello from nobody\n");
    ::shutdown(c.get(), SHUT_WR);  // no more requests: a served peer sees EOF after its reply
    out = th::read_line(c.get());
    if (out.empty()) return 0;  // no answer at all: no need to wait for the end as well
    int read_err = 0;
    out += th::read_to_eof(c.get(), th::Deadline{}, &read_err);
    if (read_err != 0) out += std::string("[then ") + std::strerror(read_err) + "]";
    return 0;
}

TEST(Ch02Peers, AnotherUidIsRefusedByDefaultWithTheExactErrorLine) {
    auto other = other_uid();
    if (!other) GTEST_SKIP() << kNeedOtherUid;
    const std::string uid = std::to_string(other->uid);
    const std::string name = th::unique_abstract_name("refuse");
    auto server = start_server({"-s", "@" + name}, other->server_options);
    if (!stand_in_works(*other, *server)) GTEST_SKIP() << kStandInNotLoaded;
    EXPECT_TRUE(
        contains(server->err(), "peer check: serving uid " + std::to_string(::geteuid()) + "\n"))
        << th::why("the server logs whom it serves before 'listening on'");
    const int baseline = th::count_fds(server->pid());
    const auto addr = uds::Address::abstract(name);

    std::string got;
    ASSERT_EQ(as_peer(
                  *other, [&](std::string& out) { return nobody_asks(addr, out); }, &got),
              0)
        << th::why("uid " + uid + " can connect: an abstract name has no permissions") << "\n"
        << got;
    ASSERT_EQ(got, "ERROR not allowed (uid " + uid + ")\n")
        << th::why("uid " + uid + " gets exactly the refusal line and a clean end (step S4b)");
    EXPECT_TRUE(server->wait_stderr("refused a connection: peer pid="))
        << th::why("the server logs the refusal");

    // The server goes on: its own uid is served, and the refused connection was closed.
    uds::Fd c = th::connect_stream(addr);
    EXPECT_EQ(ask(c.get(), "me\n"), "ME\n") << th::why("our own uid is still served");
    c.reset();
    std::string probe_name;
    uds::Fd probe = autobound_probe(addr, &probe_name);
    ASSERT_TRUE(server->wait_stderr("getpeername=" + probe_name))
        << th::why("the server takes the next connection" + ended(*server));
    EXPECT_EQ(th::count_fds(server->pid()), baseline + 1)
        << th::why("the refused connection's descriptor was closed");
}

// A refused peer that had sent its request before the server took its connection still gets
// the line and a clean end of file, not a reset: the server drops what it sent before closing.
TEST(Ch02Peers, ARefusedPeerThatHadSentARequestSeesACleanEnd) {
    auto other = other_uid();
    if (!other) GTEST_SKIP() << kNeedOtherUid;
    const std::string name = th::unique_abstract_name("cleanend");
    auto server = start_server({"-s", "@" + name}, other->server_options);
    if (!stand_in_works(*other, *server)) GTEST_SKIP() << kStandInNotLoaded;
    const auto addr = uds::Address::abstract(name);
    // Keep the server busy with us, so the peer's connection and request wait in the queue.
    uds::Fd busy = th::connect_stream(addr);
    ASSERT_EQ(ask(busy.get(), "busy\n"), "BUSY\n") << th::why("we are served" + ended(*server));
    int ready[2], result[2];
    ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(result, O_CLOEXEC), 0);
    uds::Fd ready_r{ready[0]}, ready_w{ready[1]}, result_r{result[0]}, result_w{result[1]};
    const pid_t peer = fork_as(*other, [&] {
        busy.reset();  // the child's copy: only the parent's close may release the server
        uds::Fd c;
        if (try_connect(addr, &c) != 0) return 1;
        th::send_all(c.get(), "a request sent before the refusal\n");
        write_pipe(ready_w.get(), "x");
        std::string out = th::read_line(c.get());
        int err = 0;
        out += th::read_to_eof(c.get(), th::Deadline{}, &err);
        if (err != 0) out += std::string("[then ") + std::strerror(err) + "]";
        write_pipe(result_w.get(), out);
        return 0;
    });
    ASSERT_GT(peer, 0);
    ready_w.reset();
    result_w.reset();
    // Once the peer's request is in, let the server go on to its connection.
    EXPECT_TRUE(th::readable(ready_r.get(), static_cast<int>(th::patience().count())))
        << th::why("the peer can connect and send");
    busy.reset();
    const int rc = wait_child(peer);
    std::string got;
    char buf[256];
    for (ssize_t n; (n = ::read(result_r.get(), buf, sizeof buf)) > 0;)
        got.append(buf, static_cast<std::size_t>(n));
    EXPECT_EQ(rc, 0) << th::why("the peer can connect");
    EXPECT_EQ(got, "ERROR not allowed (uid " + std::to_string(other->uid) + ")\n") << th::why(
        "the refusal line, then a clean end of file, not ECONNRESET: drop what the "
        "peer sent before closing (refuse())");
}

TEST(Ch02Peers, AllowUidServesThatUidAndStillServesOurOwn) {
    auto other = other_uid();
    if (!other) GTEST_SKIP() << kNeedOtherUid;
    const std::string name = th::unique_abstract_name("allowuid");
    // Repeatable: both values are added to our own uid.
    auto server = start_server(
        {"-s", "@" + name, "--allow-uid", "1", "--allow-uid", std::to_string(other->uid)},
        other->server_options);
    if (!stand_in_works(*other, *server)) GTEST_SKIP() << kStandInNotLoaded;
    EXPECT_TRUE(contains(server->err(), "peer check: serving uid " + std::to_string(::geteuid()) +
                                            ", 1, " + std::to_string(other->uid) + "\n"))
        << th::why("--allow-uid is repeatable and adds to our own uid");
    const auto addr = uds::Address::abstract(name);
    std::string got;
    ASSERT_EQ(as_peer(
                  *other, [&](std::string& out) { return nobody_asks(addr, out); }, &got),
              0)
        << th::why("the peer can connect") << "\n"
        << got;
    ASSERT_EQ(got, "HELLO FROM NOBODY\n") << th::why("--allow-uid UID serves that uid");
    uds::Fd c = th::connect_stream(addr);
    EXPECT_EQ(ask(c.get(), "me too\n"), "ME TOO\n") << th::why("our own uid is still served");
}

TEST(Ch02Peers, AllowAnyServesEveryUid) {
    auto other = other_uid();
    if (!other) GTEST_SKIP() << kNeedOtherUid;
    const std::string name = th::unique_abstract_name("allowany");
    auto server = start_server({"-s", "@" + name, "--allow-any"}, other->server_options);
    if (!stand_in_works(*other, *server)) GTEST_SKIP() << kStandInNotLoaded;
    EXPECT_TRUE(contains(server->err(), "peer check: serving any uid"))
        << th::why("--allow-any is logged as 'serving any uid'");
    const auto addr = uds::Address::abstract(name);
    std::string got;
    ASSERT_EQ(as_peer(
                  *other, [&](std::string& out) { return nobody_asks(addr, out); }, &got),
              0)
        << th::why("the peer can connect") << "\n"
        << got;
    EXPECT_EQ(got, "HELLO FROM NOBODY\n") << th::why("--allow-any serves every uid");
}

// Before: each refusal held the one-at-a-time server for up to 500 ms, so 20 threads of a
// refused uid holding connections pushed an allowed client's round trip to 9 s. Refusing
// must cost no waiting.
TEST(Ch02Peers, ARefusedFloodCostsAnAllowedClientNoTime) {
    auto other = other_uid();
    if (!other) GTEST_SKIP() << kNeedOtherUid;
    const std::string name = th::unique_abstract_name("flood");
    auto server = start_server({"-s", "@" + name}, other->server_options);
    if (!stand_in_works(*other, *server)) GTEST_SKIP() << kStandInNotLoaded;
    const RawAddress addr = raw_abstract(name);
    // The flood: 20 threads, each connecting again and again and holding its last 16
    // connections open without reading (a refused peer that never closes). It says when it
    // has made 16 connections (a full listen queue of them).
    int started[2];
    ASSERT_EQ(::pipe2(started, O_CLOEXEC), 0);
    uds::Fd started_r{started[0]}, started_w{started[1]};
    auto flood = [&] {
        started_r.reset();
        std::atomic<int> made{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < 20; ++t)
            threads.emplace_back([&] {
                std::vector<uds::Fd> held(16);
                for (std::size_t i = 0;; ++i) {
                    uds::Fd c;
                    if (try_connect(addr, &c) != 0) continue;
                    held[i % held.size()] = std::move(c);
                    if (++made == 16) write_pipe(started_w.get(), "x");
                }
            });
        for (auto& t : threads)
            t.join();
        return 0;
    };
    pid_t flooder = -1;
    if (other->library.empty()) {
        flooder = fork_as_nobody(flood);
    } else if ((flooder = ::fork()) == 0) {
        ::_exit(flood());
    }
    ASSERT_GT(flooder, 0);
    started_w.reset();
    ASSERT_TRUE(th::readable(started_r.get(), static_cast<int>(th::patience().count())))
        << th::why("the refused peers can connect" + ended(*server));
    // Now our own round trips, while the flood goes on. One slow one is enough to fail.
    long worst_ms = 0;
    std::string replies;
    for (int i = 0; i < 5 && worst_ms < 1000; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        const th::Deadline d{th::milliseconds{1000}};
        // Non-blocking, so that a full listen queue costs us a retry, not a blocked connect().
        uds::Fd c{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
        int rc = -1;
        while ((rc = ::connect(c.get(), addr.ptr(), addr.len)) == -1 && errno == EAGAIN &&
               !d.expired())
            th::readable(-1, 1);
        if (rc == 0) {
            th::send_all(c.get(), "me\n");
            replies += th::read_line(c.get(), d);
        }
        worst_ms = std::max<long>(worst_ms, std::chrono::duration_cast<th::milliseconds>(
                                                std::chrono::steady_clock::now() - t0)
                                                .count());
    }
    ::kill(flooder, SIGKILL);
    wait_child(flooder);
    std::printf("ch02 flood: worst round trip of an allowed client: %ld ms\n", worst_ms);
    EXPECT_LT(worst_ms, 250) << th::why(
        "an allowed client's round trip must stay short during a "
        "flood of refused peers (was " +
        std::to_string(worst_ms) + " ms): refuse without waiting for the peer (step S4b)");
    EXPECT_EQ(replies, "ME\nME\nME\nME\nME\n")
        << th::why("an allowed client is served during a flood of refused ones" + ended(*server));
    // Thousands of refusals, a few log lines: a peer cannot multiply them.
    server->drain();
    EXPECT_LT(count_of(server->err(), "\n"), 200u)
        << th::why("refusals are logged at most a few times a second, not once each");
}

// Before: the name a refused peer had bound was logged before the check. A refused peer gets
// numbers in the log, never a byte it chose.
TEST(Ch02Peers, ARefusedPeersBoundNameIsNeverLogged) {
    auto other = other_uid();
    if (!other) GTEST_SKIP() << kNeedOtherUid;
    const std::string name = th::unique_abstract_name("nolog");
    auto server = start_server({"-s", "@" + name}, other->server_options);
    if (!stand_in_works(*other, *server)) GTEST_SKIP() << kStandInNotLoaded;
    const RawAddress to = raw_abstract(name);
    const RawAddress mine =
        raw_abstract(th::unique_abstract_name("FORGED\nserver: listening on @x"));
    const int rc = as_other_peer(*other, [&] {
        uds::Fd c{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
        if (::bind(c.get(), mine.ptr(), mine.len) != 0) return 1;
        if (::connect(c.get(), to.ptr(), to.len) != 0) return 2;
        return th::read_line(c.get()).rfind("ERROR not allowed", 0) == 0 ? 0 : 3;
    });
    EXPECT_EQ(rc, 0) << th::why("the peer of uid " + std::to_string(other->uid) + " is refused");
    EXPECT_TRUE(server->wait_stderr("refused a connection"))
        << th::why("the server logs the refusal" + ended(*server));
    EXPECT_FALSE(contains(server->err(), "FORGED")) << th::why(
        "a refused peer's bound name must not reach the log: log it only after the "
        "peer check");
}

TEST(Ch02Peers, TheChapterClientExplainsARefusalAndExits1) {
    auto other = other_uid();
    if (!other) GTEST_SKIP() << kNeedOtherUid;
    const std::string name = th::unique_abstract_name("clientrefused");
    auto server = start_server({"-s", "@" + name}, other->server_options);
    if (!stand_in_works(*other, *server)) GTEST_SKIP() << kStandInNotLoaded;
    // nobody may not be able to reach the binary where it was built (a checkout under /root):
    // run a copy from a directory everyone can enter.
    th::TempDir tmp;
    ASSERT_EQ(::chmod(tmp.path().c_str(), 0755), 0);
    const std::string client = tmp.file("client");
    std::filesystem::copy_file(client_bin(), client);
    ASSERT_EQ(::chmod(client.c_str(), 0755), 0);
    std::string got;
    // It trusts the server (its own uid, or root), then is refused by it.
    int rc = as_peer(
        *other,
        [&](std::string& out) {
            auto r = th::run(client, {"-s", "@" + name, "let me in"});
            out = r.out + "|" + r.err;
            return r.status;
        },
        &got);
    const std::string uid = std::to_string(other->uid);
    EXPECT_EQ(rc, 1) << th::why("a refused client exits 1") << "\n" << got;
    EXPECT_TRUE(contains(got, "ERROR not allowed (uid " + uid + ")\n|"))
        << th::why("it prints the refusal line on stdout");
    EXPECT_TRUE(contains(got, "client: @" + name + ": the server refused us"))
        << th::why("it explains on stderr");
    EXPECT_TRUE(contains(got, "or --allow-any"))
        << th::why("and names the option the server would need");
}

TEST(Ch02Peers, RefusedPeersThatMisbehaveNeverStopTheServer) {
    auto other = other_uid();
    if (!other) GTEST_SKIP() << kNeedOtherUid;
    const std::string name = th::unique_abstract_name("rude");
    auto server = start_server({"-s", "@" + name}, other->server_options);
    if (!stand_in_works(*other, *server)) GTEST_SKIP() << kStandInNotLoaded;
    const auto addr = uds::Address::abstract(name);
    std::string got;
    // Connect and vanish at once; connect and never read; connect and send a flood.
    int rc = as_peer(
        *other,
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
    EXPECT_EQ(rc, 0) << th::why("the peer can connect");
    uds::Fd c = th::connect_stream(addr);
    ASSERT_EQ(ask(c.get(), "unharmed\n"), "UNHARMED\n")
        << th::why("the server serves us after refused peers misbehaved" + ended(*server));
    c.reset();
    std::string probe_name;
    uds::Fd probe = autobound_probe(addr, &probe_name);
    ASSERT_TRUE(server->wait_stderr("getpeername=" + probe_name))
        << th::why("the server takes the next connection" + ended(*server));
    const std::string uid = std::to_string(other->uid);
    EXPECT_EQ(count_of(server->err(), " uid=" + uid + " "), 5u)
        << th::why("each of the five refused connections is logged once");
    EXPECT_TRUE(server->running()) << th::why("and the server keeps running");
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
    EXPECT_EQ(r.status, 0) << th::why("Python connects to '\\0NAME' and is served") << "\n"
                           << r.err;
    EXPECT_EQ(r.out, "HELLO\n你好 ABC\nb'\\x00" + name + "'\n")
        << th::why("Python gets the replies and sees the server's exact name");
}

TEST(Ch02Interop, SocatAbstractConnectTalksToTheServer) {
    const std::string socat = find_program("socat");
    if (socat.empty()) GTEST_SKIP() << "socat is not installed (apt-get install socat)";
    const std::string name = th::unique_abstract_name("socat");
    auto server = start_server({"-s", "@" + name});
    auto r = th::run(socat, {"-t", "10", "-", "ABSTRACT-CONNECT:" + name}, "hello\n你好 abc");
    EXPECT_EQ(r.status, 0) << th::why("socat ABSTRACT-CONNECT reaches the server") << "\n" << r.err;
    EXPECT_EQ(r.out, "HELLO\n你好 ABC\n") << th::why("and is served");
}

TEST(Ch02Interop, ClientTalksToSocatAbstractListen) {
    const std::string socat = find_program("socat");
    if (socat.empty()) GTEST_SKIP() << "socat is not installed (apt-get install socat)";
    const std::string name = th::unique_abstract_name("socatlisten");
    // socat as the server (an echo): it binds the exact length, like we do.
    th::Process listener(socat, {"-d", "-d", "ABSTRACT-LISTEN:" + name, "EXEC:cat"});
    ASSERT_TRUE(listener.wait_stderr("listening on")) << listener.err();
    EXPECT_EQ(proc_exactly("@" + name), 1u) << th::why("socat binds exactly @NAME");
    auto r = th::run(client_bin(), {"-s", "@" + name, "echoed by socat"});
    EXPECT_EQ(r.status, 0) << th::why("the client reaches socat's exact name (step C2)") << "\n"
                           << r.err;
    EXPECT_EQ(r.out, "echoed by socat\n") << th::why("and prints what socat sends back");
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
    EXPECT_EQ(proc_exactly(shown), 1u);
    EXPECT_EQ(proc_exactly("@" + name), 0u);
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
    EXPECT_EQ(proc_exactly("@" + name + "@"), 1u);
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
    EXPECT_EQ(proc_exactly("@" + name), 3u);  // listener, queued connection, datagram
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
    EXPECT_EQ(proc_exactly("@" + name), 1u);
    EXPECT_EQ(try_connect(addr), 0);
    copy.reset();  // the last one: the kernel frees the name; nothing to unlink
    EXPECT_EQ(try_connect(addr), ECONNREFUSED);
    EXPECT_EQ(proc_starting_with("@" + name), 0u);
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
    EXPECT_EQ(proc_exactly("@" + digits), 1u);
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
