// Chapter 03: hostile peers against the real server. Each test drives one attack with a real peer
// (this process, a forked child as uid 65534, or Python) and checks the server neither becomes a
// weapon nor lets one client take the service from the others.
//   Ch03Hostile   reflection (symlinked return addresses, loops, other users' sockets), forged
//                 log lines, a log reader that goes away, log floods
// The figures (replies per datagram, CPU, log lines) are printed with RecordProperty, so a run
// with --gtest_output=json:FILE keeps them.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ch03_peers.hpp"
#include "harness.hpp"
#include "uds.hpp"

namespace {

using namespace ch03;

// How busy a server is over a short quiet window in which nobody sends it anything.
struct Activity {
    std::size_t log_lines = 0;
    double cpu_seconds = 0;
};
Activity quiet_window(th::Process& server, int ms) {
    server.drain();
    const std::size_t lines = count(server.err(), "\n");
    const double cpu = cpu_seconds(server.pid());
    th::readable(-1, ms);  // poll() on nothing: a bounded wait for the window itself
    server.drain();
    return {count(server.err(), "\n") - lines, cpu_seconds(server.pid()) - cpu};
}

// A sender bound to `p` whose socket file is then swapped for a symlink to `target`.
uds::Fd redirected_sender(const uds::Address& p, const std::string& target) {
    uds::Fd fd = bound(p);
    uds::check(::unlink(p.name().c_str()), "unlink");
    uds::check(::symlink(target.c_str(), p.name().c_str()), "symlink");
    return fd;
}

class Ch03Hostile : public ::testing::Test {
  protected:
    th::TempDir dir;
    uds::Address addr = uds::Address::path(dir.file("s.sock"));
};

TEST_F(Ch03Hostile, ASymlinkToTheServersOwnSocketStartsNoLoop) {
    auto server = start_server(addr);
    {
        uds::Fd attacker = redirected_sender(uds::Address::path(dir.file("p.sock")), addr.str());
        ASSERT_EQ(send_to(attacker.get(), "loop", addr), "")
            << th::why("the server's queue takes a datagram");
    }  // the attacker has left
    ASSERT_TRUE(server->wait_stderr("4 bytes from " + dir.file("p.sock")))
        << th::why("the datagram is received and logged (step S4)");
    const Activity after = quiet_window(*server, 300);
    const std::size_t replies = count(server->err(), "replied");
    RecordProperty("replies_to_one_datagram", static_cast<int>(replies));
    RecordProperty("log_lines_per_second_after", static_cast<int>(after.log_lines * 1000 / 300));
    RecordProperty("cpu_percent_after", static_cast<int>(after.cpu_seconds * 100 / 0.3));
    EXPECT_EQ(replies, 0u) << th::why(
        "one datagram whose return path is a symlink to the server "
        "itself gets no reply at all (step S6)");
    EXPECT_EQ(after.log_lines, 0u)
        << th::why("once the attacker has left, the server is quiet: no loop (step S6)");
    EXPECT_LT(after.cpu_seconds, 0.1) << th::why("no loop burns the CPU (step S6)");
}

TEST_F(Ch03Hostile, TwelveLoopDatagramsDoNotStarveOtherClients) {
    auto server = start_server(addr);
    std::vector<uds::Fd> attackers;
    for (int i = 0; i < 12; ++i) {
        uds::Address p = uds::Address::path(dir.file("p" + std::to_string(i) + ".sock"));
        attackers.push_back(redirected_sender(p, addr.str()));
        ASSERT_EQ(send_to(attackers.back().get(), "loop", addr), "")
            << th::why("the server's queue takes 12 datagrams (a loop would keep it full)");
    }
    uds::Fd peer = autobound();
    int answered = 0;
    th::Deadline total;  // a server busy answering itself would miss most of them
    for (int i = 0; i < 20 && !total.expired(); ++i) {
        if (send_to(peer.get(), "hello", addr).empty() &&
            recv_from(peer.get(), nullptr, std::min(1000, total.remaining_ms())) == "HELLO")
            ++answered;
    }
    RecordProperty("normal_requests_answered_of_20", answered);
    EXPECT_EQ(answered, 20) << th::why(
        "12 loop datagrams must not keep the server's queue full: "
        "every normal request is answered (step S6)");
}

TEST_F(Ch03Hostile, TwoServersCannotBeMadeToAnswerEachOther) {
    auto a = start_server(addr);
    uds::Address b_addr = uds::Address::path(dir.file("b.sock"));
    auto b = start_server(b_addr);
    {
        uds::Fd attacker = redirected_sender(uds::Address::path(dir.file("p.sock")), addr.str());
        ASSERT_EQ(send_to(attacker.get(), "ping", b_addr), "")
            << th::why("the server's queue takes a datagram");
    }
    ASSERT_TRUE(b->wait_stderr("4 bytes from " + dir.file("p.sock")))
        << th::why("server B receives and logs the datagram (step S4)");
    const Activity quiet_a = quiet_window(*a, 300);
    b->drain();
    RecordProperty("log_lines_in_a_after", static_cast<int>(quiet_a.log_lines));
    EXPECT_EQ(count(a->err(), "bytes from " + b_addr.str()), 0u)
        << th::why("server B never sends server A anything on a stranger's behalf (step S6)");
    EXPECT_EQ(count(b->err(), "replied"), 0u)
        << th::why("server B does not reply through a symlink (step S6)");
}

TEST_F(Ch03Hostile, ARenamedOrHardLinkedSocketFileIsNotTheSender) {
    auto server = start_server(addr);
    // Another socket of the same user, given a second name: the sender's path now leads there.
    uds::Address other_addr = uds::Address::path(dir.file("other.sock"));
    uds::Fd other = bound(other_addr);
    uds::Address h = uds::Address::path(dir.file("h.sock"));
    uds::Fd hard = bound(h);
    uds::check(::unlink(h.name().c_str()), "test setup: unlink");
    uds::check(::link(other_addr.name().c_str(), h.name().c_str()), "test setup: link");
    ASSERT_EQ(send_to(hard.get(), "hard link", addr), "")
        << th::why("the server's queue takes a datagram");
    ASSERT_TRUE(server->wait_stderr("9 bytes from " + h.str()))
        << th::why("the datagram is received and logged (step S4)");
    EXPECT_EQ(recv_from(other.get(), nullptr, 0), "<timeout>") << th::why(
        "a socket file with a second name (a hard link) is not the sender's: no reply "
        "(step S6)");
    // The server's own socket file, renamed to the sender's path while the datagram waits.
    uds::Address r = uds::Address::path(dir.file("r.sock"));
    uds::Fd renamer = bound(r);
    uds::check(::kill(server->pid(), SIGSTOP), "test setup: kill");
    siginfo_t info{};
    uds::check(::waitid(P_PID, static_cast<id_t>(server->pid()), &info, WSTOPPED), "waitid");
    ASSERT_EQ(send_to(renamer.get(), "renamed", addr), "")
        << th::why("the server's queue takes a datagram");
    uds::check(::rename(addr.name().c_str(), r.name().c_str()), "test setup: rename");
    uds::check(::kill(server->pid(), SIGCONT), "test setup: kill");
    ASSERT_TRUE(server->wait_stderr("7 bytes from " + r.str()))
        << th::why("the datagram is received and logged (step S4)");
    const Activity after = quiet_window(*server, 300);
    EXPECT_EQ(count(server->err(), "replied"), 0u)
        << th::why("a path that now leads to the server's own socket gets no reply (step S6)");
    EXPECT_EQ(after.log_lines, 0u) << th::why("no loop (step S6)");
}

TEST_F(Ch03Hostile, ARelativePathGetsNoReply) {
    auto server = start_server(addr);
    // A child that binds "rel.sock" in its own directory: the server would resolve that name in
    // *its* working directory.
    pid_t pid = ::fork();
    uds::check(pid, "fork");
    if (pid == 0) {
        if (::chdir(dir.path().c_str()) != 0) ::_exit(2);
        uds::Fd fd = make_socket();
        uds::Address rel = uds::Address::path("rel.sock");
        if (::bind(fd.get(), rel.sockaddr_ptr(), rel.length()) != 0) ::_exit(3);
        ::_exit(send_to(fd.get(), "relative", addr).empty() ? 0 : 4);
    }
    int st = 0;
    uds::check(::waitpid(pid, &st, 0), "waitpid");
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0)
        << th::why("a sender bound to a relative path can send to the server");
    EXPECT_TRUE(server->wait_stderr("8 bytes from rel.sock (uid " + std::to_string(::getuid()) +
                                    "): no reply"))
        << th::why(
               "a relative path names another file from the server's directory: no reply "
               "(step S6)");
}

TEST_F(Ch03Hostile, OtherUsersCannotRedirectRepliesThroughAnAbstractServer) {
    TH_NEED_ROOT();
    // An abstract name has no permissions: any user can send to it.
    uds::Address abstract = uds::Address::abstract(th::unique_abstract_name("refl"));
    auto server = start_server(abstract);
    const std::string secret = dir.file("secret");
    uds::check(::mkdir(secret.c_str(), 0700), "test setup: mkdir");
    uds::Address target = uds::Address::path(secret + "/t.sock");
    uds::Fd victim = bound(target);
    uds::check(::chmod(target.name().c_str(), 0600), "test setup: chmod");
    uds::check(::chmod(dir.path().c_str(), 0755), "test setup: chmod");
    const std::string att = dir.file("att");
    uds::check(::mkdir(att.c_str(), 0755), "test setup: mkdir");
    uds::check(::chown(att.c_str(), th::kNobody, th::kNobody), "test setup: chown");
    int rc = th::run_as_nobody([&] {
        uds::Fd a = redirected_sender(uds::Address::path(att + "/p.sock"), target.str());
        return send_to(a.get(), "written by nobody", abstract).empty() ? 0 : 1;
    });
    ASSERT_EQ(rc, 0) << th::why("uid 65534 can send to an abstract name (it has no permissions)");
    ASSERT_TRUE(server->wait_stderr("17 bytes from " + att + "/p.sock (uid 65534): no reply"))
        << th::why("the server refuses to reply through uid 65534's symlink (steps S5, S6)");
    EXPECT_EQ(recv_from(victim.get(), nullptr, 0), "<timeout>")
        << th::why("nothing reaches root's private socket (steps S5, S6)");
}

TEST_F(Ch03Hostile, ASendersPathCannotForgeLogLines) {
    auto server = start_server(addr);
    // A path whose directories spell a log line: ".../x\nserver: bound to /tmp/fake.sock\n..."
    const std::string forged = dir.file("x\nserver: bound to ");
    uds::check(::mkdir(forged.c_str(), 0700), "test setup: mkdir");
    uds::check(::mkdir((forged + "/tmp").c_str(), 0700), "test setup: mkdir");
    const std::string evil = forged +
                             "/tmp/fake.sock\n\x1b[2J\xc2\x9b"
                             "31m";
    uds::Fd peer = bound(uds::Address::path(evil));
    ASSERT_EQ(ask(peer.get(), "forged?", addr), "FORGED?")
        << th::why("a sender whose path holds control bytes is served like any other");
    uds::Fd other = autobound();
    ASSERT_EQ(ask(other.get(), "sync", addr), "SYNC") << th::why("the server goes on serving");
    ASSERT_TRUE(server->wait_stderr("4 bytes from " + uds::local_address(other.get()).str()))
        << th::why("each datagram is logged");
    EXPECT_EQ(server->err().find("\nserver: bound to /tmp/fake.sock"), std::string::npos)
        << th::why("a newline in a sender's path is logged as \\x0a, never as a new line");
    EXPECT_EQ(server->err().find('\x1b'), std::string::npos)
        << th::why("terminal escape codes in a sender's path are logged escaped (\\x1b)");
    EXPECT_NE(server->err().find("x\\x0aserver: bound to /tmp/fake.sock\\x0a\\x1b[2J\\xc2\\x9b31m"),
              std::string::npos)
        << th::why("the path is still there to read, escaped");
}

TEST_F(Ch03Hostile, TheServerSurvivesItsLogReaderGoingAway) {
    auto server = start_server(addr);
    server->close_stderr();  // like `server 2>&1 | head -1` once head has its line
    uds::Fd peer = autobound();
    for (int i = 0; i < 3; ++i)
        ASSERT_EQ(ask(peer.get(), "anyone reading?", addr), "ANYONE READING?")
            << th::why("with nobody reading its log, the server still serves (no SIGPIPE)");
    server->signal(SIGTERM);
    EXPECT_EQ(server->wait_exit(), 0) << th::why("and still stops cleanly on SIGTERM, status 0")
                                      << " (it " << server->ending() << ")";
    EXPECT_FALSE(is_socket_file(addr.name())) << th::why("and removes its socket file");
}

TEST_F(Ch03Hostile, AFloodOfEmptyDatagramsCannotFloodTheLog) {
    auto server = start_server(addr);
    uds::Fd unbound = make_socket();  // the longest log line: "cannot reply, bind() first..."
    for (int i = 0; i < 2000; ++i)
        ASSERT_EQ(send_to(unbound.get(), "", addr), "")
            << th::why("the server keeps taking empty datagrams (it must not block on its log)");
    uds::Fd peer = autobound();
    ASSERT_EQ(ask(peer.get(), "served", addr), "SERVED") << th::why("the server goes on serving");
    server->drain();
    const std::size_t bytes = server->err().size();
    RecordProperty("log_bytes_for_2000_empty_datagrams", static_cast<int>(bytes));
    EXPECT_LT(bytes, 2000u * 100)
        << th::why(
               "log lines a client can multiply are rate-limited (100 a second); 2000 empty "
               "datagrams used to write 416,000 bytes")
        << " (" << bytes << " bytes)";
}

}  // namespace
