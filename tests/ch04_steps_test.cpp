// Chapter 04, one test per step of the lesson (suite Ch04Steps), named
// <Model>Step<N>_<Call>_<WhatItChecks>, with the step numbers of 04-multi-client/model_*.hpp and
// of the README's walkthrough. Run against a student's server
// (make grade-04 STUDENT=04-multi-client/exercise), the first failing name says which step of
// the starter to write next. Each test waits at most a few seconds: a missing step fails fast.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "harness.hpp"
#include "uds.hpp"

namespace {

using th::Deadline;
using th::milliseconds;

const std::string kChapter = "04-multi-client";
// Patience for one step: plenty for a correct server (even under sanitizers), short enough
// that a server with a missing step fails the test in seconds.
constexpr milliseconds kStep{3000};

// A chapter 04 server with the given model, on a socket in its own temporary directory.
struct Server {
    th::TempDir dir;
    uds::Address addr = uds::Address::path(dir.file("s.sock"));
    th::Process proc;
    explicit Server(const std::string& model)
        : proc(th::bin(kChapter, "server"), {"-s", addr.name(), "--model", model}) {}
    // True once it said "listening on" (and is still running).
    bool started() { return proc.wait_stderr("listening on", Deadline{kStep}) && proc.running(); }
    [[nodiscard]] pid_t pid() const { return proc.pid(); }
};

std::string round_trip(int fd, const std::string& line, Deadline d = Deadline{kStep}) {
    th::send_all(fd, line + "\n");
    return th::read_line(fd, d);
}

// Retries cond until it holds or the deadline passes (for /proc state, which nothing reports).
bool eventually(const std::function<bool()>& cond, Deadline d = Deadline{kStep}) {
    int wait_ms = 1;
    while (!cond()) {
        if (d.expired()) return false;
        ::poll(nullptr, 0, wait_ms);
        wait_ms = std::min(wait_ms * 2, 50);
    }
    return true;
}

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
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

// Threads of a process.
int thread_count(pid_t pid) {
    std::error_code ec;
    int n = 0;
    for (auto it =
             std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
        ++n;
    return n;
}

// What each open descriptor of a process refers to ("socket:[123]", "anon_inode:[eventpoll]"),
// with its open flags from /proc/PID/fdinfo.
struct OpenFd {
    int fd;
    std::string target;
    long flags;
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
        std::istringstream info(slurp(dir + "/fdinfo/" + name));
        std::string key, value;
        long flags = 0;
        while (info >> key >> value)
            if (key == "flags:") flags = std::strtol(value.c_str(), nullptr, 8);
        out.push_back({std::stoi(name), target.string(), flags});
    }
    return out;
}

// ------------------------------------------------------------------ epoll (the lesson)

TEST(Ch04Steps, EpollStep5_EpollCreateAndCtl_ServerStartsWithAnEpollSet) {
    Server s{"epoll"};
    ASSERT_TRUE(s.started()) << "the server did not start:\n" << s.proc.err();
    bool has_epoll = false;
    for (const OpenFd& f : open_fds(s.pid()))
        has_epoll = has_epoll || f.target == "anon_inode:[eventpoll]";
    EXPECT_TRUE(has_epoll) << "no epoll instance among the server's descriptors";
    // The listener is in the set: a client's connect wakes the server (it logs the client).
    uds::Fd c = th::connect_stream(s.addr);
    EXPECT_TRUE(s.proc.wait_stderr("connected", Deadline{kStep})) << s.proc.err();
}

TEST(Ch04Steps, EpollStep6_EpollWaitAndCtlAdd_TwoClientsConnectedAtOnceAreBothAccepted) {
    Server s{"epoll"};
    ASSERT_TRUE(s.started()) << s.proc.err();
    uds::Fd a = th::connect_stream(s.addr);
    uds::Fd b = th::connect_stream(s.addr);
    EXPECT_TRUE(s.proc.wait_stderr("2 connected", Deadline{kStep}))
        << "the server did not accept both clients:\n"
        << s.proc.err();
    EXPECT_TRUE(s.proc.running()) << s.proc.err();
}

TEST(Ch04Steps, EpollStep1and4_NonBlocking_ListenerAndClientSocketsNeverBlock) {
    Server s{"epoll"};
    ASSERT_TRUE(s.started()) << s.proc.err();
    uds::Fd c = th::connect_stream(s.addr);
    ASSERT_TRUE(s.proc.wait_stderr("connected", Deadline{kStep})) << s.proc.err();
    int sockets = 0;
    for (const OpenFd& f : open_fds(s.pid())) {
        if (f.target.rfind("socket:", 0) != 0) continue;
        ++sockets;
        EXPECT_NE(f.flags & O_NONBLOCK, 0)
            << "descriptor " << f.fd << " (" << f.target
            << ") is blocking: socket(..., SOCK_NONBLOCK) for the listener (step 1), "
               "accept4(..., SOCK_NONBLOCK) for clients (step 4)";
    }
    EXPECT_GE(sockets, 2) << "expected the listener and one client";
}

TEST(Ch04Steps, EpollStep7ab_ReadSend_PipelinedLinesAnsweredInOrder) {
    Server s{"epoll"};
    ASSERT_TRUE(s.started()) << s.proc.err();
    uds::Fd a = th::connect_stream(s.addr);
    uds::Fd b = th::connect_stream(s.addr);
    // b sends 50 lines in one write and half a line; a, connected all along, is answered too.
    std::string batch, want;
    for (int i = 0; i < 50; ++i) {
        batch += "line " + std::to_string(i) + " of b\n";
        want += "LINE " + std::to_string(i) + " OF B\n";
    }
    th::send_all(b.get(), batch + "hal");
    EXPECT_EQ(round_trip(a.get(), "from a"), "FROM A\n") << s.proc.err();
    Deadline d{kStep};
    std::string got;
    for (int i = 0; i < 50; ++i)
        got += th::read_line(b.get(), d);
    EXPECT_EQ(got, want) << s.proc.err();
    th::send_all(b.get(), "f a line\n");  // the rest of the half line
    EXPECT_EQ(th::read_line(b.get(), Deadline{kStep}), "HALF A LINE\n") << s.proc.err();
}

TEST(Ch04Steps, EpollStep7c_EpollCtlMod_ReplyBiggerThanTheSocketBufferArrivesWhole) {
    Server s{"epoll"};
    ASSERT_TRUE(s.started()) << s.proc.err();
    uds::Fd c = th::connect_stream(s.addr);
    // Send more than the server's socket buffer can hold of replies (wmem_default + 48 KiB)
    // before reading any. The server sends what fits; the rest must wait for EPOLLOUT
    // (epoll_ctl MOD), or it waits forever once we stop sending. (It is also less than the
    // server accepts before it stops reading us, so this send never waits on backpressure.)
    long wmem = std::strtol(slurp("/proc/sys/net/core/wmem_default").c_str(), nullptr, 10);
    if (wmem <= 0) wmem = 212992;
    const std::size_t lines = static_cast<std::size_t>(wmem) / 1024 + 48;
    const std::string line = std::string(1023, 'x') + "\n";
    std::string batch;
    for (std::size_t i = 0; i < lines; ++i)
        batch += line;
    th::send_all(c.get(), batch);
    std::string want = uds::upcase(batch), got;
    Deadline d{kStep};
    char buf[65536];
    while (got.size() < want.size() && th::readable(c.get(), d.remaining_ms())) {
        ssize_t n = ::read(c.get(), buf, sizeof buf);
        if (n <= 0) break;
        got.append(buf, static_cast<std::size_t>(n));
    }
    EXPECT_EQ(got.size(), want.size()) << "the rest of the replies never came (EPOLLOUT?)\n"
                                       << s.proc.err();
    EXPECT_TRUE(got == want) << "the replies differ from the requests upper-cased";
}

TEST(Ch04Steps, EpollStep8_Close_HangupsLeaveNoDescriptors) {
    Server s{"epoll"};
    ASSERT_TRUE(s.started()) << s.proc.err();
    const int base = th::count_fds(s.pid());
    for (int i = 0; i < 10; ++i) {
        uds::Fd c = th::connect_stream(s.addr);
        if (i % 2 == 0) {
            EXPECT_EQ(round_trip(c.get(), "bye"), "BYE\n") << s.proc.err();
        }
        // odd ones hang up without a byte
    }
    EXPECT_TRUE(eventually([&] { return th::count_fds(s.pid()) == base; }))
        << "the server holds " << th::count_fds(s.pid()) << " descriptors, " << base
        << " before any client came\n"
        << s.proc.err();
    ASSERT_TRUE(s.proc.running()) << s.proc.err();
    uds::Fd after = th::connect_stream(s.addr);
    EXPECT_EQ(round_trip(after.get(), "still here"), "STILL HERE\n") << s.proc.err();
}

// ------------------------------------------------------------------ fork

TEST(Ch04Steps, ForkStep5_Fork_EachClientIsServedByItsOwnProcess) {
    Server s{"fork"};
    ASSERT_TRUE(s.started()) << s.proc.err();
    uds::Fd a = th::connect_stream(s.addr);
    uds::Fd b = th::connect_stream(s.addr);
    EXPECT_EQ(round_trip(a.get(), "a"), "A\n") << s.proc.err();
    EXPECT_EQ(round_trip(b.get(), "b"), "B\n") << s.proc.err();
    EXPECT_EQ(children_of(s.pid()).size(), 2u) << "one child process per client";
}

TEST(Ch04Steps, ForkStep8_Waitpid_ChildrenAreReapedWhenTheirClientsLeave) {
    Server s{"fork"};
    ASSERT_TRUE(s.started()) << s.proc.err();
    for (int i = 0; i < 5; ++i) {
        uds::Fd c = th::connect_stream(s.addr);
        EXPECT_EQ(round_trip(c.get(), "bye"), "BYE\n") << s.proc.err();
    }
    // An exited child stays a zombie, still listed as a child, until the parent waits for it.
    EXPECT_TRUE(eventually([&] { return children_of(s.pid()).empty(); }))
        << children_of(s.pid()).size() << " children left (zombies?)\n"
        << s.proc.err();
    ASSERT_TRUE(s.proc.running()) << s.proc.err();
    uds::Fd after = th::connect_stream(s.addr);
    EXPECT_EQ(round_trip(after.get(), "next"), "NEXT\n") << s.proc.err();
}

// ------------------------------------------------------------------ thread

TEST(Ch04Steps, ThreadStep5_PthreadCreate_EachClientIsServedByItsOwnThread) {
    Server s{"thread"};
    ASSERT_TRUE(s.started()) << s.proc.err();
    const int base = thread_count(s.pid());
    uds::Fd a = th::connect_stream(s.addr);
    uds::Fd b = th::connect_stream(s.addr);
    EXPECT_EQ(round_trip(a.get(), "a"), "A\n") << s.proc.err();
    EXPECT_EQ(round_trip(b.get(), "b"), "B\n") << s.proc.err();
    // At least one more thread per client: a sanitizer runtime may add a helper thread of its
    // own when the first thread is created (ThreadSanitizer does).
    EXPECT_GE(thread_count(s.pid()), base + 2) << "one thread per client";
}

TEST(Ch04Steps, ThreadStep8_Close_ALeavingClientsSocketIsClosedAtOnce) {
    Server s{"thread"};
    ASSERT_TRUE(s.started()) << s.proc.err();
    const int base = th::count_fds(s.pid());
    {
        uds::Fd c = th::connect_stream(s.addr);
        EXPECT_EQ(round_trip(c.get(), "bye"), "BYE\n") << s.proc.err();
    }
    // No other client comes: the main thread sleeps in its wait, so the client's own thread
    // must close the socket.
    EXPECT_TRUE(eventually([&] { return th::count_fds(s.pid()) == base; }))
        << "the server holds " << th::count_fds(s.pid()) << " descriptors, " << base
        << " before the client came\n"
        << s.proc.err();
}

}  // namespace
