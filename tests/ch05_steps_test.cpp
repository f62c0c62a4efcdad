// Chapter 05, one test per lesson step (make grade-05 runs them against a student's programs):
//
//   Ch05Steps        the server's steps 6-8 and fdpass.hpp's R1-R7 / S1-S7, over a raw socket
//   Ch05ClientSteps  the client's steps 2-5, against a hand-written server
//
// The names say which step is missing: ServerStep7_S4S5_ScmRights_... means server.cpp's step 7
// and fdpass.hpp's steps S4 and S5. Like tests/ch05_fdpass_test.cpp, the sendmsg/recvmsg helpers
// here are the tests' own. Every wait has a deadline and gives up once the program has exited.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "harness.hpp"
#include "uds.hpp"

namespace {

const std::string kChapter = "05-sendmsg-fds";
const std::string kHello = "hello, descriptor\n";

// sendmsg with the given descriptors attached (none: no control message).
ssize_t send_fds(int sock, std::string_view data, const std::vector<int>& fds = {}) {
    iovec iov{const_cast<char*>(data.data()), data.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    std::vector<char> control;  // operator new storage: aligned for cmsghdr
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

struct Got {
    std::string data;
    std::vector<uds::Fd> fds;
};

// Reads one line byte by byte with recvmsg, collecting every descriptor on the way; stops at
// EOF (the program under test closed the connection or exited) or the deadline.
Got recv_line(int sock, th::Deadline d = th::Deadline{}) {
    Got g;
    for (;;) {
        if (!th::readable(sock, d.remaining_ms())) return g;
        char c = 0;
        iovec iov{&c, 1};
        std::vector<char> control(CMSG_SPACE(8 * sizeof(int)));
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.data();
        msg.msg_controllen = control.size();
        ssize_t n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
        for (cmsghdr* h = CMSG_FIRSTHDR(&msg); n > 0 && h != nullptr; h = CMSG_NXTHDR(&msg, h)) {
            if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) continue;
            for (std::size_t i = 0; i < (h->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++i) {
                int fd;
                std::memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof fd);
                g.fds.emplace_back(fd);
            }
        }
        if (n <= 0) return g;
        g.data += c;
        if (c == '\n') return g;
    }
}

struct Pipe {
    uds::Fd r, w;
    Pipe() {
        int p[2];
        uds::check(::pipe2(p, O_CLOEXEC), "pipe2");
        r.reset(p[0]);
        w.reset(p[1]);
    }
};

// True once the read end sees EOF: every write end is closed, in every process.
bool pipe_hits_eof(int r, const th::Deadline& d) {
    char buf[512];
    while (th::readable(r, d.remaining_ms())) {
        ssize_t n = ::read(r, buf, sizeof buf);
        if (n == 0) return true;
        if (n < 0) return false;
    }
    return false;
}

struct stat stat_of(int fd) {
    struct stat st {};
    uds::check(::fstat(fd, &st), "fstat");
    return st;
}

// The number under which process `pid` holds the open file `target`, or -1.
int fd_holding(pid_t pid, const struct stat& target) {
    std::error_code ec;
    for (const auto& e :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
        struct stat st {};
        if (::stat(e.path().c_str(), &st) == 0 && st.st_dev == target.st_dev &&
            st.st_ino == target.st_ino)
            return std::stoi(e.path().filename().string());
    }
    return -1;
}

// Waits until `pid` holds `target` (and `alive` still says the program runs); returns its number.
template <typename Alive>
int wait_holding(pid_t pid, const struct stat& target, Alive alive,
                 th::Deadline d = th::Deadline{}) {
    for (;;) {
        int fd = fd_holding(pid, target);
        if (fd >= 0 || d.expired() || !alive()) return fd;
    }
}

// True once the peer has closed the connection (a program that gave up on us).
bool peer_closed(int sock) {
    char c;
    return ::recv(sock, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

// Whether descriptor fd of process pid has FD_CLOEXEC (fdinfo shows it as O_CLOEXEC in flags).
bool close_on_exec(pid_t pid, int fd) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/fdinfo/" + std::to_string(fd));
    std::string key;
    while (in >> key) {
        if (key == "flags:") {
            unsigned long flags = 0;
            in >> std::oct >> flags;
            return (flags & O_CLOEXEC) != 0;
        }
    }
    return false;
}

std::string read_all(int fd) {
    std::string out;
    char buf[4096];
    for (off_t off = 0;;) {
        ssize_t n = ::pread(fd, buf, sizeof buf, off);
        if (n <= 0) return out;
        out.append(buf, static_cast<std::size_t>(n));
        off += n;
    }
}

// ================================================================ what make trace-05 shows
// strace shows msg_flags=MSG_CMSG_CLOEXEC after every recvmsg of the chapter: Linux copies that
// flag of the call into msg_flags before receiving, and adds MSG_CTRUNC only if something was cut.
TEST(Ch05Semantics, RecvmsgReportsMsgCmsgCloexecInMsgFlags) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    uds::Fd a{sv[0]}, b{sv[1]};
    Pipe p;
    ASSERT_EQ(send_fds(a.get(), "x", {p.w.get()}), 1);
    char c;
    iovec iov{&c, 1};
    std::vector<char> control(CMSG_SPACE(sizeof(int)));
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    ASSERT_EQ(::recvmsg(b.get(), &msg, MSG_CMSG_CLOEXEC), 1);
    cmsghdr* h = CMSG_FIRSTHDR(&msg);
    ASSERT_NE(h, nullptr);
    int fd;
    std::memcpy(&fd, CMSG_DATA(h), sizeof fd);
    uds::Fd received{fd};
    EXPECT_EQ(msg.msg_flags, MSG_CMSG_CLOEXEC);  // and no MSG_CTRUNC: everything fit
}

// ================================================================ the server's steps
class Ch05Steps : public ::testing::Test {
  protected:
    th::TempDir dir;
    std::string root = dir.file("root");
    std::string sock = dir.file("s.sock");
    std::unique_ptr<th::Process> server;
    uds::Fd conn;

    void SetUp() override {
        ::mkdir(root.c_str(), 0755);
        std::ofstream(root + "/hello.txt", std::ios::binary) << kHello;
        server = std::make_unique<th::Process>(
            th::bin(kChapter, "server"), std::vector<std::string>{"-s", sock, "--root", root});
        ASSERT_TRUE(server->wait_stderr("listening on " + sock)) << "the server never got ready:\n"
                                                                 << server->err();
        conn = th::connect_stream(uds::Address::path(sock));
    }
    // One request (with descriptors attached) and its reply line.
    Got ask(std::string_view request, const std::vector<int>& fds = {}) {
        EXPECT_EQ(send_fds(conn.get(), request, fds), static_cast<ssize_t>(request.size()))
            << std::strerror(errno);
        return recv_line(conn.get());
    }
    bool server_running() { return server->running(); }
};

TEST_F(Ch05Steps, ServerStep6_R1toR3_Recvmsg_AnswersARequestLine) {
    Got g = ask("HELLO\n");
    EXPECT_EQ(g.data.rfind("ERROR ", 0), 0u)
        << "no ERROR reply to an unknown request: does recvmsg (fdpass.hpp R1-R3) receive it?\n"
        << "reply: '" << g.data << "'\nserver:\n"
        << server->err();
    EXPECT_EQ(ask("GREET\n").data.rfind("ERROR ", 0), 0u) << "a second request, same connection";
}

TEST_F(Ch05Steps, ServerStep6_R4toR6_Cmsg_HoldsTheDescriptorCloseOnExec) {
    Pipe p;
    const struct stat target = stat_of(p.w.get());
    // Half a request: the server keeps the descriptor until the line is complete.
    ASSERT_EQ(send_fds(conn.get(), "GRE", {p.w.get()}), 3);
    int fd = wait_holding(
        server->pid(), target, [&] { return server_running() && !peer_closed(conn.get()); },
        th::Deadline{th::milliseconds{3000}});
    ASSERT_GE(fd, 0) << "the server never took the descriptor out of the control message: "
                        "walk the cmsgs and wrap each SCM_RIGHTS int in a uds::Fd (R4-R6)\n"
                     << server->err();
    EXPECT_TRUE(close_on_exec(server->pid(), fd))
        << "the received descriptor " << fd << " is not close-on-exec: recvmsg needs "
        << "MSG_CMSG_CLOEXEC (R3)";
    send_fds(conn.get(), "ET\n");
    recv_line(conn.get());
}

TEST_F(Ch05Steps, ServerStep6_R7_Ctrunc_ClosesEverythingOnTruncation) {
    ASSERT_EQ(ask("HELLO\n").data.rfind("ERROR ", 0), 0u)
        << "the server does not answer at all yet: do R1-R3 first\n"
        << server->err();
    // Six descriptors, room for four: recvmsg installs four and sets MSG_CTRUNC.
    std::vector<Pipe> pipes(6);
    std::vector<int> ends;
    for (auto& p : pipes)
        ends.push_back(p.w.get());
    ASSERT_EQ(send_fds(conn.get(), "GRE", ends), 3);
    for (auto& p : pipes)
        p.w.reset();
    th::Deadline d{th::milliseconds{3000}};
    int open_still = 0;
    for (auto& p : pipes)
        open_still += pipe_hits_eof(p.r.get(), d) ? 0 : 1;
    EXPECT_EQ(open_still, 0) << "the server still holds descriptors from a message that came "
                                "with MSG_CTRUNC: wrap every one first (R4-R6), then close them "
                                "all when msg_flags has MSG_CTRUNC (R7)";
    ASSERT_EQ(send_fds(conn.get(), "ET\n"), 3);
    Got g = recv_line(conn.get());
    EXPECT_EQ(g.data.rfind("ERROR ", 0), 0u) << "reply: '" << g.data << "'\n" << server->err();
}

TEST_F(Ch05Steps, ServerStep7_S1toS6_Sendmsg_OpenAnswersOkWithTheSize) {
    Got g = ask("OPEN hello.txt\n");
    EXPECT_EQ(g.data, "OK " + std::to_string(kHello.size()) + "\n")
        << "step 7 sends the reply with fdpass::send_with_fd (S1-S6)\nserver:\n"
        << server->err();
}

TEST_F(Ch05Steps, ServerStep7_S4S5_ScmRights_OpenReturnsOneDescriptor) {
    Got g = ask("OPEN hello.txt\n");
    ASSERT_EQ(g.data.rfind("OK ", 0), 0u) << "reply: '" << g.data << "'\n" << server->err();
    ASSERT_EQ(g.fds.size(), 1u) << "the OK line came without a descriptor: the control message "
                                   "(S3 msg_control, S4 SOL_SOCKET/SCM_RIGHTS/CMSG_LEN, S5 "
                                   "memcpy into CMSG_DATA) is missing";
    EXPECT_EQ(read_all(g.fds[0].get()), kHello);
    EXPECT_EQ(::fcntl(g.fds[0].get(), F_GETFL) & O_ACCMODE, O_RDONLY);
}

TEST_F(Ch05Steps, ServerStep7_S7_Close_OpensLeaveNoDescriptorBehind) {
    server->wait_stderr("client 1: connected");  // (the server has accepted our connection)
    const int baseline = th::count_fds(server->pid());
    for (int i = 0; i < 20; ++i)
        ASSERT_EQ(ask("OPEN hello.txt\n").fds.size(), 1u) << "OPEN number " << i + 1 << "\n"
                                                          << server->err();
    int now = th::count_fds(server->pid());
    for (th::Deadline d{th::milliseconds{3000}}; now != baseline && !d.expired();)
        now = th::count_fds(server->pid());  // a sanitizer's short-lived pipes settle
    EXPECT_EQ(now, baseline) << "the server keeps its copy of each file it sent: close it "
                                "after sendmsg (S7, step 7)";
}

TEST_F(Ch05Steps, ServerStep8_Write_GreetWritesIntoTheReceivedDescriptor) {
    Pipe p;
    Got g = ask("GREET\n", {p.w.get()});
    ASSERT_EQ(g.data, "OK\n") << "step 8 writes into the received descriptor\n" << server->err();
    ASSERT_TRUE(th::readable(p.r.get(), 1000)) << "nothing was written into our pipe";
    char buf[512];
    ssize_t n = ::read(p.r.get(), buf, sizeof buf);
    EXPECT_GT(n, 0);
}

TEST_F(Ch05Steps, ServerStep8_Close_GreetClosesItsCopyOfOurDescriptor) {
    Pipe p;
    ASSERT_EQ(ask("GREET\n", {p.w.get()}).data, "OK\n") << server->err();
    p.w.reset();
    EXPECT_TRUE(pipe_hits_eof(p.r.get(), th::Deadline{th::milliseconds{3000}}))
        << "the server still holds the descriptor we lent it: close it after writing";
}

// ================================================================ the client's steps
class Ch05ClientSteps : public ::testing::Test {
  protected:
    th::TempDir dir;
    std::string sock = dir.file("s.sock");
    uds::Address addr = uds::Address::path(sock);
    uds::Fd listener{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};

    void SetUp() override {
        ASSERT_EQ(::bind(listener.get(), addr.sockaddr_ptr(), addr.length()), 0);
        ASSERT_EQ(::listen(listener.get(), 4), 0);
    }
    std::unique_ptr<th::Process> client(std::vector<std::string> args) {
        args.insert(args.begin(), {"-s", sock});
        return std::make_unique<th::Process>(th::bin(kChapter, "client"), args);
    }
    // Waits for the client's connection, giving up early if the client has already exited.
    uds::Fd accept_one(th::Process& c) {
        th::Deadline d;
        while (!th::readable(listener.get(), 100))
            if (d.expired() || !c.running()) return {};
        return uds::Fd{::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC)};
    }
    // A file the client can reach only through the descriptor: it has no name any more.
    uds::Fd unlinked_file(const std::string& content) {
        const std::string path = dir.file("secret.txt");
        std::ofstream(path, std::ios::binary) << content;
        uds::Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
        ::unlink(path.c_str());
        return fd;
    }
};

TEST_F(Ch05ClientSteps, ClientStep2_S1toS6_Sendmsg_SendsTheOpenRequest) {
    auto c = client({"hello.txt"});
    uds::Fd conn = accept_one(*c);
    ASSERT_TRUE(conn.valid()) << "the client never connected:\n" << c->err();
    Got g = recv_line(conn.get());
    EXPECT_EQ(g.data, "OPEN hello.txt\n") << "sendmsg (fdpass.hpp S1-S6)\nclient:\n" << c->err();
    EXPECT_TRUE(g.fds.empty()) << "OPEN carries no descriptor";
}

TEST_F(Ch05ClientSteps, ClientStep2_S4S5_ScmRights_GreetHandsOverStdout) {
    auto c = client({"--greet"});
    uds::Fd conn = accept_one(*c);
    ASSERT_TRUE(conn.valid()) << c->err();
    Got g = recv_line(conn.get());
    ASSERT_EQ(g.data, "GREET\n") << c->err();
    ASSERT_EQ(g.fds.size(), 1u) << "GREET came without a descriptor: attach STDOUT_FILENO "
                                   "(client step 2) in a SCM_RIGHTS control message (S3-S5)";
    const std::string text = "written by the peer into the client's stdout\n";
    EXPECT_EQ(::write(g.fds[0].get(), text.data(), text.size()), static_cast<ssize_t>(text.size()));
    g.fds.clear();
    ASSERT_EQ(send_fds(conn.get(), "OK\n"), 3);
    EXPECT_EQ(c->wait_exit(), 0) << c->err();
    EXPECT_NE(c->out().find(text), std::string::npos) << "stdout: " << c->out();
}

TEST_F(Ch05ClientSteps, ClientStep3_R1toR3_Recvmsg_ReportsAnErrorReply) {
    auto c = client({"missing.txt"});
    uds::Fd conn = accept_one(*c);
    ASSERT_TRUE(conn.valid()) << c->err();
    ASSERT_EQ(recv_line(conn.get()).data, "OPEN missing.txt\n") << "do step 2 first\n" << c->err();
    ASSERT_EQ(send_fds(conn.get(), "ERROR no such file\n"), 19);
    EXPECT_EQ(c->wait_exit(), 1) << c->err();
    EXPECT_NE(c->err().find("ERROR no such file"), std::string::npos)
        << "the client did not report the server's reply: recvmsg (fdpass.hpp R1-R3)\n"
        << c->err();
}

TEST_F(Ch05ClientSteps, ClientStep3_R4toR6_Cmsg_HoldsTheDescriptorCloseOnExec) {
    auto c = client({"hello.txt"});
    uds::Fd conn = accept_one(*c);
    ASSERT_TRUE(conn.valid()) << c->err();
    ASSERT_EQ(recv_line(conn.get()).data, "OPEN hello.txt\n") << "do step 2 first\n" << c->err();
    Pipe p;
    const struct stat target = stat_of(p.r.get());
    // Half a reply: the client keeps the descriptor while it waits for the rest of the line.
    ASSERT_EQ(send_fds(conn.get(), "OK 5", {p.r.get()}), 4);
    int fd = wait_holding(
        c->pid(), target, [&] { return c->running(); }, th::Deadline{th::milliseconds{3000}});
    ASSERT_GE(fd, 0) << "the client never took the descriptor out of the control message: "
                        "walk the cmsgs and wrap each SCM_RIGHTS int in a uds::Fd (R4-R6)\n"
                     << c->err();
    EXPECT_TRUE(close_on_exec(c->pid(), fd))
        << "the received descriptor " << fd << " is not close-on-exec: recvmsg needs "
        << "MSG_CMSG_CLOEXEC (R3)";
    ASSERT_EQ(::write(p.w.get(), "12345", 5), 5);
    p.w.reset();
    send_fds(conn.get(), "\n");
    c->wait_exit();
}

TEST_F(Ch05ClientSteps, ClientStep3_R7_Ctrunc_ClosesEverythingOnTruncation) {
    auto c = client({"a.txt", "b.txt"});
    uds::Fd conn = accept_one(*c);
    ASSERT_TRUE(conn.valid()) << c->err();
    ASSERT_EQ(recv_line(conn.get()).data, "OPEN a.txt\n") << "do step 2 first\n" << c->err();
    // Six descriptors with half a reply; the client has room for four: MSG_CTRUNC.
    std::vector<Pipe> pipes(6);
    std::vector<int> ends;
    for (auto& p : pipes)
        ends.push_back(p.w.get());
    ASSERT_EQ(send_fds(conn.get(), "OK 5", ends), 4);
    for (auto& p : pipes)
        p.w.reset();
    th::Deadline d{th::milliseconds{3000}};
    int open_still = 0;
    for (auto& p : pipes)
        open_still += pipe_hits_eof(p.r.get(), d) ? 0 : 1;
    EXPECT_EQ(open_still, 0) << "the client still holds descriptors from a message that came "
                                "with MSG_CTRUNC: wrap every one first (R4-R6), then close them "
                                "all when msg_flags has MSG_CTRUNC (R7)";
    ASSERT_EQ(send_fds(conn.get(), "\n"), 1);
    EXPECT_EQ(recv_line(conn.get()).data, "OPEN b.txt\n")
        << "after a bad reply the client goes on with the next file\n"
        << c->err();
    send_fds(conn.get(), "ERROR no such file\n");
    EXPECT_EQ(c->wait_exit(), 1) << c->err();
}

TEST_F(Ch05ClientSteps, ClientStep4_Read_PrintsTheFileThroughTheReceivedDescriptor) {
    const std::string content = "only reachable through the descriptor\n";
    uds::Fd file = unlinked_file(content);
    auto c = client({"secret.txt"});
    uds::Fd conn = accept_one(*c);
    ASSERT_TRUE(conn.valid()) << c->err();
    ASSERT_EQ(recv_line(conn.get()).data, "OPEN secret.txt\n") << "do step 2 first\n" << c->err();
    const std::string reply = "OK " + std::to_string(content.size()) + "\n";
    ASSERT_EQ(send_fds(conn.get(), reply, {file.get()}), static_cast<ssize_t>(reply.size()));
    EXPECT_EQ(c->wait_exit(), 0) << c->err();
    EXPECT_EQ(c->out(), content) << "read the file through the received descriptor (step 4)\n"
                                 << c->err();
}

TEST_F(Ch05ClientSteps, ClientStep5_Close_ClosesEachReceivedDescriptorBeforeTheNextRequest) {
    uds::Fd file = unlinked_file(kHello);
    const struct stat target = stat_of(file.get());
    auto c = client({"a.txt", "b.txt"});
    uds::Fd conn = accept_one(*c);
    ASSERT_TRUE(conn.valid()) << c->err();
    const std::string reply = "OK " + std::to_string(kHello.size()) + "\n";
    ASSERT_EQ(recv_line(conn.get()).data, "OPEN a.txt\n") << "do step 2 first\n" << c->err();
    ASSERT_EQ(send_fds(conn.get(), reply, {file.get()}), static_cast<ssize_t>(reply.size()));
    ASSERT_EQ(recv_line(conn.get()).data, "OPEN b.txt\n") << "do steps 3 and 4 first\n" << c->err();
    EXPECT_EQ(fd_holding(c->pid(), target), -1)
        << "the client asks for the next file while it still holds the last one's descriptor";
    ASSERT_EQ(::lseek(file.get(), 0, SEEK_SET), 0);  // the client's read moved the shared offset
    ASSERT_EQ(send_fds(conn.get(), reply, {file.get()}), static_cast<ssize_t>(reply.size()));
    EXPECT_EQ(c->wait_exit(), 0) << c->err();
    EXPECT_EQ(c->out(), kHello + kHello);
}

}  // namespace
