// Chapter 06, one test per lesson step (make grade-06 runs them first, in this order):
//
//   Ch06Steps        the monitor's steps S1-S10 (server.cpp)
//   Ch06ClientSteps  the worker's steps C1-C6 (client.cpp), under a fake monitor: the test
//
// Each test fails for its own step and names it; the careless versions each one catches are
// listed above it.
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ch06_support.hpp"
#include "harness.hpp"
#include "uds.hpp"

using namespace ch06;

namespace {

// The monitor's end(s) of a socket pair: its socket descriptors with what /proc/net/unix says.
struct Held {
    int fd;
    UnixSocket sock;
};
std::vector<Held> sockets_of(pid_t pid) {
    std::vector<Held> out;
    for (int fd : fds_of(pid))
        if (unsigned long ino = socket_inode(fd_target(pid, fd)))
            out.push_back({fd, unix_socket(ino)});
    return out;
}

std::vector<std::string> cmdline_of(pid_t pid) {
    std::string raw = slurp("/proc/" + std::to_string(pid) + "/cmdline");
    std::vector<std::string> args;
    for (std::size_t start = 0; start < raw.size();) {
        std::size_t end = raw.find('\0', start);
        if (end == std::string::npos) end = raw.size();
        args.push_back(raw.substr(start, end - start));
        start = end + 1;
    }
    return args;
}

// A file the worker cannot name: created, opened, and unlinked. Only its descriptor is left.
uds::Fd nameless_file(const th::TempDir& dir, const std::string& content) {
    const std::string path = dir.file("gone.txt");
    write_file(path, content);
    uds::Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    ::unlink(path.c_str());
    return fd;
}

}  // namespace

// ================================================================ the monitor's steps
// Catches: SOCK_STREAM or SOCK_DGRAM (type), no SOCK_CLOEXEC, socket()+bind() (a name).
TEST(Ch06Steps, S1_Socketpair_MonitorHoldsOneUnnamedSeqpacketEndCloseOnExec) {
    Tree t;
    Session s({"--root", t.root, "--", "-"});
    ASSERT_GT(s.worker(), 0) << th::why(
                                    "the worker never introduced itself: write the steps in "
                                    "order, S1 first")
                             << "\n"
                             << s.err();
    s.monitor_fds();  // (the worker's end goes away in step S6, a moment after fork)
    auto socks = sockets_of(s.monitor->pid());
    ASSERT_EQ(socks.size(), 1u) << th::why(
        "the monitor holds exactly one socket: its end of the "
        "pair (step S1; the other end is closed in S6)");
    EXPECT_EQ(socks[0].sock.type, SOCK_SEQPACKET) << th::why(
        "socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv): the type keeps "
        "message boundaries (step S1)");
    EXPECT_EQ(socks[0].sock.state, 3) << th::why("the ends are connected from the start (S1)");
    EXPECT_EQ(socks[0].sock.path, "") << th::why("a socket pair has no name: no bind (step S1)");
    EXPECT_TRUE(close_on_exec(s.monitor->pid(), socks[0].fd))
        << th::why("the monitor's end has FD_CLOEXEC: SOCK_CLOEXEC in the type (step S1)");
}

// Catches: a worker started some other way (system(), a grandchild).
TEST(Ch06Steps, S2_Fork_TheWorkerIsTheMonitorsChild) {
    Tree t;
    Session s({"--root", t.root, "--", "-"});
    pid_t w = s.worker();
    ASSERT_GT(w, 0) << th::why("no worker: fork (S2), then S3-S5 in the child") << "\n" << s.err();
    EXPECT_EQ(status_field(w, "PPid"), std::to_string(s.monitor->pid()))
        << th::why("the worker's parent is the monitor: fork (step S2)");
}

// Catches: no dup2 (nothing on 3), dup2 without clearing close-on-exec when the end is already 3,
// no close_range (descriptors the monitor inherited reach the worker).
TEST(Ch06Steps, S3_Dup2_WorkerHoldsExactlyDescriptors0To3) {
    Tree t;
    // A descriptor the monitor inherits WITHOUT close-on-exec, as from a careless launcher.
    // (F_DUPFD makes the copy without FD_CLOEXEC; a high number, so that nothing lands on it.)
    uds::Fd devnull{::open("/dev/null", O_RDONLY | O_CLOEXEC)};
    uds::Fd leak{::fcntl(devnull.get(), F_DUPFD, 40)};
    ASSERT_TRUE(leak.valid()) << th::why("(test setup) a descriptor to leak");
    std::unique_ptr<Session> s;
    try {
        s = std::make_unique<Session>(std::vector<std::string>{"--root", t.root, "--", "-"});
    } catch (...) {
        leak.reset();
        throw;
    }
    leak.reset();
    pid_t w = s->worker();
    ASSERT_GT(w, 0) << th::why(
                           "the worker never introduced itself: with nothing on descriptor 3 "
                           "it exits 2 (step S3)")
                    << "\n"
                    << s->err();
    const std::vector<int> fds = fds_of(w);
    EXPECT_EQ(fds, (std::vector<int>{0, 1, 2, 3}))
        << th::why(
               "the worker holds 0, 1, 2 and 3 only: dup2 the end onto 3, and close_range "
               "from 4 up, or inherited descriptors follow it (step S3)")
        << " it holds " << show(fds);
    unsigned long ino = socket_inode(fd_target(w, 3));
    EXPECT_EQ(unix_socket(ino).type, SOCK_SEQPACKET)
        << th::why("descriptor 3 of the worker is its end of the pair (step S3)");
}

// Catches: setuid before setgid (the gid stays 0), no setgroups (group 0 stays), no check.
TEST(Ch06Steps, S4_Drop_WorkerIsNobodyWithNoGroupsAndNoWayBack) {
    TH_NEED_ROOT();
    Tree t;
    // The monitor starts with supplementary groups, as a root shell often has (root, adm).
    std::vector<gid_t> saved(static_cast<std::size_t>(::getgroups(0, nullptr)));
    ::getgroups(static_cast<int>(saved.size()), saved.data());
    const gid_t extra[] = {0, 4};
    ASSERT_EQ(::setgroups(2, extra), 0) << th::why("(test setup) groups 0 and 4");
    std::unique_ptr<Session> started;
    try {
        started = std::make_unique<Session>(std::vector<std::string>{"--root", t.root, "--", "-"});
    } catch (...) {
        ::setgroups(saved.size(), saved.data());
        throw;
    }
    ::setgroups(saved.size(), saved.data());
    Session& s = *started;
    pid_t w = s.worker();
    ASSERT_GT(w, 0)
        << th::why(
               "the worker never said 'client: pid N, running as uid ...': steps S1-S5 start it")
        << "\n"
        << s.err();
    EXPECT_EQ(status_field(s.monitor->pid(), "Groups"), "0 4")
        << th::why("(test setup) the monitor starts with groups 0 and 4");
    EXPECT_EQ(status_field(w, "Uid"), "65534 65534 65534 65534")
        << th::why("real, effective, saved and filesystem uid are all nobody's: setuid (S4)");
    EXPECT_EQ(status_field(w, "Gid"), "65534 65534 65534 65534")
        << th::why("all four gids are nogroup's: setgid BEFORE setuid (step S4)");
    EXPECT_EQ(status_field(w, "Groups"), "") << th::why(
        "no supplementary groups (root's group 0 would stay): setgroups(0, nullptr) "
        "first (step S4)");
    EXPECT_EQ(status_field(w, "NoNewPrivs"), "1")
        << th::why("prctl(PR_SET_NO_NEW_PRIVS): no set-user-ID program can give it back (S4)");
}

TEST(Ch06Steps, S4_Drop_AnotherUserIsNamedWithUser) {
    TH_NEED_ROOT();
    const passwd* pw = ::getpwnam("daemon");
    if (pw == nullptr) GTEST_SKIP() << "no user 'daemon' on this system";
    const std::string u = std::to_string(pw->pw_uid);
    Tree t;
    Session s({"--root", t.root, "--user", "daemon", "--", "-"});
    pid_t w = s.worker();
    ASSERT_GT(w, 0)
        << th::why(
               "the worker never said 'client: pid N, running as uid ...': steps S1-S5 start it")
        << "\n"
        << s.err();
    EXPECT_EQ(status_field(w, "Uid"), u + " " + u + " " + u + " " + u)
        << th::why("--user daemon runs the worker as daemon (step S4)");
}

// Catches: execv of the wrong program, arguments lost or reordered.
TEST(Ch06Steps, S5_Exec_WorkerRunsTheClientWithTheArguments) {
    Tree t;
    Session s({"--root", t.root, "--", "-", "two words.txt"});
    pid_t w = s.worker();
    ASSERT_GT(w, 0) << th::why("no worker: exec (step S5)") << "\n" << s.err();
    std::error_code ec;
    EXPECT_EQ(std::filesystem::canonical("/proc/" + std::to_string(w) + "/exe", ec),
              std::filesystem::canonical(client_bin(), ec))
        << th::why("the worker runs 06-socketpair/client, next to the server (step S5)");
    auto args = cmdline_of(w);
    ASSERT_EQ(args.size(), 3u) << th::why("argv is the program and the WORKER-ARGS (step S5)");
    EXPECT_EQ(args[1], "-") << th::why("the first WORKER-ARG comes first (step S5)");
    EXPECT_EQ(args[2], "two words.txt") << th::why("every WORKER-ARG is passed on as it is (S5)");
}

// Catches: the monitor keeps the worker's end open (it then never sees end of file).
TEST(Ch06Steps, S6_Close_MonitorSeesEndOfFileWhenTheWorkerDies) {
    Tree t;
    Session s({"--root", t.root, "--", "-"});
    pid_t w = s.worker();
    ASSERT_GT(w, 0)
        << th::why(
               "the worker never said 'client: pid N, running as uid ...': steps S1-S5 start it")
        << "\n"
        << s.err();
    ::kill(w, SIGKILL);
    int status = s.monitor->wait_exit();
    EXPECT_NE(status, -1) << th::why(
        "a dead worker closes its end, but the monitor sees end of "
        "file only if it closed ITS copy of that end (step S6)");
    EXPECT_NE(status, 0) << th::why("a killed worker is not a success");
}

// Catches: a stream-style reader that merges requests, or stops after the first.
TEST(Ch06Steps, S7_Recvmsg_OneMessageIsOneRequest) {
    Tree t;
    th::Result r =
        run_fake(t, {"pipeline", "OPEN hello.txt", "OPEN docs/notes.txt", "OPEN hello.txt"});
    auto l = lines_of(r.out);
    ASSERT_EQ(l.size(), 3u) << th::why(
                                   "three requests sent back to back are three requests: "
                                   "one recvmsg, one message (step S7)")
                            << "\n"
                            << r.out << r.err;
    EXPECT_EQ(l[0].rfind("REPLY OK " + std::to_string(kHello.size()) + " FDS 1", 0), 0u)
        << th::why("the first reply answers the first request (step S7)") << " got "
        << l[0].substr(0, 80);
    EXPECT_EQ(l[1].rfind("REPLY OK " + std::to_string(kNotes.size()) + " FDS 1", 0), 0u)
        << th::why("the second reply answers the second request (step S7)") << " got "
        << l[1].substr(0, 80);
    EXPECT_EQ(l[2].rfind("REPLY OK " + std::to_string(kHello.size()) + " FDS 1", 0), 0u)
        << th::why("the third reply answers the third request (step S7)") << " got "
        << l[2].substr(0, 80);
    EXPECT_EQ(r.status, 0) << th::why(
        "end of file from the worker ends the loop; it exited 0 "
        "(steps S7, S10)");
}

// Catches: no descriptor attached, a descriptor opened read-write, a wrong size.
TEST(Ch06Steps, S8_Open_SendsOneReadOnlyDescriptorWithTheSize) {
    Tree t;
    th::Result r = run_fake(t, {"raw", "OPEN hello.txt"});
    EXPECT_EQ(r.out, "REPLY OK " + std::to_string(kHello.size()) + " FDS 1 MODE 0 CONTENT " +
                         kHello.substr(0, kHello.size() - 1) + "\\n\n")
        << th::why(
               "OPEN hello.txt: 'OK <size>' with exactly one descriptor, read-only, of the "
               "file (step S8)")
        << "\n"
        << r.err;
}

// Catches: a policy that checks nothing, or only the text of the path.
TEST(Ch06Steps, S8_Open_RefusesPathsOutsideTheRootWithoutADescriptor) {
    Tree t;
    t.traps();
    th::Result r = run_fake(t, {"raw", "OPEN ../outside.txt", "OPEN escape", "OPEN /etc/passwd",
                                "OPEN up", "OPEN fifo"});
    auto l = lines_of(r.out);
    ASSERT_EQ(l.size(), 5u) << th::why("five requests, five replies (steps S7, S8)") << "\n"
                            << r.out << r.err;
    for (const auto& line : l) {
        EXPECT_EQ(line.rfind("REPLY ERROR ", 0), 0u)
            << th::why(
                   "a path that leads outside the root (or to a FIFO) gets 'ERROR <reason>' "
                   "(step S8: beneath::open_regular_file)")
            << " got: " << line.substr(0, 120);
        EXPECT_NE(line.find(" FDS 0"), std::string::npos) << th::why("and no descriptor");
    }
}

// Catches: the monitor keeps its copy of each descriptor it sent.
TEST(Ch06Steps, S8_Open_ClosesItsCopyOfEachDescriptor) {
    Tree t;
    Session s({"--root", t.root, "--", "-"});
    ASSERT_GT(s.worker(), 0)
        << th::why(
               "the worker never said 'client: pid N, running as uid ...': steps S1-S5 start it")
        << "\n"
        << s.err();
    const std::vector<int> before = s.monitor_fds();
    std::string batch;
    for (int i = 0; i < 20; ++i)
        batch += "hello.txt\n";
    s.monitor->write_stdin(batch + "docs/notes.txt\n");
    // One request at a time, in order: when the last one is answered, all are.
    s.monitor->wait_stderr("client: OPEN docs/notes.txt: received");
    ASSERT_EQ(count(s.err(), "client: OPEN hello.txt: received"), 20u)
        << th::why("20 OPENs are answered (step S8)") << "\n"
        << s.err().substr(0, 1500);
    const std::vector<int> after = fds_settle_within(s.monitor->pid(), before);
    EXPECT_TRUE(holds_nothing_new(before, after))
        << th::why(
               "after sendmsg the message holds its own reference: close "
               "the monitor's copy (step S8)")
        << " before " << show(before) << " after " << show(after);
}

// Catches: no memfd (bytes instead), no MFD_ALLOW_SEALING, seals missing, seals before write.
TEST(Ch06Steps, S9_List_SendsASealedMemfdWithTheListing) {
    Tree t;
    th::Result r = run_fake(t, {"raw", "LIST"});
    auto l = lines_of(r.out);
    ASSERT_EQ(l.size(), 1u) << th::why("LIST gets one reply (steps S7, S9)") << "\n"
                            << r.out << r.err;
    const std::string& line = l[0];
    ASSERT_EQ(line.rfind("REPLY OK ", 0), 0u)
        << th::why("LIST is answered 'OK <bytes>' (step S9)") << " got: " << line.substr(0, 120);
    EXPECT_NE(line.find(" FDS 1 "), std::string::npos)
        << th::why("with one descriptor: the memfd (step S9)");
    EXPECT_NE(line.find(" SEALS " + std::to_string(kAllSeals) + " "), std::string::npos)
        << th::why(
               "sealed: F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL, added after "
               "the listing is written (step S9)")
        << " got: " << line.substr(0, 120);
    const std::size_t bytes = std::stoul(line.substr(9));
    EXPECT_NE(line.find(" SIZE " + std::to_string(bytes) + " "), std::string::npos)
        << th::why("the memfd is exactly as long as 'OK <bytes>' says (step S9)");
    EXPECT_NE(line.find("hello.txt"), std::string::npos) << th::why("the listing names hello.txt");
    EXPECT_NE(line.find("docs/notes.txt"), std::string::npos)
        << th::why("and files below, with their path");
}

// Catches: exit 0 whatever the worker did; no waitpid (zombie, unknown status).
TEST(Ch06Steps, S10_Waitpid_ExitsWithTheWorkersStatus) {
    Tree t;
    th::Result refused = run_monitor({"--root", t.root, "--", "missing.txt"});
    EXPECT_EQ(refused.status, 1) << th::why(
                                        "the worker exits 1 (a refused FILE): so does the "
                                        "monitor, after waitpid (step S10)")
                                 << "\n"
                                 << refused.err;
    th::Result fine = run_monitor({"--root", t.root, "--", "hello.txt"});
    EXPECT_EQ(fine.status, 0) << th::why("the worker exits 0: so does the monitor (step S10)");
}

// ================================================================ the worker's steps
// Catches: trusting whatever is on descriptor 3.
TEST(Ch06ClientSteps, C1_Check_StartedByHandExits2WithOneLine) {
    for (int variant = 0; variant < 3; ++variant) {
        Worker::Options o;
        if (variant == 0) o.give_fd3 = false;  // nothing on descriptor 3
        if (variant == 1) o.type = SOCK_STREAM;
        if (variant == 2) o.type = SOCK_DGRAM;
        Worker w({"hello.txt"}, o);
        int status = w.wait_exit();
        const char* what[] = {"nothing", "a SOCK_STREAM socket", "a SOCK_DGRAM socket"};
        EXPECT_EQ(status, 2) << th::why(std::string("descriptor 3 holds ") + what[variant] +
                                        ": exit 2 (step C1: fstat, getsockopt SO_TYPE)");
        EXPECT_EQ(w.err, kByHand + "\n") << th::why("exactly one line: " + kByHand);
        EXPECT_EQ(w.out, "") << th::why("nothing on stdout");
    }
}

// Catches: a newline at the end, two requests in one message, a request split in two.
TEST(Ch06ClientSteps, C2_Send_OneRequestIsOneMessageWithoutNewline) {
    Worker w({"hello.txt", "docs/notes.txt"});
    auto first = w.request();
    ASSERT_TRUE(first.has_value())
        << th::why("the worker sends its first request (step C2)") << "\n"
        << w.err;
    EXPECT_EQ(*first, "OPEN hello.txt")
        << th::why("one message 'OPEN hello.txt', no newline: SEQPACKET needs no framing (C2)");
    w.reply("ERROR not today");
    EXPECT_EQ(w.request().value_or("(none)"), "OPEN docs/notes.txt")
        << th::why("the next FILE is the next message (step C2)");
}

// Catches: a worker that hangs, crashes or exits 0 when the monitor disappears mid-request.
TEST(Ch06ClientSteps, C3_Recvmsg_MonitorGoneIsOneLineAndExit1) {
    Worker w({"hello.txt"});
    ASSERT_EQ(w.request().value_or("(none)"), "OPEN hello.txt")
        << th::why("the worker sends 'OPEN hello.txt' as one message (steps C1, C2)") << "\n"
        << w.err;
    w.ours.reset();  // the monitor dies before it answers
    EXPECT_EQ(w.wait_exit(), 1) << th::why("end of file instead of a reply: exit 1 (step C3)")
                                << "\n"
                                << w.err;
    EXPECT_NE(w.err.find("client: end of file on descriptor 3: the monitor is gone"),
              std::string::npos)
        << th::why("one clear line: 'client: end of file on descriptor 3: the monitor is gone'");
}

// Catches: opening FILE by name, not closing the received descriptor.
TEST(Ch06ClientSteps, C4_Read_CopiesThroughTheReceivedDescriptorAndClosesIt) {
    th::TempDir dir;
    const std::string content = "only a descriptor leads here\n";
    Worker w({"-"});
    w.write_stdin("gone.txt\n");
    ASSERT_EQ(w.request().value_or("(none)"), "OPEN gone.txt")
        << th::why("the worker sends 'OPEN gone.txt' as one message (steps C1, C2)") << "\n"
        << w.err;
    uds::Fd file = nameless_file(dir, content);
    w.reply("OK " + std::to_string(content.size()), file.get());
    EXPECT_TRUE(w.wait_out(content))
        << th::why(
               "the worker copies the file by reading the descriptor it received (it has no "
               "name any more) (step C4)")
        << "\n"
        << w.err;
    // Once the content is out, the worker waits on stdin again.
    EXPECT_EQ(fds_settle(w.pid, {0, 1, 2, 3}), (std::vector<int>{0, 1, 2, 3}))
        << th::why("the received descriptor is closed after the copy (step C4)");
    w.close_stdin();
    EXPECT_FALSE(w.request().has_value()) << th::why("stdin done: the worker half-closes (C6)");
    w.ours.reset();
    EXPECT_EQ(w.wait_exit(), 0) << th::why("one file copied: exit 0") << "\n" << w.err;
}

// Catches: mapping without looking at the seals, looking at only one of them.
TEST(Ch06ClientSteps, C5_Mmap_RefusesAnUnsealedBuffer) {
    for (int seals : {0, F_SEAL_SEAL, F_SEAL_SHRINK | F_SEAL_GROW, F_SEAL_WRITE | F_SEAL_SHRINK}) {
        Worker w({"--list"});
        ASSERT_EQ(w.request().value_or("(none)"), "LIST") << th::why("--list sends LIST (step C2)");
        const std::string listing = "        12  mutable.txt\n";
        uds::Fd buf = memfd_with(listing, seals);
        w.reply("OK " + std::to_string(listing.size()), buf.get());
        EXPECT_EQ(w.wait_exit(), 1) << th::why(
                                           "a buffer without all of F_SEAL_SHRINK, "
                                           "F_SEAL_GROW and F_SEAL_WRITE is refused: exit 1 "
                                           "(step C5, F_GET_SEALS)")
                                    << " seals " << seals;
        EXPECT_NE(w.err.find(kUnsealed), std::string::npos)
            << th::why("the refusal is the line: " + kUnsealed);
        EXPECT_EQ(w.out, "") << th::why("nothing of an unsealed buffer is shown");
    }
}

// Catches: read() into a buffer of our own (a copy) instead of mmap.
TEST(Ch06ClientSteps, C5_Mmap_MapsASealedBufferWithoutCopying) {
    const std::size_t size = 64u << 20;
    std::string content(size, 'x');
    for (std::size_t i = 0; i < size; i += 4096)
        content[i] = static_cast<char>('a' + (i / 4096) % 26);
    uds::Fd buf = memfd_with(content, kAllSeals);
    // stdout: a pipe we do not read yet, so the worker stops in write() with the buffer mapped.
    Worker w({"--list"});
    ASSERT_EQ(w.request().value_or("(none)"), "LIST")
        << th::why("the worker sends 'LIST' as one message (steps C1, C2)") << "\n"
        << w.err;
    w.reply("OK " + std::to_string(size), buf.get());
    bool mapped = false;
    for (th::Deadline d; !mapped; ::usleep(1000)) {
        mapped = slurp("/proc/" + std::to_string(w.pid) + "/maps").find("/memfd:ch06-test") !=
                 std::string::npos;
        if (!mapped && (d.expired() || !alive(w.pid))) break;
    }
    EXPECT_TRUE(mapped) << th::why("the worker maps the sealed memfd (mmap, step C5)");
    const std::string anon = status_field(w.pid, "RssAnon");
    EXPECT_LT(std::atol(anon.c_str()), 16 * 1024)
        << th::why(
               "mapping, not copying: the worker's private memory (RssAnon) stays far below "
               "the 64 MiB it shows (step C5)")
        << " RssAnon " << anon;
    w.ours.reset();  // our end of file: after this reply the session is over
    EXPECT_EQ(w.wait_exit(), 0) << th::why("a sealed listing is shown: exit 0") << "\n" << w.err;
    EXPECT_EQ(w.out.size(), 1u << 20) << th::why("the listing comes out on stdout");
    EXPECT_TRUE(w.out == content.substr(0, 1u << 20)) << th::why("byte for byte");
}

// Catches: exit without shutdown (the monitor sees ECONNRESET or nothing), close instead of a
// half-close (what is still coming is lost), exit before the monitor's end of file.
TEST(Ch06ClientSteps, C6_Shutdown_HalfClosesThenReadsWhatIsStillComing) {
    Tree t;
    Worker w({"hello.txt"});
    ASSERT_EQ(w.request().value_or("(none)"), "OPEN hello.txt")
        << th::why("the worker sends 'OPEN hello.txt' as one message (steps C1, C2)") << "\n"
        << w.err;
    uds::Fd file{::open((t.root + "/hello.txt").c_str(), O_RDONLY | O_CLOEXEC)};
    w.reply("OK " + std::to_string(kHello.size()), file.get());
    EXPECT_FALSE(w.request().has_value()) << th::why(
        "after its last request the worker half-closes: shutdown(SHUT_WR) gives the "
        "monitor end of file (step C6)");
    EXPECT_TRUE(alive(w.pid)) << th::why(
        "after shutdown(SHUT_WR) the worker still reads what is "
        "coming, until the monitor's end of file (step C6)");
    w.reply("one more message");
    w.ours.reset();
    EXPECT_EQ(w.wait_exit(), 0) << th::why("the monitor's end of file ends the session: exit 0")
                                << "\n"
                                << w.err;
    EXPECT_EQ(w.out, kHello) << th::why("the file was copied before the half-close (C4)");
}
