// Chapter 03: one test per lesson step, in step order, so that a failing name says which step
// to look at, and each catches the careless version of its step.
//   Ch03Steps        03-datagram/server: S1 socket ... S8 unlink
//   Ch03ClientSteps  03-datagram/client against a datagram peer written here, so each client
//                    step is checked without the reference server
// make grade-03 runs these first. A program that stops early (the starter stops at its first
// missing step) is noticed at once: no test waits out its deadline for a dead program.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "ch03_peers.hpp"
#include "harness.hpp"
#include "uds.hpp"

namespace {

using namespace ch03;

[[maybe_unused]] const bool sigpipe_hint =
    th::hint_on_signal(SIGPIPE, "send and sendto with MSG_NOSIGNAL (steps S7 and C4)");

// The last lines of a program's log, for context after the reason (never the whole log).
std::string tail(const std::string& log, int lines = 3) {
    if (log.empty()) return std::string();
    std::size_t pos = log.size();
    for (int i = 0; i <= lines && pos != std::string::npos && pos > 0; ++i)
        pos = log.rfind('\n', pos - 1);
    return "\n  log: ..." + log.substr(pos == std::string::npos ? 0 : pos + 1);
}

// The one AF_UNIX socket of a process whose /proc/net/unix name is `name` (or any, if empty).
UnixSocket socket_named(pid_t pid, const std::string& name) {
    for (const UnixSocket& s : unix_sockets_of(pid))
        if (name.empty() || s.name == name) return s;
    return {};
}

// ------------------------------------------------------------------ the server, step by step

class Ch03Steps : public ::testing::Test {
  protected:
    th::TempDir dir;
    uds::Address addr = uds::Address::path(dir.file("s.sock"));
    std::unique_ptr<th::Process> server;

    void start() { server = start_server(addr); }
    std::string log_tail() { return server ? tail(server->err()) : std::string(); }
};

TEST_F(Ch03Steps, S1_Socket_IsADatagramSocketAndCloseOnExec) {
    start();
    UnixSocket s = socket_named(server->pid(), addr.str());
    ASSERT_NE(s.fd, -1) << th::why("the server holds a socket bound to its path (steps S1, S3)");
    EXPECT_EQ(s.type, SOCK_DGRAM) << th::why("the socket is SOCK_DGRAM, not a stream (step S1)");
    EXPECT_TRUE(s.cloexec) << th::why(
        "the socket is created with SOCK_CLOEXEC, so programs the server runs never inherit it "
        "(step S1)");
}

TEST_F(Ch03Steps, S2_Setsockopt_EveryDatagramBringsTheSendersUid) {
    start();
    uds::Fd peer = autobound();
    ASSERT_EQ(ask(peer.get(), "who am i", addr), "WHO AM I")
        << th::why("a datagram from an autobound sender is answered (steps S2, S5, S6)")
        << log_tail();
    const std::string uid = " (uid " + std::to_string(::getuid()) + ")";
    EXPECT_TRUE(server->wait_stderr("8 bytes from " + uds::local_address(peer.get()).str() + uid))
        << th::why(
               "the log names the sender's uid: SO_PASSCRED is set before bind, so the kernel "
               "attaches SCM_CREDENTIALS to every datagram (step S2)")
        << log_tail();
}

TEST_F(Ch03Steps, S3_Bind_CreatesADatagramSocketFileAtThePath) {
    start();
    struct stat st {};
    ASSERT_EQ(::lstat(addr.name().c_str(), &st), 0)
        << th::why("bind creates the socket file at the -s path (step S3)");
    EXPECT_TRUE(S_ISSOCK(st.st_mode)) << th::why("the file at the path is a socket (step S3)");
    // connect() on a datagram socket only checks that a datagram socket is bound there.
    uds::Fd probe = make_socket();
    errno = 0;
    EXPECT_EQ(::connect(probe.get(), addr.sockaddr_ptr(), addr.length()), 0)
        << th::why("a datagram socket is bound at the path (steps S1, S3)") << " ("
        << std::strerror(errno) << ")";
}

TEST_F(Ch03Steps, S3_Bind_AnAbstractNameIsExactlyItsBytes) {
    const std::string name = th::unique_abstract_name("s3");
    addr = uds::Address::abstract(name);
    start();
    EXPECT_EQ(socket_named(server->pid(), "").name, "@" + name) << th::why(
        "bind's length is offsetof(sockaddr_un, sun_path) + 1 + the name's length, "
        "never sizeof(sockaddr_un): the kernel shows the name without @ padding "
        "(step S3)");
    uds::Fd probe = make_socket();
    errno = 0;
    EXPECT_EQ(::connect(probe.get(), addr.sockaddr_ptr(), addr.length()), 0)
        << th::why("a peer using the exact abstract name finds the server's socket (step S3)")
        << " (" << std::strerror(errno) << ")";
}

TEST_F(Ch03Steps, S3_Bind_RemovesAStaleSocketFileButNeverALiveOne) {
    { uds::Fd gone = bound(addr); }  // closed: its file stays behind, stale
    start();
    uds::Fd probe = make_socket();
    EXPECT_EQ(::connect(probe.get(), addr.sockaddr_ptr(), addr.length()), 0)
        << th::why("a stale socket file is replaced by the server's live socket (step S3)");

    uds::Address live_addr = uds::Address::path(dir.file("live.sock"));
    uds::Fd live = bound(live_addr);
    auto r = th::run(server_bin(), {"-s", live_addr.str()});
    EXPECT_EQ(r.status, 1) << th::why(
        "a path a live socket is bound to is refused, exit 1 (step S3)");
    uds::Fd sender = make_socket();
    EXPECT_EQ(send_to(sender.get(), "still mine", live_addr), "")
        << th::why("a live socket's file is never removed (step S3)");
}

TEST_F(Ch03Steps, S4_Recvmsg_EachDatagramIsOneWholeRequest) {
    start();
    uds::Fd peer = autobound();
    ASSERT_EQ(send_to(peer.get(), "hello", addr), "")
        << th::why("the server's queue takes a datagram");
    ASSERT_EQ(send_to(peer.get(), "two words", addr), "")
        << th::why("the server's queue takes a datagram");
    ASSERT_EQ(recv_from(peer.get()), "HELLO")
        << th::why("one recvmsg takes one datagram, one reply each (step S4)") << log_tail();
    EXPECT_EQ(recv_from(peer.get()), "TWO WORDS")
        << th::why("one recvmsg takes one datagram, one reply each (step S4)") << log_tail();
    const std::string full(4096, 'm');
    const std::string reply = ask(peer.get(), full, addr);
    EXPECT_TRUE(reply == std::string(4096, 'M'))
        << th::why(
               "a 4096-byte datagram comes back whole: the receive buffer holds 4096 bytes "
               "(step S4)")
        << " (got " << reply.size() << " bytes)";
}

TEST_F(Ch03Steps, S4_Recvmsg_ALongerDatagramIsDetectedNeverCut) {
    start();
    uds::Fd peer = autobound();
    for (std::size_t size : {std::size_t{4097}, std::size_t{5000}}) {
        const std::string reply = ask(peer.get(), std::string(size, 'x'), addr);
        ASSERT_EQ(reply.substr(0, 60), kTooLong)
            << th::why(
                   "a datagram longer than 4096 bytes is answered with the ERROR, never "
                   "served cut: check msg_flags & MSG_TRUNC (step S4)")
            << " (" << size << " bytes sent; reply: " << reply.substr(0, 40) << ")";
    }
    EXPECT_TRUE(server->wait_stderr("5000 bytes from"))
        << th::why(
               "the log gives the real size: recvmsg returns it only with the flag MSG_TRUNC "
               "(step S4)")
        << log_tail();
}

TEST_F(Ch03Steps, S5_Credentials_DescriptorsSentToTheServerAreNeverKept) {
    start();
    uds::Fd peer = autobound();
    ASSERT_EQ(ask(peer.get(), "first", addr), "FIRST")
        << th::why("a datagram from an autobound sender is answered (steps S4-S7)") << log_tail();
    const int baseline = th::count_fds(server->pid());
    int pipefd[2];
    ASSERT_EQ(::pipe2(pipefd, O_CLOEXEC), 0) << th::why("the test makes a pipe to send");
    uds::Fd pr{pipefd[0]}, pw{pipefd[1]};
    for (int i = 0; i < 20; ++i) {
        char byte = 'f';
        iovec iov{&byte, 1};
        alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))] = {};
        msghdr msg{};
        msg.msg_name = const_cast<sockaddr*>(addr.sockaddr_ptr());
        msg.msg_namelen = addr.length();
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(2 * sizeof(int));
        int fds[2] = {pr.get(), pw.get()};
        std::memcpy(CMSG_DATA(c), fds, sizeof fds);
        ASSERT_EQ(::sendmsg(peer.get(), &msg, MSG_NOSIGNAL), 1)
            << th::why("a datagram with two descriptors attached can be sent to the server");
        ASSERT_EQ(recv_from(peer.get()), "F")
            << th::why("a datagram with descriptors attached is served like any other (step S5)");
    }
    EXPECT_EQ(th::count_fds(server->pid()), baseline) << th::why(
        "descriptors a sender attaches (SCM_RIGHTS) never stay in the server: size the "
        "control buffer for the credentials only, and close any that arrive (step S5)");
}

TEST_F(Ch03Steps, S5_Credentials_TheUidIsTheSendersNotTheServers) {
    TH_NEED_ROOT();
    start();
    uds::check(::chmod(addr.name().c_str(), 0666), "test setup: chmod");  // served to every user
    uds::check(::chmod(dir.path().c_str(), 0755), "test setup: chmod");
    int rc = th::run_as_nobody([&] {
        uds::Fd peer = autobound();
        return ask(peer.get(), "nobody here", addr) == "NOBODY HERE" ? 0 : 1;
    });
    ASSERT_EQ(rc, 0) << th::why("a sender of another uid is answered too (steps S5, S6)")
                     << log_tail();
    EXPECT_TRUE(server->wait_stderr("(uid " + std::to_string(th::kNobody) + "): replied"))
        << th::why(
               "the uid comes from the datagram's SCM_CREDENTIALS, not from getuid() "
               "(step S5)")
        << log_tail();
}

TEST_F(Ch03Steps, S6_Check_AnUnboundSenderGetsNoReplyAndTheServerGoesOn) {
    start();
    uds::Fd unbound = make_socket();
    ASSERT_EQ(send_to(unbound.get(), "anyone?", addr), "")
        << th::why("the server's queue takes a datagram");
    ASSERT_TRUE(server->wait_stderr("7 bytes from (unnamed)"))
        << th::why("a datagram from a socket that never bound is received and logged (step S6)")
        << log_tail();
    EXPECT_TRUE(server->wait_stderr("bind()"))
        << th::why("the log says why there is no reply and how to fix the client (step S6)")
        << log_tail();
    uds::Fd peer = autobound();
    EXPECT_EQ(ask(peer.get(), "next", addr), "NEXT")
        << th::why("the server goes on after a sender it cannot answer (step S6)") << log_tail();
}

TEST_F(Ch03Steps, S6_Check_NoReplyThroughASymlink) {
    start();
    uds::Address trap_addr = uds::Address::path(dir.file("trap.sock"));
    uds::Fd trap = bound(trap_addr);
    uds::Address p = uds::Address::path(dir.file("p.sock"));
    uds::Fd attacker = bound(p);
    uds::check(::unlink(p.name().c_str()), "test setup: unlink");
    uds::check(::symlink(trap_addr.name().c_str(), p.name().c_str()), "test setup: symlink");
    ASSERT_EQ(send_to(attacker.get(), "redirected", addr), "")
        << th::why("the server's queue takes a datagram");
    ASSERT_TRUE(server->wait_stderr("10 bytes from " + p.str()))
        << th::why("the redirected datagram is received and logged (step S6)") << log_tail();
    uds::Fd peer = autobound();
    ASSERT_EQ(ask(peer.get(), "after", addr), "AFTER")
        << th::why("the server goes on serving (step S6)") << log_tail();
    EXPECT_EQ(recv_from(trap.get(), nullptr, 0), "<timeout>") << th::why(
        "a sender's path that became a symlink gets no reply: sendto would follow it "
        "to a socket the sender never owned. open it O_PATH|O_NOFOLLOW, fstat it "
        "(step S6)");
}

TEST_F(Ch03Steps, S6_Check_NeverAnswersItself) {
    start();
    // A symlink to the server's own socket: one datagram used to make it answer itself forever.
    uds::Address p = uds::Address::path(dir.file("p.sock"));
    uds::Fd attacker = bound(p);
    uds::check(::unlink(p.name().c_str()), "test setup: unlink");
    uds::check(::symlink(addr.name().c_str(), p.name().c_str()), "test setup: symlink");
    ASSERT_EQ(send_to(attacker.get(), "loop", addr), "")
        << th::why("the server's queue takes a datagram");
    // And a hard link to it, from a second sender.
    uds::Address h = uds::Address::path(dir.file("h.sock"));
    uds::Fd attacker2 = bound(h);
    uds::check(::unlink(h.name().c_str()), "test setup: unlink");
    uds::check(::link(addr.name().c_str(), h.name().c_str()), "test setup: link");
    ASSERT_EQ(send_to(attacker2.get(), "loop", addr), "")
        << th::why("the server's queue takes a datagram (a loop would keep it full)");
    attacker.reset();
    attacker2.reset();
    uds::Fd peer = autobound();
    ASSERT_EQ(ask(peer.get(), "still me", addr), "STILL ME")
        << th::why(
               "after datagrams whose return path leads back to the server, others are still "
               "answered (step S6)")
        << log_tail();
    server->drain();
    const std::size_t from_itself = count(server->err(), "bytes from " + addr.str() + " (") +
                                    count(server->err(), "bytes from " + addr.str() + ":");
    EXPECT_EQ(from_itself, 0u)
        << th::why(
               "the server never sends to its own socket: one datagram from a path that leads "
               "back to it must not start an endless loop (step S6)")
        << " (" << count(server->err(), "\n") << " log lines)";
}

TEST_F(Ch03Steps, S6_Check_NoReplyIntoASocketOfAnotherUser) {
    TH_NEED_ROOT();
    start();
    uds::check(::chmod(addr.name().c_str(), 0666), "test setup: chmod");  // served to everyone
    uds::check(::chmod(dir.path().c_str(), 0755), "test setup: chmod");
    // root's private sockets: mode 0600 in a 0700 directory
    const std::string secret = dir.file("secret");
    uds::check(::mkdir(secret.c_str(), 0700), "test setup: mkdir");
    uds::Address t_addr = uds::Address::path(secret + "/t.sock");
    uds::Address p_addr = uds::Address::path(secret + "/p.sock");
    uds::Fd t = bound(t_addr), p = bound(p_addr);
    uds::check(::chmod(t_addr.name().c_str(), 0600), "test setup: chmod");
    uds::check(::chmod(p_addr.name().c_str(), 0600), "test setup: chmod");
    const std::string att = dir.file("att");
    uds::check(::mkdir(att.c_str(), 0755), "test setup: mkdir");
    uds::check(::chown(att.c_str(), th::kNobody, th::kNobody), "test setup: chown");
    int rc = th::run_as_nobody([&] {
        // 1. its socket file becomes a symlink to root's socket
        uds::Address a1 = uds::Address::path(att + "/a1.sock");
        uds::Fd s1 = bound(a1);
        if (::unlink(a1.name().c_str()) != 0 ||
            ::symlink(t_addr.name().c_str(), a1.name().c_str()) != 0)
            return 2;
        if (!send_to(s1.get(), "written by nobody", addr).empty()) return 3;
        // 2. its socket's *directory* becomes a symlink to root's directory (O_NOFOLLOW only
        //    protects the last component)
        const std::string d = att + "/d";
        if (::mkdir(d.c_str(), 0755) != 0) return 4;
        uds::Address a2 = uds::Address::path(d + "/p.sock");
        uds::Fd s2 = bound(a2);
        if (::unlink(a2.name().c_str()) != 0 || ::rmdir(d.c_str()) != 0 ||
            ::symlink(secret.c_str(), d.c_str()) != 0)
            return 5;
        return send_to(s2.get(), "written by nobody", addr).empty() ? 0 : 6;
    });
    ASSERT_EQ(rc, 0) << th::why("uid 65534 can send to a server whose socket file is 0666");
    ASSERT_TRUE(server->wait_stderr("17 bytes from " + att + "/d/p.sock"))
        << th::why("the datagrams from uid 65534 are received and logged (step S6)") << log_tail();
    uds::Fd peer = autobound();
    ASSERT_EQ(ask(peer.get(), "after", addr), "AFTER")
        << th::why("the server goes on serving (step S6)") << log_tail();
    EXPECT_EQ(recv_from(t.get(), nullptr, 0), "<timeout>") << th::why(
        "uid 65534 must not make the server write into root's private socket through "
        "a symlink (step S6)");
    EXPECT_EQ(recv_from(p.get(), nullptr, 0), "<timeout>") << th::why(
        "nor through a symlinked directory: reply only to a socket file owned by the "
        "sender's uid, from SCM_CREDENTIALS (steps S5, S6)");
}

TEST_F(Ch03Steps, S7_Sendto_EachReplyGoesToItsOwnSender) {
    start();
    uds::Address a_addr = uds::Address::path(dir.file("a.sock"));
    uds::Fd a = bound(a_addr);
    uds::Fd b = autobound();
    uds::Address c_addr = uds::Address::abstract(th::unique_abstract_name("c"));
    uds::Fd c = bound(c_addr);
    for (int fd : {a.get(), b.get(), c.get()})
        ASSERT_EQ(send_to(fd,
                          fd == a.get()   ? "from a"
                          : fd == b.get() ? "from b"
                                          : "from c",
                          addr),
                  "")
            << th::why("the server's queue takes a datagram");
    uds::Address from;
    ASSERT_EQ(recv_from(a.get(), &from), "FROM A")
        << th::why("a sender bound to a path gets its own reply (step S7)") << log_tail();
    EXPECT_EQ(from, addr) << th::why("the reply comes from the server's bound address (step S7)");
    EXPECT_EQ(recv_from(b.get()), "FROM B")
        << th::why("an autobound sender gets its own reply (step S7)") << log_tail();
    EXPECT_EQ(recv_from(c.get()), "FROM C")
        << th::why("a sender with an abstract name gets its own reply (step S7)") << log_tail();
}

TEST_F(Ch03Steps, S7_Sendto_AClientThatNeverReadsCannotStopTheServer) {
    start();
    uds::Address stuck_addr = uds::Address::path(dir.file("stuck.sock"));
    uds::Fd stuck = bound(stuck_addr);  // sends, never reads: its queue fills after 11 replies
    for (int i = 0; i < 40; ++i)
        ASSERT_EQ(send_to(stuck.get(), "r", addr), "") << th::why(
            "the server keeps taking datagrams while one client never reads its "
            "replies: a blocking sendto would stop it (step S7)");
    uds::Fd other = autobound();
    EXPECT_EQ(ask(other.get(), "me too", addr), "ME TOO")
        << th::why(
               "sendto with MSG_DONTWAIT: a reply that cannot go is dropped, never waited "
               "for, so one client that never reads cannot stop the service (step S7)")
        << log_tail();
}

TEST_F(Ch03Steps, S8_Unlink_RemovesItsSocketFileOnSigterm) {
    start();
    server->signal(SIGTERM);
    EXPECT_EQ(server->wait_exit(), 0) << th::why("SIGTERM ends the server with status 0 (step S8)");
    EXPECT_FALSE(is_socket_file(addr.name()))
        << th::why("the server removes its own socket file when it stops (step S8)");
}

// ------------------------------------------------------------------ the client, step by step

// The test plays the server: a datagram socket bound to `addr` that the client sends to.
class Ch03ClientSteps : public ::testing::Test {
  protected:
    th::TempDir dir;
    uds::Address addr = uds::Address::path(dir.file("s.sock"));
    uds::Fd peer = bound(addr);

    std::unique_ptr<th::Process> client(std::vector<std::string> args) {
        std::vector<std::string> all{"-s", addr.str()};
        all.insert(all.end(), args.begin(), args.end());
        return std::make_unique<th::Process>(client_bin(), all);
    }
    // A client that has done C1-C3 and now waits for lines on stdin (-v says when it is
    // connected): its socket can be looked at without it sending anything.
    std::unique_ptr<th::Process> idle_client(std::vector<std::string> args) {
        args.insert(args.begin(), "-v");
        auto c = client(args);
        if (!c->wait_stderr("client: connected to")) {
            const std::string said = c->err().substr(0, c->err().find('\n'));
            throw th::Abort(
                "the client did not create, bind and connect its socket (steps "
                "C1-C3; with -v it says 'connected to')" +
                (said.empty() ? std::string() : ": " + said.substr(0, 120)));
        }
        return c;
    }
    // The client's AF_UNIX socket, as /proc shows it (fd -1 if it has none).
    static UnixSocket the_socket(th::Process& c) {
        const std::vector<UnixSocket> all = unix_sockets_of(c.pid());
        return all.empty() ? UnixSocket{} : all.front();
    }
    // The client's next request, and the address it came from.
    std::string request(th::Process& c, uds::Address* from = nullptr) {
        std::string got = recv_while(peer.get(), c, from);
        c.drain();  // what it has said so far, for the reasons
        return got;
    }
    void reply(std::string_view text, const uds::Address& to) {
        EXPECT_EQ(send_to(peer.get(), text, to), "")
            << th::why("the test (playing the server) can answer the client's address (step C2)");
    }
};

TEST_F(Ch03ClientSteps, C1_Socket_IsADatagramSocketAndCloseOnExec) {
    auto c = idle_client({});
    const UnixSocket s = the_socket(*c);
    ASSERT_NE(s.fd, -1) << th::why("the client holds an AF_UNIX socket (step C1)");
    EXPECT_EQ(s.type, SOCK_DGRAM) << th::why("the client's socket is SOCK_DGRAM (step C1)");
    EXPECT_TRUE(s.cloexec) << th::why("the client's socket is created with SOCK_CLOEXEC (step C1)");
}

TEST_F(Ch03ClientSteps, C2_Bind_AutobindGivesAFiveHexDigitName) {
    auto c = idle_client({});
    const std::string name = the_socket(*c).name;  // as /proc/net/unix shows it: @ for a NUL
    ASSERT_FALSE(name.empty()) << th::why(
        "the client's socket has an address: a client that never binds cannot be "
        "answered (step C2)");
    bool hex = name.size() == 6 && name[0] == '@';
    for (std::size_t i = 1; i < name.size(); ++i)
        hex = hex && std::isxdigit(static_cast<unsigned char>(name[i]));
    EXPECT_TRUE(hex) << th::why(
                            "autobind: bind with addrlen = sizeof(sa_family_t) gives @ and 5 "
                            "hex digits; sizeof(sockaddr_un) binds a name of 107 NULs instead "
                            "(step C2)")
                     << " (its name: " << name.substr(0, 40) << ")";
}

TEST_F(Ch03ClientSteps, C2_Bind_WithBindPathBindsThatPath) {
    const std::string mine = dir.file("client.sock");
    auto c = idle_client({"--bind", mine});
    EXPECT_EQ(the_socket(*c).name, mine)
        << th::why("with --bind PATH the client's socket is bound to exactly that path (step C2)");
    EXPECT_TRUE(is_socket_file(mine)) << th::why("bind creates the socket file (step C2)");
}

TEST_F(Ch03ClientSteps, C2_Bind_WithBindAbstractTheNameIsExactlyItsBytes) {
    const std::string name = th::unique_abstract_name("c2");
    auto c = idle_client({"--bind", "@" + name});
    EXPECT_EQ(the_socket(*c).name.substr(0, 120), "@" + name) << th::why(
        "--bind @name binds exactly that name: the length is offsetof(sockaddr_un, "
        "sun_path) + 1 + its length, never sizeof(sockaddr_un), which pads it with "
        "NULs (shown as @) (step C2)");
}

TEST_F(Ch03ClientSteps, C3_Connect_ReportsAMissingServerAtOnce) {
    const std::string missing = dir.file("missing.sock");
    auto r = th::run(client_bin(), {"-s", missing, "hello"});
    EXPECT_EQ(r.status, 1) << th::why("no server: the client exits 1 (step C3)");
    EXPECT_NE(r.err.find("client: connect " + missing + ": " + std::strerror(ENOENT)),
              std::string::npos)
        << th::why("connect() reports a missing server before anything is sent (step C3)")
        << tail(r.err, 1);
}

TEST_F(Ch03ClientSteps, C3_Connect_AcceptsDatagramsOnlyFromTheServer) {
    auto c = idle_client({});
    const std::string name = the_socket(*c).name;
    ASSERT_FALSE(name.empty()) << th::why("the client's socket has an address (do step C2 first)");
    const uds::Address client_addr =
        name[0] == '@' ? uds::Address::abstract(name.substr(1)) : uds::Address::path(name);
    uds::Fd stranger = autobound();
    EXPECT_EQ(send_to(stranger.get(), "FAKE", client_addr),
              "sendto " + client_addr.str() + ": " + std::strerror(EPERM))
        << th::why(
               "a connected datagram socket refuses datagrams from anyone but its peer, so "
               "a stranger cannot slip in a fake reply (step C3)");
    EXPECT_EQ(send_to(peer.get(), "from the server", client_addr), "")
        << th::why("the server, its peer, can still send to it (step C3)");
}

TEST_F(Ch03ClientSteps, C4_Send_SendsEachMessageAsOneDatagram) {
    // One client per message, and no replies: this checks send() alone (not bind, not recv).
    for (const std::string message : {"hello world", "", "a\tb\nc"}) {
        auto c = client({message});
        EXPECT_EQ(request(*c), message)
            << th::why("one message is one datagram, its bytes unchanged (step C4)")
            << tail(c->err(), 1);
    }
}

TEST_F(Ch03ClientSteps, C5_Recv_PrintsEachReplyDatagram) {
    auto c = client({"one", "two", "three"});
    uds::Address from;
    ASSERT_EQ(request(*c, &from), "one")
        << th::why("the client sends each message as one datagram (steps C1-C4)") << tail(c->err());
    ASSERT_NE(from.kind(), uds::Address::Kind::Unnamed) << th::why("do step C2 first");
    reply("ONE\nLINE", from);  // a newline inside is just a byte of the datagram
    ASSERT_EQ(request(*c), "two") << th::why("the client takes the first reply (step C5)")
                                  << tail(c->err());
    reply("", from);  // an empty reply is a reply, not end of file
    ASSERT_EQ(request(*c), "three")
        << th::why("an empty datagram is a reply (step C5)") << tail(c->err());
    reply(std::string(4096, 'T'), from);
    EXPECT_EQ(c->wait_exit(), 0) << th::why(
                                        "with every reply received, the client exits 0 (step C5)")
                                 << tail(c->err());
    EXPECT_TRUE(c->out() == "ONE\nLINE\n\n" + std::string(4096, 'T') + "\n")
        << th::why(
               "each reply datagram is printed whole on its own line, up to 4096 bytes "
               "(step C5)")
        << " (printed " << c->out().size() << " bytes)";
}

TEST_F(Ch03ClientSteps, C5_Recv_AReplyLongerThan4096BytesIsAnErrorNotCut) {
    auto c = client({"hello"});
    uds::Address from;
    ASSERT_EQ(request(*c, &from), "hello")
        << th::why("the client sends its message as one datagram (steps C1-C4)") << tail(c->err());
    reply(std::string(5000, 'L'), from);
    EXPECT_EQ(c->wait_exit(), 1) << th::why(
        "a 5000-byte reply is no reply of this service: recv with MSG_TRUNC returns "
        "its real length, and the client fails instead of printing it cut (step C5)");
    EXPECT_EQ(c->out(), "") << th::why("nothing cut is printed (step C5)");
}

TEST_F(Ch03ClientSteps, C5_Recv_GivesUpAfterTheTimeout) {
    auto c = client({"--timeout", "1", "hello?"});
    ASSERT_EQ(request(*c), "hello?")
        << th::why("the client sends its message as one datagram (steps C1-C4)") << tail(c->err());
    // The client's own --timeout bounds this wait: a few seconds, whatever the patience.
    EXPECT_EQ(c->wait_exit(th::Deadline{th::milliseconds{3000}}), 1)
        << th::why("no reply within --timeout: exit 1 (step C5)");
    EXPECT_NE(c->err().find("no reply within 1 s"), std::string::npos)
        << th::why("the client says it gave up waiting (step C5)") << tail(c->err(), 1);
}

TEST_F(Ch03ClientSteps, C6_Close_RemovesItsBindFileHoweverItEnds) {
    const std::string mine = dir.file("client.sock");
    auto c = client({"--bind", mine, "hello"});
    uds::Address from;
    ASSERT_EQ(request(*c, &from), "hello")
        << th::why("the client sends its message as one datagram (steps C1-C4)") << tail(c->err());
    reply("HELLO", from);
    EXPECT_EQ(c->wait_exit(), 0) << th::why(
                                        "with every reply received, the client exits 0 (step C5)")
                                 << tail(c->err());
    EXPECT_FALSE(is_socket_file(mine))
        << th::why("the client removes its --bind file when it is done (step C6)");

    auto waiting = client({"--bind", mine, "--timeout", "60", "waiting"});
    ASSERT_EQ(request(*waiting), "waiting")
        << th::why("the client sends its message as one datagram (steps C1-C4)")
        << tail(waiting->err());
    waiting->signal(SIGTERM);
    EXPECT_EQ(waiting->wait_exit(), 128 + SIGTERM) << th::why(
        "SIGTERM while waiting: the client cleans up, then dies of the signal "
        "(step C6)");
    EXPECT_FALSE(is_socket_file(mine))
        << th::why("the client removes its --bind file when stopped by SIGTERM (step C6)");
}

}  // namespace
