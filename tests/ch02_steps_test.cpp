// Chapter 02, one test per lesson step: make grade-02 runs these (with the other Ch02 program
// tests) against a student's programs, and each name says which step of server.cpp /
// client.cpp is missing or wrong.
//
//   Ch02Steps        the real server, driven by raw peers from this process (and as nobody)
//   Ch02ClientSteps  the real client, against a hand-written listener, so that each client
//                    step is checked on its own
//
// The server tests after step 2 connect to whatever name the server really bound (read from
// /proc/net/unix), so a wrong length fails ServerStep2 only, not every later step as well.
// Every wait has a deadline and gives up early once the program under test has exited.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "harness.hpp"
#include "uds.hpp"

namespace {

const std::string kChapter = "02-stream-abstract";
constexpr socklen_t kOffset = offsetof(sockaddr_un, sun_path);

// One line of /proc/net/unix (abstract names have each NUL printed as '@').
struct ProcSocket {
    std::string flags, type, path;
    [[nodiscard]] bool listening() const { return flags == "00010000"; }  // __SO_ACCEPTCON
    [[nodiscard]] bool stream() const { return type == "0001"; }          // SOCK_STREAM
};

std::vector<ProcSocket> proc_net_unix() {
    std::ifstream in("/proc/net/unix");
    std::vector<ProcSocket> all;
    std::string line;
    std::getline(in, line);  // Num RefCount Protocol Flags Type St Inode Path
    while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string num, refs, proto, state, inode;
        ProcSocket s;
        f >> num >> refs >> proto >> s.flags >> s.type >> state >> inode;
        if (f >> s.path) all.push_back(s);
    }
    return all;
}

// Lines whose name is exactly `path`, and lines whose name merely starts with it.
std::size_t proc_exactly(const std::string& path) {
    std::size_t n = 0;
    for (const auto& s : proc_net_unix())
        n += s.path == path;
    return n;
}
std::size_t proc_starting_with(const std::string& path) {
    std::size_t n = 0;
    for (const auto& s : proc_net_unix())
        n += s.path.rfind(path, 0) == 0;
    return n;
}

// An abstract address built by hand, as any C program would, with the length we choose.
struct RawAddress {
    sockaddr_un sa{};
    socklen_t len = 0;
    [[nodiscard]] const sockaddr* ptr() const { return reinterpret_cast<const sockaddr*>(&sa); }
};
RawAddress raw_abstract(const std::string& name_bytes) {
    RawAddress a;
    a.sa.sun_family = AF_UNIX;
    a.sa.sun_path[0] = '\0';
    std::memcpy(a.sa.sun_path + 1, name_bytes.data(), name_bytes.size());
    a.len = static_cast<socklen_t>(kOffset + 1 + name_bytes.size());  // the exact length
    return a;
}

// connect() to a raw address: 0, or the errno it failed with.
int try_connect(const RawAddress& a, uds::Fd* out = nullptr) {
    uds::Fd fd{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    if (!fd) return errno;
    if (::connect(fd.get(), a.ptr(), a.len) == -1) return errno;
    if (out != nullptr) *out = std::move(fd);
    return 0;
}

class Ch02Steps : public ::testing::Test {
  protected:
    const std::string name = th::unique_abstract_name("steps");
    const std::string at_name = "@" + name;

    std::unique_ptr<th::Process> start_server(std::vector<std::string> extra = {}) {
        extra.insert(extra.begin(), {"-s", at_name});
        auto p = std::make_unique<th::Process>(th::bin(kChapter, "server"), extra);
        EXPECT_TRUE(p->wait_stderr("listening on ")) << "server never got ready:\n" << p->err();
        return p;
    }
    // Is there a listening stream socket whose name starts with @name (exact or padded)?
    [[nodiscard]] const ProcSocket* find_listener(std::vector<ProcSocket>& all) const {
        all = proc_net_unix();
        for (const auto& s : all)
            if (s.listening() && s.stream() && s.path.rfind(at_name, 0) == 0) return &s;
        return nullptr;
    }
    // The address the server really bound: exactly @name if step 2 is right, else whatever
    // (NUL-padded) name it did bind, so that the later steps can still be checked.
    [[nodiscard]] RawAddress bound_address() const {
        std::vector<ProcSocket> all;
        const ProcSocket* l = find_listener(all);
        if (l == nullptr) return raw_abstract(name);
        std::string bytes = l->path.substr(1);
        for (char& c : bytes)
            if (c == '@') c = '\0';  // /proc prints every NUL of the name as '@'
        return raw_abstract(bytes);
    }
    [[nodiscard]] uds::Fd connect_to_server() const {
        uds::Fd c;
        int err = try_connect(bound_address(), &c);
        if (err != 0)
            throw std::runtime_error("connect " + at_name + ": " + std::strerror(err) +
                                     " (do steps 1-3 first: socket, bind, listen)");
        return c;
    }
    // One request/response over a raw socket, like any outside client would do it.
    [[nodiscard]] std::string ask(std::string_view request) const {
        uds::Fd c = connect_to_server();
        th::send_all(c.get(), request);
        ::shutdown(c.get(), SHUT_WR);
        return th::read_to_eof(c.get());
    }
};

TEST_F(Ch02Steps, ServerStep1to3_SocketBindListen_ListenOnTheAbstractName) {
    auto server = start_server();
    std::vector<ProcSocket> all;
    EXPECT_NE(find_listener(all), nullptr)
        << "/proc/net/unix shows no listening stream socket named " << at_name
        << ": were socket(AF_UNIX, SOCK_STREAM), bind and listen called?\n"
        << server->err();
}

TEST_F(Ch02Steps, ServerStep2_Bind_UsesTheExactLength_PeerReachesExactlyAtName) {
    auto server = start_server();
    ASSERT_GE(proc_starting_with(at_name), 1u)
        << "no socket named " << at_name << " at all: do steps 1-3 first";
    // Exactly "@name", and no "@name@@@..." (the name padded with NULs by sizeof(sockaddr_un)).
    EXPECT_EQ(proc_exactly(at_name), 1u)
        << "the name is not exactly " << at_name
        << ": bind's length must be offsetof(sockaddr_un, sun_path) + 1 + name length";
    EXPECT_EQ(proc_starting_with(at_name), 1u);
    // A peer that builds the address with the exact length reaches the server.
    EXPECT_EQ(try_connect(raw_abstract(name)), 0)
        << "a peer using the exact length gets ECONNREFUSED: the server bound another name";
}

TEST_F(Ch02Steps, ServerStep4_Accept_TakesTheConnection) {
    auto server = start_server();
    uds::Fd c = connect_to_server();
    EXPECT_TRUE(server->wait_stderr("accepted a connection")) << server->err();
}

TEST_F(Ch02Steps, ServerStep4b_PeerCred_LogsTheRealPeer) {
    auto server = start_server();
    uds::Fd c = connect_to_server();
    // We are the peer: the kernel recorded our pid, uid and gid when we called connect().
    const std::string want = "peer pid=" + std::to_string(::getpid()) +
                             " uid=" + std::to_string(::geteuid()) +
                             " gid=" + std::to_string(::getegid());
    ASSERT_TRUE(server->wait_stderr("accepted a connection")) << "do step 4 first:\n"
                                                              << server->err();
    EXPECT_NE(server->err().find(want), std::string::npos)
        << "expected '" << want << "' (from getsockopt SO_PEERCRED) in:\n"
        << server->err();
}

TEST_F(Ch02Steps, ServerStep4c_PeerCheck_RefusesUid65534ByDefaultWithTheExactLine) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a peer as another uid";
    auto server = start_server();
    const RawAddress addr = bound_address();
    // 0: the exact refusal, then at once a clean end of file; 1: connect failed; 2: another
    // answer, or none; 3: reset instead of ended; 4: the end of file came late, only when the
    // server stopped waiting for us (~0.5 s): shutdown(SHUT_WR) right after the line ends it.
    int rc = th::run_as_nobody([&] {
        uds::Fd c;
        if (try_connect(addr, &c) != 0) return 1;
        try {
            th::send_all(c.get(), "let me in\n");  // and stay connected
        } catch (const uds::SysError&) {           // refused and closed already: fine
        }
        if (th::read_line(c.get()) != "ERROR not allowed (uid 65534)\n") return 2;
        int err = 0;
        std::string rest = th::read_to_eof(c.get(), th::Deadline{th::milliseconds{400}}, &err);
        if (err != 0) return 3;
        if (!rest.empty()) return 2;
        return th::readable(c.get(), 0) ? 0 : 4;  // at end of file a socket stays readable
    });
    EXPECT_EQ(rc, 0) << "uid 65534 should get exactly 'ERROR not allowed (uid 65534)\\n', then "
                        "end of file (1: connect failed; 2: another answer, or none; 3: reset; "
                        "4: no shutdown(SHUT_WR) after the line)\n"
                     << server->err();
    // And the server goes on serving its own uid.
    EXPECT_EQ(ask("still me\n"), "STILL ME\n") << server->err();
}

TEST_F(Ch02Steps, ServerStep5_ReadAndSend_AnswerALine) {
    auto server = start_server();
    uds::Fd c = connect_to_server();
    th::send_all(c.get(), "step five\n");
    EXPECT_EQ(th::read_line(c.get()), "STEP FIVE\n") << server->err();
}

TEST_F(Ch02Steps, ServerStep6_Close_ThenServesTheNextClient) {
    auto server = start_server();
    EXPECT_EQ(ask("first\n"), "FIRST\n") << server->err();
    EXPECT_EQ(ask("second\n"), "SECOND\n") << server->err();
}

TEST_F(Ch02Steps, ServerStep7_Close_FreesTheNameOnSigterm) {
    auto server = start_server();
    ASSERT_GE(proc_starting_with(at_name), 1u) << "no name to free: do steps 1-3 first";
    server->signal(SIGTERM);
    EXPECT_EQ(server->wait_exit(), 0) << server->err();
    EXPECT_EQ(proc_starting_with(at_name), 0u) << "the name is still held";
    // Nothing to clean up: the same name can be bound again at once.
    const RawAddress a = raw_abstract(name);
    uds::Fd again{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    EXPECT_EQ(::bind(again.get(), a.ptr(), a.len), 0) << std::strerror(errno);
}

// The client against a hand-written server on an exact-length abstract name.
class Ch02ClientSteps : public ::testing::Test {
  protected:
    const std::string name = th::unique_abstract_name("csteps");
    uds::Fd listener{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    void SetUp() override {
        const RawAddress a = raw_abstract(name);
        ASSERT_EQ(::bind(listener.get(), a.ptr(), a.len), 0) << std::strerror(errno);
        ASSERT_EQ(::listen(listener.get(), 4), 0);
    }
    [[nodiscard]] std::unique_ptr<th::Process> client(const std::string& message) const {
        return std::make_unique<th::Process>(th::bin(kChapter, "client"),
                                             std::vector<std::string>{"-s", "@" + name, message});
    }
    // Waits for the client's connection, giving up early if the client has already exited.
    uds::Fd accept_one(th::Process& c) {
        th::Deadline d;
        while (!th::readable(listener.get(), 100))
            if (d.expired() || !c.running()) return {};
        return uds::Fd{::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC)};
    }
};

TEST_F(Ch02ClientSteps, ClientStep1and2_SocketConnect_ReachTheExactName) {
    auto c = client("hello");
    uds::Fd conn = accept_one(*c);
    EXPECT_TRUE(conn.valid()) << "the client never reached @" << name
                              << " (connect with the exact length?):\n"
                              << c->err();
}

TEST_F(Ch02ClientSteps, ClientStep3_Send_SendsTheRequestLine) {
    auto c = client("hello");
    uds::Fd conn = accept_one(*c);
    ASSERT_TRUE(conn.valid()) << "do steps 1 and 2 first:\n" << c->err();
    EXPECT_EQ(th::read_line(conn.get()), "hello\n") << c->err();
}

TEST_F(Ch02ClientSteps, ClientStep4_Read_PrintsTheReply) {
    auto c = client("hello");
    uds::Fd conn = accept_one(*c);
    ASSERT_TRUE(conn.valid()) << "do steps 1 and 2 first:\n" << c->err();
    ASSERT_EQ(th::read_line(conn.get()), "hello\n") << "do step 3 first:\n" << c->err();
    th::send_all(conn.get(), "HEL");  // in two pieces: the client must read until the newline
    th::send_all(conn.get(), "LO\n");
    EXPECT_EQ(c->wait_exit(), 0) << c->err();
    EXPECT_EQ(c->out(), "HELLO\n");
}

TEST_F(Ch02ClientSteps, ClientStep4_Read_ReportsARefusalAndExits1) {
    auto c = client("let me in");
    uds::Fd conn = accept_one(*c);
    ASSERT_TRUE(conn.valid()) << "do steps 1 and 2 first:\n" << c->err();
    ASSERT_EQ(th::read_line(conn.get()), "let me in\n") << "do step 3 first:\n" << c->err();
    th::send_all(conn.get(), "ERROR not allowed (uid 65534)\n");
    ::shutdown(conn.get(), SHUT_WR);
    EXPECT_EQ(c->wait_exit(), 1) << c->err();
    EXPECT_EQ(c->out(), "ERROR not allowed (uid 65534)\n");
    EXPECT_NE(c->err().find("refused"), std::string::npos) << c->err();
}

}  // namespace
