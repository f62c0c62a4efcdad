// Chapter 04, one test per step of the lesson, in step order, named after the step:
//   Ch04Steps        the server (S1..S8 of 04-multi-client/server.cpp and its model headers)
//   Ch04ClientSteps  the client (C1..C4 of 04-multi-client/client.cpp), against a peer written
//                    here, so each client step is checked without the reference server
// One step vocabulary for the three models: S1 socket, S2 bind, S3 listen, S4 wait (S4a
// epoll_create1, S4b epoll_wait), S5 accept4, S6 hand over (epoll_ctl ADD, pthread_create,
// S6a fork + S6b the parent's close), S7 serve (S7a read, S7b send, S7c epoll_ctl MOD), S8 clean
// up (close, waitpid, S8a close + S8b pthread_join).
//
// Each test checks what the kernel got (flags in /proc/PID/fdinfo, the listen queue, the
// processes and threads in /proc) and catches the careless version of its step: a socket
// without SOCK_CLOEXEC, a short listen queue, an event loop that spins, a send that drops what
// did not fit, a parent that keeps the client's socket, children never reaped, threads never
// joined. make grade-04 runs them first; a server that stopped at a step it has not written yet
// is reported with its own words ("server: step S7b (send) is not written yet").
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
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

// A deadline for what a correct server does at once: 2 s, or less once the harness has seen
// waits run out in this test program (th::patience() shrinks then): a server that hangs must
// not cost every test seconds.
Deadline brief() {
    return Deadline{std::min(milliseconds{2000}, th::patience())};
}

const std::string kChapter = "04-multi-client";
const bool kSigpipeHint =
    th::hint_on_signal(SIGPIPE, "send with MSG_NOSIGNAL (server step S7b, client step C3)");

// Patience for one step: plenty for a correct server (even under sanitizers), short enough
// that a server with a missing step fails the test in seconds.
milliseconds step_patience() {
    return std::min(th::patience(), milliseconds{3000});
}

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// The last line of text that says something (for messages: a server's last words).
std::string last_line(const std::string& text) {
    auto end = text.find_last_not_of('\n');
    if (end == std::string::npos) return "";
    auto start = text.rfind('\n', end);
    return text.substr(start == std::string::npos ? 0 : start + 1,
                       end - (start == std::string::npos ? 0 : start + 1) + 1);
}

// A chapter 04 server with a model, on a socket in its own temporary directory, started with
// the harness: a server that never says "listening on" stops the test with how it ended.
struct Server {
    th::TempDir dir;
    uds::Address addr = uds::Address::path(dir.file("s.sock"));
    std::unique_ptr<th::Process> proc;
    explicit Server(const std::string& model, std::vector<std::string> more = {}) {
        std::vector<std::string> args{"-s", addr.name(), "--model", model};
        args.insert(args.end(), more.begin(), more.end());
        proc = th::start_server(th::bin(kChapter, "server"), args);
    }
    [[nodiscard]] pid_t pid() const { return proc->pid(); }
    // A why() that also says how the server ended, if it did: the starter stops at the first
    // step it has not written, and that is what the student needs to read.
    std::string why(const std::string& reason) {
        proc->drain();
        if (proc->running()) return th::why(reason);
        std::string said = proc->err();
        auto at = said.find("is not written yet");
        std::string words = at != std::string::npos ? last_line(said.substr(0, said.find('\n', at)))
                                                    : last_line(said);
        return th::why("the server " + proc->ending() + (words.empty() ? "" : " (" + words + ")") +
                       "; " + reason);
    }
};

std::string round_trip(int fd, const std::string& line, Deadline d = Deadline{step_patience()}) {
    th::send_all(fd, line + "\n");
    return th::read_line(fd, d);
}

// Retries cond until it holds or the deadline passes (for /proc state, which nothing reports).
bool eventually(const std::function<bool()>& cond, Deadline d = Deadline{step_patience()}) {
    int wait_ms = 1;
    while (!cond()) {
        if (d.expired()) return false;
        ::poll(nullptr, 0, wait_ms);
        wait_ms = std::min(wait_ms * 2, 50);
    }
    return true;
}

// Children of a process (zombies included: they stay children until reaped).
std::vector<pid_t> children_of(pid_t pid) {
    std::vector<pid_t> out;
    std::istringstream in(
        slurp("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children"));
    pid_t p;
    while (in >> p)
        out.push_back(p);
    return out;
}

int thread_count(pid_t pid) {
    std::error_code ec;
    int n = 0;
    for (auto it =
             std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
        ++n;
    return n;
}

long status_kib(pid_t pid, const std::string& key) {  // "VmSize", "VmRSS"
    std::istringstream in(slurp("/proc/" + std::to_string(pid) + "/status"));
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(key + ":", 0) == 0) return std::stol(line.substr(key.size() + 1));
    return 0;
}

// utime + stime of a process, in clock ticks (100 a second).
long cpu_ticks(pid_t pid) {
    std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos) return 0;
    std::istringstream in(stat.substr(close + 2));
    std::string field;
    long total = 0;
    for (int i = 3; i <= 15 && in >> field; ++i)
        if (i >= 14) total += std::stol(field);
    return total;
}

// CPU ticks a process uses over the next `ms` milliseconds (an idle one: 0).
long ticks_over(pid_t pid, int ms) {
    long before = cpu_ticks(pid);
    ::poll(nullptr, 0, ms);
    return cpu_ticks(pid) - before;
}

// What each open descriptor of a process refers to ("socket:[123]", "anon_inode:[eventpoll]"),
// with its flags from /proc/PID/fdinfo (O_CLOEXEC appears there when FD_CLOEXEC is set).
struct OpenFd {
    int fd;
    std::string target;
    long flags;
    std::string info;  // the whole fdinfo (an epoll set lists its members as "tfd: N ...")
};
std::vector<OpenFd> open_fds(pid_t pid) {
    std::vector<OpenFd> out;
    const std::string dir = "/proc/" + std::to_string(pid);
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator(dir + "/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
        std::error_code link_ec;
        auto target = std::filesystem::read_symlink(it->path(), link_ec);
        if (link_ec) continue;
        const std::string name = it->path().filename().string();
        std::string info = slurp(dir + "/fdinfo/" + name);
        std::istringstream in(info);
        std::string key, value;
        long flags = 0;
        while (in >> key >> value)
            if (key == "flags:") flags = std::strtol(value.c_str(), nullptr, 8);
        out.push_back({std::stoi(name), target.string(), flags, info});
    }
    return out;
}

// The inode of the socket listening on `path`, from /proc/net/unix ("Flags" 00010000 is
// __SO_ACCEPTCON: a listening socket; connections accepted from it carry the same path).
std::string listener_inode(const std::string& path) {
    std::istringstream in(slurp("/proc/net/unix"));
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string num, refs, proto, flags, type, st, inode, p;
        if (f >> num >> refs >> proto >> flags >> type >> st >> inode >> p && p == path &&
            flags == "00010000")
            return inode;
    }
    return "";
}

std::vector<OpenFd> sockets_of(pid_t pid, const std::string& except_inode = "") {
    std::vector<OpenFd> out;
    for (const OpenFd& f : open_fds(pid))
        if (f.target.rfind("socket:", 0) == 0 && f.target != "socket:[" + except_inode + "]")
            out.push_back(f);
    return out;
}

// Sends chunk over and over on a non-blocking socket, from where the last send stopped (so
// the stream stays whole lines), until nothing has been taken for quiet_ms or `cap` bytes went.
std::size_t flood(int fd, const std::string& chunk, std::size_t& off, int quiet_ms,
                  std::size_t cap = 16u << 20) {
    std::size_t sent = 0;
    for (;;) {
        ssize_t n = ::send(fd, chunk.data() + off, chunk.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            sent += static_cast<std::size_t>(n);
            off = (off + static_cast<std::size_t>(n)) % chunk.size();
            if (sent >= cap) return sent;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return sent;
        pollfd p{fd, POLLOUT, 0};
        if (::poll(&p, 1, quiet_ms) == 0) return sent;
    }
}

// A blocking send on fd fails with EAGAIN after waiting this long (th::send_all then throws):
// a server that never reads must not hang a test.
void give_up_sending_after(int fd, milliseconds ms) {
    const long us = std::max<long>(1000, static_cast<long>(ms.count()) * 1000);
    timeval tv{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// ------------------------------------------------------------------ S1-S3: as in chapter 01

// The flags of the socket listening at a server's -s path, as the server holds it.
long listener_flags(Server& s) {
    const std::string inode = listener_inode(s.addr.name());
    for (const OpenFd& f : open_fds(s.pid()))
        if (!inode.empty() && f.target == "socket:[" + inode + "]") return f.flags;
    return -1;
}

// S1-S3 are checked on the thread model, which gets ready before any step of its own is
// written, and without a round trip: they must not fail for a step that comes later.
TEST(Ch04Steps, S1_Socket_ListenerIsCloseOnExecAndNonBlockingForEpoll) {
    {
        Server s{"thread"};
        const long flags = listener_flags(s);
        ASSERT_NE(flags, -1) << s.why(
            "the server holds a socket listening at the -s path (steps S1-S3)");
        EXPECT_NE(flags & O_CLOEXEC, 0) << s.why(
            "the listening socket is close-on-exec: socket(..., SOCK_STREAM | "
            "SOCK_CLOEXEC, 0) (step S1)");
    }
    // The epoll model gets ready only once its own first step (S4a) is written.
    std::unique_ptr<Server> s;
    try {
        s = std::make_unique<Server>("epoll");
    } catch (const th::Abort& e) {
        if (std::string(e.what()).find("is not written yet") != std::string::npos) return;
        throw;
    }
    EXPECT_NE(listener_flags(*s) & O_NONBLOCK, 0) << s->why(
        "the epoll model's listener is non-blocking (SOCK_NONBLOCK), so its loop never "
        "waits inside accept4 (step S1)");
}

TEST(Ch04Steps, S2_Bind_AStaleFileIsReplacedALiveServersIsNot) {
    th::TempDir dir;
    const auto addr = uds::Address::path(dir.file("s.sock"));
    {  // a socket file nobody listens on: what a killed server leaves behind
        uds::Fd stale{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
        ASSERT_EQ(::bind(stale.get(), addr.sockaddr_ptr(), addr.length()), 0);
    }
    auto first =
        th::start_server(th::bin(kChapter, "server"), {"-s", addr.name(), "--model", "thread"});
    struct stat st {};
    ASSERT_EQ(::lstat(addr.name().c_str(), &st), 0)
        << th::why("the server's socket file exists at the -s path (step S2)");
    EXPECT_TRUE(S_ISSOCK(st.st_mode)) << th::why("bind creates a socket file (step S2)");
    EXPECT_FALSE(listener_inode(addr.name()).empty()) << th::why(
        "a stale socket file is removed and the path bound again: the server "
        "listens there (step S2)");
    // A second server on the same, live path must leave it alone.
    auto second = th::run(th::bin(kChapter, "server"), {"-s", addr.name(), "--model", "thread"}, {},
                          {}, Deadline{step_patience()});
    EXPECT_EQ(second.status, 1) << th::why(
        "a second server on a live server's path exits 1 (step S2)");
    struct stat after {};
    EXPECT_TRUE(::lstat(addr.name().c_str(), &after) == 0 && after.st_ino == st.st_ino) << th::why(
        "the live server keeps its socket file: never unlink before bind blindly "
        "(step S2)");
    EXPECT_NO_THROW(th::connect_stream(addr))
        << th::why("the live server is still reachable at its path (step S2)");
}

TEST(Ch04Steps, S3_Listen_ABurstOf200ConnectsWaitsInTheQueue) {
    Server s{"thread", {"--max-clients", "2"}};  // (not 200 threads once it runs again)
    long somaxconn = std::strtol(slurp("/proc/sys/net/core/somaxconn").c_str(), nullptr, 10);
    const int burst = static_cast<int>(std::min<long>(200, somaxconn > 0 ? somaxconn : 200));
    // The server is stopped: nobody accepts. Only the listen queue holds the connections.
    s.proc->signal(SIGSTOP);
    std::vector<uds::Fd> queued;
    int err = 0;
    for (int i = 0; i < burst; ++i) {
        uds::Fd c{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
        if (::connect(c.get(), s.addr.sockaddr_ptr(), s.addr.length()) != 0) {
            err = errno;
            break;
        }
        queued.push_back(std::move(c));
    }
    s.proc->signal(SIGCONT);
    EXPECT_EQ(static_cast<int>(queued.size()), burst)
        << s.why("listen's backlog holds a burst of " + std::to_string(burst) +
                 " connects while nobody accepts (SOMAXCONN); the queue was full after " +
                 std::to_string(queued.size()) + " (" + strerror(err) + ") (step S3)");
}

// ------------------------------------------------------------------ S4: the wait

TEST(Ch04Steps, S4a_EpollCreate1_TheListenerIsInACloseOnExecEpollSet) {
    Server s{"epoll"};
    const std::string inode = listener_inode(s.addr.name());
    int listener_fd = -1;
    for (const OpenFd& f : open_fds(s.pid()))
        if (f.target == "socket:[" + inode + "]") listener_fd = f.fd;
    const OpenFd* ep = nullptr;
    auto fds = open_fds(s.pid());
    for (const OpenFd& f : fds)
        if (f.target == "anon_inode:[eventpoll]") ep = &f;
    ASSERT_NE(ep, nullptr) << s.why("the server holds an epoll set: epoll_create1 (step S4a)");
    EXPECT_NE(ep->flags & O_CLOEXEC, 0)
        << s.why("the epoll set is close-on-exec: epoll_create1(EPOLL_CLOEXEC) (step S4a)");
    // /proc/PID/fdinfo of an epoll set has a line "tfd: FD events: ... data: TAG" per member.
    bool member = false;
    std::istringstream info(ep->info);
    std::string key;
    while (info >> key)
        if (key == "tfd:") {
            int fd = -1;
            info >> fd;
            member = member || fd == listener_fd;
        }
    EXPECT_TRUE(member) << s.why(
        "the listener is registered in the epoll set: epoll_ctl(EPOLL_CTL_ADD) "
        "(step S4a)");
}

TEST(Ch04Steps, S4b_EpollWait_AnIdleServerSleeps) {
    Server s{"epoll"};
    long used = ticks_over(s.pid(), 500);
    EXPECT_TRUE(s.proc->running()) << s.why("the server waits in epoll_wait (step S4b)");
    EXPECT_LE(used, 3) << s.why("an idle server sleeps in epoll_wait; it used " +
                                std::to_string(used * 10) +
                                " ms of CPU in 500 ms (a zero timeout spins) (step S4b)");
}

// ------------------------------------------------------------------ S5: accept4

TEST(Ch04Steps, S5_Accept4_ClientSocketsAreCloseOnExecAndNonBlockingForEpoll) {
    // (The fork model's accept4 is the same code, serve.hpp; its socket lives in a child.)
    for (const char* model : {"epoll", "thread"}) {
        Server s{model};
        const std::string inode = listener_inode(s.addr.name());
        uds::Fd c = th::connect_stream(s.addr);
        // No round trip: what accept4 returned is in the server as soon as it has accepted.
        std::vector<OpenFd> socks;
        EXPECT_TRUE(eventually([&] { return !(socks = sockets_of(s.pid(), inode)).empty(); }))
            << s.why(std::string(model) + ": the server accepts a client: accept4 (step S5)");
        for (const OpenFd& f : socks) {
            EXPECT_NE(f.flags & O_CLOEXEC, 0)
                << s.why(std::string(model) +
                         ": an accepted socket is close-on-exec, or every program the server "
                         "ever runs inherits its clients: accept4(..., SOCK_CLOEXEC) (step S5)");
            if (std::string(model) == "epoll") {
                EXPECT_NE(f.flags & O_NONBLOCK, 0) << s.why(
                    "the epoll model's client sockets are non-blocking: accept4(..., "
                    "SOCK_CLOEXEC | SOCK_NONBLOCK) (step S5)");
            }
        }
    }
}

// ------------------------------------------------------------------ S6: hand the client over

TEST(Ch04Steps, S6_EpollCtlAdd_TwoClientsConnectedAtOnceAreBothServed) {
    Server s{"epoll"};
    uds::Fd a = th::connect_stream(s.addr);
    uds::Fd b = th::connect_stream(s.addr);
    ASSERT_EQ(round_trip(b.get(), "b first"), "B FIRST\n")
        << s.why("the second client is served while the first one is connected (step S6)");
    EXPECT_EQ(round_trip(a.get(), "then a"), "THEN A\n")
        << s.why("the first client is still watched and served (step S6)");
}

TEST(Ch04Steps, S6_PthreadCreate_EachClientIsServedByItsOwnThread) {
    Server s{"thread"};
    const int base = thread_count(s.pid());
    uds::Fd a = th::connect_stream(s.addr);
    uds::Fd b = th::connect_stream(s.addr);
    ASSERT_EQ(round_trip(b.get(), "b"), "B\n") << s.why("the second client is served (step S6)");
    EXPECT_EQ(round_trip(a.get(), "a"), "A\n") << s.why("the first client is served (step S6)");
    // At least one more thread per client: a sanitizer runtime may add a helper thread of its
    // own when the first thread is created (ThreadSanitizer does).
    EXPECT_GE(thread_count(s.pid()), base + 2)
        << s.why("each client is served by a thread of its own: pthread_create (step S6)");
}

TEST(Ch04Steps, S6a_Fork_EachClientHasAProcessHoldingOnlyItsOwnSocket) {
    Server s{"fork"};
    const std::string inode = listener_inode(s.addr.name());
    uds::Fd a = th::connect_stream(s.addr);
    uds::Fd b = th::connect_stream(s.addr);
    ASSERT_EQ(round_trip(a.get(), "a"), "A\n") << s.why("the first client is served (step S6a)");
    EXPECT_EQ(round_trip(b.get(), "b"), "B\n") << s.why("the second client is served (step S6a)");
    auto kids = children_of(s.pid());
    EXPECT_EQ(kids.size(), 2u) << s.why("one child process per client: fork (step S6a)");
    for (pid_t k : kids) {
        for (const OpenFd& f : open_fds(k)) {
            EXPECT_NE(f.target, "socket:[" + inode + "]") << s.why(
                "a child closes the listener it inherited, or the socket outlives "
                "the server (step S6a)");
            EXPECT_NE(f.target, "anon_inode:[signalfd]")
                << s.why("a child closes the parent's signalfd (step S6a)");
        }
    }
}

TEST(Ch04Steps, S6b_Close_TheParentKeepsNoCopyOfAClientsSocket) {
    Server s{"fork"};
    const int base = th::count_fds(s.pid());
    std::vector<uds::Fd> clients;
    for (int i = 0; i < 3; ++i) {
        clients.push_back(th::connect_stream(s.addr));
        ASSERT_EQ(round_trip(clients.back().get(), "x"), "X\n")
            << s.why("each client is served (step S6a)");
    }
    EXPECT_TRUE(eventually([&] { return th::count_fds(s.pid()) == base; })) << s.why(
        "the parent's descriptors do not grow with its clients: it closes its copy of "
        "each connection after fork (step S6b)");
    const std::string inode = listener_inode(s.addr.name());
    for (pid_t k : children_of(s.pid()))
        EXPECT_EQ(sockets_of(k, inode).size(), 1u) << s.why(
            "a child holds exactly one client socket, its own: a copy the parent kept "
            "would be inherited by every later child (step S6b)");
    // The child closes the connection after an overlong line. The client sees end of file only
    // if no other copy of the socket is open, in the parent or in later children.
    th::send_all(clients[0].get(), std::string(5000, 'x') + "\n");
    int err = 0;
    std::string rest = th::read_to_eof(clients[0].get(), Deadline{step_patience()}, &err);
    EXPECT_EQ(rest, std::string(uds::kLineTooLong)) << s.why(
        "after ERROR line too long the client sees end of file: nobody else holds a "
        "copy of its socket (step S6b)");
}

// ------------------------------------------------------------------ S7: serve

TEST(Ch04Steps, S7a_Read_OneReadIsNotOneMessageInAnyModel) {
    Deadline d{step_patience()};  // for the whole test: a server that never answers costs it once
    for (const char* model : {"epoll", "thread", "fork"}) {
        Server s{model};
        uds::Fd c = th::connect_stream(s.addr);
        th::send_all(c.get(), "one\ntwo\n");  // two lines in one write
        std::string two = th::read_line(c.get(), d);
        two += th::read_line(c.get(), d);
        EXPECT_EQ(two, "ONE\nTWO\n")
            << s.why(std::string(model) + ": two lines in one write get two replies (step S7a)");
        th::send_all(c.get(), "thr");  // one line in two writes
        EXPECT_FALSE(th::readable(c.get(), 50))
            << s.why(std::string(model) + ": half a line gets no reply yet (step S7a)");
        th::send_all(c.get(), "ee\nla");
        EXPECT_EQ(th::read_line(c.get(), d), "THREE\n")
            << s.why(std::string(model) + ": one line in two writes gets one reply (step S7a)");
        th::send_all(c.get(), "st");
        ::shutdown(c.get(), SHUT_WR);  // end of input after an unterminated line
        EXPECT_EQ(th::read_to_eof(c.get(), d), "LAST\n")
            << s.why(std::string(model) +
                     ": at end of input (read returns 0) an unterminated last line is answered "
                     "and the connection closed (step S7a)");
    }
}

TEST(Ch04Steps, S7b_Send_RepliesBiggerThanTheSocketBufferArriveWholeWhileOthersAreServed) {
    Server s{"epoll"};
    uds::Fd a = th::connect_stream(s.addr);
    uds::Fd b = th::connect_stream(s.addr);
    // A sends more than the kernel can hold of replies for it and reads nothing yet: the
    // server's send() takes part of each reply, and the rest must wait for later.
    long wmem = std::strtol(slurp("/proc/sys/net/core/wmem_default").c_str(), nullptr, 10);
    if (wmem <= 0) wmem = 212992;
    std::string batch;
    for (long i = 0; static_cast<long>(batch.size()) < 2 * wmem; ++i)
        batch += "line " + std::to_string(i) + " of a " + std::string(200, 'z') + "\n";
    // (A send that waits longer than a step's patience gives up: a server that never reads
    // must not hang the test.)
    give_up_sending_after(a.get(), step_patience());
    std::thread sender([&] {
        try {
            th::send_all(a.get(), batch);
        } catch (...) {
        }
        ::shutdown(a.get(), SHUT_WR);
    });
    // Meanwhile B is answered at once: the server never waits for A's socket.
    EXPECT_EQ(round_trip(b.get(), "b is not kept waiting", brief()), "B IS NOT KEPT WAITING\n")
        << s.why(
               "while one client's socket is full, others are served: send never waits "
               "(MSG_DONTWAIT) (step S7b)");
    int err = 0;
    std::string got = th::read_to_eof(a.get(), Deadline{step_patience()}, &err);
    sender.join();
    EXPECT_TRUE(got.size() == batch.size() && got == uds::upcase(batch)) << s.why(
        "every reply arrives whole and in order: what send did not take is kept and "
        "sent later (step S7b); got " +
        std::to_string(got.size()) + " of " + std::to_string(batch.size()) + " bytes");
    // Clients that vanish while replies wait for them: the server's next send to them fails
    // with EPIPE, which must not be a fatal SIGPIPE.
    const std::string lines = [] {
        std::string out;
        for (int j = 0; j < 64; ++j)
            out += std::string(999, 'v') + "\n";
        return out;
    }();
    for (int i = 0; i < 3; ++i) {
        uds::Fd gone = th::connect_stream(s.addr);
        std::size_t off = 0;
        flood(gone.get(), lines, off, 100);  // until the server stops reading it: replies wait
    }
    EXPECT_EQ(round_trip(b.get(), "still alive"), "STILL ALIVE\n") << s.why(
        "clients that vanish with replies pending do not kill the server: send with "
        "MSG_NOSIGNAL (step S7b)");
}

TEST(Ch04Steps, S7c_EpollCtlMod_ANonReaderIsPausedAndAnIdleConnectionCostsNoCpu) {
    Server s{"epoll"};
    Deadline d{step_patience()};
    uds::Fd idle = th::connect_stream(s.addr);
    ASSERT_EQ(round_trip(idle.get(), "then quiet", d), "THEN QUIET\n")
        << s.why("a client is served (step S7)");
    // A client that sends and never reads: the server must stop reading it. It sends the
    // same 100-byte line over and over (from where the last send stopped, so the stream stays
    // whole) until the server has taken nothing for 300 ms.
    uds::Fd flood_fd = th::connect_stream(s.addr);
    const std::string line = std::string(99, 'f') + "\n";
    std::string chunk;
    while (chunk.size() < 65000)
        chunk += line;
    std::size_t off = 0;
    const std::size_t sent = flood(flood_fd.get(), chunk, off, 300);
    EXPECT_LT(sent, 4u << 20) << s.why(
        "the server stops reading a client that does not read its replies (drop EPOLLIN): it "
        "took " +
        std::to_string(sent >> 10) + " KiB (step S7c)");
    long used = ticks_over(s.pid(), 500);
    EXPECT_LE(used, 3) << s.why("a paused client costs no CPU; the server used " +
                                std::to_string(used * 10) + " ms in 500 ms (step S7c)");
    EXPECT_EQ(round_trip(idle.get(), "others go on", d), "OTHERS GO ON\n")
        << s.why("others are served meanwhile (step S7c)");
    // Now it reads: every reply comes (EPOLLOUT), and the server reads it again (EPOLLIN).
    const std::string rest = chunk.substr(off);  // to the end of a line: the stream is whole
    give_up_sending_after(flood_fd.get(), step_patience());
    std::thread finish([&] {
        try {
            th::send_all(flood_fd.get(), rest);
        } catch (...) {
        }
    });
    std::string want;
    while (want.size() < sent + rest.size())
        want += uds::upcase(chunk);
    std::string got;
    Deadline reading = d.expired() ? Deadline{milliseconds{0}} : Deadline{step_patience()};
    char buf[65536];
    while (got.size() < want.size() && th::readable(flood_fd.get(), reading.remaining_ms())) {
        ssize_t n = ::read(flood_fd.get(), buf, sizeof buf);
        if (n <= 0) break;
        got.append(buf, static_cast<std::size_t>(n));
    }
    finish.join();
    EXPECT_TRUE(got.size() == want.size() && got == want) << s.why(
        "once the client reads, all its replies come (EPOLLOUT) and its input is read "
        "again (EPOLLIN): got " +
        std::to_string(got.size()) + " of " + std::to_string(want.size()) + " bytes (step S7c)");
    // Everything answered, the client still connected: nothing is pending, so EPOLLOUT must
    // not be watched any more (a writable socket would wake epoll_wait at once, for ever).
    used = ticks_over(s.pid(), 500);
    EXPECT_LE(used, 3) << s.why(
        "once a client's replies are all sent the server sleeps again; "
        "it used " +
        std::to_string(used * 10) + " ms of CPU in 500 ms: stop watching EPOLLOUT (step S7c)");
}

// ------------------------------------------------------------------ S8: clean up

TEST(Ch04Steps, S8_Close_EpollHangupsLeaveNoDescriptors) {
    Server s{"epoll"};
    const int base = th::count_fds(s.pid());
    for (int i = 0; i < 10; ++i) {
        uds::Fd c = th::connect_stream(s.addr);
        if (i % 2 == 0) {
            ASSERT_EQ(round_trip(c.get(), "bye"), "BYE\n") << s.why("a client is served (step S7)");
        }
        // odd ones hang up without a byte
    }
    EXPECT_TRUE(eventually([&] { return th::count_fds(s.pid()) == base; }))
        << s.why("clients that left leave no descriptor behind: the server holds " +
                 std::to_string(th::count_fds(s.pid())) + ", " + std::to_string(base) +
                 " before any client came (step S8)");
    uds::Fd after = th::connect_stream(s.addr);
    EXPECT_EQ(round_trip(after.get(), "still here"), "STILL HERE\n")
        << s.why("the server goes on serving after clients left (step S8)");
}

TEST(Ch04Steps, S8_Waitpid_ChildrenAreReapedWhenTheirClientsLeave) {
    Server s{"fork"};
    Deadline d{step_patience()};
    for (int i = 0; i < 3; ++i) {  // one after the other
        uds::Fd c = th::connect_stream(s.addr);
        ASSERT_EQ(round_trip(c.get(), "bye", d), "BYE\n") << s.why("a client is served (step S6a)");
    }
    {  // and eight at once: their children exit together, and their SIGCHLDs merge into one
        std::vector<uds::Fd> crowd;
        for (int i = 0; i < 8; ++i) {
            crowd.push_back(th::connect_stream(s.addr));
            ASSERT_EQ(round_trip(crowd.back().get(), "hi", d), "HI\n")
                << s.why("a client is served (step S6a)");
        }
    }
    // An exited child stays a zombie, still listed as a child, until the parent waits for it.
    EXPECT_TRUE(eventually([&] { return children_of(s.pid()).empty(); }))
        << s.why(std::to_string(children_of(s.pid()).size()) +
                 " children left after their clients did: a child that exited stays a zombie "
                 "until waitpid collects it, and one SIGCHLD may stand for many exits (step S8)");
    uds::Fd after = th::connect_stream(s.addr);
    EXPECT_EQ(round_trip(after.get(), "next"), "NEXT\n")
        << s.why("the server goes on serving (step S8)");
}

TEST(Ch04Steps, S8a_Close_AThreadClosesItsClientsSocketAtOnce) {
    Server s{"thread"};
    const int base = th::count_fds(s.pid());
    {
        uds::Fd c = th::connect_stream(s.addr);
        ASSERT_EQ(round_trip(c.get(), "bye"), "BYE\n") << s.why("a client is served (step S6)");
    }
    // No other client comes: the main thread sleeps in its wait, so the client's own thread
    // must close the socket.
    EXPECT_TRUE(eventually([&] { return th::count_fds(s.pid()) == base; })) << s.why(
        "a client's thread closes its socket as soon as the client is done: the server "
        "holds " +
        std::to_string(th::count_fds(s.pid())) + " descriptors, " + std::to_string(base) +
        " before (step S8a)");
}

TEST(Ch04Steps, S8b_PthreadJoin_FinishedThreadsGiveTheirStacksBack) {
    Server s{"thread"};
    const int alone = thread_count(s.pid());
    {
        uds::Fd warm = th::connect_stream(s.addr);
        ASSERT_EQ(round_trip(warm.get(), "warm"), "WARM\n") << s.why("a client is served (S6)");
    }
    // (A sanitizer runtime may start a helper thread of its own with the first thread.)
    ASSERT_TRUE(eventually([&] { return thread_count(s.pid()) <= alone + 1; }))
        << s.why("a client's thread ends when its client leaves (step S8a)");
    const int base = thread_count(s.pid());
    const long before = status_kib(s.pid(), "VmSize");
    // One client after the other: each one's thread has finished when the next one comes, and
    // the main thread joins it then. A thread never joined keeps its stack (8 MiB) mapped.
    for (int i = 0; i < 40; ++i) {
        uds::Fd c = th::connect_stream(s.addr);
        ASSERT_EQ(round_trip(c.get(), "next"), "NEXT\n") << s.why("each client is served (S6)");
        c.reset();
        EXPECT_TRUE(eventually([&] { return thread_count(s.pid()) <= base; }))
            << s.why("a client's thread ends when its client leaves (step S8a)");
    }
    const long grown_mib = (status_kib(s.pid(), "VmSize") - before) / 1024;
    EXPECT_LT(grown_mib, 160) << s.why(
        "40 finished threads are joined and their stacks given back (or reused); the server's "
        "address space grew by " +
        std::to_string(grown_mib) + " MiB (step S8b)");
}

// ------------------------------------------------------------------ the client, C1-C4

// A peer for the client: a listening socket written here, so each client step is checked
// without the reference server.
struct Peer {
    th::TempDir dir;
    uds::Address addr = uds::Address::path(dir.file("peer.sock"));
    uds::Fd listener{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    Peer() {
        uds::check(::bind(listener.get(), addr.sockaddr_ptr(), addr.length()), "bind");
        uds::check(::listen(listener.get(), 8), "listen");
    }
    // The next connection, or an invalid Fd if none came in time (the client died first).
    uds::Fd accept(th::Process& client) {
        Deadline d{step_patience()};
        while (!th::readable(listener.get(), 20))
            if (d.expired() || !client.running()) return {};
        return uds::Fd{::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC)};
    }
};

// "the client exited with status 1 (client: step C2 (connect) is not written yet); ..."
std::string client_why(th::Process& client, const std::string& reason) {
    client.drain();
    if (client.running()) return th::why(reason);
    std::string words = last_line(client.err());
    return th::why("the client " + client.ending() + (words.empty() ? "" : " (" + words + ")") +
                   "; " + reason);
}

TEST(Ch04ClientSteps, C1_Socket_TheClientSocketIsCloseOnExec) {
    Peer peer;
    th::Process client(th::bin(kChapter, "client"), {"-s", peer.addr.name(), "hello"});
    uds::Fd conn = peer.accept(client);
    ASSERT_TRUE(conn) << client_why(client, "the client connects (steps C1, C2)");
    EXPECT_EQ(th::read_line(conn.get(), Deadline{step_patience()}), "hello\n")
        << client_why(client, "the request arrives (step C3)");
    auto socks = sockets_of(client.pid());
    ASSERT_FALSE(socks.empty()) << client_why(client, "the client holds its socket (step C1)");
    for (const OpenFd& f : socks)
        EXPECT_NE(f.flags & O_CLOEXEC, 0) << client_why(
            client, "the client's socket is close-on-exec: socket(..., SOCK_CLOEXEC) (step C1)");
    th::send_all(conn.get(), "HELLO\n");
    EXPECT_EQ(client.wait_exit(Deadline{step_patience()}), 0)
        << client_why(client, "the client exits 0 once its reply came (step C4)");
}

TEST(Ch04ClientSteps, C2_Connect_ReachesTheServerAtDashSOrSaysWhy) {
    Peer peer;
    th::Process client(th::bin(kChapter, "client"), {"-s", peer.addr.name(), "ping"});
    uds::Fd conn = peer.accept(client);
    ASSERT_TRUE(conn) << client_why(client, "the client connects to the -s path (step C2)");
    th::send_all(conn.get(), th::read_line(conn.get(), Deadline{step_patience()}) == "ping\n"
                                 ? "PING\n"
                                 : "?\n");
    EXPECT_EQ(client.wait_exit(Deadline{step_patience()}), 0)
        << client_why(client, "the client exits 0 once its reply came (step C2)");
    EXPECT_EQ(client.out(), "PING\n") << client_why(client, "the reply is printed (step C4)");
    // Nobody there: exit 1 with one line that names connect.
    auto r = th::run(th::bin(kChapter, "client"), {"-s", peer.dir.file("nobody.sock"), "x"}, {}, {},
                     Deadline{step_patience()});
    EXPECT_EQ(r.status, 1) << th::why("no server at the path: the client exits 1 (step C2)");
    EXPECT_NE(r.err.find("connect"), std::string::npos)
        << th::why("the error names the call that failed, connect (step C2)");
}

TEST(Ch04ClientSteps, C3_Write_AServerThatHungUpIsAnErrorNotSigpipe) {
    Peer peer;
    th::Process client(th::bin(kChapter, "client"), {"-s", peer.addr.name()});  // stdin lines
    client.write_stdin("first\n");
    uds::Fd conn = peer.accept(client);
    ASSERT_TRUE(conn) << client_why(client, "the client connects (step C2)");
    EXPECT_EQ(th::read_line(conn.get(), Deadline{step_patience()}), "first\n")
        << client_why(client, "the first request arrives (step C3)");
    th::send_all(conn.get(), "FIRST\n");
    EXPECT_TRUE(client.wait_stdout("FIRST\n", Deadline{step_patience()}))
        << client_why(client, "the reply is printed (step C4)");
    conn.reset();  // the server hangs up; then the client sends its second request
    client.write_stdin("second\n");
    client.close_stdin();
    EXPECT_EQ(client.wait_exit(Deadline{step_patience()}), 1)
        << client_why(client,
                      "a server that hung up is one error line and exit 1, not death by SIGPIPE: "
                      "send with MSG_NOSIGNAL (step C3)");
}

TEST(Ch04ClientSteps, C4_Read_AReplyInPiecesIsOneLineAndTwoInOneReadAreTwo) {
    Peer peer;
    th::Process client(th::bin(kChapter, "client"), {"-s", peer.addr.name(), "ab", "cd", "ef"});
    uds::Fd conn = peer.accept(client);
    ASSERT_TRUE(conn) << client_why(client, "the client connects (step C2)");
    Deadline d{step_patience()};
    EXPECT_EQ(th::read_line(conn.get(), d), "ab\n") << client_why(client, "request 1 (step C3)");
    th::send_all(conn.get(), "A");                // the reply in two pieces
    EXPECT_FALSE(th::readable(conn.get(), 100));  // (the client waits: it has half a reply)
    th::send_all(conn.get(), "B\n");
    EXPECT_EQ(th::read_line(conn.get(), d), "cd\n") << client_why(client, "request 2 (step C4)");
    th::send_all(conn.get(), "CD\nEF\n");  // two replies in one write, one of them early
    EXPECT_EQ(th::read_line(conn.get(), d), "ef\n") << client_why(client, "request 3 (step C4)");
    EXPECT_EQ(client.wait_exit(d), 0) << client_why(client, "the client exits 0 (step C4)");
    EXPECT_EQ(client.out(), "AB\nCD\nEF\n")
        << client_why(client,
                      "a reply that arrives in two pieces is one line, two replies in one read "
                      "are two: read until the newline (step C4)");
}

}  // namespace
