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
    EXPECT_EQ(ask(peer.get(), "who am i", addr), "WHO AM I")
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
    uds::Fd peer = autobound();
    EXPECT_EQ(ask(peer.get(), "exact", addr), "EXACT")
        << th::why("a sender using the exact abstract name reaches the server (step S3)");
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
    ASSERT_EQ(send_to(peer.get(), "hello", addr), "");
    ASSERT_EQ(send_to(peer.get(), "two words", addr), "");
    EXPECT_EQ(recv_from(peer.get()), "HELLO")
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
    for (std::size_t size : {4097, 5000}) {
        const std::string reply = ask(peer.get(), std::string(size, 'x'), addr);
        EXPECT_EQ(reply.substr(0, 60), kTooLong)
            << th::why(
                   "a datagram longer than 4096 bytes is answered with the ERROR, never "
                   "served cut: check msg_flags & MSG_TRUNC (step S4)")
            << " (" << size << " bytes sent, a reply of " << reply.size() << " bytes)";
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
    EXPECT_EQ(ask(peer.get(), "first", addr), "FIRST") << log_tail();
    const int baseline = th::count_fds(server->pid());
    int pipefd[2];
    ASSERT_EQ(::pipe2(pipefd, O_CLOEXEC), 0);
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
        ASSERT_EQ(::sendmsg(peer.get(), &msg, MSG_NOSIGNAL), 1);
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
    ASSERT_EQ(::chmod(addr.name().c_str(), 0666), 0);  // served to every user
    ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
    int rc = th::run_as_nobody([&] {
        uds::Fd peer = autobound();
        return ask(peer.get(), "nobody here", addr) == "NOBODY HERE" ? 0 : 1;
    });
    EXPECT_EQ(rc, 0) << th::why("a sender of another uid is answered too (steps S5, S6)")
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
    ASSERT_EQ(send_to(unbound.get(), "anyone?", addr), "");
    EXPECT_TRUE(server->wait_stderr("7 bytes from (unnamed)"))
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
    ASSERT_EQ(::unlink(p.name().c_str()), 0);
    ASSERT_EQ(::symlink(trap_addr.name().c_str(), p.name().c_str()), 0);
    ASSERT_EQ(send_to(attacker.get(), "redirected", addr), "");
    EXPECT_TRUE(server->wait_stderr("10 bytes from " + p.str()))
        << th::why("the redirected datagram is received and logged (step S6)") << log_tail();
    uds::Fd peer = autobound();
    EXPECT_EQ(ask(peer.get(), "after", addr), "AFTER") << log_tail();
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
    ASSERT_EQ(::unlink(p.name().c_str()), 0);
    ASSERT_EQ(::symlink(addr.name().c_str(), p.name().c_str()), 0);
    ASSERT_EQ(send_to(attacker.get(), "loop", addr), "");
    // And a hard link to it, from a second sender.
    uds::Address h = uds::Address::path(dir.file("h.sock"));
    uds::Fd attacker2 = bound(h);
    ASSERT_EQ(::unlink(h.name().c_str()), 0);
    ASSERT_EQ(::link(addr.name().c_str(), h.name().c_str()), 0);
    ASSERT_EQ(send_to(attacker2.get(), "loop", addr), "");
    attacker.reset();
    attacker2.reset();
    uds::Fd peer = autobound();
    EXPECT_EQ(ask(peer.get(), "still me", addr), "STILL ME") << log_tail();
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
    ASSERT_EQ(::chmod(addr.name().c_str(), 0666), 0);
    ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
    // root's private socket: mode 0600 in a 0700 directory
    const std::string secret = dir.file("secret");
    ASSERT_EQ(::mkdir(secret.c_str(), 0700), 0);
    uds::Address target = uds::Address::path(secret + "/t.sock");
    uds::Fd victim = bound(target);
    ASSERT_EQ(::chmod(target.name().c_str(), 0600), 0);
    const std::string att = dir.file("att");
    ASSERT_EQ(::mkdir(att.c_str(), 0755), 0);
    ASSERT_EQ(::chown(att.c_str(), th::kNobody, th::kNobody), 0);
    int rc = th::run_as_nobody([&] {
        uds::Address p = uds::Address::path(att + "/p.sock");
        uds::Fd a = bound(p);
        if (::unlink(p.name().c_str()) != 0) return 2;
        if (::symlink(target.name().c_str(), p.name().c_str()) != 0) return 3;
        return send_to(a.get(), "written by nobody", addr).empty() ? 0 : 4;
    });
    ASSERT_EQ(rc, 0) << "the attacker could not send";
    EXPECT_TRUE(server->wait_stderr("17 bytes from " + att + "/p.sock")) << log_tail();
    uds::Fd peer = autobound();
    EXPECT_EQ(ask(peer.get(), "after", addr), "AFTER") << log_tail();
    EXPECT_EQ(recv_from(victim.get(), nullptr, 0), "<timeout>") << th::why(
        "uid 65534 must not make the server write into root's private socket: reply "
        "only to a socket file owned by the sender's uid (steps S5, S6)");
}

TEST_F(Ch03Steps, S7_Sendto_EachReplyGoesToItsOwnSender) {
    start();
    uds::Address a_addr = uds::Address::path(dir.file("a.sock"));
    uds::Fd a = bound(a_addr);
    uds::Fd b = autobound();
    uds::Address c_addr = uds::Address::abstract(th::unique_abstract_name("c"));
    uds::Fd c = bound(c_addr);
    ASSERT_EQ(send_to(a.get(), "from a", addr), "");
    ASSERT_EQ(send_to(b.get(), "from b", addr), "");
    ASSERT_EQ(send_to(c.get(), "from c", addr), "");
    uds::Address from;
    EXPECT_EQ(recv_from(a.get(), &from), "FROM A")
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
        ASSERT_EQ(send_to(stuck.get(), "r", addr), "");
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
    // The client's next request, and the address it came from.
    std::string request(th::Process& c, uds::Address* from = nullptr) {
        return recv_while(peer.get(), c, from);
    }
    void reply(std::string_view text, const uds::Address& to) {
        EXPECT_EQ(send_to(peer.get(), text, to), "") << "the test could not answer the client";
    }
};

TEST_F(Ch03ClientSteps, C1_Socket_IsADatagramSocketAndCloseOnExec) {
    auto c = client({"--timeout", "60", "hello"});
    ASSERT_NE(request(*c), "<nothing>")
        << th::why("the client sends its message to the server (steps C1-C4)") << tail(c->err());
    // It waits for a reply now: look at its socket.
    UnixSocket s;
    for (const UnixSocket& u : unix_sockets_of(c->pid()))
        if (u.type != 0) s = u;
    ASSERT_NE(s.fd, -1) << th::why("the client holds an AF_UNIX socket (step C1)");
    EXPECT_EQ(s.type, SOCK_DGRAM) << th::why("the client's socket is SOCK_DGRAM (step C1)");
    EXPECT_TRUE(s.cloexec) << th::why("the client's socket is created with SOCK_CLOEXEC (step C1)");
}

TEST_F(Ch03ClientSteps, C2_Bind_AutobindGivesAFiveHexDigitName) {
    auto c = client({"hello"});
    uds::Address from;
    ASSERT_NE(request(*c, &from), "<nothing>")
        << th::why("the client sends its message to the server (steps C1-C4)") << tail(c->err());
    ASSERT_NE(from.kind(), uds::Address::Kind::Unnamed) << th::why(
        "the request comes from an address: a client that never binds cannot be "
        "answered (step C2)");
    const std::string name = from.name();
    bool hex = from.kind() == uds::Address::Kind::Abstract && name.size() == 5;
    for (char ch : name)
        hex = hex && std::isxdigit(static_cast<unsigned char>(ch));
    EXPECT_TRUE(hex) << th::why(
                            "autobind: bind with addrlen = sizeof(sa_family_t) gives @ and 5 "
                            "hex digits; sizeof(sockaddr_un) binds a name of 107 NULs instead "
                            "(step C2)")
                     << " (it came from " << from.str().substr(0, 40) << ")";
}

TEST_F(Ch03ClientSteps, C2_Bind_WithBindPathSendsFromThatPath) {
    const std::string mine = dir.file("client.sock");
    auto c = client({"--bind", mine, "hello"});
    uds::Address from;
    ASSERT_NE(request(*c, &from), "<nothing>")
        << th::why("the client sends its message to the server (steps C1-C4)") << tail(c->err());
    EXPECT_EQ(from, uds::Address::path(mine))
        << th::why("with --bind PATH the request comes from exactly that path (step C2)");
    reply("HELLO", from);
    EXPECT_EQ(c->wait_exit(), 0) << tail(c->err());
}

TEST_F(Ch03ClientSteps, C2_Bind_WithBindAbstractTheNameIsExactlyItsBytes) {
    const std::string name = th::unique_abstract_name("c2");
    auto c = client({"--bind", "@" + name, "hello"});
    uds::Address from;
    ASSERT_NE(request(*c, &from), "<nothing>")
        << th::why("the client sends its message to the server (steps C1-C4)") << tail(c->err());
    EXPECT_EQ(from, uds::Address::abstract(name))
        << th::why(
               "--bind @name binds exactly that name: the length is offsetof(sockaddr_un, "
               "sun_path) + 1 + its length, never sizeof(sockaddr_un) (step C2)")
        << " (it came from " << from.str().substr(0, 60) << ")";
    reply("HELLO", from);
    EXPECT_EQ(c->wait_exit(), 0) << tail(c->err());
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
    auto c = client({"hello"});
    uds::Address from;
    ASSERT_EQ(request(*c, &from), "hello")
        << th::why("the client sends its message to the server (steps C1-C4)") << tail(c->err());
    ASSERT_NE(from.kind(), uds::Address::Kind::Unnamed) << th::why("do step C2 first");
    uds::Fd stranger = autobound();
    EXPECT_EQ(send_to(stranger.get(), "FAKE", from),
              "sendto " + from.str() + ": " + std::strerror(EPERM))
        << th::why(
               "a connected datagram socket refuses datagrams from anyone but its peer, so "
               "a stranger cannot slip in a fake reply (step C3)");
    reply("HELLO", from);
    EXPECT_EQ(c->wait_exit(), 0) << tail(c->err());
    EXPECT_EQ(c->out(), "HELLO\n") << th::why("the client prints the server's reply (step C5)");
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
    ASSERT_EQ(request(*c, &from), "one") << tail(c->err());
    ASSERT_NE(from.kind(), uds::Address::Kind::Unnamed) << th::why("do step C2 first");
    reply("ONE\nLINE", from);  // a newline inside is just a byte of the datagram
    ASSERT_EQ(request(*c), "two") << th::why("the client takes the first reply (step C5)")
                                  << tail(c->err());
    reply("", from);  // an empty reply is a reply, not end of file
    ASSERT_EQ(request(*c), "three")
        << th::why("an empty datagram is a reply (step C5)") << tail(c->err());
    reply(std::string(4096, 'T'), from);
    EXPECT_EQ(c->wait_exit(), 0) << tail(c->err());
    EXPECT_TRUE(c->out() == "ONE\nLINE\n\n" + std::string(4096, 'T') + "\n")
        << th::why(
               "each reply datagram is printed whole on its own line, up to 4096 bytes "
               "(step C5)")
        << " (printed " << c->out().size() << " bytes)";
}

TEST_F(Ch03ClientSteps, C5_Recv_AReplyLongerThan4096BytesIsAnErrorNotCut) {
    auto c = client({"hello"});
    uds::Address from;
    ASSERT_EQ(request(*c, &from), "hello") << tail(c->err());
    reply(std::string(5000, 'L'), from);
    EXPECT_EQ(c->wait_exit(), 1) << th::why(
        "a 5000-byte reply is no reply of this service: recv with MSG_TRUNC returns "
        "its real length, and the client fails instead of printing it cut (step C5)");
    EXPECT_EQ(c->out(), "") << th::why("nothing cut is printed (step C5)");
}

TEST_F(Ch03ClientSteps, C5_Recv_GivesUpAfterTheTimeout) {
    auto c = client({"--timeout", "1", "hello?"});
    ASSERT_EQ(request(*c), "hello?") << tail(c->err());
    // The client's own --timeout bounds this wait: a few seconds, whatever the patience.
    EXPECT_EQ(c->wait_exit(th::Deadline{th::milliseconds{3000}}), 1) << th::why("no reply within --timeout: exit 1 (step C5)");
    EXPECT_NE(c->err().find("no reply within 1 s"), std::string::npos)
        << th::why("the client says it gave up waiting (step C5)") << tail(c->err(), 1);
}

TEST_F(Ch03ClientSteps, C6_Close_RemovesItsBindFileHoweverItEnds) {
    const std::string mine = dir.file("client.sock");
    auto c = client({"--bind", mine, "hello"});
    uds::Address from;
    ASSERT_EQ(request(*c, &from), "hello") << tail(c->err());
    reply("HELLO", from);
    EXPECT_EQ(c->wait_exit(), 0) << tail(c->err());
    EXPECT_FALSE(is_socket_file(mine))
        << th::why("the client removes its --bind file when it is done (step C6)");

    auto waiting = client({"--bind", mine, "--timeout", "60", "waiting"});
    ASSERT_EQ(request(*waiting), "waiting") << tail(waiting->err());
    waiting->signal(SIGTERM);
    EXPECT_EQ(waiting->wait_exit(), 128 + SIGTERM) << th::why(
        "SIGTERM while waiting: the client cleans up, then dies of the signal "
        "(step C6)");
    EXPECT_FALSE(is_socket_file(mine))
        << th::why("the client removes its --bind file when stopped by SIGTERM (step C6)");
}

}  // namespace
