// Reliability tests: servers racing for one path, killed servers, many client threads
// (Reliability*). The long-running versions of these are in make soak (tests/soak/soak.cpp); these
// are the fast, deterministic cases that belong in every make test.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "harness.hpp"
#include "uds.hpp"

namespace {

const std::string kChapter = "01-stream-path";

class ReliabilityRace : public ::testing::Test {
  protected:
    th::TempDir tmp;
    std::string sock = tmp.file("s.sock");
    uds::Address addr = uds::Address::path(sock);

    std::unique_ptr<th::Process> start_server() {
        auto p = std::make_unique<th::Process>(th::bin(kChapter, "server"),
                                               std::vector<std::string>{"-s", sock});
        EXPECT_TRUE(p->wait_stderr("listening on ")) << p->err();
        return p;
    }
    std::string ask(std::string_view request) {
        uds::Fd c = th::connect_stream(addr);
        th::send_all(c.get(), request);
        ::shutdown(c.get(), SHUT_WR);
        return th::read_to_eof(c.get());
    }
};

// The race window, held open: a server that has bound but not yet called listen() answers
// connect() with ECONNREFUSED exactly like a stale file. A second server must not take that for
// stale: the first one's lock (PATH.lock, taken right after its bind) says someone is starting.
TEST_F(ReliabilityRace, ServerBetweenBindAndListenKeepsItsPath) {
    uds::Fd first{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    ASSERT_EQ(::bind(first.get(), addr.sockaddr_ptr(), addr.length()), 0);
    uds::SocketFile claim{addr};  // what every server does right after bind()
    struct stat before {};
    ASSERT_EQ(::lstat(sock.c_str(), &before), 0);

    auto second = th::run(th::bin(kChapter, "server"), {"-s", sock});
    EXPECT_EQ(second.status, 1);
    EXPECT_NE(second.err.find("another server is running or starting there"), std::string::npos)
        << second.err;
    struct stat after {};
    ASSERT_EQ(::lstat(sock.c_str(), &after), 0) << "the starting server's file was removed";
    EXPECT_EQ(before.st_ino, after.st_ino);
    // The first one goes on to listen and is reachable through its file.
    ASSERT_EQ(::listen(first.get(), 4), 0);
    uds::Fd c = th::connect_stream(addr);
    EXPECT_TRUE(c.valid());
}

TEST_F(ReliabilityRace, KilledServerLeavesAStaleFileButNoLockAndIsReplaced) {
    {
        auto server = start_server();
        EXPECT_EQ(ask("one\n"), "ONE\n");
        server->signal(SIGKILL);
        EXPECT_EQ(server->wait_exit(), 128 + SIGKILL);
    }
    struct stat st {};
    ASSERT_EQ(::lstat(sock.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode)) << "SIGKILL leaves the socket file behind";
    auto server = start_server();  // the kernel dropped the dead server's flock
    EXPECT_NE(server->err().find("removed stale socket file"), std::string::npos) << server->err();
    EXPECT_EQ(ask("two\n"), "TWO\n");
}

// Chapter 01's server keeps PATH.lock (an empty file) after a clean exit: removing it safely
// would take more code than chapter 01 should show (see 01-stream-path/REFERENCE.md). What
// matters is that the socket file is gone and the lock is free for the next server.
TEST_F(ReliabilityRace, CleanExitRemovesTheSocketAndFreesTheLock) {
    auto server = start_server();
    uds::Fd lock{::open((sock + ".lock").c_str(), O_RDONLY | O_CLOEXEC)};
    ASSERT_TRUE(lock.valid()) << "the path is claimed while serving";
    EXPECT_EQ(::flock(lock.get(), LOCK_EX | LOCK_NB), -1) << "the server holds the lock";
    server->signal(SIGTERM);
    EXPECT_EQ(server->wait_exit(), 0);
    EXPECT_NE(::access(sock.c_str(), F_OK), 0);
    EXPECT_EQ(::flock(lock.get(), LOCK_EX | LOCK_NB), 0) << "the lock is free after a clean exit";
}

TEST_F(ReliabilityRace, TwoSocketFilesOfOneProcessShareTheLock) {
    uds::Fd a{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    ASSERT_EQ(::bind(a.get(), addr.sockaddr_ptr(), addr.length()), 0);
    auto mine = std::make_unique<uds::SocketFile>(addr);
    uds::SocketFile again{addr};  // no self-deadlock, no 2 s wait
    mine.reset();                 // removes the socket file; the lock stays with `again`
    EXPECT_EQ(::access((sock + ".lock").c_str(), F_OK), 0);
}

// Chapter 04's fork model forks after the SocketFile exists: the children must not keep the
// path's lock (they would keep the path claimed after the parent died).
TEST_F(ReliabilityRace, ForkedChildDoesNotHoldThePathsLock) {
    uds::Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    ASSERT_EQ(::bind(s.get(), addr.sockaddr_ptr(), addr.length()), 0);
    uds::SocketFile claim{addr};
    const std::string lock = sock + ".lock";
    auto holds_lock = [&lock] {
        for (int fd = 0; fd < 1024; ++fd) {
            char target[4096];
            std::string link = "/proc/self/fd/" + std::to_string(fd);
            ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
            if (n > 0 && std::string(target, static_cast<std::size_t>(n)) == lock) return true;
        }
        return false;
    };
    ASSERT_TRUE(holds_lock()) << "the parent holds " << lock;
    pid_t pid = ::fork();
    ASSERT_NE(pid, -1);
    if (pid == 0) ::_exit(holds_lock() ? 1 : 0);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child kept the lock open";
    EXPECT_TRUE(holds_lock()) << "the parent lost its lock";
    EXPECT_EQ(::access(lock.c_str(), F_OK), 0) << "the child removed the parent's lock file";
}

// Many client threads at once against the iterative server: every reply right, in order.
// (Named *Thread* so make check-tsan runs it under ThreadSanitizer.)
TEST_F(ReliabilityRace, ManyThreadsOfClientsAreAllAnsweredInOrder) {
    auto server = start_server();
    constexpr int kThreads = 8, kConnections = 20;
    std::atomic<int> right{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < kConnections; ++i) {
                std::string a = "t" + std::to_string(t) + " c" + std::to_string(i);
                uds::Fd c = th::connect_stream(addr);
                th::send_all(c.get(), a + " one\n" + a + " two\n" + a + " three");
                ::shutdown(c.get(), SHUT_WR);
                std::string want = uds::upcase(a + " one\n" + a + " two\n" + a + " three\n");
                if (th::read_to_eof(c.get()) == want) ++right;
            }
        });
    for (auto& th : threads)
        th.join();
    EXPECT_EQ(right.load(), kThreads * kConnections);
}

}  // namespace
