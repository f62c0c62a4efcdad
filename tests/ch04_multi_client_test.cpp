// Chapter 04: serving many clients. The same tests run against each model of the server
// (fork, thread, epoll), plus the kernel behaviour the chapter's README claims.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "harness.hpp"
#include "uds.hpp"

namespace {

using th::Deadline;
using th::milliseconds;

// ------------------------------------------------------------------ helpers

// A running chapter 04 server on a socket in its own temporary directory.
struct Server {
    th::TempDir dir;
    uds::Address addr;
    std::unique_ptr<th::Process> proc;

    // fd_limit > 0: start it under `ulimit -n fd_limit` (through sh, which then execs it, so
    // proc->pid() is the server's pid).
    explicit Server(const std::vector<std::string>& args, int fd_limit = 0)
        : addr(uds::Address::path(dir.file("s.sock"))) {
        std::vector<std::string> all{"-s", addr.name()};
        all.insert(all.end(), args.begin(), args.end());
        const std::string server = th::bin("04-multi-client", "server");
        if (fd_limit > 0) {
            std::vector<std::string> sh{
                "-c", "ulimit -n " + std::to_string(fd_limit) + " && exec \"$0\" \"$@\"", server};
            sh.insert(sh.end(), all.begin(), all.end());
            proc = std::make_unique<th::Process>("/bin/sh", sh);
        } else {
            proc = std::make_unique<th::Process>(server, all);
        }
        if (!proc->wait_stderr("listening on"))
            throw std::runtime_error("server did not start: " + proc->err());
    }
    [[nodiscard]] pid_t pid() const { return proc->pid(); }
};

// One request, one reply, with a deadline.
std::string round_trip(int fd, const std::string& line, Deadline d = Deadline{}) {
    th::send_all(fd, line + "\n");
    return th::read_line(fd, d);
}

// Like round_trip, for a client the server may turn away: it may have closed the connection
// before our request arrives (EPIPE), but its reply is waiting for us all the same.
std::string ask(int fd, const std::string& line, Deadline d = Deadline{}) {
    std::string req = line + "\n";
    [[maybe_unused]] ssize_t n = ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    return th::read_line(fd, d);
}

// Retries cond until it holds or the deadline passes, waiting a little longer each time.
// (For state that no descriptor reports, such as /proc; each wait is a poll() timeout.)
bool eventually(const std::function<bool()>& cond, Deadline d = Deadline{}) {
    int wait_ms = 1;
    while (!cond()) {
        if (d.expired()) return false;
        ::poll(nullptr, 0, wait_ms);
        wait_ms = std::min(wait_ms * 2, 50);
    }
    return true;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Children of a process, from /proc/PID/task/*/children.
std::vector<pid_t> children_of(pid_t pid) {
    std::vector<pid_t> out;
    std::istringstream in(
        read_file("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children"));
    pid_t p;
    while (in >> p)
        out.push_back(p);
    return out;
}

// The state letter of /proc/PID/stat ('Z' = zombie), or 0 if the process is gone.
char state_of(pid_t pid) {
    std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    auto close = stat.rfind(')');
    return close == std::string::npos || close + 2 >= stat.size() ? 0 : stat[close + 2];
}

bool has_zombie_children(pid_t pid) {
    for (pid_t c : children_of(pid))
        if (state_of(c) == 'Z') return true;
    return false;
}

// utime + stime of a process (and of its reaped children), in clock ticks.
long cpu_ticks(pid_t pid) {
    std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    std::istringstream in(stat.substr(stat.rfind(')') + 2));
    std::string field;
    long total = 0;
    for (int i = 3; i <= 17 && in >> field; ++i)
        if (i >= 14) total += std::stol(field);  // utime stime cutime cstime
    return total;
}

// Resident memory of a process and all its children, in KiB.
long rss_kib(pid_t pid) {
    auto one = [](pid_t p) {
        std::istringstream in(read_file("/proc/" + std::to_string(p) + "/status"));
        std::string line;
        while (std::getline(in, line))
            if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
        return 0L;
    };
    long total = one(pid);
    for (pid_t c : children_of(pid))
        total += one(c);
    return total;
}

// A connection the server has surely accepted and is serving (one round trip done).
uds::Fd served_client(const uds::Address& addr) {
    uds::Fd fd = th::connect_stream(addr);
    EXPECT_EQ(round_trip(fd.get(), "hi"), "HI\n");
    return fd;
}

// The per-model baseline to come back to: descriptors (thread, epoll), children (fork).
struct Footprint {
    int fds;
    std::size_t children;
    bool operator==(const Footprint&) const = default;
};
Footprint footprint(pid_t pid) {
    return {th::count_fds(pid), children_of(pid).size()};
}

class Ch04Models : public testing::TestWithParam<std::string> {
  protected:
    std::vector<std::string> model() const { return {"--model", GetParam()}; }
};

// Named Ch04/Ch04Models.Test/model, so that --gtest_filter='Ch04*' selects them too.
INSTANTIATE_TEST_SUITE_P(Ch04, Ch04Models, testing::Values("fork", "thread", "epoll"),
                         [](const auto& param_info) { return param_info.param; });

// ------------------------------------------------------------------ each model

TEST_P(Ch04Models, HundredConcurrentPipelinedClientsAnsweredInOrder) {
    Server s{{"--model", GetParam(), "--max-clients", "1000"}};  // fork: 128 by default
    constexpr int kClients = 100, kRequests = 20;
    std::vector<uds::Fd> conns;
    for (int i = 0; i < kClients; ++i)
        conns.push_back(th::connect_stream(s.addr));
    // Every client sends all its requests in one write (pipelined), before anyone reads.
    auto request = [](int c, int r) {
        return "client " + std::to_string(c) + " request " + std::to_string(r) + " abc";
    };
    for (int c = 0; c < kClients; ++c) {
        std::string batch;
        for (int r = 0; r < kRequests; ++r)
            batch += request(c, r) + "\n";
        th::send_all(conns[static_cast<std::size_t>(c)].get(), batch);
    }
    Deadline d;
    for (int c = 0; c < kClients; ++c)
        for (int r = 0; r < kRequests; ++r)
            ASSERT_EQ(th::read_line(conns[static_cast<std::size_t>(c)].get(), d),
                      uds::upcase(request(c, r)) + "\n")
                << "client " << c << " reply " << r;
    // And the load generator agrees: 100 clients, 8 requests in flight each, all correct.
    auto r = th::run(th::bin("04-multi-client", "loadgen"),
                     {"-s", s.addr.name(), "-c", "100", "-n", "4000", "--pipeline", "8"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("requests/s:"), std::string::npos) << r.out;
}

TEST_P(Ch04Models, SlowlorisClientDoesNotDelayOthers) {
    Server s{model()};
    uds::Fd slow = th::connect_stream(s.addr);
    th::send_all(slow.get(), "half a li");  // ... and then nothing for a while
    for (int i = 0; i < 5; ++i) {
        uds::Fd other = th::connect_stream(s.addr);
        EXPECT_EQ(round_trip(other.get(), "quick", Deadline{milliseconds{2000}}), "QUICK\n");
    }
    th::send_all(slow.get(), "ne\n");
    EXPECT_EQ(th::read_line(slow.get()), "HALF A LINE\n");
}

TEST_P(Ch04Models, VanishingClientsLeaveNoDescriptorsAndNoZombies) {
    Server s{model()};
    // The baseline. Thread, epoll: the descriptors with one client connected, minus its one.
    // Fork: no child left once the first client has gone (the parent's descriptors do not
    // change per client: it closes its copy right after fork).
    const int at_start = th::count_fds(s.pid());  // all set up once it says "listening on"
    Footprint base{};
    {
        uds::Fd warm = served_client(s.addr);
        base = {th::count_fds(s.pid()) - 1, 0};
    }
    if (GetParam() == "fork") {
        ASSERT_TRUE(eventually([&] { return children_of(s.pid()).empty(); }));
        base = footprint(s.pid());
    }
    ASSERT_TRUE(eventually([&] { return footprint(s.pid()) == base; }))
        << "fds " << th::count_fds(s.pid()) << " (expected " << base.fds << ")";
    EXPECT_EQ(base.fds, at_start);
    for (int i = 0; i < 30; ++i) {
        uds::Fd c = th::connect_stream(s.addr);
        if (i % 3 == 0) th::send_all(c.get(), "vanishing mid-li");                    // mid-line
        if (i % 3 == 1) {  // unread; the server may refuse the overlong line and close first,
            const std::string big = std::string(100000, 'x') + "\nabc\n";  // so EPIPE is fine
            [[maybe_unused]] ssize_t n = ::send(c.get(), big.data(), big.size(), MSG_NOSIGNAL);
        }
        // i % 3 == 2: connects and closes without a byte
    }
    EXPECT_TRUE(eventually([&] { return footprint(s.pid()) == base; }))
        << "fds " << th::count_fds(s.pid()) << " (was " << base.fds << "), children "
        << children_of(s.pid()).size();
    EXPECT_FALSE(has_zombie_children(s.pid()));
    uds::Fd after = served_client(s.addr);  // and it still serves
}

TEST_P(Ch04Models, MaxClientsTurnsTheNextOneAway) {
    Server s{{"--model", GetParam(), "--max-clients", "2"}};
    uds::Fd a = served_client(s.addr), b = served_client(s.addr);
    uds::Fd c = th::connect_stream(s.addr);
    int err = 0;
    EXPECT_EQ(ask(c.get(), "let me in"), "ERROR server busy\n");
    EXPECT_EQ(th::read_to_eof(c.get(), Deadline{}, &err), "");
    EXPECT_EQ(err, 0) << strerror(err);  // a clean end of file, not ECONNRESET
    EXPECT_EQ(round_trip(b.get(), "still here"), "STILL HERE\n");
    a.reset();  // a slot frees up (once the server noticed): a new client is served
    EXPECT_TRUE(eventually([&] {
        uds::Fd d = th::connect_stream(s.addr);
        return ask(d.get(), "me") == "ME\n";
    }));
}

TEST_P(Ch04Models, OutOfDescriptorsKeepsServingWithoutSpinningAndRecovers) {
    Server s{model(), 24};  // RLIMIT_NOFILE 24: about 15 clients for thread and epoll
    std::vector<uds::Fd> kept;
    int served = 0, busy = 0;
    for (int i = 0; i < 40; ++i) {
        uds::Fd c = th::connect_stream(s.addr);
        std::string reply = ask(c.get(), "x");
        if (reply == "X\n") {
            ++served;
            kept.push_back(std::move(c));
        } else {
            EXPECT_EQ(reply, "ERROR server busy\n");
            ++busy;
        }
    }
    EXPECT_GE(served, 10);
    if (GetParam() == "fork") {
        EXPECT_EQ(busy, 0);  // each child has its own descriptor table; the parent keeps none
    } else {
        EXPECT_GT(busy, 0);
    }
    // One more client connects while the server is out of descriptors; the server must
    // neither spin on it nor crash. Measure its CPU time over the next 300 ms.
    uds::Fd queued = th::connect_stream(s.addr);
    long before = cpu_ticks(s.pid());
    EXPECT_FALSE(th::readable(kept.front().get(), 300));  // nothing to read: just waits 300 ms
    long used = cpu_ticks(s.pid()) - before;
    EXPECT_LE(used, 5) << "server used " << used << " ticks of CPU in 300 ms while idle";
    // Every client already connected is still served.
    for (auto& c : kept)
        EXPECT_EQ(round_trip(c.get(), "again"), "AGAIN\n");
    // When descriptors free up, new clients are served again.
    kept.clear();
    queued.reset();
    EXPECT_TRUE(eventually([&] {
        std::vector<uds::Fd> fresh;
        for (int i = 0; i < 10; ++i) {
            fresh.push_back(th::connect_stream(s.addr));
            if (ask(fresh.back().get(), "back") != "BACK\n") return false;
        }
        return true;
    }));
    EXPECT_TRUE(s.proc->running());
}

// The harder case: not even the spare descriptor helps (the limit dropped below every number
// the server could use). The server pauses accepting instead of spinning, keeps serving its
// clients, and accepts the waiting client as soon as the limit allows it again.
TEST_P(Ch04Models, PausedAcceptRecoversWhenDescriptorsReturn) {
    Server s{model()};
    uds::Fd early = served_client(s.addr);
    rlimit old{}, low{};
    ASSERT_EQ(::prlimit(s.pid(), RLIMIT_NOFILE, nullptr, &old), 0);
    low = {3, old.rlim_max};  // only 0, 1, 2 would fit: every new descriptor fails with EMFILE
    ASSERT_EQ(::prlimit(s.pid(), RLIMIT_NOFILE, &low, nullptr), 0);
    uds::Fd waiting = th::connect_stream(s.addr);
    th::send_all(waiting.get(), "waiting\n");
    long before = cpu_ticks(s.pid());
    EXPECT_FALSE(th::readable(waiting.get(), 300));  // not accepted: nothing to read
    long used = cpu_ticks(s.pid()) - before;
    EXPECT_LE(used, 5) << "server used " << used << " ticks of CPU in 300 ms while paused";
    EXPECT_EQ(round_trip(early.get(), "still"), "STILL\n");
    EXPECT_TRUE(s.proc->wait_stderr("pausing accept", Deadline{milliseconds{2000}}));
    ASSERT_EQ(::prlimit(s.pid(), RLIMIT_NOFILE, &old, nullptr), 0);
    EXPECT_EQ(th::read_line(waiting.get()), "WAITING\n");  // accepted within ~100 ms
    uds::Fd later = served_client(s.addr);
}

TEST_P(Ch04Models, NeverReadingClientDoesNotGrowTheServer) {
    Server s{model()};
    uds::Fd other = served_client(s.addr);
    uds::Fd flood = served_client(s.addr);  // its thread or process exists from now on
    long before = rss_kib(s.pid());
    ::fcntl(flood.get(), F_SETFL, O_NONBLOCK);
    const std::string chunk = []() {
        std::string line(1023, 'a');
        line += '\n';
        std::string out;
        for (int i = 0; i < 64; ++i)
            out += line;
        return out;
    }();
    // Send until the server has stopped taking our requests for 300 ms (it stops reading us).
    std::size_t sent = 0;
    Deadline d;
    while (!d.expired()) {
        ssize_t n = ::send(flood.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
        if (n > 0) {
            sent += static_cast<std::size_t>(n);
            continue;
        }
        ASSERT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << strerror(errno);
        pollfd p{flood.get(), POLLOUT, 0};
        if (::poll(&p, 1, 300) == 0) break;
    }
    ASSERT_FALSE(d.expired()) << "the server kept reading a client that never reads";
    // What the server took in is bounded (kernel socket buffers plus its own bounded output
    // buffer), and so is its growth (generous: sanitizer builds keep freed memory a while).
    EXPECT_LT(sent, 4u << 20) << "the server took " << sent << " bytes from a non-reader";
    long grown = rss_kib(s.pid()) - before;
    EXPECT_LT(grown, 4096) << "server grew by " << grown << " KiB; the client sent " << sent;
    // Others are not slowed down by it.
    EXPECT_EQ(round_trip(other.get(), "fine", Deadline{milliseconds{2000}}), "FINE\n");
    uds::Fd newcomer = th::connect_stream(s.addr);
    EXPECT_EQ(round_trip(newcomer.get(), "new", Deadline{milliseconds{2000}}), "NEW\n");
}

TEST_P(Ch04Models, GracefulShutdownWithClientsConnected) {
    Server s{model()};
    std::vector<uds::Fd> clients;
    for (int i = 0; i < 5; ++i)
        clients.push_back(served_client(s.addr));
    th::send_all(clients[0].get(), "mid-li");  // one is in the middle of a line
    std::vector<pid_t> kids = children_of(s.pid());
    s.proc->signal(SIGTERM);
    EXPECT_EQ(s.proc->wait_exit(Deadline{milliseconds{3000}}), 0) << s.proc->err();
    EXPECT_NE(s.proc->err().find("stopping"), std::string::npos);
    EXPECT_NE(::access(s.addr.name().c_str(), F_OK), 0) << "socket file left behind";
    for (auto& c : clients) {
        int err = 0;
        th::read_to_eof(c.get(), Deadline{milliseconds{2000}}, &err);
        EXPECT_TRUE(err == 0 || err == ECONNRESET) << strerror(err);
    }
    for (pid_t k : kids)
        EXPECT_EQ(state_of(k), 0) << "child " << k << " outlived the server";
}

// ------------------------------------------------------------------ fork only

TEST(Ch04Fork, ChildrenDoNotOutliveAKilledParent) {
    Server s{{"--model", "fork"}};
    std::vector<uds::Fd> clients;
    for (int i = 0; i < 3; ++i)
        clients.push_back(served_client(s.addr));
    std::vector<uds::Fd> pidfds;
    for (pid_t k : children_of(s.pid()))
        pidfds.emplace_back(static_cast<int>(::syscall(SYS_pidfd_open, k, 0)));
    ASSERT_EQ(pidfds.size(), 3u);
    s.proc->signal(SIGKILL);  // no chance to clean up: PR_SET_PDEATHSIG does it
    for (auto& p : pidfds)
        EXPECT_TRUE(th::readable(p.get(), 3000)) << "a child is still alive";
    for (auto& c : clients)
        EXPECT_TRUE(th::readable(c.get(), 3000));  // their connections end
}

// ------------------------------------------------------------------ contract

TEST(Ch04Contract, DefaultModelIsEpollAndBadModelIsUsageError) {
    Server s{{}};
    EXPECT_NE(s.proc->err().find("model epoll"), std::string::npos) << s.proc->err();
    auto r = th::run(th::bin("04-multi-client", "server"), {"--model", "coroutines"});
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("--model"), std::string::npos);
    auto h = th::run(th::bin("04-multi-client", "loadgen"), {"--help"});
    EXPECT_EQ(h.status, 0);
    EXPECT_NE(h.out.find("--pipeline"), std::string::npos);
}

TEST(Ch04Contract, ClientTalksToEveryModel) {
    for (const char* m : {"fork", "thread", "epoll"}) {
        Server s{{"--model", m}};
        auto r = th::run(th::bin("04-multi-client", "client"), {"-s", s.addr.name()},
                         "hello\n你好 abc\nlast");
        EXPECT_EQ(r.status, 0) << m << ": " << r.err;
        EXPECT_EQ(r.out, "HELLO\n你好 ABC\nLAST\n") << m;
    }
}

TEST(Ch04LoadgenReference, FailsOnWrongOrMissingReplies) {
    // A "server" that answers every line with the wrong text: loadgen must say so, exit 1.
    th::TempDir dir;
    auto addr = uds::Address::path(dir.file("liar.sock"));
    uds::Fd l{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    ASSERT_EQ(::bind(l.get(), addr.sockaddr_ptr(), addr.length()), 0);
    ASSERT_EQ(::listen(l.get(), 16), 0);
    th::Process lg(th::bin("04-multi-client", "loadgen"),
                   {"-s", addr.name(), "-c", "1", "-n", "3", "--timeout", "2"});
    ASSERT_TRUE(th::readable(l.get(), 5000));
    uds::Fd conn{::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC)};
    std::string req = th::read_line(conn.get());
    ASSERT_FALSE(req.empty());
    th::send_all(conn.get(), "not what you sent\n");
    EXPECT_EQ(lg.wait_exit(), 1);
    EXPECT_NE(lg.err().find("wrong reply"), std::string::npos) << lg.err();
    // A server that never answers: loadgen gives up after --timeout instead of hanging.
    th::Process lg2(th::bin("04-multi-client", "loadgen"),
                    {"-s", addr.name(), "-c", "1", "-n", "1", "--timeout", "1"});
    ASSERT_TRUE(th::readable(l.get(), 5000));
    uds::Fd conn2{::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC)};
    EXPECT_EQ(lg2.wait_exit(Deadline{milliseconds{5000}}), 1);
    EXPECT_NE(lg2.err().find("no progress"), std::string::npos) << lg2.err();
}

TEST(Ch04Contract, TwoThousandPythonClientsServedByEpoll) {
    if (!th::have_program("python3")) GTEST_SKIP() << "python3 not installed";
    rlimit rl{};
    ::getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_max < 4096) GTEST_SKIP() << "hard RLIMIT_NOFILE below 4096";
    Server s{{"--model", "epoll"}, 4096};
    const char* script = R"PY(
import resource, selectors, socket, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
n = 2000
socks = []
for i in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sys.argv[1])
    socks.append(s)
for i, s in enumerate(socks):
    s.sendall(b"client %d says hi\n" % i)
ok = 0
for i, s in enumerate(socks):
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(100)
        if not chunk:
            break
        buf += chunk
    ok += buf == b"CLIENT %d SAYS HI\n" % i
print("served", ok)
)PY";
    // The server logs two lines per client: read them as they come, or its stderr pipe fills
    // up and the server waits for us (a server blocks on a full log pipe like on any write).
    std::thread drain([&] { s.proc->wait_stderr("stopping", Deadline{milliseconds{30000}}); });
    auto r = th::run("/usr/bin/env", {"python3", "-c", script, s.addr.name()}, {}, {},
                     Deadline{milliseconds{20000}});
    s.proc->signal(SIGTERM);
    drain.join();
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "served 2000\n") << r.err;
}

// ------------------------------------------------------------------ the iterative server of 01

TEST(Ch04IterativeReference, SecondClientWaitsUntilTheFirstLeaves) {
    th::TempDir dir;
    auto addr = uds::Address::path(dir.file("01.sock"));
    th::Process server(th::bin("01-stream-path", "server"), {"-s", addr.name()});
    ASSERT_TRUE(server.wait_stderr("listening on"));
    uds::Fd first = th::connect_stream(addr);
    ASSERT_EQ(round_trip(first.get(), "first"), "FIRST\n");
    // connect() succeeds at once: the kernel queues the connection (listen's backlog)...
    uds::Fd second = th::connect_stream(addr);
    th::send_all(second.get(), "second\n");
    // ... but nobody reads its request while the first client is being served.
    EXPECT_FALSE(th::readable(second.get(), 300)) << "01's server answered two clients at once";
    first.reset();
    EXPECT_EQ(th::read_line(second.get()), "SECOND\n");
}

TEST(Ch04Iterative, EveryModelOfChapter04AnswersTheSecondClientAtOnce) {
    for (const char* m : {"fork", "thread", "epoll"}) {
        Server s{{"--model", m}};
        uds::Fd first = served_client(s.addr);
        uds::Fd second = th::connect_stream(s.addr);
        EXPECT_EQ(round_trip(second.get(), "second", Deadline{milliseconds{2000}}), "SECOND\n")
            << m;
    }
}

// ------------------------------------------------------------------ kernel semantics

// Level-triggered epoll reports a readable socket again and again until it is drained;
// edge-triggered reports it once per arrival of new data.
TEST(Ch04Semantics, LevelTriggeredRepeatsEdgeTriggeredDoesNot) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    uds::Fd a{sv[0]}, b{sv[1]};
    uds::Fd lt{::epoll_create1(EPOLL_CLOEXEC)}, et{::epoll_create1(EPOLL_CLOEXEC)};
    epoll_event ev{EPOLLIN, {.u64 = 1}};
    ASSERT_EQ(::epoll_ctl(lt.get(), EPOLL_CTL_ADD, b.get(), &ev), 0);
    ev.events = EPOLLIN | EPOLLET;
    ASSERT_EQ(::epoll_ctl(et.get(), EPOLL_CTL_ADD, b.get(), &ev), 0);
    th::send_all(a.get(), "abcdef");
    char c;
    ASSERT_EQ(::read(b.get(), &c, 1), 1);  // read only part of it
    epoll_event out[1];
    EXPECT_EQ(::epoll_wait(lt.get(), out, 1, 0), 1);  // still readable: reported
    EXPECT_EQ(::epoll_wait(lt.get(), out, 1, 0), 1);  // ... every time
    EXPECT_EQ(::epoll_wait(et.get(), out, 1, 0), 1);  // the edge: reported once
    EXPECT_EQ(::epoll_wait(et.get(), out, 1, 0), 0);  // 5 bytes left, but no new edge
    th::send_all(a.get(), "g");
    EXPECT_EQ(::epoll_wait(et.get(), out, 1, 0), 1);  // new data: a new edge
}

// listen's backlog bounds the queue of connections nobody has accepted yet. Until it is full,
// connect() succeeds at once; then a non-blocking connect fails with EAGAIN (a blocking one
// waits) until the server accepts one.
TEST(Ch04Semantics, FullBacklogMakesConnectWait) {
    th::TempDir dir;
    auto addr = uds::Address::path(dir.file("l.sock"));
    uds::Fd l{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    ASSERT_EQ(::bind(l.get(), addr.sockaddr_ptr(), addr.length()), 0);
    ASSERT_EQ(::listen(l.get(), 2), 0);
    std::vector<uds::Fd> queued;
    auto try_connect = [&] {
        uds::Fd c{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
        if (::connect(c.get(), addr.sockaddr_ptr(), addr.length()) != 0) return errno;
        queued.push_back(std::move(c));
        return 0;
    };
    int err = 0;
    while (queued.size() < 100 && (err = try_connect()) == 0) {
    }
    EXPECT_EQ(err, EAGAIN);
    EXPECT_GE(queued.size(), 2u);  // Linux lets backlog + 1 wait
    EXPECT_LE(queued.size(), 3u);
    uds::Fd accepted{::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC)};
    ASSERT_TRUE(accepted);
    EXPECT_EQ(try_connect(), 0);  // room again
}

// accept4 fails with EMFILE when the process has no descriptor left, and the connection stays
// in the queue: the listener is still readable, so a naive loop would spin on it.
TEST(Ch04Semantics, EmfileLeavesTheConnectionQueued) {
    th::TempDir dir;
    auto addr = uds::Address::path(dir.file("l.sock"));
    uds::Fd l{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    ASSERT_EQ(::bind(l.get(), addr.sockaddr_ptr(), addr.length()), 0);
    ASSERT_EQ(::listen(l.get(), 16), 0);
    uds::Fd client = th::connect_stream(addr);
    // In a child, so that the low limit does not touch the test runner.
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        int highest = ::dup(0);
        rlimit rl{static_cast<rlim_t>(highest + 1), static_cast<rlim_t>(highest + 1)};
        if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) ::_exit(10);
        while (::dup(0) >= 0) {  // fill every free slot below the limit
        }
        int r = ::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC);
        if (r != -1 || errno != EMFILE) ::_exit(11);
        pollfd p{l.get(), POLLIN, 0};
        if (::poll(&p, 1, 0) != 1) ::_exit(12);  // still readable: the connection is queued
        ::close(highest);                        // one descriptor free again
        if (::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC) < 0) ::_exit(13);
        ::_exit(0);
    }
    int st = 0;
    ASSERT_EQ(::waitpid(pid, &st, 0), pid);
    ASSERT_TRUE(WIFEXITED(st));
    EXPECT_EQ(WEXITSTATUS(st), 0) << "10 setrlimit, 11 no EMFILE, 12 not readable, 13 accept";
}

// Closing a socket that still has unread data makes the peer's next read fail with
// ECONNRESET (after it has read what was already sent to it); without unread data, the peer
// sees a plain end of file. This is why turn_away() drains before closing.
TEST(Ch04Semantics, CloseWithUnreadDataResetsThePeer) {
    for (bool unread : {true, false}) {
        int sv[2];
        ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        uds::Fd client{sv[0]}, server{sv[1]};
        if (unread) th::send_all(client.get(), "request nobody reads\n");
        th::send_all(server.get(), "ERROR server busy\n");
        server.reset();
        char buf[64];
        EXPECT_EQ(::read(client.get(), buf, sizeof buf), 18);  // the reply comes first
        ssize_t n = ::read(client.get(), buf, sizeof buf);
        if (unread) {
            EXPECT_EQ(n, -1);
            EXPECT_EQ(errno, ECONNRESET);
        } else {
            EXPECT_EQ(n, 0);
        }
    }
}

// shutdown(SHUT_RDWR) on a socket wakes a thread blocked in read() on it (read returns 0), even
// though the peer is still there: how the thread model stops its threads.
TEST(Ch04Semantics, ShutdownWakesAThreadBlockedInRead) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    uds::Fd a{sv[0]}, b{sv[1]};
    timeval deadline{5, 0};  // if shutdown did not wake it, read would fail after 5 s instead
    ASSERT_EQ(::setsockopt(b.get(), SOL_SOCKET, SO_RCVTIMEO, &deadline, sizeof deadline), 0);
    ssize_t got = -2;
    std::thread reader([&] {
        char c;
        got = ::read(b.get(), &c, 1);
    });
    EXPECT_FALSE(th::readable(b.get(), 100));  // nothing to read: the reader is blocked
    ::shutdown(b.get(), SHUT_RDWR);
    reader.join();
    EXPECT_EQ(got, 0);
}

// A blocking send to a peer that does not read waits once the buffers are full: the thread
// or process of the fork and thread models simply stops, which is their backpressure.
TEST(Ch04Semantics, SendToAPeerThatDoesNotReadFillsUpAndWaits) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    uds::Fd a{sv[0]}, b{sv[1]};
    std::string chunk(65536, 'x');
    std::size_t total = 0;
    for (;;) {
        ssize_t n = ::send(a.get(), chunk.data(), chunk.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) break;
        total += static_cast<std::size_t>(n);
        ASSERT_LT(total, 64u << 20) << "the buffer never filled up";
    }
    EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK);  // a blocking send would wait here
    pollfd p{a.get(), POLLOUT, 0};
    EXPECT_EQ(::poll(&p, 1, 0), 0);  // not writable until the peer reads
}

}  // namespace
