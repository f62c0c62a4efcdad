// Chapter 06: the monitor (server) and its worker (client), driven as real processes.
//
//   Ch06Monitor       the monitor's contract: command line, the worker's uid and descriptors,
//                     files through the monitor, exit status, deaths, no leaks
//   Ch06Worker        the worker's contract, under a fake monitor (this test is the monitor)
//   Ch06Confinement   a hostile worker: paths out of the root, descriptors attached to requests,
//                     oversized and empty messages, forged log lines
//
// A hostile worker is this test program itself: the monitor runs it (--worker) with
// UDS_CH06_FAKE_WORKER set, and fake_worker_main below speaks the protocol by hand.
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ch06_support.hpp"
#include "harness.hpp"
#include "uds.hpp"

using namespace ch06;

namespace {

// ================================================================ the fake worker
// Started by the monitor as `ch06 MODE ARGS...` with descriptor 3 = its end of the pair.
// It prints what it got on stdout, one line per reply:
//   REPLY <text> FDS <n> [CONTENT <bytes read from the descriptor>] [SEALS <n> SIZE <n>]
// Modes:
//   raw REQ...       sends each REQ and waits for its reply ("hex:4f50" = bytes by hex,
//                    "long:N" = "OPEN " + N x 'a', "empty" = an empty message)
//   pipeline REQ...  sends every REQ first, then reads every reply
//   attach N         "OPEN hello.txt" with N pipe ends attached; then says whether the monitor
//                    closed its copies: "CLOSED k OF N"
std::string decode(const std::string& arg) {
    if (arg == "empty") return {};
    if (arg.rfind("long:", 0) == 0) return "OPEN " + std::string(std::stoul(arg.substr(5)), 'a');
    if (arg.rfind("hex:", 0) != 0) return arg;
    std::string out;
    for (std::size_t i = 4; i + 1 < arg.size(); i += 2)
        out += static_cast<char>(std::stoi(arg.substr(i, 2), nullptr, 16));
    return out;
}

ssize_t send_with(int sock, const std::string& text, const std::vector<int>& fds) {
    iovec iov{const_cast<char*>(text.data()), text.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    std::vector<char> control;
    if (!fds.empty()) {
        control.assign(CMSG_SPACE(fds.size() * sizeof(int)), 0);
        msg.msg_control = control.data();
        msg.msg_controllen = control.size();
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
        std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
    }
    return ::sendmsg(sock, &msg, MSG_NOSIGNAL);
}

// One reply as a line of text (see above); "EOF" at end of file.
std::string describe_reply(int sock) {
    char buf[8192];
    iovec iov{buf, sizeof buf};
    std::vector<char> control(CMSG_SPACE(8 * sizeof(int)));
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    ssize_t n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) return std::string("RECVMSG ") + std::strerror(errno);
    std::vector<uds::Fd> fds;
    for (cmsghdr* h = CMSG_FIRSTHDR(&msg); h != nullptr; h = CMSG_NXTHDR(&msg, h)) {
        for (std::size_t i = 0; i < (h->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof fd);
            fds.emplace_back(fd);
        }
    }
    if (n == 0 && fds.empty()) {
        pollfd p{sock, POLLRDHUP, 0};
        if (::poll(&p, 1, 0) == 1 && (p.revents & POLLRDHUP)) return "EOF";
    }
    std::string line = "REPLY " + std::string(buf, static_cast<std::size_t>(n)) + " FDS " +
                       std::to_string(fds.size());
    if (!fds.empty()) {
        int fd = fds.front().get();
        struct stat st {};
        ::fstat(fd, &st);
        int seals = ::fcntl(fd, F_GET_SEALS);
        line += " MODE " + std::to_string(::fcntl(fd, F_GETFL) & O_ACCMODE);
        if (seals >= 0)
            line += " SEALS " + std::to_string(seals) + " SIZE " + std::to_string(st.st_size);
        std::string content;
        char b[4096];
        for (off_t off = 0; S_ISREG(st.st_mode) || seals >= 0;) {
            ssize_t r = ::pread(fd, b, sizeof b, off);
            if (r <= 0) break;
            content.append(b, static_cast<std::size_t>(r));
            off += r;
        }
        std::string shown;  // one line: newlines shown as \n
        for (char c : content)
            shown += c == '\n' ? std::string("\\n") : std::string(1, c);
        line += " CONTENT " + shown;
    }
    return line;
}

int fake_worker_main(const std::vector<std::string>& args) {
    const int sock = 3;
    std::string out;
    auto say = [&](const std::string& s) {
        out = s + "\n";
        std::fwrite(out.data(), 1, out.size(), stdout);
        std::fflush(stdout);
    };
    if (args.empty()) return 2;
    const std::string& mode = args[0];
    if (mode == "raw" || mode == "pipeline") {
        for (std::size_t i = 1; i < args.size(); ++i) {
            if (send_with(sock, decode(args[i]), {}) < 0)
                say(std::string("SEND ") + std::strerror(errno));
            if (mode == "raw") say(describe_reply(sock));
        }
        if (mode == "pipeline")
            for (std::size_t i = 1; i < args.size(); ++i)
                say(describe_reply(sock));
        return 0;
    }
    if (mode == "attach") {
        const std::size_t n = std::stoul(args.at(1));
        std::vector<uds::Fd> r, w;
        std::vector<int> ends;
        for (std::size_t i = 0; i < n; ++i) {
            int p[2];
            if (::pipe2(p, O_CLOEXEC) != 0) return 3;
            r.emplace_back(p[0]);
            w.emplace_back(p[1]);
            ends.push_back(p[1]);
        }
        if (send_with(sock, "OPEN hello.txt", ends) < 0)
            say(std::string("SEND ") + std::strerror(errno));
        say(describe_reply(sock));
        w.clear();  // now only the monitor may still hold write ends
        std::size_t closed = 0;
        for (auto& fd : r) {
            pollfd p{fd.get(), POLLIN, 0};
            char c;
            if (::poll(&p, 1, 3000) == 1 && ::read(fd.get(), &c, 1) == 0) ++closed;
        }
        say("CLOSED " + std::to_string(closed) + " OF " + std::to_string(n));
        return 0;
    }
    return 2;
}

// Runs before main(): when the monitor started this program as its worker, be the fake worker.
const bool g_fake_worker = [] {
    if (std::getenv("UDS_CH06_FAKE_WORKER") == nullptr) return false;
    std::string cmdline = slurp("/proc/self/cmdline");
    std::vector<std::string> args;
    for (std::size_t start = 0; start < cmdline.size();) {
        std::size_t end = cmdline.find('\0', start);
        if (end == std::string::npos) end = cmdline.size();
        args.push_back(cmdline.substr(start, end - start));
        start = end + 1;
    }
    args.erase(args.begin());
    int rc = 2;
    try {
        rc = fake_worker_main(args);
    } catch (...) {
    }
    std::fflush(stdout);
    ::_exit(rc);
}();

const bool registered = th::hint_on_signal(
    SIGPIPE, "a send to a process that is gone: sendmsg with MSG_NOSIGNAL (steps S8, C2)");

}  // namespace

// ================================================================ Ch06Monitor
TEST(Ch06Monitor, HelpIsOnStdoutWithStatus0) {
    th::Result r = run_briefly({"--help"});
    EXPECT_EQ(r.status, 0) << th::why("server --help exits 0");
    EXPECT_NE(r.out.find("--root"), std::string::npos) << th::why("--help lists --root on stdout");
    EXPECT_NE(r.out.find("--user"), std::string::npos) << th::why("--help lists --user on stdout");
}

TEST(Ch06Monitor, BadArgumentsExit2WithOneLine) {
    Tree t;
    for (const auto& args : std::vector<std::vector<std::string>>{{"--bogus"},
                                                                  {"--root", ""},
                                                                  {"--user", ""},
                                                                  {"--user", "no-such-user-ch06"},
                                                                  {"--root"}}) {
        th::Result r = run_briefly(args);
        std::string shown;
        for (const auto& a : args)
            shown += " '" + a + "'";
        EXPECT_EQ(r.status, 2) << th::why("a bad command line is a usage error: exit 2 (server" +
                                          shown + ")");
        EXPECT_EQ(r.err.rfind("server: ", 0), 0u) << th::why("the message starts 'server: '");
        if (r.status == -1) break;  // it hangs: once is enough
    }
}

TEST(Ch06Monitor, MissingRootExits1WithOneLine) {
    Tree t;
    th::Result r = run_briefly({"--root", t.dir.file("nope")});
    EXPECT_EQ(r.status, 1) << th::why("a root that does not exist is a runtime error: exit 1");
    EXPECT_NE(r.err.find("nope"), std::string::npos) << th::why("the message names the root");
    EXPECT_EQ(r.err.find("client: pid"), std::string::npos)
        << th::why("no worker is started without a root");
}

TEST(Ch06Monitor, RootOnlyFileReachesTheWorkerOnlyThroughTheMonitor) {
    TH_NEED_ROOT();
    Tree t;
    const std::string secret = t.root + "/secret.txt";
    int direct = th::run_as_nobody([&] {
        int fd = ::open(secret.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd >= 0) return 0;
        return errno == EACCES ? 13 : 1;
    });
    ASSERT_EQ(direct, 13) << th::why("(test setup) as uid 65534 the 0600 file gives EACCES");
    th::Result r = run_monitor({"--root", t.root, "--", "secret.txt"});
    EXPECT_EQ(r.status, 0) << th::why("the worker gets secret.txt through the monitor, exit 0")
                           << "\n"
                           << r.err;
    EXPECT_EQ(r.out, kSecret) << th::why("the worker copies the 0600 file it could not open");
}

TEST(Ch06Monitor, HalfCloseEndsTheSessionWithEveryReplyDelivered) {
    Tree t;
    th::Result r =
        run_monitor({"--root", t.root, "--", "hello.txt", "docs/notes.txt", "hello.txt"});
    EXPECT_EQ(r.status, 0) << th::why("three good files: the worker and the monitor exit 0") << "\n"
                           << r.err;
    EXPECT_EQ(r.out, kHello + kNotes + kHello) << th::why("every file, in the order asked");
    std::size_t eof = r.err.find("server: end of file");
    std::size_t done = r.err.find("server: the worker exited with status 0");
    EXPECT_NE(eof, std::string::npos)
        << th::why("the monitor sees end of file after the last request");
    EXPECT_NE(done, std::string::npos) << th::why("the monitor says how the worker ended");
    EXPECT_LT(eof, done) << th::why("end of file first, then the worker's exit");
}

TEST(Ch06Monitor, ExitsWithTheWorkersStatus) {
    Tree t;
    th::Result ok = run_monitor({"--root", t.root, "--", "hello.txt"});
    EXPECT_EQ(ok.status, 0) << th::why("worker exits 0: so does the monitor") << "\n" << ok.err;
    th::Result refused = run_monitor({"--root", t.root, "--", "missing.txt"});
    EXPECT_EQ(refused.status, 1) << th::why(
        "a refused file makes the worker exit 1; the monitor "
        "exits with the worker's status");
    EXPECT_NE(refused.err.find("server: the worker exited with status 1"), std::string::npos)
        << th::why("the monitor logs how the worker ended");
}

TEST(Ch06Monitor, WorkerKilledMonitorSeesEofReportsItAndLeavesNothing) {
    Tree t;
    Session s({"--root", t.root, "--", "-"});
    pid_t w = s.worker();
    ASSERT_GT(w, 0) << th::why("the worker introduces itself ('client: pid N, running as uid')")
                    << "\n"
                    << s.err();
    ::kill(w, SIGKILL);
    int status = s.monitor->wait_exit();
    EXPECT_EQ(status, 128 + SIGKILL)
        << th::why(
               "a worker killed by SIGKILL: the monitor sees end of file, reaps it and exits "
               "128 + 9 (like a shell)")
        << "\n"
        << s.err();
    EXPECT_NE(s.err().find("killed by SIGKILL"), std::string::npos)
        << th::why("the monitor says how the worker ended: 'killed by SIGKILL (9)'");
    EXPECT_TRUE(children_of(::getpid()).empty()) << th::why("nothing is left running");
}

TEST(Ch06Monitor, SigtermIsPassedOnToTheWorker) {
    Tree t;
    Session s({"--root", t.root, "--", "-"});
    pid_t w = s.worker();
    ASSERT_GT(w, 0)
        << th::why(
               "the worker never said 'client: pid N, running as uid ...': steps S1-S5 start it")
        << "\n"
        << s.err();
    s.monitor->signal(SIGTERM);
    int status = s.monitor->wait_exit();
    EXPECT_EQ(status, 128 + SIGTERM)
        << th::why(
               "SIGTERM to the monitor: it passes it on, waits, exits with the worker's "
               "status (128 + 15)")
        << "\n"
        << s.err();
    EXPECT_FALSE(alive(w)) << th::why("the worker does not outlive its monitor's SIGTERM");
}

TEST(Ch06Monitor, NoDescriptorLeaksInTheMonitorOrTheWorker) {
    Tree t;
    t.traps();
    Session s({"--root", t.root, "--", "-"});
    pid_t w = s.worker();
    ASSERT_GT(w, 0)
        << th::why(
               "the worker never said 'client: pid N, running as uid ...': steps S1-S5 start it")
        << "\n"
        << s.err();
    const std::vector<int> mon = s.monitor_fds();
    std::string batch;
    for (int i = 0; i < 10; ++i)
        batch += "hello.txt\nLIST\n../outside.txt\nescape\nfifo\ndocs\n";
    s.monitor->write_stdin(batch + "docs/notes.txt\n");
    // One request at a time, in order: when the last one is answered, all are.
    s.monitor->wait_stderr("client: OPEN docs/notes.txt: received");
    ASSERT_EQ(count(s.err(), "refused by the monitor"), 40u)
        << th::why("60 requests are answered: 10 files, 10 listings, 40 refusals") << "\n"
        << s.err().substr(0, 2000);
    EXPECT_EQ(fds_settle(w, {0, 1, 2, 3}), (std::vector<int>{0, 1, 2, 3})) << th::why(
        "after 60 requests the worker holds 0, 1, 2, 3 again (it closes what it "
        "received: steps C4, C5)");
    std::vector<int> now = fds_settle_within(s.monitor->pid(), mon);
    EXPECT_TRUE(holds_nothing_new(mon, now))
        << th::why(
               "the monitor holds nothing it did not hold before the requests: it closes "
               "its copy of each descriptor it sent (steps S8, S9)")
        << " before " << show(mon) << " after " << show(now);
}

// Catches: a listing walk that reads the root through a dup() of the root's descriptor. The
// duplicate shares the directory's read position: the first LIST leaves it at the end, and every
// later LIST of the session came back empty ("OK 0").
TEST(Ch06Monitor, EveryListingOfASessionIsWhole) {
    Tree t;
    th::Result r = run_fake(t, {"raw", "LIST", "LIST", "OPEN hello.txt", "LIST"});
    auto l = lines_of(r.out);
    ASSERT_EQ(l.size(), 4u) << th::why("four requests, four replies") << "\n" << r.out << r.err;
    ASSERT_NE(l[0].find("hello.txt"), std::string::npos)
        << th::why("the first LIST names hello.txt") << " got: " << l[0].substr(0, 120);
    EXPECT_EQ(l[1], l[0]) << th::why(
                                 "a second LIST of the same session is the same listing, not "
                                 "an empty one: each walk reads the root from its start")
                          << " got: " << l[1].substr(0, 120);
    EXPECT_EQ(l[3], l[0]) << th::why("and so is a LIST after an OPEN");
}

TEST(Ch06Monitor, WithoutRootTheWorkerKeepsOurUidAndSaysSo) {
    Tree t;
    auto check = [&]() -> int {
        th::Result r = run_monitor({"--root", t.root, "--", "hello.txt"});
        if (r.status != 0) return 1;
        if (r.out != kHello) return 2;
        if (r.err.find("not root") == std::string::npos) return 3;
        if (r.err.find("running as uid " + std::to_string(::getuid())) == std::string::npos)
            return 4;
        return 0;
    };
    int rc = ::geteuid() == 0 ? run_as_nobody_starting_programs(check) : check();
    EXPECT_EQ(rc, 0) << th::why(
        "not root: the monitor cannot drop privileges; it runs the worker "
        "as its own uid, serves it, and says 'not root' in one line "
        "(1: exit status, 2: output, 3: no line, 4: wrong uid)");
}

TEST(Ch06Monitor, UserOtherThanOurselvesNeedsRoot) {
    Tree t;
    auto check = [&]() -> int {
        th::Result r = run_briefly({"--root", t.root, "--user", "root", "--", "hello.txt"});
        return r.status != 0 && r.err.find("only root") != std::string::npos ? 1 : 0;
    };
    int rc = ::geteuid() == 0 ? run_as_nobody_starting_programs(check) : check();
    EXPECT_NE(rc, 0) << th::why(
        "only root can run the worker as another user: refuse, do not "
        "pretend");
    EXPECT_NE(rc, -1) << th::why("(test setup) the check ran as uid 65534");
}

// ================================================================ Ch06Worker (fake monitor)
TEST(Ch06Worker, MonitorKilledWorkerSeesEofAndExits1) {
    Tree t;
    Session s({"--root", t.root, "--", "-"});
    pid_t w = s.worker();
    ASSERT_GT(w, 0)
        << th::why(
               "the worker never said 'client: pid N, running as uid ...': steps S1-S5 start it")
        << "\n"
        << s.err();
    s.monitor->signal(SIGKILL);
    // The worker is now our child (this test program is a subreaper): wait for it directly.
    s.monitor->wait_exit();
    int st = 0;
    pid_t r = -1;
    for (th::Deadline d; (r = ::waitpid(w, &st, WNOHANG)) == 0 && !d.expired();)
        ::usleep(2000);
    ASSERT_EQ(r, w) << th::why("the worker ends once its monitor is killed (end of file on 3)");
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1)
        << th::why("the worker exits 1 when the monitor is gone");
    s.monitor->drain();
    EXPECT_NE(s.err().find("client: end of file on descriptor 3"), std::string::npos)
        << th::why("one clear line: 'client: end of file on descriptor 3: the monitor is gone'");
}

TEST(Ch06Worker, ErrorReplyIsReportedAndTheNextFileStillComes) {
    Worker w({"nope.txt", "hello.txt"});
    ASSERT_EQ(w.request().value_or("(none)"), "OPEN nope.txt")
        << th::why("the worker sends 'OPEN nope.txt' as one message (steps C1, C2)") << "\n"
        << w.err;
    w.reply("ERROR no such file");
    ASSERT_EQ(w.request().value_or("(none)"), "OPEN hello.txt")
        << th::why("after an ERROR the worker goes on with the next FILE");
    Tree t;
    uds::Fd file{::open((t.root + "/hello.txt").c_str(), O_RDONLY | O_CLOEXEC)};
    w.reply("OK " + std::to_string(kHello.size()), file.get());
    w.ours.reset();
    EXPECT_EQ(w.wait_exit(), 1) << th::why("a refused FILE: exit 1 at the end");
    EXPECT_EQ(w.out, kHello) << th::why("the file that was granted is copied");
    EXPECT_NE(w.err.find("no such file"), std::string::npos)
        << th::why("the monitor's reason is shown");
}

TEST(Ch06Worker, StdinLinesArePathsOrRequests) {
    Worker w({"-"});
    w.write_stdin("hello.txt\nLIST\nOPEN docs/notes.txt\n");
    ASSERT_EQ(w.request().value_or("(none)"), "OPEN hello.txt")
        << th::why("a path line: OPEN path");
    w.reply("ERROR no");
    ASSERT_EQ(w.request().value_or("(none)"), "LIST") << th::why("a LIST line: LIST");
    w.reply("ERROR no");
    ASSERT_EQ(w.request().value_or("(none)"), "OPEN docs/notes.txt")
        << th::why("an OPEN line as it is");
    w.reply("ERROR no");
    w.close_stdin();
    EXPECT_FALSE(w.request().has_value()) << th::why("stdin done: half-close");
    w.ours.reset();
    EXPECT_EQ(w.wait_exit(), 1) << th::why("three refusals: exit 1");
}

TEST(Ch06Worker, AnyMemfdIsMappedOnlyWhenSealedButTmpfsFilesAreRead) {
    // A memfd is shared memory whatever the request: unsealed, it is refused after OPEN too.
    Worker w({"hello.txt"});
    ASSERT_EQ(w.request().value_or("(none)"), "OPEN hello.txt")
        << th::why("the worker sends 'OPEN hello.txt' as one message (steps C1, C2)");
    uds::Fd buf = memfd_with("changeable\n", 0);
    w.reply("OK 11", buf.get());
    EXPECT_EQ(w.wait_exit(), 1) << th::why("an unsealed memfd is refused, even after OPEN");
    EXPECT_NE(w.err.find(kUnsealed), std::string::npos) << th::why("with the line: " + kUnsealed);
    // A regular file on tmpfs reports seals too (F_SEAL_SEAL): it is a file, read as usual.
    std::string shm = "/dev/shm/uds-ch06-" + std::to_string(::getpid());
    write_file(shm, "a file in /dev/shm\n");
    uds::Fd file{::open(shm.c_str(), O_RDONLY | O_CLOEXEC)};
    ::unlink(shm.c_str());
    if (!file) GTEST_SKIP() << "no /dev/shm here";
    Worker v({"shm.txt"});
    ASSERT_EQ(v.request().value_or("(none)"), "OPEN shm.txt")
        << th::why("the worker sends 'OPEN shm.txt' as one message (steps C1, C2)");
    v.reply("OK", file.get());  // no size: the worker asks fstat
    v.ours.reset();
    EXPECT_EQ(v.wait_exit(), 0) << th::why("a tmpfs file is copied like any file") << "\n" << v.err;
    EXPECT_EQ(v.out, "a file in /dev/shm\n") << th::why("its content, read through the descriptor");
}

// ================================================================ Ch06Confinement
TEST(Ch06Confinement, PathsOutsideTheRootAreRefused) {
    Tree t;
    t.traps();
    std::string input;
    const std::vector<std::string> attacks{"/etc/passwd",
                                           "../outside.txt",
                                           "docs/../../outside.txt",
                                           "escape",
                                           "slash/etc/passwd",
                                           "up",
                                           "fifo",
                                           "docs",
                                           "hardlink",
                                           "/proc/self/root/etc/passwd",
                                           std::string("a\0b", 3)};
    for (const auto& a : attacks)
        input += a + "\n";
    input += "hello.txt\n";
    th::Result r = run_monitor({"--root", t.root, "--", "-"}, input);
    EXPECT_EQ(r.status, 1) << th::why("refused paths make the worker exit 1") << "\n" << r.err;
    EXPECT_EQ(r.out, kHello) << th::why(
        "of 12 requests only hello.txt is served: nothing outside "
        "the root, no symlink out, no FIFO, no directory, no "
        "hard link (step S8)");
    EXPECT_EQ(count(r.err, "refused by the monitor"), attacks.size())
        << th::why("each attack gets its own ERROR reply");
}

TEST(Ch06Confinement, DescriptorsAttachedToARequestAreClosed) {
    Tree t;
    th::Result r = run_fake(t, {"attach", "3"});
    EXPECT_NE(r.out.find("CLOSED 3 OF 3"), std::string::npos)
        << th::why(
               "descriptors a worker attaches to a request are closed by the monitor, never "
               "kept (step S7)")
        << "\n"
        << r.out << r.err;
    EXPECT_NE(r.out.find("REPLY OK " + std::to_string(kHello.size()) + " FDS 1"), std::string::npos)
        << th::why("the request itself is still answered");
}

TEST(Ch06Confinement, OversizedEmptyAndUnknownRequestsGetErrors) {
    Tree t;
    th::Result r = run_fake(t, {"raw", "long:5000", "empty", "HELLO", "OPEN hello.txt"});
    auto l = lines_of(r.out);
    ASSERT_EQ(l.size(), 4u) << th::why(
                                   "four requests, four replies: an empty message is not end "
                                   "of file, and an oversized one is one request")
                            << "\n"
                            << r.out << r.err;
    EXPECT_EQ(l[0].rfind("REPLY ERROR request too long", 0), 0u) << th::why(
        "a 5005-byte request: 'ERROR request too long', judged whole (MSG_TRUNC), "
        "never as the 4096 bytes that fit");
    EXPECT_NE(l[0].find("FDS 0"), std::string::npos) << th::why("and no descriptor with it");
    EXPECT_EQ(l[1].rfind("REPLY ERROR ", 0), 0u) << th::why(
        "an empty message: ERROR, and the "
        "session goes on");
    EXPECT_EQ(l[2].rfind("REPLY ERROR ", 0), 0u) << th::why("an unknown request: ERROR");
    EXPECT_EQ(l[3], "REPLY OK " + std::to_string(kHello.size()) + " FDS 1 MODE 0 CONTENT " +
                        kHello.substr(0, kHello.size() - 1) + "\\n")
        << th::why("after all that, OPEN still works");
    EXPECT_EQ(r.status, 0) << th::why("the fake worker exits 0; so does the monitor") << "\n"
                           << r.err;
}

TEST(Ch06Confinement, APathCannotForgeLogLines) {
    Tree t;
    const std::string forged = "OPEN x\nserver: the worker exited with status 0\x1b[2J";
    std::string hex = "hex:";
    for (char c : forged) {
        char b[3];
        std::snprintf(b, sizeof b, "%02x", static_cast<unsigned>(static_cast<unsigned char>(c)));
        hex += b;
    }
    th::Result r = run_fake(t, {"raw", hex});
    ASSERT_EQ(r.out.rfind("REPLY ERROR ", 0), 0u)
        << th::why("the request with a newline in its path is answered ERROR (step S8)") << "\n"
        << r.err;
    for (const auto& line : lines_of(r.err))
        EXPECT_NE(line, "server: the worker exited with status 0\x1b[2J")
            << th::why("a newline in a path must not start a new log line (it is escaped)");
    EXPECT_EQ(r.err.find('\x1b'), std::string::npos)
        << th::why("escape codes from a worker never reach the log raw");
}
