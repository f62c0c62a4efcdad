// Fault injection for chapter 05: clients SIGKILLed while descriptors are in flight, in both
// directions, must leave nothing open in the server. make soak runs this with many rounds
// (SOAK_CH05_ROUNDS); make test runs a short version.
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include <gtest/gtest.h>

#include "ch05_peer.hpp"
#include "harness.hpp"
#include "uds.hpp"

namespace {

using ch05t::send_fds;

// Waits (poll with a timeout, never sleep) until pred() holds or the deadline passes.
template <typename Pred>
bool eventually(Pred pred, th::Deadline d = th::Deadline{}) {
    int p[2];
    if (::pipe(p) != 0) return pred();
    uds::Fd r{p[0]}, w{p[1]};
    while (!pred()) {
        if (d.expired()) return false;
        th::readable(r.get(), 20);  // nothing is ever written: a 20 ms timed wait
    }
    return true;
}

TEST(ReliabilityCh05, ClientsKilledWithDescriptorsInFlightLeaveNothingOpen) {
    const char* env = std::getenv("SOAK_CH05_ROUNDS");
    const int rounds = env != nullptr ? std::atoi(env) : 60;
    th::TempDir tmp;
    const std::string sock = tmp.file("broker.sock");
    auto started = ch05t::start(th::bin("05-sendmsg-fds", "server"), {"-s", sock});
    th::Process& server = *started;
    const auto addr = uds::Address::path(sock);
    const int baseline = th::count_fds(server.pid());

    for (int i = 0; i < rounds; ++i) {
        server.drain();  // it logs every request: keep its stderr pipe from filling up
        pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (::connect(s, addr.sockaddr_ptr(), addr.length()) != 0) ::_exit(3);
            int p[2];
            if (::pipe(p) != 0) ::_exit(4);
            switch (i % 3) {
                case 0:  // a descriptor to the server with half a line: it holds it, then EOF
                    send_fds(s, "GRE", {p[1]});
                    break;
                case 1:  // a descriptor from the server, never received: it dies in our queue
                    send_fds(s, "OPEN hello.txt\n", {p[1]});  // ours is extra: closed there
                    break;
                default:  // GREET into a pipe whose reader is about to die
                    send_fds(s, "GREET\n", {p[1]});
                    break;
            }
            ::kill(::getpid(), SIGKILL);  // no close, no cleanup: like a crash
            ::_exit(5);
        }
        int st = 0;
        ASSERT_EQ(::waitpid(pid, &st, 0), pid);
        ASSERT_TRUE(WIFSIGNALED(st)) << "child " << i << " exited with " << WEXITSTATUS(st);
    }
    EXPECT_TRUE(eventually([&] {
        server.drain();
        return th::count_fds(server.pid()) == baseline;
    })) << "server holds "
        << th::count_fds(server.pid()) << " descriptors, " << baseline << " at start";
    // And it still serves.
    uds::Fd c = th::connect_stream(addr);
    th::send_all(c.get(), "OPEN missing-file\n");
    EXPECT_EQ(th::read_line(c.get()).rfind("ERROR", 0), 0u);
    EXPECT_TRUE(server.running());
}

}  // namespace
