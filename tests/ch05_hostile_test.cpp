// Chapter 05: hostile peers. Each test drives one attack with a real peer (as uid 65534 where
// the attack needs another user) and checks that the broker keeps serving everybody else:
//
//   idle or trickling connections cannot hold the 64 slots    (--idle-timeout)
//   a client that never reads has one reply in flight at most (descriptors in flight are
//     charged to the broker's user, up to RLIMIT_NOFILE)
//   a descriptor the kernel will not pass is answered ERROR, never a silent close
//   "ERROR server busy" reaches the client (no reset)
//   FIFOs and device nodes are not opened before being refused; hard links are refused
//   a flood of accept failures is logged once a second; a closed log pipe kills nothing
//   an empty -s '' or --root '' is a usage error
// The figures before and after the fixes are in 05-sendmsg-fds/REFERENCE.md.
#include <fcntl.h>
#include <grp.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <functional>
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

// A root every user may read, beneath a test directory every user may enter, and a directory
// `run/` owned by uid 65534 for a broker that runs as that user.
struct Tree {
    th::TempDir dir;
    std::string root = dir.file("root"), outside = dir.file("outside"), run = dir.file("run");
    explicit Tree(uid_t run_owner = th::kNobody) {
        ::chmod(dir.path().c_str(), 0711);
        for (const std::string& d : {root, outside, run, root + "/sub"})
            ::mkdir(d.c_str(), 0755);
        if (::geteuid() == 0) {
            [[maybe_unused]] int rc = ::chown(run.c_str(), run_owner, run_owner);
        }
        write_file(root + "/hello.txt", kHello);
        write_file(outside + "/secret.txt", "secret\n");
    }
};

std::unique_ptr<th::Process> broker(const Tree& t, const std::string& sock,
                                    std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"-s", sock, "--root", t.root};
    args.insert(args.end(), extra.begin(), extra.end());
    return ch05t::start(th::bin(kChapter, "server"), args);
}

// The broker as an ordinary user `uid` with RLIMIT_NOFILE 1024 (needs root to switch).
std::unique_ptr<th::Process> broker_as(uid_t uid, const Tree& t, const std::string& sock) {
    const std::string id = std::to_string(uid);
    const std::string server =
        wrapped_server(t.dir, {"setpriv", "--reuid=" + id, "--regid=" + id, "--clear-groups", "--",
                               "prlimit", "--nofile=1024:1024", "--"});
    return ch05t::start(server, {"-s", sock, "--root", t.root});
}

int occurrences(const std::string& text, const std::string& what) {
    int n = 0;
    for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
        ++n;
    return n;
}

// Runs fn in a forked child - as uid 65534 when we are root - and returns its exit status.
int as_another_user(const std::function<int()>& fn) {
    if (::geteuid() == 0) return th::run_as_nobody(fn);
    pid_t pid = ::fork();
    if (pid == 0) ::_exit(fn() & 0xff);
    int st = 0;
    ::waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// A plain connect that reports failure instead of failing the test (for forked children).
uds::Fd dial(const uds::Address& a) {
    uds::Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    if (::connect(s.get(), a.sockaddr_ptr(), a.length()) != 0) return {};
    return s;
}

// ---------------------------------------------------------------- item 4: idle slots
TEST(Ch05Hostile, IdleConnectionsLoseTheirSlotsAndAStarvedClientIsServed) {
    Tree t;
    const std::string name = th::unique_abstract_name("ch05-idle");
    auto server = broker(t, "@" + name, {"--idle-timeout", "0.4", "--max-clients", "4"});
    const auto addr = uds::Address::abstract(name);
    // Another user takes every slot (4 here, 64 by default) and sends nothing; then it is the
    // starved client itself.
    const int rc = as_another_user([&] {
        std::vector<uds::Fd> idle;
        for (int i = 0; i < 4; ++i) {
            idle.push_back(dial(addr));
            if (!idle.back()) return 10;
        }
        uds::Fd starved = dial(addr);
        if (!starved || th::read_to_eof(starved.get()) != "ERROR server busy\n") return 11;
        for (th::Deadline d; !d.expired(); th::readable(-1, 50)) {  // try again every 50 ms
            uds::Fd c = dial(addr);
            if (!c) return 12;
            Got g = open_file(c.get(), "hello.txt");
            if (g.data.rfind("OK ", 0) == 0 && g.fds.size() == 1)
                return th::read_to_eof(idle.front().get()).empty() ? 0 : 13;
        }
        return 14;
    });
    EXPECT_NE(rc, 10) << th::why("4 connections are accepted");
    EXPECT_NE(rc, 11) << th::why("the 5th client is told 'ERROR server busy'");
    EXPECT_NE(rc, 13) << th::why("an idle connection is closed by the server (--idle-timeout)");
    EXPECT_EQ(rc, 0) << th::why(
        "once the idle connections time out (--idle-timeout 0.4), a "
        "client that was turned away is served");
}

TEST(Ch05Hostile, ARequestTrickledByteByByteDoesNotKeepASlot) {
    Tree t;
    const std::string sock = t.dir.file("s.sock");
    auto server = broker(t, sock, {"--idle-timeout", "0.3"});
    uds::Fd conn = th::connect_stream(uds::Address::path(sock));
    // One byte every 50 ms, never a newline: a slowloris.
    bool closed = false;
    for (th::Deadline d; !d.expired() && !closed;) {
        if (::send(conn.get(), "x", 1, MSG_NOSIGNAL) != 1) break;
        char c;
        closed = th::readable(conn.get(), 50) && ::recv(conn.get(), &c, 1, MSG_DONTWAIT) <= 0;
    }
    EXPECT_TRUE(closed || server->err().find("no complete request") != std::string::npos)
        << th::why("a request that is not complete within --idle-timeout loses its connection");
}

// ---------------------------------------------------------------- item 5: never-reading clients
TEST(Ch05Hostile, NeverReadingClientHasOneReplyInFlightAtATime) {
    Tree t;
    const std::string sock = t.dir.file("s.sock");
    auto server = broker(t, sock);
    uds::Fd deaf = th::connect_stream(uds::Address::path(sock));
    std::string many;
    for (int i = 0; i < 50; ++i)
        many += "OPEN hello.txt\n";
    ASSERT_EQ(send_fds(deaf.get(), many), static_cast<ssize_t>(many.size()));
    const std::string sent = "OPEN hello.txt: sent descriptor";
    ASSERT_TRUE(server->wait_stderr(sent)) << th::why("the first OPEN is answered");
    th::readable(-1, 300);  // give a server that does not wait 300 ms to send more
    server->drain();
    EXPECT_EQ(occurrences(server->err(), sent), 1)
        << th::why("no second reply (and descriptor) while the first is unread");
    EXPECT_EQ(recv_line(deaf.get()).data.rfind("OK ", 0), 0u);
    for (th::Deadline d; occurrences(server->err(), sent) < 2 && !d.expired(); th::readable(-1, 5))
        server->drain();
    EXPECT_EQ(occurrences(server->err(), sent), 2)
        << th::why("once the reply is read, the next request is answered");
}

TEST(Ch05Hostile, NeverReadingClientsCannotBreakOpenForOthers) {
    TH_NEED_ROOT();
    if (!th::have_program("setpriv") || !th::have_program("prlimit"))
        GTEST_SKIP() << "setpriv and prlimit (util-linux) are needed";
    Tree t(kFloodUid);
    const std::string sock = t.run + "/s.sock";
    auto server = broker_as(kFloodUid, t, sock);
    const auto addr = uds::Address::path(sock);
    // 8 connections, 400 OPENs each, never a reply read: without a bound, 3,200 descriptors in
    // flight, all charged to the broker's user (limit: its RLIMIT_NOFILE, 1024).
    std::string flood;
    for (int i = 0; i < 400; ++i)
        flood += "OPEN hello.txt\n";
    std::vector<uds::Fd> deaf;
    for (int i = 0; i < 8; ++i) {
        deaf.push_back(th::connect_stream(addr));
        ASSERT_EQ(send_fds(deaf.back().get(), flood), static_cast<ssize_t>(flood.size()));
    }
    // Until each of them has its first reply in flight (or, without the bound, many more).
    for (th::Deadline d; occurrences(server->err(), ": OPEN hello.txt: sent") < 8 && !d.expired();
         th::readable(-1, 5))
        server->drain();
    uds::Fd conn = th::connect_stream(addr);
    int served = 0;
    for (int i = 0; i < 20; ++i) {
        Got g = open_file(conn.get(), "hello.txt");
        served += (g.data.rfind("OK ", 0) == 0 && g.fds.size() == 1) ? 1 : 0;
    }
    EXPECT_EQ(served, 20) << th::why(
        "other clients' OPENs succeed while 8 connections flood the "
        "broker and never read (one reply in flight each)");
}

TEST(Ch05Hostile, ADescriptorTheKernelWillNotPassIsAnsweredError) {
    TH_NEED_ROOT();
    if (!th::have_program("setpriv") || !th::have_program("prlimit"))
        GTEST_SKIP() << "setpriv and prlimit (util-linux) are needed";
    Tree t(kInFlightUid);
    const std::string sock = t.run + "/s.sock";
    auto server = broker_as(kInFlightUid, t, sock);
    // Another process of the broker's user puts more than 1024 descriptors in flight (into a
    // socket pair nobody reads) and holds them there.
    int ready[2], release[2];
    ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(release, O_CLOEXEC), 0);
    uds::Fd ready_r{ready[0]}, ready_w{ready[1]}, release_r{release[0]}, release_w{release[1]};
    pid_t hog = ::fork();
    ASSERT_GE(hog, 0);
    if (hog == 0) {
        ::close(ready[0]);  // (our copies of the parent's ends: the release must reach us)
        ::close(release[1]);
        if (!become(kInFlightUid, 1024)) ::_exit(1);  // (the limit is the sender's own)
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) ::_exit(2);
        Pipe p;
        const std::vector<int> many(253, p.w.get());
        int in_flight = 0;
        for (int i = 0; i < 20 && send_fds(sv[0], "x", many) == 1; ++i)
            in_flight += 253;
        char c = in_flight > 1024 ? 'y' : 'n';
        [[maybe_unused]] ssize_t n = ::write(ready[1], &c, 1);
        n = ::read(release[0], &c, 1);  // hold them until the test is done
        ::_exit(0);
    }
    ready_w.reset();
    char c = 0;
    ASSERT_TRUE(th::readable(ready_r.get(), th::Deadline{}.remaining_ms()));
    ASSERT_EQ(::read(ready_r.get(), &c, 1), 1);
    ASSERT_EQ(c, 'y') << "the helper could not put more than 1024 descriptors in flight";
    uds::Fd conn = th::connect_stream(uds::Address::path(sock));
    Got g = open_file(conn.get(), "hello.txt");
    EXPECT_EQ(g.data.rfind("ERROR cannot pass the descriptor", 0), 0u) << th::why(
        "when sendmsg refuses the descriptor (ETOOMANYREFS), the client is told "
        "ERROR, not dropped");
    EXPECT_TRUE(g.fds.empty());
    release_w.reset();  // the helper exits; its descriptors in flight are released
    int st = 0;
    for (th::Deadline d; ::waitpid(hog, &st, WNOHANG) == 0 && !d.expired();)
        th::readable(-1, 5);
    Got again = open_file(conn.get(), "hello.txt");
    EXPECT_EQ(again.fds.size(), 1u) << th::why("the same connection goes on, and works again");
}

// ---------------------------------------------------------------- item 10: smaller ones
TEST(Ch05Hostile, BusyReplyIsFollowedByEndOfFileNotAReset) {
    Tree t;
    const std::string sock = t.dir.file("s.sock");
    auto server = broker(t, sock, {"--max-clients", "4"});
    const auto addr = uds::Address::path(sock);
    std::vector<uds::Fd> clients;
    for (int i = 0; i < 4; ++i)
        clients.push_back(th::connect_stream(addr));
    ASSERT_TRUE(server->wait_stderr("client 4: connected"));
    for (int i = 0; i < 5; ++i) {
        uds::Fd extra = th::connect_stream(addr);
        send_fds(extra.get(), "OPEN hello.txt\n");  // a request the server will never read
        int err = 0;
        EXPECT_EQ(th::read_to_eof(extra.get(), th::Deadline{}, &err), "ERROR server busy\n")
            << th::why("a client over the limit reads 'ERROR server busy'");
        EXPECT_EQ(err, 0) << th::why(
                                 "then end of file, not ECONNRESET: the server reads what "
                                 "the client sent before it closes")
                          << " (" << std::strerror(err) << ")";
    }
}

// IN_OPEN events for `path` while `f` runs: O_PATH lookups do not count, real opens do.
int opens_during(const std::string& path, const std::function<void()>& f) {
    uds::Fd in{::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)};
    if (!in || ::inotify_add_watch(in.get(), path.c_str(), IN_OPEN) < 0) return -1;
    f();
    alignas(inotify_event) char buf[4096];
    ssize_t n = ::read(in.get(), buf, sizeof buf);
    int count = 0;
    for (ssize_t at = 0; at < n;) {
        const auto* e = reinterpret_cast<const inotify_event*>(buf + at);
        if (e->mask & IN_OPEN) ++count;
        at += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
    }
    return count;
}

class Ch05HostileLookup : public ::testing::TestWithParam<bool> {};

TEST_P(Ch05HostileLookup, FifosAndDevicesAreNotOpenedBeforeBeingRefused) {
    Tree t;
    const std::string sock = t.dir.file("s.sock");
    auto server =
        broker(t, sock,
               GetParam() ? std::vector<std::string>{"--no-openat2"} : std::vector<std::string>{});
    std::vector<std::string> nodes{t.root + "/fifo"};
    ASSERT_EQ(::mkfifo(nodes[0].c_str(), 0644), 0);
    if (::geteuid() == 0 && ::mknod((t.root + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0)
        nodes.push_back(t.root + "/null");  // a copy of /dev/null inside the root
    uds::Fd conn = th::connect_stream(uds::Address::path(sock));
    for (const std::string& node : nodes) {
        const std::string name = node.substr(node.rfind('/') + 1);
        Got g;
        const int opens = opens_during(node, [&] { g = open_file(conn.get(), name); });
        EXPECT_EQ(g.data, "ERROR not a regular file\n") << th::why("a " + name + " is refused");
        EXPECT_EQ(opens, 0) << th::why("the broker looks at a " + name +
                                       " (O_PATH, fstat) without opening it");
    }
    // The watch itself works: a real open is seen.
    EXPECT_EQ(opens_during(
                  nodes[0],
                  [&] { uds::Fd f{::open(nodes[0].c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)}; }),
              1);
}

TEST_P(Ch05HostileLookup, HardLinkedFileIsRefusedUnlessAllowed) {
    Tree t;
    ASSERT_EQ(::link((t.outside + "/secret.txt").c_str(), (t.root + "/linked.txt").c_str()), 0);
    std::vector<std::string> args;
    if (GetParam()) args.push_back("--no-openat2");
    const std::string sock = t.dir.file("s.sock");
    {
        auto server = broker(t, sock, args);
        uds::Fd conn = th::connect_stream(uds::Address::path(sock));
        Got g = open_file(conn.get(), "linked.txt");
        EXPECT_EQ(g.data.rfind("ERROR ", 0), 0u) << th::why(
            "a file with a second name (a hard link) is refused: the other name may "
            "be outside the root");
        EXPECT_TRUE(g.fds.empty());
        EXPECT_EQ(open_file(conn.get(), "hello.txt").fds.size(), 1u);
    }
    args.push_back("--allow-hardlinks");
    auto server = broker(t, sock, args);
    uds::Fd conn = th::connect_stream(uds::Address::path(sock));
    Got g = open_file(conn.get(), "linked.txt");
    ASSERT_EQ(g.fds.size(), 1u) << th::why("--allow-hardlinks serves it");
    EXPECT_EQ(read_fd_from_start(g.fds[0].get()), "secret\n");
}

INSTANTIATE_TEST_SUITE_P(Ch05, Ch05HostileLookup, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& p) {
                             return p.param ? "Walk" : "Openat2";
                         });

TEST(Ch05Hostile, RunningOutOfDescriptorsIsLoggedOnceASecond) {
    if (!th::have_program("prlimit")) GTEST_SKIP() << "prlimit (util-linux) is needed";
    Tree t;
    const std::string sock = t.dir.file("s.sock");
    auto server = ch05t::start(wrapped_server(t.dir, {"prlimit", "--nofile=16:16", "--"}),
                               {"-s", sock, "--root", t.root});
    const auto addr = uds::Address::path(sock);
    std::vector<uds::Fd> clients;
    for (int i = 0; i < 16; ++i)
        clients.push_back(th::connect_stream(addr));  // queued by the kernel if not accepted
    const std::string line = "accept4: " + std::string(std::strerror(EMFILE));
    ASSERT_TRUE(server->wait_stderr(line)) << th::why("the broker says it is out of descriptors");
    const int before = occurrences(server->err(), line);
    th::readable(-1, 1000);  // a second of accept4 failing, every 100 ms
    server->drain();
    EXPECT_LE(occurrences(server->err(), line) - before, 2)
        << th::why("a failure a peer can repeat every 100 ms is logged at most once a second");
    clients.clear();
    EXPECT_TRUE(server->running());
}

TEST(Ch05Hostile, SurvivesItsLogReaderGoingAway) {
    Tree t;
    const std::string sock = t.dir.file("s.sock");
    auto server = broker(t, sock);
    server->close_stderr();  // like `server 2>&1 | head -1` once head has its line
    uds::Fd conn = th::connect_stream(uds::Address::path(sock));
    for (int i = 0; i < 3; ++i)
        EXPECT_EQ(open_file(conn.get(), "hello.txt").fds.size(), 1u)
            << th::why("the broker goes on serving when nobody reads its log");
    conn.reset();
    server->signal(SIGTERM);
    EXPECT_EQ(server->wait_exit(), 0) << th::why("and still exits 0 on SIGTERM");
    struct stat st {};
    EXPECT_EQ(::lstat(sock.c_str(), &st), -1) << th::why("removing its socket file");
}

TEST(Ch05Hostile, EmptySocketOrRootIsAUsageError) {
    th::TempDir runtime;  // should '' mean "the default", it would land here
    th::Process::Options env{{"XDG_RUNTIME_DIR=" + runtime.path()}, {}};
    const th::Deadline d{th::milliseconds{3000}};
    EXPECT_EQ(th::run(th::bin(kChapter, "server"), {"-s", ""}, {}, env, d).status, 2)
        << th::why("server -s '' is a usage error (exit 2), not the default address");
    EXPECT_EQ(th::run(th::bin(kChapter, "server"), {"-s", "@uds-test-x", "--root", ""}, {}, env, d)
                  .status,
              2)
        << th::why("server --root '' is a usage error (exit 2), not the default root");
    EXPECT_EQ(th::run(th::bin(kChapter, "client"), {"-s", "", "x"}, {}, env, d).status, 2)
        << th::why("client -s '' is a usage error (exit 2)");
}

}  // namespace
