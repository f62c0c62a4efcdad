// Chapter 01 tests. They drive the real server and client binaries (so make grade-01 runs them
// against a student's programs too):
//   Ch01Steps, Ch01ClientSteps   one test (or a few) per lesson step, in step order; each says
//                                which step to look at when it fails
//   Ch01Contract                 the upper-casing service as other programs see it
//   Ch01Server, Ch01Client       the rest of each program's behaviour (stale files, the lock,
//                                usage errors, the default address)
//   Ch01Hostile                  peers that try to hold, fool or break the server
//   Ch01Interop                  Python and socat as clients
// and, not graded: Ch01Reference (exact wording of the reference programs) and Ch01Semantics
// (the kernel behaviour 01-stream-path/README.md claims, without our programs).
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>
#include <type_traits>

#include <gtest/gtest.h>

#include "harness.hpp"
#include "uds.hpp"

namespace {

const std::string kChapter = "01-stream-path";

// How the grader explains a program killed by SIGPIPE. Server tests keep this one; tests of the
// client switch to kClientSigpipe for their duration (ClientSigpipeHint).
const std::string kServerSigpipe = "send with MSG_NOSIGNAL (step S5b)";
const std::string kClientSigpipe = "send with MSG_NOSIGNAL (step C3)";
const bool kHintRegistered = th::hint_on_signal(SIGPIPE, kServerSigpipe);

struct ClientSigpipeHint {
    ClientSigpipeHint() { th::hint_on_signal(SIGPIPE, kClientSigpipe); }
    ~ClientSigpipeHint() { th::hint_on_signal(SIGPIPE, kServerSigpipe); }
    ClientSigpipeHint(const ClientSigpipeHint&) = delete;
    ClientSigpipeHint& operator=(const ClientSigpipeHint&) = delete;
};

// ------------------------------------------------------------------ what the kernel says
// A socket as /proc/net/unix lists it: what the kernel holds, whatever the program believes.
struct UnixSocket {
    unsigned long inode = 0;
    unsigned flags = 0;  // 0x10000 (__SO_ACCEPTCON): a listening socket
    unsigned type = 0;   // 1 SOCK_STREAM, 2 SOCK_DGRAM, 5 SOCK_SEQPACKET
    std::string path;    // the name it is bound to ("" when unnamed)
};

std::vector<UnixSocket> proc_net_unix() {
    std::vector<UnixSocket> out;
    std::ifstream f("/proc/net/unix");
    std::string line;
    std::getline(f, line);  // the header
    while (std::getline(f, line)) {
        UnixSocket s;
        unsigned refs = 0, proto = 0, state = 0;
        int used = 0;
        if (std::sscanf(line.c_str(), "%*s %x %x %x %x %x %lu%n", &refs, &proto, &s.flags, &s.type,
                        &state, &s.inode, &used) < 6)
            continue;
        if (static_cast<std::size_t>(used) + 1 < line.size())
            s.path = line.substr(static_cast<std::size_t>(used) + 1);
        out.push_back(s);
    }
    return out;
}

// The socket descriptors of a process: {descriptor number, socket inode}, from /proc/PID/fd.
std::vector<std::pair<int, unsigned long>> socket_fds(pid_t pid) {
    std::vector<std::pair<int, unsigned long>> out;
    const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return out;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        char target[256];
        ssize_t n = ::readlink((dir + "/" + e->d_name).c_str(), target, sizeof target - 1);
        if (n <= 0) continue;
        target[n] = '\0';
        unsigned long inode = 0;
        if (std::sscanf(target, "socket:[%lu]", &inode) == 1)
            out.emplace_back(std::atoi(e->d_name), inode);
    }
    ::closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

// The open-file flags of a process's descriptor (O_CLOEXEC, O_NONBLOCK...), from fdinfo.
unsigned fd_flags(pid_t pid, int fd) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/fdinfo/" + std::to_string(fd));
    std::string key;
    while (f >> key)
        if (key == "flags:") {
            std::string octal;
            f >> octal;
            return static_cast<unsigned>(std::stoul(octal, nullptr, 8));
        }
    return 0;
}

// The server's listening socket and the other sockets it holds (accepted connections).
struct ServerSockets {
    int listener_fd = -1;
    UnixSocket listener;
    std::vector<int> others;
};

ServerSockets server_sockets(pid_t pid) {
    ServerSockets s;
    const auto table = proc_net_unix();
    for (const auto& [fd, inode] : socket_fds(pid)) {
        auto it = std::find_if(table.begin(), table.end(),
                               [inode = inode](const UnixSocket& u) { return u.inode == inode; });
        if (it != table.end() && (it->flags & 0x10000) != 0 && s.listener_fd < 0) {
            s.listener_fd = fd;
            s.listener = *it;
        } else {
            s.others.push_back(fd);
        }
    }
    return s;
}

// CPU time (user + system) a process has used so far, in milliseconds.
long cpu_ms(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    auto close_paren = all.rfind(')');
    if (close_paren == std::string::npos) return -1;
    std::istringstream rest(all.substr(close_paren + 2));
    std::string field;
    long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {  // fields 14 and 15: utime, stime
        if (i == 14) utime = std::stol(field);
        if (i == 15) stime = std::stol(field);
    }
    return (utime + stime) * 1000 / ::sysconf(_SC_CLK_TCK);
}

bool is_socket_file(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

// Every socket file in a directory (to show where a server did bind when it was not where asked).
std::vector<std::string> socket_files_in(const std::string& dir) {
    std::vector<std::string> out;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return out;
    while (dirent* e = ::readdir(d))
        if (is_socket_file(dir + "/" + e->d_name)) out.emplace_back(e->d_name);
    ::closedir(d);
    return out;
}

// ------------------------------------------------------------------ the fixture
class Ch01 : public ::testing::Test {
  protected:
    th::TempDir tmp;
    std::string sock = tmp.file("s.sock");
    uds::Address addr = uds::Address::path(sock);  // the tests' own address helper (common/)

    std::unique_ptr<th::Process> start_server(std::vector<std::string> extra = {}) {
        std::vector<std::string> args{"-s", sock};
        args.insert(args.end(), extra.begin(), extra.end());
        return th::start_server(th::bin(kChapter, "server"), args);
    }
    std::unique_ptr<th::Process> start_server_with(const std::vector<std::string>& args,
                                                   th::Process::Options opts = {}) {
        return th::start_server(th::bin(kChapter, "server"), args, "listening on", opts);
    }
    th::Result client(std::vector<std::string> args, std::string_view input = {},
                      th::Process::Options opts = {}) {
        args.insert(args.begin(), {"-s", sock});
        return th::run(th::bin(kChapter, "client"), args, input, opts);
    }
    // One request/response over a raw socket, like any outside client would do it.
    std::string ask(std::string_view request) {
        uds::Fd c = th::connect_stream(addr);
        th::send_all(c.get(), request);
        ::shutdown(c.get(), SHUT_WR);
        return th::read_to_eof(c.get());
    }
    // A path of exactly n bytes in our directory.
    std::string path_of_length(std::size_t n, char fill) const {
        std::string base = tmp.path() + "/";
        return base + std::string(n - base.size(), fill);
    }
};

// ------------------------------------------------------------------ one test per server step
using Ch01Steps = Ch01;

TEST_F(Ch01Steps, S1_Socket_ListenerIsAStreamSocketClosedOnExec) {
    auto server = start_server();
    auto s = server_sockets(server->pid());
    ASSERT_GE(s.listener_fd, 0) << th::why(
        "the server says it listens, but holds no listening AF_UNIX socket (steps S1, S3)");
    EXPECT_EQ(s.listener.type, 1u) << th::why("the listening socket must be SOCK_STREAM (step S1)");
    EXPECT_NE(fd_flags(server->pid(), s.listener_fd) & O_CLOEXEC, 0u) << th::why(
        "create the listening socket with SOCK_CLOEXEC, so that a program the server "
        "might exec does not inherit it (step S1)");
}

TEST_F(Ch01Steps, S2a_Name_TheKernelHoldsExactlyThePath) {
    auto server = start_server();
    auto s = server_sockets(server->pid());
    ASSERT_GE(s.listener_fd, 0) << th::why("the server holds no listening socket (steps S1-S3)");
    EXPECT_EQ(s.listener.path, sock) << th::why(
        "the kernel has the listening socket bound to '" + s.listener.path.substr(0, 120) +
        "', not to the -s path: copy the whole path into a zeroed sun_path, and count "
        "offsetof(sockaddr_un, sun_path) + its length + 1 (step S2a)");
    // What a client sees: the name getpeername reports on a connected socket, and its length.
    uds::Fd c{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    ASSERT_EQ(::connect(c.get(), addr.sockaddr_ptr(), addr.length()), 0) << th::why(
        "a client cannot connect to the -s path: was the socket bound there? (step S2a)");
    sockaddr_un peer{};
    socklen_t len = sizeof peer;
    ASSERT_EQ(::getpeername(c.get(), reinterpret_cast<sockaddr*>(&peer), &len), 0);
    EXPECT_EQ(len, offsetof(sockaddr_un, sun_path) + sock.size() + 1) << th::why(
        "the name's length must be offsetof(sockaddr_un, sun_path) + path length + 1 "
        "(step S2a)");
    EXPECT_EQ(std::string(peer.sun_path), sock);
}

TEST_F(Ch01Steps, S2a_Name_107BytesFitAnd108BytesAreAUsageError) {
    const std::string p108 = path_of_length(108, 'p');
    auto r = th::run(th::bin(kChapter, "server"), {"-s", p108});
    EXPECT_EQ(r.status, 2) << th::why(
        "a 108-byte path does not fit in sun_path (108 bytes, its NUL included): refuse it with a "
        "usage error, exit status 2, never truncate it (step S2a)");
    EXPECT_EQ(r.err.rfind("server: ", 0), 0u)
        << th::why("a refused path gets one line on stderr starting with 'server: ' (step S2a)");
    EXPECT_TRUE(socket_files_in(tmp.path()).empty()) << th::why(
        "a path that does not fit must not be bound at all, not even shortened (step "
        "S2a)");
    // The longest path that fits: 107 bytes and its NUL.
    const std::string p107 = path_of_length(107, 'q');
    auto server = start_server_with({"-s", p107});
    EXPECT_TRUE(is_socket_file(p107)) << th::why(
        "a 107-byte path fits (107 bytes and the NUL fill sun_path): bind must accept it (step "
        "S2a)");
}

TEST_F(Ch01Steps, S2b_Bind_CreatesASocketFileAtThePath) {
    auto server = start_server();
    struct stat st {};
    ASSERT_EQ(::lstat(sock.c_str(), &st), 0)
        << th::why("no file at the -s path: bind creates the socket file (step S2b)");
    EXPECT_TRUE(S_ISSOCK(st.st_mode))
        << th::why("the file at the -s path must be a socket (step S2b)");
}

TEST_F(Ch01Steps, S3_Listen_ClientsWaitInTheQueueWhileTheServerIsBusy) {
    auto server = start_server();
    uds::Fd busy = th::connect_stream(addr);
    th::send_all(busy.get(), "busy\n");
    ASSERT_EQ(th::read_line(busy.get()), "BUSY\n")
        << th::why("the server must answer a first client (steps S4, S5a, S5b)");
    std::vector<uds::Fd> waiting;
    for (int i = 0; i < 3; ++i) {
        uds::Fd c{::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
        ASSERT_EQ(::connect(c.get(), addr.sockaddr_ptr(), addr.length()), 0) << th::why(
            "while the server serves one client, three more must be able to connect and wait "
            "in the listen queue: listen with a backlog of at least 2 (step S3)");
        th::send_all(c.get(), "wait " + std::to_string(i) + "\n");
        waiting.push_back(std::move(c));
    }
    busy.reset();  // the first client leaves: the queued ones are served in turn
    for (int i = 0; i < 3; ++i) {
        ASSERT_EQ(th::read_line(waiting[static_cast<std::size_t>(i)].get()),
                  "WAIT " + std::to_string(i) + "\n")
            << th::why("each queued client is served once the one before it has left (step S3)");
        waiting[static_cast<std::size_t>(i)].reset();
    }
}

TEST_F(Ch01Steps, S4_Accept4_TheConnectionIsANewDescriptorClosedOnExec) {
    auto server = start_server();
    uds::Fd c = th::connect_stream(addr);
    th::send_all(c.get(), "x\n");
    ASSERT_EQ(th::read_line(c.get()), "X\n")
        << th::why("the server must accept a connection and answer it (steps S4, S5a, S5b)");
    auto s = server_sockets(server->pid());
    ASSERT_EQ(s.others.size(), 1u) << th::why(
        "while it serves one client the server holds one accepted socket besides the listener "
        "(step S4)");
    EXPECT_NE(fd_flags(server->pid(), s.others[0]) & O_CLOEXEC, 0u) << th::why(
        "accepted sockets must be close-on-exec too: accept4(..., SOCK_CLOEXEC), not "
        "plain accept (step S4)");
}

TEST_F(Ch01Steps, S5a_Read_TwoLinesInOneWriteAreTwoReplies) {
    auto server = start_server();
    uds::Fd c = th::connect_stream(addr);
    th::send_all(c.get(), "one\ntwo\n");  // one write; the server will most likely read it at once
    ASSERT_EQ(th::read_line(c.get()), "ONE\n")
        << th::why("the first of two lines sent in one write is answered (step S5a)");
    EXPECT_EQ(th::read_line(c.get()), "TWO\n") << th::why(
        "two lines that arrive in one read are two requests: answer every complete line in "
        "what read returned, keep the rest for later (step S5a)");
}

TEST_F(Ch01Steps, S5a_Read_OneLineInTwoWritesIsOneReply) {
    auto server = start_server();
    uds::Fd c = th::connect_stream(addr);
    th::send_all(c.get(), "hel");
    EXPECT_FALSE(th::readable(c.get(), 150)) << th::why(
        "a reply came before the line was complete: one read is not one message; collect bytes "
        "until '\\n' (step S5a)");
    th::send_all(c.get(), "lo\n");
    std::string got = th::read_line(c.get());
    EXPECT_TRUE(got == "HELLO\n") << th::why(
        "a line that arrives in two pieces gets one reply, HELLO (step S5a)");
}

TEST_F(Ch01Steps, S5a_Read_LastLineWithoutNewlineIsAnsweredAtEndOfInput) {
    auto server = start_server();
    std::string got = ask("first\ntail");
    EXPECT_TRUE(got == "FIRST\nTAIL\n") << th::why(
        "when read returns 0 (the client closed its end), a last line without '\\n' still gets "
        "its reply (step S5a)");
}

// A client that is gone before its reply is sent: send must fail with EPIPE, not kill the server.
TEST_F(Ch01Steps, S5b_Send_AClientThatLeftDoesNotKillTheServer) {
    auto server = start_server();
    // While the server serves `busy`, `gone` connects (it waits in the queue), sends a request
    // and closes. Once `busy` leaves, the server takes `gone`, reads its request and replies
    // into a connection whose other end is closed.
    uds::Fd busy = th::connect_stream(addr);
    th::send_all(busy.get(), "busy\n");
    ASSERT_EQ(th::read_line(busy.get()), "BUSY\n") << th::why("steps S4, S5a, S5b");
    {
        uds::Fd gone = th::connect_stream(addr);
        th::send_all(gone.get(), "hello\nhello\n");
    }
    busy.reset();
    std::string after = ask("still there?\n");
    EXPECT_EQ(after, "STILL THERE?\n") << th::why(
        "replying to a client that has gone must give EPIPE, not a SIGPIPE that kills the server: "
        "send with MSG_NOSIGNAL (step S5b)");
    EXPECT_TRUE(server->running()) << th::why(
        "the server must survive a client that left (step "
        "S5b)");
}

TEST_F(Ch01Steps, S5b_Send_RepliesToAClientThatReadsLateArriveWhole) {
    auto server = start_server();
    uds::Fd c = th::connect_stream(addr);
    std::string request, want;
    for (int i = 0; i < 500; ++i) {  // 2 MB each way: far more than the socket buffers hold
        std::string line = "line " + std::to_string(i) + " " + std::string(4000, 'r');
        request += line + "\n";
        want += uds::upcase(line) + "\n";
    }
    std::thread writer([fd = c.get(), &request] {
        std::string_view rest = request;
        while (!rest.empty()) {
            ssize_t n = ::send(fd, rest.data(), rest.size(), MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            rest.remove_prefix(static_cast<std::size_t>(n));
        }
        ::shutdown(fd, SHUT_WR);
    });
    // Read nothing for a moment: the server's sends find our buffer full and send only part.
    ::poll(nullptr, 0, 300);
    std::string got = th::read_to_eof(c.get());
    ::shutdown(c.get(), SHUT_RDWR);  // a writer still blocked in send (nobody read) gets EPIPE
    writer.join();
    EXPECT_EQ(got.size(), want.size()) << th::why(
        "every byte of every reply must arrive: send may take only part of a reply when the "
        "client's buffer is full; send the rest (step S5b)");
    EXPECT_TRUE(got == want) << th::why("the replies must arrive whole and in order (step S5b)");
}

// A reply of 4 KiB is never sent in part on Linux (an AF_UNIX stream send that fits in one
// buffer goes whole, or fails with EAGAIN), so a server that ignores send's count passes the
// test above. This stand-in, preloaded into the server, makes every send() take at most 1000
// bytes, as a full buffer does to a big reply. Built once with the system's C compiler; "" if
// there is none.
std::string short_send_library() {
    static const std::string built = [] {
        static th::TempDir dir;  // lives until the test program exits
        const std::string src = dir.file("shortsend.c"), lib = dir.file("shortsend.so");
        std::ofstream(src) << R"(#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <sys/socket.h>
ssize_t send(int fd, const void* buf, size_t len, int flags) {
    static ssize_t (*real)(int, const void*, size_t, int);
    if (real == NULL) real = (ssize_t(*)(int, const void*, size_t, int))dlsym(RTLD_NEXT, "send");
    return real(fd, buf, len > 1000 ? 1000 : len, flags);
}
)";
        for (const char* cc : {"cc", "gcc", "clang"}) {
            if (!th::have_program(cc)) continue;
            auto r = th::run("/bin/sh",
                             {"-c", std::string(cc) + " -shared -fPIC -O1 -o \"$1\" \"$2\" -ldl",
                              "sh", lib, src},
                             {}, {}, th::Deadline{std::chrono::seconds{30}});
            if (r.status == 0) return lib;
        }
        return std::string();
    }();
    return built;
}

TEST_F(Ch01Steps, S5b_Send_ShortSendsAreFinished) {
    const std::string lib = short_send_library();
    if (lib.empty()) GTEST_SKIP() << "needs a C compiler (cc) for the short-send stand-in";
    th::Process::Options opts;
    opts.env = {"LD_PRELOAD=" + lib, "ASAN_OPTIONS=verify_asan_link_order=0"};
    auto server = start_server_with({"-s", sock}, opts);
    uds::Fd c = th::connect_stream(addr);
    const std::string line(3000, 's');
    th::send_all(c.get(), line + "\n");
    ::shutdown(c.get(), SHUT_WR);
    const std::string got = th::read_to_eof(c.get());
    EXPECT_EQ(got.size(), line.size() + 1) << th::why(
        "send took only part of the 3001-byte reply and the rest never came: send returns how "
        "many bytes it took; send the rest (step S5b)");
}

// Fills the server's way to `hog` (a client that sends and never reads) until the server no
// longer reads from it either: it then waits in its send. Returns the bytes sent.
std::size_t send_until_stuck(int hog) {
    const std::string line = std::string(4000, 'h') + "\n";
    std::size_t total = 0;
    while (total < (64u << 20)) {
        ssize_t n = ::send(hog, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            total += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno != EAGAIN) break;
        pollfd p{hog, POLLOUT, 0};
        if (::poll(&p, 1, 300) == 0) break;  // nobody reads from us any more
    }
    return total;
}

TEST_F(Ch01Steps, S5b_Send_AClientThatNeverReadsLosesItsSlotAfterTheIdleTimeout) {
    auto server = start_server({"--idle-timeout", "1"});
    uds::Fd hog = th::connect_stream(addr);
    ASSERT_GT(send_until_stuck(hog.get()), 0u);
    uds::Fd next = th::connect_stream(addr);
    th::send_all(next.get(), "next\n");
    EXPECT_EQ(th::read_line(next.get(), th::Deadline{th::milliseconds{1500} + th::patience()}),
              "NEXT\n")
        << th::why(
               "a client that sends but never reads must lose its slot after --idle-timeout "
               "(1 s here): never block in send; wait for it to read with that deadline "
               "(step S5b)");
    EXPECT_TRUE(server->running());
}

TEST_F(Ch01Steps, S6_Close_EachConnectionIsClosedWhenItsClientIsDone) {
    auto server = start_server();
    EXPECT_EQ(ask("first\n"), "FIRST\n") << th::why("steps S4, S5a, S5b");
    // Once a later client is answered, the iterative server is done with the earlier ones.
    uds::Fd probe = th::connect_stream(addr);
    th::send_all(probe.get(), "p\n");
    ASSERT_EQ(th::read_line(probe.get()), "P\n")
        << th::why("a later client is served (steps S4-S6)");
    const int baseline = th::count_fds(server->pid());
    probe.reset();
    for (int i = 0; i < 50; ++i) {
        uds::Fd c = th::connect_stream(addr);
        th::send_all(c.get(), "n\n");
        ::shutdown(c.get(), SHUT_WR);
        ASSERT_EQ(th::read_line(c.get()), "N\n") << th::why("steps S4, S5a, S5b");
        char byte;
        ASSERT_TRUE(th::readable(c.get(), th::Deadline{}.remaining_ms()) &&
                    ::recv(c.get(), &byte, 1, 0) == 0)
            << th::why(
                   "once the client has closed its end and got its reply, the server closes "
                   "the connection: the client reads end of file (step S6)");
    }
    probe = th::connect_stream(addr);
    th::send_all(probe.get(), "p\n");
    ASSERT_EQ(th::read_line(probe.get()), "P\n")
        << th::why("after 50 clients the server still serves the next one (step S6)");
    EXPECT_EQ(th::count_fds(server->pid()), baseline) << th::why(
        "50 clients came and went: the server must hold no more descriptors than "
        "before; close each connection (step S6)");
}

TEST_F(Ch01Steps, S7_Unlink_RemovesItsSocketFileOnSigterm) {
    auto server = start_server();
    ASSERT_TRUE(is_socket_file(sock)) << th::why("no socket file to remove: steps S2a, S2b first");
    server->signal(SIGTERM);
    EXPECT_EQ(server->wait_exit(), 0)
        << th::why("on SIGTERM the server stops cleanly with exit status 0 (step S7)");
    EXPECT_FALSE(::access(sock.c_str(), F_OK) == 0)
        << th::why("closing a socket leaves its file behind: unlink it on the way out (step S7)");
}

// ------------------------------------------------------------------ one test per client step
// The client against a listener of the test's own, so each client step is checked on its own.
class Ch01ClientSteps : public Ch01 {
  protected:
    ClientSigpipeHint hint;
    uds::Fd listener{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    void SetUp() override {
        ASSERT_EQ(::bind(listener.get(), addr.sockaddr_ptr(), addr.length()), 0);
        ASSERT_EQ(::listen(listener.get(), 4), 0);
    }
    std::unique_ptr<th::Process> start_client(std::vector<std::string> args) {
        args.insert(args.begin(), {"-s", sock});
        return std::make_unique<th::Process>(th::bin(kChapter, "client"), args);
    }
    // Waits for the client's connection, giving up early if the client has already exited.
    uds::Fd accept_one(th::Process& client) {
        th::Deadline d;
        while (!th::readable(listener.get(), 50))
            if (d.expired() || !client.running()) return {};
        return uds::Fd{::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC)};
    }
};

TEST_F(Ch01ClientSteps, C1_Socket_IsAStreamSocketClosedOnExec) {
    auto c = start_client({"hello"});
    uds::Fd conn = accept_one(*c);
    ASSERT_TRUE(conn.valid()) << th::why("the client never connected (steps C1, C2)");
    ASSERT_EQ(th::read_line(conn.get()), "hello\n") << th::why("step C3");
    // The client now waits for its reply: look at its socket.
    auto fds = socket_fds(c->pid());
    ASSERT_EQ(fds.size(), 1u) << th::why("the client holds one socket (step C1)");
    EXPECT_NE(fd_flags(c->pid(), fds[0].first) & O_CLOEXEC, 0u)
        << th::why("create the client's socket with SOCK_CLOEXEC (step C1)");
    th::send_all(conn.get(), "HELLO\n");
    EXPECT_EQ(c->wait_exit(), 0) << th::why("step C4");
}

TEST_F(Ch01ClientSteps, C2_Connect_ReachesTheListenerAtThePathAndStaysUnnamed) {
    auto c = start_client({"hello"});
    uds::Fd conn = accept_one(*c);
    ASSERT_TRUE(conn.valid()) << th::why(
        "the client never connected to the -s path: fill sockaddr_un with it and its exact "
        "length, then connect (step C2)");
    EXPECT_EQ(uds::peer_address(conn.get()).kind(), uds::Address::Kind::Unnamed)
        << th::why("a client does not bind: it stays unnamed (step C2)");
}

TEST_F(Ch01ClientSteps, C2_Connect_PathOf108BytesIsAUsageError) {
    auto r = th::run(th::bin(kChapter, "client"), {"-s", path_of_length(108, 'p'), "hi"});
    EXPECT_EQ(r.status, 2) << th::why(
        "a 108-byte path does not fit in sun_path: refuse it with a usage error, exit status 2 "
        "(step C2)");
    EXPECT_EQ(r.err.rfind("client: ", 0), 0u)
        << th::why("a refused path gets one line on stderr starting with 'client: ' (step C2)");
}

TEST_F(Ch01ClientSteps, C2_Connect_NoServerIsOneLineNamingThePathAndExit1) {
    listener.reset();
    ::unlink(sock.c_str());
    auto r = client({"hi"});
    EXPECT_EQ(r.status, 1) << th::why("a failed connect ends the client with status 1 (step C2)");
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1)
        << th::why("a failed connect is one line on stderr (step C2)");
    EXPECT_NE(r.err.find(sock), std::string::npos) << th::why(
        "the line names the path it tried: throw uds::SysError(errno, \"connect \" + path) (step "
        "C2)");
    EXPECT_NE(r.err.find("No such file or directory"), std::string::npos)
        << th::why("the line says why (strerror of ENOENT) (step C2)");
}

TEST_F(Ch01ClientSteps, C3_Send_SendsTheRequestLine) {
    auto c = start_client({"hello"});
    uds::Fd conn = accept_one(*c);
    ASSERT_TRUE(conn.valid()) << th::why("the client never connected (steps C1, C2)");
    EXPECT_EQ(th::read_line(conn.get()), "hello\n")
        << th::why("the request is the message and a '\\n' (step C3)");
}

TEST_F(Ch01ClientSteps, C3_Send_AServerThatHangsUpDoesNotKillTheClient) {
    th::Process c(th::bin(kChapter, "client"), {"-s", sock});
    uds::Fd conn = accept_one(c);
    ASSERT_TRUE(conn.valid()) << th::why("the client never connected (steps C1, C2)");
    // One line of 1 MB on stdin: more than the socket buffers hold, so the client is still
    // sending when we hang up.
    std::thread feeder([&c] {
        try {
            c.write_stdin(std::string(1 << 20, 'x') + "\n");
        } catch (const std::exception&) {  // the client exited without reading it all
        }
        c.close_stdin();
    });
    char buf[1000];
    ASSERT_GT(::read(conn.get(), buf, sizeof buf), 0) << th::why("step C3");
    conn.reset();  // hang up with most of the request unread
    int status = c.wait_exit();
    feeder.join();
    EXPECT_EQ(status, 1) << th::why(
        "a server that hangs up mid-request gives EPIPE: the client reports it and exits 1; "
        "without MSG_NOSIGNAL a SIGPIPE kills it (step C3)");
}

TEST_F(Ch01ClientSteps, C4_Read_AReplyInPiecesIsPrintedWhole) {
    auto c = start_client({"hello"});
    uds::Fd conn = accept_one(*c);
    ASSERT_TRUE(conn.valid()) << th::why("the client never connected (steps C1, C2)");
    ASSERT_EQ(th::read_line(conn.get()), "hello\n") << th::why("step C3");
    th::send_all(conn.get(), "HEL");  // in two pieces: the client must read until the newline
    th::readable(conn.get(), 100);    // (a moment, so that the two pieces arrive apart)
    th::send_all(conn.get(), "LO\n");
    EXPECT_EQ(c->wait_exit(), 0) << th::why("the client exits 0 once every reply came (step C4)");
    EXPECT_EQ(c->out(), "HELLO\n")
        << th::why("a reply that comes in two pieces is one line: read until '\\n' (step C4)");
}

TEST_F(Ch01ClientSteps, C4_Read_BytesOfTheNextReplyAreKept) {
    auto c = start_client({"a", "b"});
    uds::Fd conn = accept_one(*c);
    ASSERT_TRUE(conn.valid()) << th::why("the client never connected (steps C1, C2)");
    ASSERT_EQ(th::read_line(conn.get()), "a\n") << th::why("step C3");
    th::send_all(conn.get(), "A\nB\n");  // both replies at once: one read gets both
    EXPECT_EQ(th::read_line(conn.get()), "b\n") << th::why("step C3");
    EXPECT_EQ(c->wait_exit(), 0) << th::why(
        "the second reply came with the first: keep the bytes after a reply's '\\n' for the next "
        "one instead of reading again (step C4)");
    EXPECT_EQ(c->out(), "A\nB\n") << th::why("both replies are printed, in order (step C4)");
}

TEST_F(Ch01ClientSteps, C4_Read_AServerThatClosesBeforeReplyingIsExit1) {
    auto c = start_client({"hello"});
    {
        uds::Fd conn = accept_one(*c);
        ASSERT_TRUE(conn.valid()) << th::why("the client never connected (steps C1, C2)");
        EXPECT_EQ(th::read_line(conn.get()), "hello\n") << th::why("step C3");
    }  // read the request, then hang up without replying
    EXPECT_EQ(c->wait_exit(), 1) << th::why(
        "read returns 0 when the server has closed: without a reply that is an error, exit 1 "
        "(step C4)");
    EXPECT_EQ(std::count(c->err().begin(), c->err().end(), '\n'), 1)
        << th::why("the error is one line on stderr (step C4)");
}

// ------------------------------------------------------------------ the service contract
using Ch01Contract = Ch01;

TEST_F(Ch01Contract, ClientArgumentsAreRequestsAndRepliesArePrinted) {
    auto server = start_server();
    auto r = client({"hello, world", "你好 abc"});
    EXPECT_EQ(r.status, 0) << th::why("the client exits 0 when every reply came");
    EXPECT_EQ(r.out, "HELLO, WORLD\n你好 ABC\n")
        << th::why("each argument is one request, each reply one line on stdout; only a-z change");
}

TEST_F(Ch01Contract, ClientReadsStdinLinesUntilEof) {
    auto server = start_server();
    auto r = client({}, "one\ntwo\n\nthree");  // the last line has no newline
    EXPECT_EQ(r.status, 0) << th::why("the client exits 0 when every reply came");
    EXPECT_EQ(r.out, "ONE\nTWO\n\nTHREE\n")
        << th::why("with no arguments every line of stdin is a request, an empty one too");
}

TEST_F(Ch01Contract, Utf8CarriageReturnAndNulPassThroughUnchanged) {
    auto server = start_server();
    const char req[] = "你好 abc\r\0xyz\n";
    const char want[] = "你好 ABC\r\0XYZ\n";
    EXPECT_EQ(ask(std::string(req, sizeof req - 1)), std::string(want, sizeof want - 1))
        << th::why("only ASCII a-z is changed: UTF-8, \\r and NUL bytes come back as they were");
}

TEST_F(Ch01Contract, ManyRequestsInOneWriteAreAnsweredInOrder) {
    auto server = start_server();
    std::string req, want;
    for (int i = 0; i < 2000; ++i) {
        req += "line " + std::to_string(i) + " abc\n";
        want += "LINE " + std::to_string(i) + " ABC\n";
    }
    EXPECT_TRUE(ask(req) == want) << th::why("2000 lines sent at once get 2000 replies, in order");
}

TEST_F(Ch01Contract, LineOf4096BytesIsServed) {
    auto server = start_server();
    std::string line(4096, 'a');
    EXPECT_TRUE(ask(line + "\n") == std::string(4096, 'A') + "\n")
        << th::why("a line of 4096 bytes (the limit) is a normal request");
}

TEST_F(Ch01Contract, OverlongLineGetsErrorAndCloseAndTheServerGoesOn) {
    auto server = start_server();
    uds::Fd c = th::connect_stream(addr);
    th::send_all(c.get(), "ok\n" + std::string(4097, 'a') + "\nnever answered\n");
    int err = 0;
    std::string got = th::read_to_eof(c.get(), th::Deadline{}, &err);
    EXPECT_EQ(got, "OK\nERROR line too long (max 4096 bytes)\n")
        << th::why("a line over 4096 bytes gets the ERROR line, then the connection is closed");
    EXPECT_EQ(ask("next\n"), "NEXT\n") << th::why("after refusing a line the server goes on");
}

TEST_F(Ch01Contract, OverlongLineWithoutAnyNewlineIsRefusedToo) {
    auto server = start_server();
    uds::Fd c = th::connect_stream(addr);
    // The server may refuse and close before all of it is sent: EPIPE is fine here.
    const std::string big(100000, 'b');
    [[maybe_unused]] ssize_t n = ::send(c.get(), big.data(), big.size(), MSG_NOSIGNAL);
    EXPECT_EQ(th::read_to_eof(c.get()), "ERROR line too long (max 4096 bytes)\n")
        << th::why("100000 bytes without a newline are refused as soon as they pass 4096");
}

TEST_F(Ch01Contract, HugeRequestFromTheClientBinaryGetsTheErrorLine) {
    ClientSigpipeHint hint;
    auto server = start_server();
    auto r = client({std::string(100000, 'x')});  // one argv string may hold up to 128 KiB
    EXPECT_EQ(r.out, "ERROR line too long (max 4096 bytes)\n") << th::why(
        "the client prints the ERROR reply even when the server hung up while it was "
        "still sending (steps C3, C4)");
    EXPECT_EQ(r.status, 0) << th::why("a reply arrived, even if it is an ERROR: exit 0");
    EXPECT_EQ(ask("still here\n"), "STILL HERE\n") << th::why("the server goes on");
}

// ------------------------------------------------------------------ the server
using Ch01Server = Ch01;

TEST_F(Ch01Server, LogsPeerCredentialsAndThatTheClientIsUnnamed) {
    auto server = start_server();
    EXPECT_EQ(ask("x\n"), "X\n") << th::why("the server answers a client (steps S4-S5b)");
    std::string want = "peer pid=" + std::to_string(::getpid()) +
                       " uid=" + std::to_string(::getuid()) + " gid=" + std::to_string(::getgid()) +
                       "; getsockname=" + sock + " getpeername=(unnamed)";
    EXPECT_TRUE(server->wait_stderr(want)) << th::why(
        "the server logs SO_PEERCRED of each client and the names the kernel reports "
        "(log_peer)");
}

TEST_F(Ch01Server, ClientVanishingMidLineLeavesNoDescriptorBehind) {
    auto server = start_server();
    EXPECT_EQ(ask("warm up\n"), "WARM UP\n")
        << th::why("the server answers a client (steps S4-S5b)");
    // The server is iterative: once a later client is answered, it has finished with the
    // earlier ones, so its descriptor count is exact at that moment.
    uds::Fd probe = th::connect_stream(addr);
    th::send_all(probe.get(), "x\n");
    ASSERT_EQ(th::read_line(probe.get()), "X\n") << th::why("a second client is served (step S6)");
    const int with_one_client = th::count_fds(server->pid());
    probe.reset();
    for (int i = 0; i < 20; ++i) {
        uds::Fd c = th::connect_stream(addr);
        th::send_all(c.get(), "half a li");  // then vanish
    }
    for (int i = 0; i < 20; ++i) {  // and some that vanish with unread replies (ECONNRESET/EPIPE)
        uds::Fd c = th::connect_stream(addr);
        th::send_all(c.get(), std::string(3000, 'r') + "\n" + std::string(3000, 'r') + "\n");
    }
    uds::Fd last = th::connect_stream(addr);
    th::send_all(last.get(), "after\n");
    ASSERT_EQ(th::read_line(last.get()), "AFTER\n")
        << th::why("clients that vanish mid-line or with replies unread must not stop the server");
    EXPECT_EQ(th::count_fds(server->pid()), with_one_client)
        << th::why("40 vanished clients must leave no descriptor behind");
    EXPECT_TRUE(server->running()) << th::why("and the server is still running");
}

TEST_F(Ch01Server, StaleSocketFileIsRemovedAndTheServerStarts) {
    {
        uds::Fd s{::socket(AF_UNIX, SOCK_STREAM, 0)};
        ASSERT_EQ(::bind(s.get(), addr.sockaddr_ptr(), addr.length()), 0);
    }  // closed without unlink: a stale file, as after a crash
    auto server = start_server();
    EXPECT_EQ(ask("fresh\n"), "FRESH\n")
        << th::why("a socket file nobody listens on is stale: the server replaces it and serves");
}

TEST_F(Ch01Server, LiveServerIsNeverDisplaced) {
    auto first = start_server();
    struct stat before {};
    ASSERT_EQ(::lstat(sock.c_str(), &before), 0);
    auto second = th::run(th::bin(kChapter, "server"), {"-s", sock});
    EXPECT_EQ(second.status, 1) << th::why("a second server on a live path exits 1");
    EXPECT_NE(second.err.find("another server is running or starting there"), std::string::npos)
        << th::why("it says why: the first one holds PATH.lock");
    struct stat after {};
    ASSERT_EQ(::lstat(sock.c_str(), &after), 0);
    EXPECT_EQ(before.st_ino, after.st_ino)
        << th::why("the live server's socket file must never be replaced");
    EXPECT_EQ(ask("still mine\n"), "STILL MINE\n") << th::why("the first server goes on serving");
}

TEST_F(Ch01Server, ListenerThatDoesNotKnowTheLockIsNeverDisplaced) {
    // Another program (socat, Python) listening on the path takes no PATH.lock: the lock is free,
    // but connect() succeeds, so the file is not stale.
    uds::Fd other{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    ASSERT_EQ(::bind(other.get(), addr.sockaddr_ptr(), addr.length()), 0);
    ASSERT_EQ(::listen(other.get(), 4), 0);
    struct stat before {};
    ASSERT_EQ(::lstat(sock.c_str(), &before), 0);
    auto r = th::run(th::bin(kChapter, "server"), {"-s", sock});
    EXPECT_EQ(r.status, 1) << th::why("a path where someone listens is refused with exit 1");
    EXPECT_NE(r.err.find("a server is already listening there"), std::string::npos) << th::why(
        "it says why in one line: '...: a server is already listening there' (the "
        "stale-file check before bind)");
    struct stat after {};
    ASSERT_EQ(::lstat(sock.c_str(), &after), 0) << th::why("the other program's file is kept");
    EXPECT_EQ(before.st_ino, after.st_ino);
}

TEST_F(Ch01Server, PathThatIsNotASocketIsRefusedAndKept) {
    { uds::Fd f{::open(sock.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600)}; }
    auto r = th::run(th::bin(kChapter, "server"), {"-s", sock});
    EXPECT_EQ(r.status, 1) << th::why("a path taken by a regular file is refused with exit 1");
    EXPECT_NE(r.err.find("not a socket"), std::string::npos)
        << th::why("it says why in one line: the path is 'not a socket'");
    struct stat st {};
    ASSERT_EQ(::lstat(sock.c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode)) << th::why("somebody's file is never removed");
}

TEST_F(Ch01Server, LockFileIsHeldWhileServingAndFreeAfterExit) {
    auto server = start_server();
    uds::Fd lock{::open((sock + ".lock").c_str(), O_RDONLY | O_CLOEXEC)};
    ASSERT_TRUE(lock.valid()) << th::why(
        "while it serves, PATH.lock exists beside the socket file");
    EXPECT_EQ(::flock(lock.get(), LOCK_EX | LOCK_NB), -1)
        << th::why("the server holds the lock on PATH.lock while it runs");
    server->signal(SIGTERM);
    EXPECT_EQ(server->wait_exit(), 0) << th::why("on SIGTERM the server exits 0 (step S7)");
    EXPECT_EQ(::flock(lock.get(), LOCK_EX | LOCK_NB), 0)
        << th::why("once the server has exited, the next one may take the lock");
}

class Ch01Signals : public Ch01, public ::testing::WithParamInterface<int> {};

TEST_P(Ch01Signals, StopsCleanlyUnlinksItsSocketAndExits0) {
    auto server = start_server();
    uds::Fd idle = th::connect_stream(addr);  // a client is connected and silent
    th::send_all(idle.get(), "x\n");
    ASSERT_EQ(th::read_line(idle.get()), "X\n");
    server->signal(GetParam());
    EXPECT_EQ(server->wait_exit(), 0)
        << th::why("SIGINT and SIGTERM stop the server at once, even with a client connected");
    EXPECT_NE(::access(sock.c_str(), F_OK), 0) << th::why("the socket file is removed (step S7)");
}

TEST_P(Ch01Signals, SignalRightAfterTheReadyLineIsNotLost) {
    // The signal may arrive before the server blocks in its first wait: it must not hang.
    for (int i = 0; i < 10; ++i) {
        auto server = start_server();
        server->signal(GetParam());
        ASSERT_EQ(server->wait_exit(), 0)
            << th::why("a signal that comes just after 'listening on' still stops the server");
    }
}

INSTANTIATE_TEST_SUITE_P(Term, Ch01Signals, ::testing::Values(SIGTERM, SIGINT),
                         [](const auto& p) { return p.param == SIGTERM ? "SIGTERM" : "SIGINT"; });

TEST_F(Ch01Server, DefaultAddressIsInThePrivatePerUserDirectory) {
    th::Process::Options env;
    env.env = {"XDG_RUNTIME_DIR=" + tmp.path()};
    auto server = start_server_with({}, env);  // no -s
    std::string want = tmp.path() + "/uds-tutorial/01-stream.sock";
    EXPECT_NE(server->err().find("listening on " + want), std::string::npos)
        << th::why("without -s the server uses $XDG_RUNTIME_DIR/uds-tutorial/01-stream.sock");
    struct stat st {};
    ASSERT_EQ(::lstat((tmp.path() + "/uds-tutorial").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0700u) << th::why("the per-user directory has mode 0700");
    EXPECT_TRUE(is_socket_file(want));
    auto r = th::run(th::bin(kChapter, "client"), {"default"}, {}, env);
    EXPECT_EQ(r.out, "DEFAULT\n") << th::why("the client finds the same default");
}

TEST_F(Ch01Server, UsageErrorsExit2AndHelpExits0) {
    const std::string server = th::bin(kChapter, "server");
    ASSERT_EQ(th::run(server, {"--bogus"}).status, 2) << th::why("an unknown option: exit 2");
    ASSERT_EQ(th::run(server, {"-s", sock, "extra"}).status, 2)
        << th::why("an extra argument: exit 2");
    ASSERT_EQ(th::run(server, {"-s", ""}).status, 2)
        << th::why("-s '' is a usage error, not 'the default' (an unset shell variable)");
    ASSERT_EQ(th::run(server, {"-s", "@name"}).status, 2)
        << th::why("an abstract name is chapter 02's: exit 2");
    ASSERT_EQ(th::run(server, {"-s", sock, "--idle-timeout", "0"}).status, 2)
        << th::why("--idle-timeout takes 1 or more seconds");
    auto help = th::run(server, {"--help"});
    EXPECT_EQ(help.status, 0) << th::why("--help: exit 0");
    EXPECT_NE(help.out.find("--idle-timeout"), std::string::npos)
        << th::why("--help lists --idle-timeout");
}

// ------------------------------------------------------------------ the client
using Ch01Client = Ch01;

TEST_F(Ch01Client, StaleSocketFileGivesConnectionRefused) {
    {
        uds::Fd s{::socket(AF_UNIX, SOCK_STREAM, 0)};
        ASSERT_EQ(::bind(s.get(), addr.sockaddr_ptr(), addr.length()), 0);
    }
    auto r = client({"hi"});
    EXPECT_EQ(r.status, 1) << th::why("a failed connect is exit 1 (step C2)");
    EXPECT_NE(r.err.find("Connection refused"), std::string::npos)
        << th::why("a socket file nobody listens on refuses the connection (step C2)");
}

TEST_F(Ch01Client, UsageErrorsExit2) {
    const std::string client = th::bin(kChapter, "client");
    auto r = th::run(client, {"--nope"});
    EXPECT_EQ(r.status, 2) << th::why("an unknown option: exit 2");
    EXPECT_NE(r.err.find("usage: client"), std::string::npos) << th::why("with the usage");
    EXPECT_EQ(th::run(client, {"-s", "", "hi"}).status, 2) << th::why("-s '' is a usage error");
    EXPECT_EQ(th::run(client, {"-s", "@name", "hi"}).status, 2)
        << th::why("an abstract name is chapter 02's: exit 2");
}

// ------------------------------------------------------------------ hostile peers
using Ch01Hostile = Ch01;

// One idle client must not hold the iterative server for ever.
TEST_F(Ch01Hostile, IdleClientLosesItsSlotAndTheNextOneIsServed) {
    auto server = start_server({"--idle-timeout", "1"});
    uds::Fd idle = th::connect_stream(addr);  // connects, sends nothing
    const auto t0 = th::Clock::now();
    uds::Fd next = th::connect_stream(addr);
    th::send_all(next.get(), "next\n");
    EXPECT_EQ(th::read_line(next.get(), th::Deadline{th::milliseconds{1500} + th::patience()}),
              "NEXT\n")
        << th::why(
               "a client that sends nothing loses its slot after --idle-timeout (1 s here), "
               "so the next client is served");
    EXPECT_GE(th::Clock::now() - t0, th::milliseconds{800})
        << th::why("the idle client, accepted first, held the server until it timed out");
    EXPECT_EQ(th::read_to_eof(idle.get(), th::Deadline{th::milliseconds{500}}), "")
        << th::why("the idle client's connection is closed");
}

// A peer that binds a path full of control bytes before it connects: the server logs that path
// (getpeername). Raw, it would start a new line that looks like the server's ready line.
TEST_F(Ch01Hostile, PeerPathWithNewlineAndEscapesCannotForgeALogLine) {
    auto server = start_server();
    const std::string forged = "server: listening on /tmp/fake.sock";
    // The path holds "/tmp/" too: make its directories, "x\nserver: listening on /tmp".
    const std::string dir = tmp.file("x\nserver: listening on ");
    ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
    ASSERT_EQ(::mkdir((dir + "/tmp").c_str(), 0700), 0);
    const std::string name = dir + "/tmp/fake.sock\x1b[2J\x1b]0;owned\x07\xc2\x9b";
    ASSERT_LT(name.size(), sizeof(sockaddr_un{}.sun_path));
    uds::Fd peer{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    name.copy(sa.sun_path, name.size());
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + 1);
    ASSERT_EQ(::bind(peer.get(), reinterpret_cast<const sockaddr*>(&sa), len), 0);
    ASSERT_EQ(::connect(peer.get(), addr.sockaddr_ptr(), addr.length()), 0);
    th::send_all(peer.get(), "hi\n");
    ASSERT_EQ(th::read_line(peer.get()), "HI\n")
        << th::why("a client bound to a path with a newline and escapes in it is served");
    ASSERT_TRUE(server->wait_stderr("getpeername=")) << th::why("the server logs its peers");
    const std::string& log = server->err();
    // Read line by line, as a script (or our harness) waiting for the ready line would.
    int ready_lines = 0;
    std::istringstream lines(log);
    for (std::string line; std::getline(lines, line);)
        ready_lines += line.rfind("server: listening on ", 0) == 0;
    EXPECT_EQ(ready_lines, 1) << th::why(
        "a peer's path must not start a log line of its own: every control byte it holds is "
        "escaped (\\x0a), so exactly one line says 'listening on'");
    EXPECT_EQ(log.find_first_of("\x1b\x07"), std::string::npos)
        << th::why("no terminal escape code from a peer reaches the log");
    EXPECT_EQ(log.find("\xc2\x9b"), std::string::npos) << th::why("nor a C1 control (U+009B)");
    EXPECT_NE(log.find("\\x0a" + forged + "\\x1b[2J"), std::string::npos)
        << th::why("the path is logged escaped, so it can still be read");
}

// `server 2>&1 | head -1`: once head has its line, every log write fails with EPIPE.
TEST_F(Ch01Hostile, ServerOutlivesItsLogReaderAndStillCleansUp) {
    auto server = start_server();
    server->close_stderr();
    for (int i = 0; i < 3; ++i)
        EXPECT_EQ(ask("after " + std::to_string(i) + "\n"), "AFTER " + std::to_string(i) + "\n")
            << th::why("the server must go on serving when nobody reads its log any more");
    server->signal(SIGTERM);
    EXPECT_EQ(server->wait_exit(), 0) << th::why("and it still stops cleanly on SIGTERM");
    EXPECT_FALSE(is_socket_file(sock)) << th::why("removing its socket file");
    uds::Fd lock{::open((sock + ".lock").c_str(), O_RDONLY | O_CLOEXEC)};
    EXPECT_TRUE(!lock || ::flock(lock.get(), LOCK_EX | LOCK_NB) == 0)
        << th::why("and leaving the path's lock free");
}

// accept4 fails with EMFILE when the process has no descriptor left; ENFILE, ENOBUFS and
// ENOMEM are alike. The connection stays queued: the server must neither end nor spin.
TEST_F(Ch01Hostile, OutOfDescriptorsInAccept4PausesAndServesLater) {
    auto server = start_server();
    ASSERT_EQ(ask("warm\n"), "WARM\n") << th::why("the server answers a client (steps S4-S5b)");
    const pid_t pid = server->pid();
    // accept4 needs the lowest free descriptor number: make that the limit.
    std::vector<int> used;
    for (const auto& e :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
        used.push_back(std::stoi(e.path().filename()));
    rlim_t lowest_free = 0;
    while (std::find(used.begin(), used.end(), static_cast<int>(lowest_free)) != used.end())
        ++lowest_free;
    rlimit old{};
    ASSERT_EQ(::prlimit(pid, RLIMIT_NOFILE, nullptr, &old), 0);
    rlimit tight{lowest_free, old.rlim_max};
    ASSERT_EQ(::prlimit(pid, RLIMIT_NOFILE, &tight, nullptr), 0);

    uds::Fd c = th::connect_stream(addr);
    th::send_all(c.get(), "later\n");
    const long cpu_before = cpu_ms(pid);
    ::poll(nullptr, 0, 500);  // the server meets EMFILE for half a second
    const long cpu_used = cpu_ms(pid) - cpu_before;
    ASSERT_TRUE(server->running()) << th::why(
        "accept4 failing with EMFILE (no descriptor left) must not end the server: pause, then "
        "try again");
    EXPECT_LT(cpu_used, 100) << th::why(
        "while accept4 keeps failing the server must pause between tries, not spin");
    ASSERT_EQ(::prlimit(pid, RLIMIT_NOFILE, &old, nullptr), 0);
    EXPECT_EQ(th::read_line(c.get()), "LATER\n")
        << th::why("once a descriptor is free again, the waiting client is served");
}

// ------------------------------------------------------------------ outside peers
using Ch01Interop = Ch01;

TEST_F(Ch01Interop, PythonSocketModuleIsServed) {
    if (!th::have_program("python3")) GTEST_SKIP() << "python3 not installed";
    auto server = start_server();
    std::string script =
        "import socket,sys\n"
        "s=socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "s.connect(sys.argv[1])\n"
        "s.sendall('py 你好 abc\\nsecond'.encode())\n"
        "s.shutdown(socket.SHUT_WR)\n"
        "data=b''\n"
        "while True:\n"
        "    b=s.recv(4096)\n"
        "    if not b: break\n"
        "    data+=b\n"
        "sys.stdout.write(data.decode())\n";
    auto r = th::run("/usr/bin/env", {"python3", "-c", script, sock});
    EXPECT_EQ(r.status, 0) << th::why("a Python client is served like ours");
    EXPECT_EQ(r.out, "PY 你好 ABC\nSECOND\n") << th::why("a Python client is served like ours");
}

TEST_F(Ch01Interop, SocatIsServed) {
    if (!th::have_program("socat")) GTEST_SKIP() << "socat not installed";
    auto server = start_server();
    auto r = th::run("/usr/bin/env", {"socat", "-t5", "-", "UNIX-CONNECT:" + sock}, "via socat\n");
    EXPECT_EQ(r.status, 0) << th::why("socat is served like our client");
    EXPECT_EQ(r.out, "VIA SOCAT\n") << th::why("socat is served like our client");
}

// ------------------------------------------------------------------ the reference's wording
// Exact messages of the reference programs; a student's own wording may differ (not graded).
using Ch01Reference = Ch01;

TEST_F(Ch01Reference, NoServerGivesOneLineWithAHint) {
    auto r = client({"hi"});
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, "client: connect " + sock +
                         ": No such file or directory (is the server running? start it with: "
                         "01-stream-path/server -s " +
                         sock + ")\n");
}

TEST_F(Ch01Reference, StaleSocketFileRemovalIsLogged) {
    {
        uds::Fd s{::socket(AF_UNIX, SOCK_STREAM, 0)};
        ASSERT_EQ(::bind(s.get(), addr.sockaddr_ptr(), addr.length()), 0);
    }
    auto server = start_server();
    EXPECT_NE(server->err().find("removed stale socket file " + sock), std::string::npos)
        << server->err();
}

TEST_F(Ch01Reference, PathTooLongSaysHowLongAndTheLimit) {
    auto r = th::run(th::bin(kChapter, "server"), {"-s", path_of_length(108, 'p')});
    EXPECT_EQ(r.status, 2);
    EXPECT_EQ(r.err.substr(0, r.err.find('\n')),
              "server: -s: the path has 108 bytes; sun_path holds at most 107 and a NUL");
    EXPECT_NE(r.err.find("usage: server"), std::string::npos);
}

TEST_F(Ch01Reference, IdleClientsAreLogged) {
    auto server = start_server({"--idle-timeout", "1"});
    uds::Fd idle = th::connect_stream(addr);
    EXPECT_TRUE(server->wait_stderr("client sent nothing for 1 s: closing",
                                    th::Deadline{th::milliseconds{1500} + th::patience()}))
        << server->err();
}

// The limit of an idle deadline, shown on the reference: a client that sends a byte now and then
// is never idle, so it keeps the iterative server (chapter 04 serves others meanwhile). Not graded:
// a student's server that does better must not lose a point.
TEST_F(Ch01Reference, ATricklingClientStillHoldsTheIterativeServer) {
    auto server = start_server({"--idle-timeout", "1"});
    uds::Fd slow = th::connect_stream(addr);
    th::send_all(slow.get(), "x");
    uds::Fd next = th::connect_stream(addr);
    th::send_all(next.get(), "next\n");
    for (int i = 0; i < 5; ++i) {  // 2.5 s, more than twice the idle timeout
        EXPECT_FALSE(th::readable(next.get(), 500)) << "served while the trickling one was active";
        th::send_all(slow.get(), "x");
    }
    slow.reset();
    EXPECT_EQ(th::read_line(next.get()), "NEXT\n");
}

// ------------------------------------------------------------------ kernel semantics
// Each test here proves one sentence of 01-stream-path/README.md on this machine.
class Ch01Semantics : public Ch01 {
  protected:
    uds::Fd listener() {
        uds::Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
        EXPECT_EQ(::bind(s.get(), addr.sockaddr_ptr(), addr.length()), 0) << strerror(errno);
        EXPECT_EQ(::listen(s.get(), 8), 0);
        return s;
    }
    // A connected pair through a real listener: {client, accepted}.
    std::pair<uds::Fd, uds::Fd> connected_pair(const uds::Fd& l) {
        uds::Fd c = th::connect_stream(addr);
        uds::Fd a{::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC)};
        EXPECT_TRUE(a.valid());
        return {std::move(c), std::move(a)};
    }
};

TEST_F(Ch01Semantics, BindCreatesASocketFile) {
    uds::Fd l = listener();
    struct stat st {};
    ASSERT_EQ(::lstat(sock.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
}

TEST_F(Ch01Semantics, BindFailsWithEaddrinuseWhenThePathExists) {
    uds::Fd l = listener();
    uds::Fd again{::socket(AF_UNIX, SOCK_STREAM, 0)};
    EXPECT_EQ(::bind(again.get(), addr.sockaddr_ptr(), addr.length()), -1);
    EXPECT_EQ(errno, EADDRINUSE);
    // Any file at all blocks bind, not only sockets.
    auto file = uds::Address::path(tmp.file("plain"));
    { uds::Fd f{::open(file.name().c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600)}; }
    EXPECT_EQ(::bind(again.get(), file.sockaddr_ptr(), file.length()), -1);
    EXPECT_EQ(errno, EADDRINUSE);
}

TEST_F(Ch01Semantics, ClosingASocketLeavesItsFileBehind) {
    { uds::Fd l = listener(); }
    struct stat st {};
    EXPECT_EQ(::lstat(sock.c_str(), &st), 0) << "close() removed the file";
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
}

TEST_F(Ch01Semantics, ConnectToAStaleSocketFileIsRefused) {
    { uds::Fd l = listener(); }
    uds::Fd c{::socket(AF_UNIX, SOCK_STREAM, 0)};
    EXPECT_EQ(::connect(c.get(), addr.sockaddr_ptr(), addr.length()), -1);
    EXPECT_EQ(errno, ECONNREFUSED);
}

TEST_F(Ch01Semantics, ConnectToAMissingPathIsEnoent) {
    uds::Fd c{::socket(AF_UNIX, SOCK_STREAM, 0)};
    EXPECT_EQ(::connect(c.get(), addr.sockaddr_ptr(), addr.length()), -1);
    EXPECT_EQ(errno, ENOENT);
}

TEST_F(Ch01Semantics, ConnectNeedsWritePermissionOnTheSocketFileNotRead) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to an unprivileged uid";
    ASSERT_EQ(::chmod(tmp.path().c_str(), 0711), 0);  // others may search the directory
    uds::Fd l = listener();
    auto try_connect = [&] {
        uds::Fd c{::socket(AF_UNIX, SOCK_STREAM, 0)};
        return ::connect(c.get(), addr.sockaddr_ptr(), addr.length()) == 0 ? 0 : errno;
    };
    ASSERT_EQ(::chmod(sock.c_str(), 0755), 0);  // read, no write for others
    EXPECT_EQ(th::run_as_nobody(try_connect), EACCES);
    ASSERT_EQ(::chmod(sock.c_str(), 0722), 0);  // write, no read for others
    EXPECT_EQ(th::run_as_nobody(try_connect), 0);
}

TEST_F(Ch01Semantics, ConnectNeedsSearchPermissionOnTheDirectory) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to an unprivileged uid";
    uds::Fd l = listener();
    ASSERT_EQ(::chmod(sock.c_str(), 0777), 0);
    ASSERT_EQ(::chmod(tmp.path().c_str(), 0700), 0);  // no search permission for others
    auto try_connect = [&] {
        uds::Fd c{::socket(AF_UNIX, SOCK_STREAM, 0)};
        return ::connect(c.get(), addr.sockaddr_ptr(), addr.length()) == 0 ? 0 : errno;
    };
    EXPECT_EQ(th::run_as_nobody(try_connect), EACCES);
}

TEST_F(Ch01Semantics, RootBypassesSocketFilePermissions) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    uds::Fd l = listener();
    ASSERT_EQ(::chmod(sock.c_str(), 0000), 0);
    uds::Fd c{::socket(AF_UNIX, SOCK_STREAM, 0)};
    EXPECT_EQ(::connect(c.get(), addr.sockaddr_ptr(), addr.length()), 0) << strerror(errno);
}

TEST_F(Ch01Semantics, ConnectSucceedsBeforeAcceptUntilTheBacklogIsFull) {
    uds::Fd l{::socket(AF_UNIX, SOCK_STREAM, 0)};
    ASSERT_EQ(::bind(l.get(), addr.sockaddr_ptr(), addr.length()), 0);
    ASSERT_EQ(::listen(l.get(), 2), 0);
    std::vector<uds::Fd> clients;
    int err = 0;
    for (int i = 0; i < 10 && err == 0; ++i) {
        uds::Fd c{::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0)};
        if (::connect(c.get(), addr.sockaddr_ptr(), addr.length()) == 0)
            clients.push_back(std::move(c));
        else
            err = errno;
    }
    // Nobody called accept(), yet connections were made: they wait in the listen queue.
    EXPECT_GE(clients.size(), 2u);
    EXPECT_LE(clients.size(), 3u);  // Linux lets backlog + 1 in
    EXPECT_EQ(err, EAGAIN) << "a non-blocking connect to a full backlog fails with EAGAIN";
    // A blocking connect waits instead; with a send timeout it gives up with EAGAIN after it.
    uds::Fd blocking{::socket(AF_UNIX, SOCK_STREAM, 0)};
    timeval tv{0, 200000};
    ASSERT_EQ(::setsockopt(blocking.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), 0);
    auto t0 = th::Clock::now();
    EXPECT_EQ(::connect(blocking.get(), addr.sockaddr_ptr(), addr.length()), -1);
    EXPECT_EQ(errno, EAGAIN);
    EXPECT_GE(th::Clock::now() - t0, std::chrono::milliseconds(150)) << "it did not wait";
    // Accepting one makes room again.
    uds::Fd a{::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC)};
    ASSERT_TRUE(a.valid());
    uds::Fd c{::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0)};
    EXPECT_EQ(::connect(c.get(), addr.sockaddr_ptr(), addr.length()), 0) << strerror(errno);
}

TEST_F(Ch01Semantics, AcceptedSocketHasTheListenersNameAndTheClientIsUnnamed) {
    uds::Fd l = listener();
    uds::Fd c = th::connect_stream(addr);
    sockaddr_un peer{};
    socklen_t peer_len = sizeof peer;
    uds::Fd a{::accept4(l.get(), reinterpret_cast<sockaddr*>(&peer), &peer_len, SOCK_CLOEXEC)};
    ASSERT_TRUE(a.valid());
    // accept() reports the client's address: it never bound, so only the family is there.
    EXPECT_EQ(peer_len, sizeof(sa_family_t));
    // The accepted socket carries the listener's name; there is no new "port".
    EXPECT_EQ(uds::local_address(a.get()), addr);
    EXPECT_EQ(uds::peer_address(a.get()).length(), sizeof(sa_family_t));
    EXPECT_EQ(uds::peer_address(a.get()).str(), "(unnamed)");
    // And from the client's side: unnamed itself, connected to the path.
    EXPECT_EQ(uds::local_address(c.get()).kind(), uds::Address::Kind::Unnamed);
    EXPECT_EQ(uds::peer_address(c.get()), addr);
}

TEST_F(Ch01Semantics, TwoWritesCanArriveAsOneRead) {
    uds::Fd l = listener();
    auto [c, a] = connected_pair(l);
    ASSERT_EQ(::write(c.get(), "ab\n", 3), 3);
    ASSERT_EQ(::write(c.get(), "cd\n", 3), 3);
    char buf[64];
    ssize_t n = ::read(a.get(), buf, sizeof buf);
    EXPECT_EQ(std::string(buf, static_cast<size_t>(n > 0 ? n : 0)), "ab\ncd\n");
}

TEST_F(Ch01Semantics, OneWriteCanArriveInSeveralReads) {
    uds::Fd l = listener();
    auto [c, a] = connected_pair(l);
    ASSERT_EQ(::write(c.get(), "hello\n", 6), 6);
    char buf[4];
    EXPECT_EQ(::read(a.get(), buf, 4), 4);
    EXPECT_EQ(::read(a.get(), buf, 4), 2);
}

TEST_F(Ch01Semantics, ReadReturnsZeroAfterThePeerCloses) {
    uds::Fd l = listener();
    auto [c, a] = connected_pair(l);
    ASSERT_EQ(::write(c.get(), "x", 1), 1);
    c.reset();
    char buf[8];
    EXPECT_EQ(::read(a.get(), buf, sizeof buf), 1);  // data first
    EXPECT_EQ(::read(a.get(), buf, sizeof buf), 0);  // then end of file
}

TEST_F(Ch01Semantics, CloseWithUnreadDataResetsThePeer) {
    uds::Fd l = listener();
    auto [c, a] = connected_pair(l);
    ASSERT_EQ(::write(c.get(), "unread", 6), 6);
    a.reset();  // the server closes without reading what the client sent
    char buf[8];
    EXPECT_EQ(::read(c.get(), buf, sizeof buf), -1);
    EXPECT_EQ(errno, ECONNRESET);
}

TEST_F(Ch01Semantics, WritingToAClosedPeerGivesEpipeWithMsgNosignalAndKillsWithout) {
    uds::Fd l = listener();
    auto [c, a] = connected_pair(l);
    a.reset();
    auto child = [fd = c.get()](int flags) {  // (clang 14 cannot capture a structured binding)
        pid_t pid = ::fork();
        if (pid == 0) {
            std::signal(SIGPIPE, SIG_DFL);
            ssize_t n = ::send(fd, "x", 1, flags);
            ::_exit(n == -1 && errno == EPIPE ? 0 : 1);
        }
        int st = 0;
        ::waitpid(pid, &st, 0);
        return st;
    };
    int with = child(MSG_NOSIGNAL);
    ASSERT_TRUE(WIFEXITED(with));
    EXPECT_EQ(WEXITSTATUS(with), 0) << "send(MSG_NOSIGNAL) did not fail with EPIPE";
    int without = child(0);
    ASSERT_TRUE(WIFSIGNALED(without)) << "plain send did not raise SIGPIPE";
    EXPECT_EQ(WTERMSIG(without), SIGPIPE);
}

// For a path the kernel works out the length itself (up to the first NUL): bind with
// sizeof(sockaddr_un) names the same file. For an abstract name it does not (chapter 02).
TEST_F(Ch01Semantics, APathsLengthIsRecomputedByTheKernel) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    sock.copy(sa.sun_path, sock.size());
    uds::Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    ASSERT_EQ(::bind(s.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa), 0);
    sockaddr_un got{};
    socklen_t len = sizeof got;
    ASSERT_EQ(::getsockname(s.get(), reinterpret_cast<sockaddr*>(&got), &len), 0);
    EXPECT_EQ(len, offsetof(sockaddr_un, sun_path) + sock.size() + 1);
    EXPECT_EQ(std::string(got.sun_path), sock);
}

// The race in "connect, and ECONNREFUSED means stale": a socket that is bound but not yet
// listening refuses connections exactly like a socket file nobody owns.
TEST_F(Ch01Semantics, ABoundSocketThatDoesNotListenYetRefusesLikeAStaleFile) {
    uds::Fd starting{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    ASSERT_EQ(::bind(starting.get(), addr.sockaddr_ptr(), addr.length()), 0);
    uds::Fd c{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    EXPECT_EQ(::connect(c.get(), addr.sockaddr_ptr(), addr.length()), -1);
    EXPECT_EQ(errno, ECONNREFUSED);
}

// flock(LOCK_EX | LOCK_NB) fails while another process holds the lock, and the kernel drops it
// when that process dies, even by SIGKILL: a crashed server leaves no stale lock.
TEST_F(Ch01Semantics, FlockIsHeldByItsProcessAndDroppedWhenItDies) {
    const std::string lock = tmp.file("l.lock");
    int ready[2];
    ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
    pid_t pid = ::fork();
    ASSERT_NE(pid, -1);
    if (pid == 0) {
        int fd = ::open(lock.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
        bool ok = fd >= 0 && ::flock(fd, LOCK_EX | LOCK_NB) == 0;
        [[maybe_unused]] ssize_t n = ::write(ready[1], ok ? "1" : "0", 1);
        for (;;)
            ::pause();
    }
    ::close(ready[1]);
    char byte = 0;
    ASSERT_EQ(::read(ready[0], &byte, 1), 1);
    ::close(ready[0]);
    ASSERT_EQ(byte, '1');
    uds::Fd mine{::open(lock.c_str(), O_RDONLY | O_CLOEXEC)};
    EXPECT_EQ(::flock(mine.get(), LOCK_EX | LOCK_NB), -1);
    EXPECT_EQ(errno, EWOULDBLOCK);
    ::kill(pid, SIGKILL);
    int st = 0;
    ::waitpid(pid, &st, 0);
    EXPECT_EQ(::flock(mine.get(), LOCK_EX | LOCK_NB), 0) << strerror(errno);
}

// Why a reply (at most 4097 bytes) is never sent in part here: on an AF_UNIX stream a send that
// fits in one buffer is queued whole or not at all (EAGAIN with MSG_DONTWAIT). Only a send larger
// than about half the socket's send buffer is split, and can come back short.
TEST_F(Ch01Semantics, SmallSendIsAllOrNothingALargeOneCanBeShort) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    uds::Fd a{sv[0]}, b{sv[1]};
    const std::string reply(4097, 'r');
    int sends = 0;
    for (;;) {
        ssize_t n = ::send(a.get(), reply.data(), reply.size(), MSG_DONTWAIT);
        if (n == -1) {
            EXPECT_EQ(errno, EAGAIN);
            break;
        }
        ASSERT_EQ(n, static_cast<ssize_t>(reply.size())) << "a short send after " << sends;
        ++sends;
    }
    EXPECT_GT(sends, 10);
    int sv2[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv2), 0);
    uds::Fd c{sv2[0]}, d{sv2[1]};
    const std::string big(4 << 20, 'b');
    ssize_t n = ::send(c.get(), big.data(), big.size(), MSG_DONTWAIT);
    EXPECT_GT(n, 0);
    EXPECT_LT(n, static_cast<ssize_t>(big.size()));
}

TEST_F(Ch01Semantics, BindAndAcceptTakeSockaddrAndSocklenT) {
    // The seed article shows struct sockaddr_un* and size_t; the real prototypes differ.
    static_assert(
        std::is_same_v<decltype(&::bind), int (*)(int, const sockaddr*, socklen_t) noexcept>);
    static_assert(std::is_same_v<decltype(&::connect), int (*)(int, const sockaddr*, socklen_t)>);
    static_assert(std::is_same_v<decltype(&::accept), int (*)(int, sockaddr*, socklen_t*)>);
    SUCCEED();
}

}  // namespace
