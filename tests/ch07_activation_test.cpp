// Chapter 07: the server and client as a system service would run them, driven like systemd,
// systemd-socket-activate, a second user, a container and a squatter would drive them.
//
//   Ch07Steps        one test per lesson step of server.cpp (make grade-07 lists them first)
//   Ch07ClientSteps  the client's server check (C3)
//   Ch07Activation   under the real systemd-socket-activate
//   Ch07Server       the command line, shutdown, idle and hostile clients
//   Ch07Namespaces   with unshare: a new network namespace, a new PID namespace (root)
//
// A descriptor 3 is handed to the server the way systemd does it: a shell puts our socket at 3,
// exports LISTEN_PID=$$ and LISTEN_FDS=1, and execs the server (so the pid stays the same).
// Every wait has a deadline; tests that need root (another uid, namespaces) say so and skip.
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ch07_helpers.hpp"
#include "harness.hpp"
#include "uds.hpp"

namespace {

using namespace ch07;

const bool registered_sigpipe = th::hint_on_signal(SIGPIPE, "send with MSG_NOSIGNAL (step S12b)");

// ------------------------------------------------------------------------------ Ch07Steps
class Ch07Steps : public ::testing::Test {
  protected:
    th::TempDir dir;
    void SetUp() override { ::chmod(dir.path().c_str(), 0755); }  // other uids may look inside
};

TEST_F(Ch07Steps, S1_ListenFds_ServesTheInheritedSocketAndSaysInherited) {
    const std::string path = dir.file("inherited.sock");
    uds::Fd listener = listening_socket(path);
    auto server = start_with_fd3(listener.get(), {});
    EXPECT_TRUE(server->err().find("listening on " + path + " (inherited)") != std::string::npos)
        << th::why(
               "the ready line names the inherited socket's address and says (inherited) "
               "(step S1)");
    EXPECT_EQ(ask(path, "hello, activation"), "HELLO, ACTIVATION\n")
        << th::why("the server answers on the socket it inherited as descriptor 3 (step S1)");
}

TEST_F(Ch07Steps, S1_ListenFds_ConnectionsMadeBeforeTheServerExistedAreAnswered) {
    // The kernel queues connections on a listening socket, whoever holds it: systemd holds it
    // while no server runs, so nothing is lost between "socket ready" and "server started".
    const std::string path = dir.file("early.sock");
    uds::Fd listener = listening_socket(path);
    std::vector<uds::Fd> early;
    for (int i = 0; i < 3; ++i) {
        early.push_back(th::connect_stream(uds::Address::path(path)));
        th::send_all(early.back().get(), "early " + std::to_string(i) + "\n");
    }
    auto server = start_with_fd3(listener.get(), {});
    for (int i = 0; i < 3; ++i) {  // one at a time: the server serves a client until it closes
        auto& c = early[static_cast<std::size_t>(i)];
        ASSERT_EQ(th::read_line(c.get()), "EARLY " + std::to_string(i) + "\n") << th::why(
            "connections queued before the server started are accepted and answered "
            "in turn (step S1)");
        c.reset();
    }
}

TEST_F(Ch07Steps, S1_ListenFds_MarksDescriptor3CloseOnExec) {
    const std::string path = dir.file("cloexec.sock");
    uds::Fd listener = listening_socket(path);
    auto server = start_with_fd3(listener.get(), {});
    std::string flags = fdinfo_field(server->pid(), 3, "flags:");
    ASSERT_FALSE(flags.empty()) << th::why("the server keeps descriptor 3 open (step S1)");
    EXPECT_NE(std::stoul(flags, nullptr, 8) & O_CLOEXEC, 0u) << th::why(
        "inherited descriptors are marked FD_CLOEXEC, as sd_listen_fds does, so a "
        "program the server starts does not get them (step S1)");
}

TEST_F(Ch07Steps, S1_ListenFds_IgnoresDescriptorsMeantForAnotherProcess) {
    // LISTEN_PID names another process: descriptor 3 is not ours. The server binds -s itself
    // and never accepts on descriptor 3.
    const std::string theirs = dir.file("theirs.sock"), mine = dir.file("mine.sock");
    uds::Fd listener = listening_socket(theirs);
    auto server =
        start_with_fd3(listener.get(), {"-s", mine}, "listening on", std::to_string(::getpid()));
    EXPECT_TRUE(server->err().find("(inherited)") == std::string::npos) << th::why(
        "with LISTEN_PID of another process the server must not use descriptor 3 "
        "(step S1)");
    ASSERT_EQ(ask(mine, "mine"), "MINE\n")
        << th::why("with LISTEN_PID of another process the server binds -s itself (step S1)");
    uds::Fd c = th::connect_stream(uds::Address::path(theirs));  // queued on descriptor 3
    th::send_all(c.get(), "theirs\n");
    ASSERT_EQ(ask(mine, "still mine"), "STILL MINE\n") << th::why(
        "descriptors meant for another process (LISTEN_PID) are left alone: the server binds its "
        "own -s path (step S1)");
    EXPECT_FALSE(th::readable(c.get(), 200)) << th::why(
        "a connection to a socket meant for another process is never served "
        "(step S1)");
}

TEST_F(Ch07Steps, S1_ListenFds_NoVariablesMeansItBindsItself) {
    const std::string path = dir.file("plain.sock");
    auto server = start_plain({"-s", path}, {{}, {"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"}});
    EXPECT_TRUE(server->err().find("listening on " + path) != std::string::npos)
        << th::why("without LISTEN_PID/LISTEN_FDS the server binds -s itself (step S1)");
    EXPECT_TRUE(server->err().find("(inherited)") == std::string::npos) << th::why(
        "without LISTEN_FDS nothing is inherited: it must not say '(inherited)' (step S1)");
    EXPECT_EQ(ask(path, "x"), "X\n") << th::why(
        "without LISTEN_FDS the server binds and listens on -s itself, and answers (step S1)");
}

// Refusals: the server must end with one line and status 1, and never say it is listening.
void expect_refused(th::Process& server, const std::string& what) {
    int status = server.wait_exit();
    EXPECT_EQ(status, 1) << th::why("handed " + what +
                                    " as descriptor 3, the server exits with status 1 (step S2)");
    EXPECT_TRUE(server.err().find("listening on") == std::string::npos)
        << th::why("handed " + what + ", the server never says it is listening (step S2)");
    EXPECT_TRUE(server.err().find("descriptor 3") != std::string::npos)
        << th::why("the refusal names descriptor 3 (step S2)");
    EXPECT_EQ(std::count(server.err().begin(), server.err().end(), '\n'), 1)
        << th::why("the refusal is one line (step S2)");
}

TEST_F(Ch07Steps, S2_Check_RefusesADatagramSocket) {
    uds::Fd dgram{::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
    auto server = spawn_with_fd3(dgram.get(), {});
    expect_refused(*server, "a datagram socket");
}

TEST_F(Ch07Steps, S2_Check_RefusesAConnectionInsteadOfAListener) {
    // What a .socket unit with Accept=yes passes: one connection, not the listening socket.
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    uds::Fd a{sv[0]}, b{sv[1]};
    auto server = spawn_with_fd3(a.get(), {});
    expect_refused(*server, "a connected (not listening) stream socket");
}

TEST_F(Ch07Steps, S2_Check_RefusesARegularFile) {
    const std::string path = dir.file("not-a-socket");
    std::ofstream(path) << "data\n";
    uds::Fd file{::open(path.c_str(), O_RDWR | O_CLOEXEC)};
    auto server = spawn_with_fd3(file.get(), {});
    expect_refused(*server, "a regular file");
}

TEST_F(Ch07Steps, S2_Check_RefusesAnInternetSocket) {
    uds::Fd tcp{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    ASSERT_TRUE(tcp.valid());
    ASSERT_EQ(::listen(tcp.get(), 1), 0);  // binds a free port on 0.0.0.0
    auto server = spawn_with_fd3(tcp.get(), {});
    expect_refused(*server, "a listening TCP socket");
}

TEST_F(Ch07Steps, S4_Bind_NobodyConnectsWhileTheModeIsWiderThanAsked) {
    TH_NEED_ROOT();
    const std::string strace = find_program("strace");
    if (strace.empty())
        GTEST_SKIP() << "strace is not installed (apt-get install strace): the test holds each "
                        "start-up call of the server for 100 ms with it, so a window would show";
    const Group g = some_group();
    const std::string path = dir.file("window.sock");
    // A tight loop of connect() as uid 65534, not in the group, during the whole start-up.
    ConnectLoop loop(path, th::kNobody, th::kNobody, {}, 0660);
    // umask 0: bind() alone would make the file 0777, so any step done in the wrong order
    // (listen before chmod, chmod after rename...) leaves a window the loop can use.
    auto server = th::start_server(
        launcher(),
        {"-c",
         "umask 0; calls=bind,listen,mkdir,mkdirat,chmod,fchmod,fchmodat,?fchmodat2,chown,"
         "fchown,fchownat,lchown,rename,renameat,renameat2,link,linkat; "
         "exec \"$0\" -f -qq -o /dev/null -e trace=$calls -e inject=$calls:delay_exit=100000 "
         "\"$@\"",
         strace, server_bin(), "-s", path, "--mode", "0660", "--group", g.name});
    const long before_ready = loop.attempts();
    ASSERT_TRUE(loop.wait_for_refusals(20)) << th::why("the socket file refuses uid 65534");
    ConnectLoop::Counts n = loop.stop();
    std::printf(
        "connect() as uid 65534 during start-up: %ld tries, %ld before ready: %ld ENOENT, "
        "%ld ECONNREFUSED, %ld EACCES, %ld other, %ld connected\n",
        n.attempts, before_ready, n.enoent, n.refused, n.eacces, n.other, n.connected);
    EXPECT_GT(before_ready, 0) << "the loop ran during start-up";
    EXPECT_EQ(n.connected, 0) << th::why(
        "a client outside the group connected while the socket was being set up: "
        "bind a name nobody can reach, set mode and group, rename, then listen "
        "(steps S4-S6)");
    EXPECT_GT(n.eacces, 0);
}

TEST_F(Ch07Steps, S4_Bind_NoConnectionWhileTheFileIsWiderThanAsked) {
    // The same window, seen without root: our own loop may always connect, so it looks at the
    // file's mode before each connect and counts connections made while it was wider than 0660.
    const std::string strace = find_program("strace");
    if (strace.empty())
        GTEST_SKIP() << "strace is not installed (apt-get install strace): the test holds each "
                        "start-up call of the server for 100 ms with it, so a window would show";
    const std::string path = dir.file("wide.sock");
    ConnectLoop loop(path, ::geteuid(), ::getegid(), {}, 0660);
    auto server = th::start_server(
        launcher(),
        {"-c",
         "umask 0; calls=bind,listen,mkdir,mkdirat,chmod,fchmod,fchmodat,?fchmodat2,chown,"
         "fchown,fchownat,lchown,rename,renameat,renameat2,link,linkat; "
         "exec \"$0\" -f -qq -o /dev/null -e trace=$calls -e inject=$calls:delay_exit=100000 "
         "\"$@\"",
         strace, server_bin(), "-s", path, "--mode", "0660", "--group",
         std::to_string(::getegid())});
    ASSERT_TRUE(loop.wait_for_connections(3)) << th::why("the server accepts (step S7)");
    ConnectLoop::Counts n = loop.stop();
    EXPECT_EQ(n.connected_wide, 0) << th::why(
        "a connect succeeded while the socket file's mode was wider than --mode: set mode and "
        "group before the file has its name, and listen last (steps S4-S6)");
}

TEST_F(Ch07Steps, S5_Chmod_TheFileHasExactlyTheModeAndGroupWhateverTheUmask) {
    // Our own group works without root: any user may give a file to a group it is in.
    const std::string group = std::to_string(::getegid());
    for (const char* umask : {"0", "077"}) {
        const std::string path = dir.file(std::string("mode-") + umask + ".sock");
        auto server = th::start_server(
            launcher(), {"-c", std::string("umask ") + umask + "; exec \"$0\" \"$@\"", server_bin(),
                         "-s", path, "--mode", "0604", "--group", group});
        struct stat st {};
        ASSERT_EQ(::lstat(path.c_str(), &st), 0) << th::why("the socket file is at -s (step S6)");
        EXPECT_TRUE(S_ISSOCK(st.st_mode));
        EXPECT_EQ(st.st_mode & 07777, 0604u)
            << th::why(std::string("with umask ") + umask +
                       " the socket file's mode is exactly --mode: chmod the file's path, not "
                       "the descriptor (step S5)");
        EXPECT_EQ(st.st_gid, ::getegid()) << th::why("the socket file has --group (step S5)");
        ASSERT_EQ(ask(path, "ok"), "OK\n") << th::why("the server answers on -s (step S6)");
    }
}

TEST_F(Ch07Steps, S5_Chmod_AGroupMemberIsServedAndAnOutsiderGetsEACCES) {
    TH_NEED_ROOT();
    const Group g = some_group();
    const std::string path = dir.file("group.sock");
    auto server = start_plain({"-s", path, "--mode", "0660", "--group", g.name});
    auto member = run_as(th::kNobody, th::kNobody, {g.gid},
                         [&] { return ask(path, "member") == "MEMBER\n" ? 0 : 1; });
    EXPECT_EQ(member, 0) << th::why("uid 65534 in group " + g.name +
                                    " is served: the group has rw on the socket file (step S5)");
    auto outsider =
        run_as(th::kNobody, th::kNobody, {}, [&] { return try_connect(path) == EACCES ? 0 : 1; });
    EXPECT_EQ(outsider, 0) << th::why("uid 65534 outside group " + g.name +
                                      " gets EACCES from connect (step S5)");
}

TEST_F(Ch07Steps, S6_Rename_NeverReplacesALiveServersSocket) {
    const std::string path = dir.file("live.sock");
    auto first = start_plain({"-s", path});
    struct stat before {
    }, after{};
    ASSERT_EQ(::lstat(path.c_str(), &before), 0);
    auto second = std::make_unique<th::Process>(
        server_bin(), std::vector<std::string>{"-s", path, "--mode", "0600"});
    EXPECT_EQ(second->wait_exit(), 1)
        << th::why("a second server on a live server's path exits with status 1 (step S6)");
    ASSERT_EQ(::lstat(path.c_str(), &after), 0)
        << th::why("the live server's socket file is still there (step S6)");
    EXPECT_EQ(after.st_ino, before.st_ino) << th::why(
        "the live server's socket file was replaced: rename with RENAME_NOREPLACE "
        "(step S6)");
    EXPECT_EQ(ask(path, "first"), "FIRST\n") << th::why("the first server still serves (step S6)");
    EXPECT_TRUE(no_temporary_left(dir.path()))
        << th::why("the refused server leaves no temporary directory behind (step S4)");
}

TEST_F(Ch07Steps, S6_Rename_ReplacesAStaleSocketFile) {
    const std::string path = dir.file("stale.sock");
    {
        uds::Fd dead = listening_socket(path);  // closed without unlink: a stale file
    }
    auto server = start_plain({"-s", path, "--mode", "0600"});
    EXPECT_EQ(ask(path, "fresh"), "FRESH\n")
        << th::why("a stale socket file (nobody listening) is removed and replaced (step S6)");
}

TEST_F(Ch07Steps, S6_Rename_RefusesToReplaceAFileThatIsNotASocket) {
    const std::string path = dir.file("data.sock");
    std::ofstream(path) << "precious\n";
    auto server = std::make_unique<th::Process>(
        server_bin(), std::vector<std::string>{"-s", path, "--mode", "0600"});
    EXPECT_EQ(server->wait_exit(), 1) << th::why("a regular file at the path: exit 1 (step S6)");
    std::ifstream in(path);
    std::string content;
    std::getline(in, content);
    EXPECT_EQ(content, "precious") << th::why("somebody's file at -s is left alone (step S6)");
    EXPECT_TRUE(server->err().find("not a socket") != std::string::npos)
        << th::why("the refusal says the path is not a socket (step S6)");
}

TEST_F(Ch07Steps, S6_Rename_LeavesOnlyTheSocketFileAndRemovesItOnSigterm) {
    const std::string path = dir.file("tidy.sock");
    auto server = start_plain({"-s", path, "--mode", "0600"});
    EXPECT_TRUE(no_temporary_left(dir.path()))
        << th::why("after start-up the temporary directory is gone (steps S4, S6)");
    server->signal(SIGTERM);
    EXPECT_EQ(server->wait_exit(), 0) << th::why("SIGTERM ends the server with status 0 (S13)");
    struct stat st {};
    EXPECT_NE(::lstat(path.c_str(), &st), 0)
        << th::why("the server removes the socket file it created (step S13)");
}

TEST_F(Ch07Steps, S9_PeerCred_LogsPidUidGid) {
    const std::string path = dir.file("cred.sock");
    auto server = start_plain({"-s", path});
    ASSERT_EQ(ask(path, "who"), "WHO\n") << th::why("the server answers (step S12)");
    const std::string want = "peer pid=" + std::to_string(::getpid()) +
                             " uid=" + std::to_string(::geteuid()) +
                             " gid=" + std::to_string(::getegid());
    EXPECT_TRUE(server->wait_stderr(want))
        << th::why("the log says '" + want + "' (getsockopt SO_PEERCRED, step S9)");
}

TEST_F(Ch07Steps, S10_PeerPidfd_TheLogSaysItCameFromSO_PEERPIDFD) {
    if (!kernel_has_peerpidfd())
        GTEST_SKIP() << "this kernel has no SO_PEERPIDFD (Linux 6.5 or later has it)";
    const std::string path = dir.file("pidfd.sock");
    auto server = start_plain({"-s", path});
    ASSERT_EQ(ask(path, "pidfd"), "PIDFD\n") << th::why("the server answers (step S12)");
    EXPECT_TRUE(server->wait_stderr("(pidfd from SO_PEERPIDFD)")) << th::why(
        "on Linux 6.5+ the pidfd comes from getsockopt SO_PEERPIDFD and the log ends "
        "'(pidfd from SO_PEERPIDFD)' (step S10)");
}

TEST_F(Ch07Steps, S10_PeerPidfd_WithoutItTheLogSaysSoAndStillNamesThePeer) {
    const std::string path = dir.file("nopidfd.sock");
    auto server = start_plain({"-s", path, "--no-peerpidfd"});
    ASSERT_EQ(ask(path, "fallback"), "FALLBACK\n") << th::why("the server answers (step S12)");
    EXPECT_TRUE(server->wait_stderr("(no SO_PEERPIDFD: "))
        << th::why("with --no-peerpidfd the log line says '(no SO_PEERPIDFD: ...' (step S10)");
    EXPECT_TRUE(server->err().find("exe=" + self_exe()) != std::string::npos) << th::why(
        "the fallback (pidfd_open of the pid) still names the peer's program "
        "(step S10)");
}

TEST_F(Ch07Steps, S11_Exe_NamesThePeersProgram) {
    const std::string path = dir.file("exe.sock");
    auto server = start_plain({"-s", path});
    ASSERT_EQ(ask(path, "me"), "ME\n") << th::why("the server answers (step S12)");
    EXPECT_TRUE(server->wait_stderr("exe=" + self_exe() + " "))
        << th::why("the log names the peer's executable, read through the pidfd (step S11)");
    // Another program: the client of this chapter, which exits right after its reply.
    auto client = th::run(client_bin(), {"-s", path, "again"});
    EXPECT_EQ(client.out, "AGAIN\n")
        << th::why("the client is answered after its program was named (step S11)");
    EXPECT_TRUE(server->wait_stderr("exe=" + real_path(client_bin()) + " "))
        << th::why("a second peer, another program: its own executable is logged (step S11)");
}

TEST_F(Ch07Steps, S11_Exe_AProgramNamedLikeALogLineCannotForgeOne) {
    const std::string socat = find_program("socat");
    if (socat.empty()) GTEST_SKIP() << "socat is not installed (apt-get install socat)";
    const std::string path = dir.file("forge.sock");
    auto server = start_plain({"-s", path});
    // A peer whose program file name carries a newline and a fake ready line.
    const std::string evil = dir.file("x\nserver: listening on @fake\n");
    std::filesystem::copy_file(socat, evil);
    ::chmod(evil.c_str(), 0755);
    auto r = th::run(evil, {"-", "UNIX-CONNECT:" + path}, "forged\n");
    ASSERT_EQ(r.out, "FORGED\n") << th::why("the server answers a socat peer (step S12)");
    ASSERT_TRUE(server->wait_stderr("connection closed"));
    EXPECT_TRUE(server->err().find("\nserver: listening on @fake") == std::string::npos)
        << th::why("the peer's program name is escaped in the log (\\x0a), never printed raw");
    EXPECT_TRUE(server->err().find("\\x0aserver: listening on @fake") != std::string::npos);
}

// Pid reuse, with the real server. In a new PID namespace (where we choose the next pid with
// ns_last_pid): a peer connects while the server is busy with another client, and exits; its
// pid goes to a new process (sleep); then the server accepts the peer's connection. A server
// that reads /proc/PID/exe by the bare pid names sleep; the pidfd from SO_PEERPIDFD says its
// process has exited. Runs in forked children: when pid 1 of the namespace (with its own /proc)
// ends, so does everything in it.
int pid_reuse_scenario(const std::string& server, const std::string& path, const std::string& log,
                       const std::string& impostor_program) {
    auto log_has = [&](const std::string& text, int times) {
        for (th::Deadline d; !d.expired(); ::poll(nullptr, 0, 10)) {
            std::ifstream in(log);
            std::stringstream ss;
            ss << in.rdbuf();
            const std::string all = ss.str();
            int n = 0;
            for (std::size_t at = all.find(text); at != std::string::npos;
                 at = all.find(text, at + 1))
                ++n;
            if (n >= times) return true;
        }
        return false;
    };
    const pid_t srv = ::fork();
    if (srv == 0) {
        int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || null < 0 || ::dup2(fd, 2) != 2 || ::dup2(null, 0) != 0) ::_exit(127);
        ::execl(server.c_str(), server.c_str(), "-s", path.c_str(), nullptr);
        ::_exit(127);
    }
    auto end = [&](int rc) {
        ::kill(srv, SIGTERM);
        int st = 0;
        ::waitpid(srv, &st, 0);
        return rc;
    };
    if (!log_has("listening on", 1)) return end(20);
    const auto addr = uds::Address::path(path);
    uds::Fd busy{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    if (::connect(busy.get(), addr.sockaddr_ptr(), addr.length()) != 0) return end(21);
    if (!log_has("accepted a connection", 1)) return end(22);  // now busy with that client
    const pid_t peer = ::fork();
    if (peer == 0) {
        int c = ::socket(AF_UNIX, SOCK_STREAM, 0);
        ::_exit(::connect(c, addr.sockaddr_ptr(), addr.length()) == 0 ? 0 : 1);
    }
    int st = 0;
    ::waitpid(peer, &st, 0);  // connected (queued) and gone: its pid is free
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return end(23);
    FILE* f = std::fopen("/proc/sys/kernel/ns_last_pid", "w");
    if (f == nullptr) return end(12);
    std::fprintf(f, "%d", peer - 1);
    std::fclose(f);
    int gate[2];  // closed by exec: the impostor runs its own program once we read end of file
    if (::pipe2(gate, O_CLOEXEC) != 0) return end(24);
    const pid_t impostor = ::fork();
    if (impostor == 0) {
        ::execl(impostor_program.c_str(), impostor_program.c_str(), "30", nullptr);
        ::_exit(127);
    }
    ::close(gate[1]);
    char c;
    while (::read(gate[0], &c, 1) == -1 && errno == EINTR) {
    }
    ::close(gate[0]);
    const bool reused = impostor == peer;
    busy.reset();  // the server closes that client and accepts the dead peer's connection
    const bool logged = log_has("accepted a connection", 2) && log_has("connection closed", 2);
    ::kill(impostor, SIGKILL);
    ::waitpid(impostor, &st, 0);
    return end(!reused ? 13 : !logged ? 25 : 0);
}

TEST_F(Ch07Steps, S11_Exe_APeerWhosePidIsReusedIsNeverNamedAfterTheNewProcess) {
    TH_NEED_ROOT();
    if (!kernel_has_peerpidfd())
        GTEST_SKIP() << "this kernel has no SO_PEERPIDFD (Linux 6.5 or later has it)";
    const std::string impostor = real_path(find_program("sleep"));
    ASSERT_FALSE(impostor.empty()) << "(test setup) sleep is not installed";
    const std::string path = dir.file("reuse.sock"), log = dir.file("server.log");
    const std::string server = server_bin();
    const pid_t test = ::getpid();
    const pid_t outer = ::fork();
    if (outer == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (const char* cg = std::getenv("UDS_GRADE_CGROUP"); cg != nullptr && *cg != '\0')
            std::ofstream(std::string(cg) + "/cgroup.procs") << ::getpid();  // graded: join
        if (::getppid() != test || ::unshare(CLONE_NEWPID | CLONE_NEWNS) != 0) ::_exit(10);
        const pid_t init = ::fork();  // pid 1 of the new namespace
        if (init == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            // Its own /proc (as unshare --mount-proc): the server's /proc/PID is this namespace's.
            if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
                ::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
                ::_exit(10);
            ::_exit(pid_reuse_scenario(server, path, log, impostor));
        }
        int st = 0;
        ::waitpid(init, &st, 0);
        ::_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 15);
    }
    int st = 0;
    while (::waitpid(outer, &st, 0) == -1 && errno == EINTR) {
    }
    const int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 15;
    if (rc == 10 || rc == 12) GTEST_SKIP() << "no new PID namespace or ns_last_pid here";
    std::ifstream in(log);
    std::string line, second;
    for (int n = 0; std::getline(in, line);)
        if (line.find("accepted a connection") != std::string::npos && ++n == 2) second = line;
    std::string first;
    std::getline(std::ifstream(log) >> std::ws, first);
    const std::string why =
        rc == 20   ? "the server never said 'listening on': " + first.substr(0, 120)
        : rc == 21 ? "the server's socket refused a client (steps S4-S7)"
        : rc == 22 ? "the server never logged 'accepted a connection' (steps S8, S9)"
        : rc == 25 ? "the server never logged the second connection (steps S8, S9)"
                   : "(test setup) a server, a dead peer and its pid reused";
    ASSERT_EQ(rc, 0) << th::why(why) << " (" << rc << ")\n" << second;
    EXPECT_TRUE(second.find("exe=" + impostor) == std::string::npos)
        << th::why(
               "the peer exited and its pid now names another process (sleep): the log must not "
               "name "
               "that one. Read the exe through the pidfd: its fdinfo pid, /proc/PID, then poll the "
               "pidfd (step S11)")
        << "\n"
        << second;
    EXPECT_TRUE(second.find("exe=?") != std::string::npos)
        << th::why("the pidfd says the peer has exited: exe=? (step S11)") << "\n"
        << second;
}

// ------------------------------------------------------------------------ Ch07ClientSteps
TEST(Ch07ClientSteps, C3_ServerCheck_RefusesASquatterBeforeSendingAByte) {
    TH_NEED_ROOT();
    const std::string name = "@" + th::unique_abstract_name("squat");
    Squatter squatter(name, th::kNobody);
    auto r = th::run(client_bin(), {"-s", name, "my secret"});
    EXPECT_EQ(r.status, 1) << th::why("a server running as uid 65534 is refused: exit 1 (step C3)");
    EXPECT_EQ(r.out, "") << th::why("the client prints no reply from a squatter (step C3)");
    EXPECT_TRUE(r.err.find("65534") != std::string::npos)
        << th::why("the refusal says which uid the server runs as (step C3)");
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1)
        << th::why("the refusal is one line (step C3)");
    EXPECT_EQ(squatter.received(), "")
        << th::why("nothing is sent before the server is checked (step C3)");
}

TEST(Ch07ClientSteps, C3_ServerCheck_RefusesAServerOfAnotherUidThanExpected) {
    // Without root: a listener of our own uid, but the client expects another one.
    const std::string name = "@" + th::unique_abstract_name("expect");
    const auto addr = uds::Address::parse(name);
    uds::Fd l{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    ASSERT_EQ(::bind(l.get(), addr.sockaddr_ptr(), addr.length()), 0);
    ASSERT_EQ(::listen(l.get(), 4), 0);
    th::Process client(client_bin(),
                       {"-s", name, "--server-uid", std::to_string(::getuid() + 1), "my secret"});
    ASSERT_TRUE(th::readable(l.get(), th::Deadline{}.remaining_ms()))
        << th::why("the client connects (step C2)");
    uds::Fd conn{::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC)};
    ASSERT_TRUE(th::readable(conn.get(), th::Deadline{}.remaining_ms()))
        << th::why("the client closes the connection without sending a byte (step C3)");
    char buf[64];
    ASSERT_EQ(::recv(conn.get(), buf, sizeof buf, MSG_DONTWAIT), 0) << th::why(
        "the client closes without sending a byte to a server of an unexpected uid "
        "(step C3)");
    EXPECT_EQ(client.wait_exit(), 1) << th::why("and exits with status 1 (step C3)");
    EXPECT_TRUE(client.err().find("uid " + std::to_string(::getuid())) != std::string::npos)
        << th::why("its one line names the uid the server runs as (step C3)");
}

TEST(Ch07ClientSteps, C3_ServerCheck_ServerUidNamesTheOneToTrust) {
    TH_NEED_ROOT();
    const std::string name = "@" + th::unique_abstract_name("trusted");
    Squatter squatter(name, th::kNobody);
    auto r = th::run(client_bin(), {"-s", name, "--server-uid", "65534", "hi"});
    EXPECT_EQ(r.status, 0) << th::why(
        "--server-uid 65534 accepts a server running as 65534 "
        "(step C3)");
    EXPECT_EQ(r.out, "SQUATTED\n")
        << th::why("--server-uid UID trusts exactly that uid: the client talks to it (step C3)");
}

TEST(Ch07ClientSteps, C3_ServerCheck_AcceptsAServerOfItsOwnUid) {
    th::TempDir dir;
    const std::string path = dir.file("own.sock");
    auto server = start_plain({"-s", path});
    auto r = th::run(client_bin(), {"-s", path, "mine", "你好 abc"});
    EXPECT_EQ(r.status, 0) << th::why("a server of the client's own uid is accepted (step C3)");
    EXPECT_EQ(r.out, "MINE\n你好 ABC\n")
        << th::why("a server of the client's own uid is trusted and answers (step C3)");
}

// ------------------------------------------------------------------------- Ch07Activation
class Ch07Activation : public ::testing::Test {
  protected:
    th::TempDir dir;
    std::string tool = find_program("systemd-socket-activate");
    void SetUp() override {
        if (tool.empty())
            GTEST_SKIP() << "systemd-socket-activate is not installed (apt-get install systemd)";
    }
    // systemd-socket-activate -l ADDR SERVER ARGS: it binds and listens, says "Listening on",
    // and execs the server (same pid) when the first connection arrives.
    std::unique_ptr<th::Process> activate(const std::string& addr,
                                          std::vector<std::string> args = {}) {
        args.insert(args.begin(), {"-l", addr, server_bin()});
        return th::start_server(tool, args, "Listening on");
    }
};

TEST_F(Ch07Activation, FirstConnectionBeforeTheServerExistsIsAnswered) {
    const std::string path = dir.file("act.sock");
    auto sa = activate(path);
    EXPECT_EQ(real_path("/proc/" + std::to_string(sa->pid()) + "/exe"), real_path(tool))
        << "before the first connection only systemd-socket-activate runs";
    ASSERT_EQ(ask(path, "wake up"), "WAKE UP\n")
        << th::why("the connection that started the server is answered (step S1)");
    EXPECT_TRUE(sa->wait_stderr("listening on " + path + " (inherited)"))
        << th::why("the server says 'listening on " + path + " (inherited)' (step S1)");
    EXPECT_EQ(real_path("/proc/" + std::to_string(sa->pid()) + "/exe"), real_path(server_bin()));
    sa->signal(SIGTERM);
    EXPECT_EQ(sa->wait_exit(), 0) << th::why("SIGTERM: exit 0");
    struct stat st {};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << th::why(
        "the socket file survives the server: systemd made it, not the server "
        "(step S13)");
}

TEST_F(Ch07Activation, AbstractNameIsInheritedToo) {
    const std::string name = "@" + th::unique_abstract_name("act");
    auto sa = activate(name);
    EXPECT_EQ(ask(name, "abstract"), "ABSTRACT\n") << th::why("served on @name (step S1)");
    EXPECT_TRUE(sa->wait_stderr("listening on " + name + " (inherited)"))
        << th::why("the ready line shows the inherited @name (step S1)");
}

TEST_F(Ch07Activation, EveryQueuedConnectionIsAnswered) {
    const std::string path = dir.file("queue.sock");
    auto sa = activate(path);
    std::vector<uds::Fd> clients;
    for (int i = 0; i < 5; ++i) {
        clients.push_back(th::connect_stream(uds::Address::path(path)));
        th::send_all(clients.back().get(), "client " + std::to_string(i) + "\n");
    }
    for (int i = 0; i < 5; ++i) {
        auto& c = clients[static_cast<std::size_t>(i)];
        ASSERT_EQ(th::read_line(c.get()), "CLIENT " + std::to_string(i) + "\n") << th::why(
            "connections made while the server was starting wait in the queue and "
            "are answered (step S1)");
        c.reset();
    }
}

TEST_F(Ch07Activation, FdNameIsPassedAndTheServerSaysSo) {
    const std::string path = dir.file("named.sock");
    auto sa =
        th::start_server(tool, {"-l", path, "--fdname=uds-tutorial", server_bin()}, "Listening on");
    ASSERT_EQ(ask(path, "named"), "NAMED\n") << th::why("the server answers (step S1)");
    EXPECT_TRUE(sa->wait_stderr("LISTEN_FDNAMES=uds-tutorial"))
        << th::why("the server logs the name systemd gave the socket (step S1)");
}

// ----------------------------------------------------------------------------- Ch07Server
TEST(Ch07Server, UsageErrorsExit2) {
    const std::vector<std::vector<std::string>> bad = {
        {"-s", ""},
        {"--mode", "999"},
        {"--mode", "rw"},
        {"--mode", ""},
        {"--group", ""},
        {"--group", "no-such-group-uds07"},
        {"-s", "@name", "--mode", "0600"},
        {"--idle-timeout", "0"},
        {"extra"},
    };
    for (const auto& args : bad) {
        auto r = th::run(server_bin(), args);
        std::string joined;
        for (const auto& a : args)
            joined += " '" + a + "'";
        ASSERT_EQ(r.status, 2) << th::why("server" + joined + " is a usage error: exit 2");
        EXPECT_TRUE(r.err.find("listening on") == std::string::npos);
    }
    EXPECT_EQ(th::run(server_bin(), {"--help"}).status, 0);
    EXPECT_EQ(th::run(client_bin(), {"-s", ""}).status, 2);
    EXPECT_EQ(th::run(client_bin(), {"--server-uid", "x"}).status, 2);
}

TEST(Ch07Server, ListenFdsThatIsNotANumberIsARuntimeError) {
    th::TempDir dir;
    uds::Fd listener = listening_socket(dir.file("n.sock"));
    auto server = spawn_with_fd3(listener.get(), {}, "", "LISTEN_FDS=x");
    EXPECT_EQ(server->wait_exit(), 1) << th::why("LISTEN_FDS=x: one line, exit 1 (step S1)");
    EXPECT_TRUE(server->err().find("listening on") == std::string::npos);
    EXPECT_TRUE(server->err().find("LISTEN_FDS") != std::string::npos)
        << th::why("the line names LISTEN_FDS (step S1)");
}

// Catches: opening descriptors of our own (the shutdown pipe) before the inherited ones are
// claimed. With LISTEN_FDS=2 and only descriptor 3 passed, the server's pipe took number 4, was
// "inherited", marked and closed: it served on, with its own shutdown pipe closed under it.
TEST(Ch07Server, ListenFdsCountingADescriptorNobodyPassedIsRefused) {
    th::TempDir dir;
    uds::Fd listener = listening_socket(dir.file("two.sock"));
    auto server = spawn_with_fd3(listener.get(), {}, "", "LISTEN_FDS=2");
    EXPECT_EQ(server->wait_exit(th::Deadline{std::min(th::patience(), th::milliseconds{3000})}), 1)
        << th::why("LISTEN_FDS=2 but nothing on descriptor 4: one line, exit 1 (step S1)");
    EXPECT_TRUE(server->err().find("listening on") == std::string::npos)
        << th::why("a count that does not match what was passed is never served (step S1)");
    EXPECT_TRUE(server->err().find("descriptor 4") != std::string::npos)
        << th::why("the line names descriptor 4, the one that is missing (step S1)");
}

// The same mistake, seen with nothing on descriptor 3: the pipe took number 3 and the server
// called its own pipe "not a socket (Socket operation on non-socket)".
TEST(Ch07Server, ListenFdsWithNothingOnDescriptor3SaysItIsNotOpen) {
    th::Process::Options o;
    o.unset_env = {"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"};
    th::Process server(
        launcher(),
        {"-c", "exec 3<&-; export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$0\" \"$@\"", server_bin()},
        o);
    EXPECT_EQ(server.wait_exit(th::Deadline{std::min(th::patience(), th::milliseconds{3000})}), 1)
        << th::why("LISTEN_FDS=1 with descriptor 3 closed: one line, exit 1 (step S1)");
    EXPECT_TRUE(server.err().find("listening on") == std::string::npos);
    EXPECT_EQ(std::count(server.err().begin(), server.err().end(), '\n'), 1)
        << th::why("one line") << "\n"
        << server.err();
    EXPECT_TRUE(server.err().find("descriptor 3") != std::string::npos &&
                (server.err().find("not open") != std::string::npos ||
                 server.err().find("Bad file descriptor") != std::string::npos))
        << th::why(
               "the line says descriptor 3 is not open; a server that opened its own "
               "descriptors first reports on one of them instead (step S1)")
        << "\n"
        << server.err();
}

TEST(Ch07Server, AnIdleClientIsClosedAndTheNextOneIsServed) {
    th::TempDir dir;
    const std::string path = dir.file("idle.sock");
    auto server = start_plain({"-s", path, "--idle-timeout", "1"});
    uds::Fd idle = th::connect_stream(uds::Address::path(path));  // says nothing
    int err = 0;
    th::read_to_eof(idle.get(), th::Deadline{}, &err);  // the server closes it after 1 s
    EXPECT_TRUE(server->wait_stderr("idle for 1 s"))
        << th::why("a client silent for --idle-timeout seconds is closed (step S12)");
    EXPECT_EQ(ask(path, "next"), "NEXT\n") << th::why("then the next client is served (S12)");
}

TEST(Ch07Server, AClientThatNeverReadsIsDropped) {
    th::TempDir dir;
    const std::string path = dir.file("noread.sock");
    auto server = start_plain({"-s", path, "--idle-timeout", "1"});
    uds::Fd greedy = th::connect_stream(uds::Address::path(path));
    ::fcntl(greedy.get(), F_SETFL, O_NONBLOCK);
    // Requests until our send buffer is full too: the server's replies fill its buffer first.
    const std::string lines(4000, 'a');
    std::string burst;
    for (int i = 0; i < 64; ++i)
        burst += lines + "\n";
    th::Deadline d;
    while (!d.expired() && ::send(greedy.get(), burst.data(), burst.size(), MSG_NOSIGNAL) > 0) {
    }
    EXPECT_TRUE(server->wait_stderr("has not read its replies"))
        << th::why("a client that never reads is dropped after --idle-timeout (step S12b)");
    EXPECT_EQ(ask(path, "next"), "NEXT\n")
        << th::why("after dropping a client that never reads, the server answers the next one");
}

TEST(Ch07Server, KeepsServingAndCleansUpWhenNobodyReadsItsLog) {
    // server 2>&1 | head -1: the log's reader goes away; a log write must not kill the server.
    th::TempDir dir;
    const std::string path = dir.file("nolog.sock");
    auto server = start_plain({"-s", path});
    server->close_stderr();
    ASSERT_EQ(ask(path, "still there"), "STILL THERE\n")
        << th::why("a server whose log pipe is closed still serves (SIGPIPE is not fatal)");
    server->signal(SIGTERM);
    EXPECT_EQ(server->wait_exit(), 0) << th::why("and exits 0 on SIGTERM");
    struct stat st {};
    EXPECT_NE(::lstat(path.c_str(), &st), 0) << th::why("after removing its socket file");
}

TEST(Ch07Server, ForcedFallbackStillServesAndTheDefaultLogsTheExecutable) {
    // The default path and the fallback name the same process: the one that connected. Here
    // the fallback is forced through the environment (UDS_NO_PEERPIDFD=1), as a unit's
    // Environment= would.
    th::TempDir dir;
    const std::string path = dir.file("both.sock");
    auto server = start_plain({"-s", path}, {{"UDS_NO_PEERPIDFD=1"}, {}});
    ASSERT_EQ(ask(path, "a"), "A\n") << th::why("the server answers (step S12)");
    EXPECT_TRUE(server->wait_stderr("peer pid=" + std::to_string(::getpid())))
        << th::why("the log names the peer's pid (steps S9, S10)");
    EXPECT_TRUE(server->wait_stderr("(no SO_PEERPIDFD: "))
        << th::why("UDS_NO_PEERPIDFD=1 forces the fallback, and the log says so");
}

// ------------------------------------------------------------------------- Ch07Namespaces
TEST(Ch07Namespaces, NewNetworkNamespace_AbstractNameIsGone_PathStillWorks) {
    TH_NEED_ROOT();
    const std::string unshare = find_program("unshare");
    if (unshare.empty()) GTEST_SKIP() << "unshare is not installed (apt-get install util-linux)";
    th::TempDir dir;
    ::chmod(dir.path().c_str(), 0755);
    const std::string name = "@" + th::unique_abstract_name("netns");
    const std::string path = dir.file("netns.sock");
    auto by_name = start_plain({"-s", name});
    auto by_path = start_plain({"-s", path});
    auto here = th::run(client_bin(), {"-s", name, "here"});
    ASSERT_EQ(here.out, "HERE\n") << th::why("in our own network namespace the name is there");
    auto there = th::run(unshare, {"-n", client_bin(), "-s", name, "there"});
    EXPECT_EQ(there.status, 1) << th::why(
        "in a new network namespace the abstract name does not exist: exit 1");
    EXPECT_TRUE(there.err.find("Connection refused") != std::string::npos)
        << th::why("connect to an abstract name of another network namespace: ECONNREFUSED");
    auto path_there = th::run(unshare, {"-n", client_bin(), "-s", path, "through the file"});
    EXPECT_EQ(path_there.out, "THROUGH THE FILE\n") << th::why(
        "a path socket is found through the file system, whatever the network "
        "namespace");
}

// What the lesson says of containers and docker.sock: a path socket's file, bind-mounted into
// another mount and network namespace, reaches the server there under another name.
TEST(Ch07Namespaces, ABindMountedSocketFileReachesTheServerFromANewNetworkNamespace) {
    TH_NEED_ROOT();
    const std::string unshare = find_program("unshare");
    if (unshare.empty()) GTEST_SKIP() << "unshare is not installed (apt-get install util-linux)";
    th::TempDir dir;
    ::chmod(dir.path().c_str(), 0755);
    const std::string host = dir.file("host.sock"), inside = dir.file("container.sock");
    auto server = start_plain({"-s", host});
    std::ofstream(inside).flush();  // the mount point: an empty file
    auto r = th::run(unshare, {"--mount", "--net", "--propagation", "private", "/bin/sh", "-c",
                               "mount --bind \"$0\" \"$1\" && exec \"$2\" -s \"$1\" \"$3\"", host,
                               inside, client_bin(), "through a bind mount"});
    EXPECT_EQ(r.out, "THROUGH A BIND MOUNT\n")
        << th::why(
               "a socket file bind-mounted into a new mount and network namespace still reaches "
               "the server: how a container reaches docker.sock")
        << "\n"
        << r.err;
    EXPECT_TRUE(server->wait_stderr("accepted a connection"));
}

TEST(Ch07Namespaces, ServerInANewPidNamespaceSeesAnOutsidePeerAsPid0) {
    TH_NEED_ROOT();
    const std::string unshare = find_program("unshare");
    if (unshare.empty()) GTEST_SKIP() << "unshare is not installed (apt-get install util-linux)";
    th::TempDir dir;
    const std::string path = dir.file("pidns.sock");
    auto server =
        th::start_server(unshare, {"--pid", "--fork", "--kill-child", server_bin(), "-s", path});
    ASSERT_EQ(ask(path, "from outside"), "FROM OUTSIDE\n") << th::why("the server answers");
    EXPECT_TRUE(server->wait_stderr("peer pid=0 uid=" + std::to_string(::geteuid()))) << th::why(
        "SO_PEERCRED translates the pid into the server's PID namespace; a peer "
        "outside it has no pid there: 0 (step S9)");
}

}  // namespace
