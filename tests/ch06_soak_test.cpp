// Chapter 06 soak (ReliabilityCh06: not graded). Round after round, a monitor and its worker are
// started and, with requests in flight, one of them is killed: the worker (SIGKILL), the monitor
// (SIGKILL), or the monitor asked to stop (SIGTERM). Each time the survivor must notice and end
// the way the chapter promises, and nothing may be left: no process, no descriptor in this test.
//   make test-06: 20 rounds; make soak: SOAK_CH06_ROUNDS (tests/soak/run sets 300).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "ch06_support.hpp"
#include "harness.hpp"

using namespace ch06;

TEST(ReliabilityCh06, KillingEitherSideMidSessionLeavesNothingBehind) {
    const char* env = std::getenv("SOAK_CH06_ROUNDS");
    const int rounds = env != nullptr ? std::atoi(env) : 20;
    Tree t;
    const int baseline = th::count_fds();
    std::mt19937 rng(static_cast<unsigned>(::getpid()));
    int kinds[3] = {0, 0, 0};
    for (int round = 0; round < rounds; ++round) {
        const int kind = static_cast<int>(rng() % 3);  // 0 worker KILL, 1 monitor KILL, 2 TERM
        ++kinds[kind];
        Session s({"--root", t.root, "--", "-"});
        pid_t w = s.worker();
        ASSERT_GT(w, 0) << "round " << round << "\n" << s.err();
        std::string batch;
        const int n = static_cast<int>(rng() % 8);
        for (int i = 0; i < n; ++i)
            batch += (rng() % 3 == 0) ? "LIST\n" : (rng() % 2 ? "hello.txt\n" : "../nope\n");
        s.monitor->write_stdin(batch);  // some are answered, some are in flight at the kill
        if (kind == 0) {
            ::kill(w, SIGKILL);
            EXPECT_EQ(s.monitor->wait_exit(), 128 + SIGKILL)
                << "round " << round << ": the monitor reports the killed worker\n"
                << s.err();
        } else if (kind == 1) {
            s.monitor->signal(SIGKILL);
            s.monitor->wait_exit();
            int st = 0;
            pid_t r = 0;
            for (th::Deadline d; (r = ::waitpid(w, &st, WNOHANG)) == 0 && !d.expired();)
                ::usleep(1000);
            ASSERT_EQ(r, w) << "round " << round << ": the worker outlived its monitor";
            EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1)
                << "round " << round << ": the worker exits 1 when its monitor dies";
        } else {
            s.monitor->signal(SIGTERM);
            int status = s.monitor->wait_exit();
            EXPECT_EQ(status, 128 + SIGTERM)
                << "round " << round << ": SIGTERM is passed on (status " << status << ")\n"
                << s.err();
        }
        EXPECT_TRUE(wait_gone(w)) << "round " << round << ": the worker is gone";
        s.monitor.reset();
        th::kill_leftover_children();
        ASSERT_TRUE(children_of(::getpid()).empty()) << "round " << round << ": a process is left";
    }
    EXPECT_EQ(th::count_fds(), baseline) << "this test holds no more descriptors than before";
    std::printf("ReliabilityCh06: %d rounds: %d worker SIGKILL, %d monitor SIGKILL, %d SIGTERM\n",
                rounds, kinds[0], kinds[1], kinds[2]);
}
