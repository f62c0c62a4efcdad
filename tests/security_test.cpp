// Security tests: who may reach a server's socket, decided by the filesystem (Security*).
// They drive the real chapter 01 server (th::bin, so they grade a student's build too) and
// connect as an unprivileged user (th::run_as_nobody) like another user on the machine would.
// Chapter 02 (abstract names: no file permissions, SO_PEERCRED) and 05 (path confinement) add
// their own items when those chapters are in the tree; see tests/README.md.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "harness.hpp"
#include "uds.hpp"

namespace {

const std::string kChapter = "01-stream-path";

class SecurityCh01 : public ::testing::Test {
  protected:
    th::TempDir tmp;
    std::string sock = tmp.file("s.sock");
    uds::Address addr = uds::Address::path(sock);

    // The server, started with the given umask (restored at once: umask is per process).
    std::unique_ptr<th::Process> start_server(mode_t mask) {
        return start_server(mask, {"-s", sock}, {});
    }
    std::unique_ptr<th::Process> start_server(mode_t mask, const std::vector<std::string>& args,
                                              const th::Process::Options& opts) {
        mode_t old = ::umask(mask);
        auto p = std::make_unique<th::Process>(th::bin(kChapter, "server"), args, opts);
        ::umask(old);
        EXPECT_TRUE(p->wait_stderr("listening on ")) << p->err();
        return p;
    }
};

// In a child that is uid/gid nobody: connect to `a`, send one request, and return 0 if the
// upper-cased reply came back, else the errno of the step that failed (EACCES for connect).
int nobody_asks(const uds::Address& a) {
    return th::run_as_nobody([&a] {
        uds::Fd c{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
        if (::connect(c.get(), a.sockaddr_ptr(), a.length()) == -1) return errno;
        if (::send(c.get(), "hi\n", 3, MSG_NOSIGNAL) != 3) return errno;
        std::string got = th::read_line(c.get());
        return got == "HI\n" ? 0 : 255;
    });
}

mode_t mode_of(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
    return st.st_mode & 07777;
}

TEST_F(SecurityCh01, SocketFileModeIsWhatTheUmaskLeavesAtBind) {
    {
        auto server = start_server(077);
        EXPECT_EQ(mode_of(sock), 0700u);
    }
    ::unlink(sock.c_str());  // the first server was SIGKILLed by its destructor: stale file
    auto server = start_server(022);
    EXPECT_EQ(mode_of(sock), 0755u);
}

TEST_F(SecurityCh01, BindCreatesTheFileWithMode0777MinusTheUmask) {
    for (mode_t mask : {0000u, 0002u, 0022u, 0077u, 0777u}) {
        std::string path = tmp.file("m" + std::to_string(mask) + ".sock");
        auto a = uds::Address::path(path);
        uds::Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
        mode_t old = ::umask(mask);
        int rc = ::bind(s.get(), a.sockaddr_ptr(), a.length());
        ::umask(old);
        ASSERT_EQ(rc, 0) << std::strerror(errno);
        EXPECT_EQ(mode_of(path), 0777u & ~mask) << "umask " << mask;
    }
}

TEST_F(SecurityCh01, NoWritePermissionOnTheSocketFileRefusesConnect) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to an unprivileged uid";
    ASSERT_EQ(::chmod(tmp.path().c_str(), 0711), 0);  // others may search the directory
    auto server = start_server(022);
    ASSERT_EQ(::chmod(sock.c_str(), 0755), 0);  // read but no write for others
    EXPECT_EQ(nobody_asks(addr), EACCES);
    ASSERT_EQ(::chmod(sock.c_str(), 0722), 0);  // write but no read: enough to connect
    EXPECT_EQ(nobody_asks(addr), 0);
}

TEST_F(SecurityCh01, NoSearchPermissionOnTheDirectoryRefusesConnect) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to an unprivileged uid";
    auto server = start_server(0);
    ASSERT_EQ(mode_of(sock), 0777u);
    ASSERT_EQ(::chmod(tmp.path().c_str(), 0766), 0);  // read+write, but no search (x) for others
    EXPECT_EQ(nobody_asks(addr), EACCES);
    ASSERT_EQ(::chmod(tmp.path().c_str(), 0711), 0);
    EXPECT_EQ(nobody_asks(addr), 0);
}

TEST_F(SecurityCh01, PerUserDirectoryKeepsOtherUsersOutWhateverTheSocketMode) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to an unprivileged uid";
    ASSERT_EQ(::chmod(tmp.path().c_str(), 0755), 0);
    th::Process::Options env;
    env.env = {"XDG_RUNTIME_DIR=" + tmp.path()};
    auto server = start_server(0, {}, env);  // no -s: the default address; umask 0
    const std::string dir = tmp.path() + "/uds-tutorial";
    const std::string path = dir + "/01-stream.sock";
    EXPECT_EQ(mode_of(dir), 0700u);
    EXPECT_EQ(mode_of(path), 0777u);                           // wide open itself...
    EXPECT_EQ(nobody_asks(uds::Address::path(path)), EACCES);  // ...yet unreachable for others
}

TEST_F(SecurityCh01, LooserPerUserDirectoryIsTightenedTo0700) {
    const std::string dir = tmp.path() + "/uds-tutorial";
    ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
    ASSERT_EQ(::chmod(dir.c_str(), 0777), 0);
    th::Process::Options env;
    env.env = {"XDG_RUNTIME_DIR=" + tmp.path()};
    auto server = start_server(022, {}, env);
    EXPECT_EQ(mode_of(dir), 0700u);
}

TEST_F(SecurityCh01, SymlinkedPerUserDirectoryIsRefused) {
    const std::string elsewhere = tmp.file("elsewhere");
    ASSERT_EQ(::mkdir(elsewhere.c_str(), 0700), 0);
    ASSERT_EQ(::symlink(elsewhere.c_str(), (tmp.path() + "/uds-tutorial").c_str()), 0);
    th::Process::Options env;
    env.env = {"XDG_RUNTIME_DIR=" + tmp.path()};
    auto r = th::run(th::bin(kChapter, "server"), {}, {}, env);
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("symbolic link"), std::string::npos) << r.err;
    EXPECT_NE(::access((elsewhere + "/01-stream.sock").c_str(), F_OK), 0)
        << "the server followed the symlink";
}

TEST_F(SecurityCh01, SymlinkAtTheLockPathIsNotFollowed) {
    const std::string target = tmp.file("victim");
    ASSERT_EQ(::symlink(target.c_str(), (sock + ".lock").c_str()), 0);
    auto r = th::run(th::bin(kChapter, "server"), {"-s", sock});
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_NE(::access(target.c_str(), F_OK), 0) << "the server created a file through a symlink";
}

}  // namespace
