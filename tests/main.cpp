// The test runner: GoogleTest, plus
//   - the summary line make test promises:  tests: N passed, M failed
//   - after every test, no process of it is left running (the runner is a child subreaper, so
//     even the grandchildren of a misbehaving program come back to it and are killed);
//   - for make grade-NN (UDS_GRADE_RESULTS=FILE): one line per finished test appended to FILE,
//       PASS|FAIL|SKIP <tab> Suite.Name <tab> one-line reason
//     which scripts/grade turns into the student's report.
#include <fcntl.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "harness.hpp"

namespace {

// One line, printable, at most `max` bytes (long values such as 4,096 'A's are cut).
std::string one_line(std::string text, std::size_t max = 200) {
    std::string out;
    bool space = false;
    for (char c : text) {
        if (c == '\n' || c == '\t' || c == '\r') {
            space = !out.empty();
            continue;
        }
        if (space) out += ' ';
        space = false;
        out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
    }
    if (out.size() > max) {
        out.resize(max);
        // Do not leave half a UTF-8 character behind.
        while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xC0) == 0x80)
            out.pop_back();
        if (!out.empty() && static_cast<unsigned char>(out.back()) >= 0xC0) out.pop_back();
        out += "...";
    }
    return out;
}

// The reason a failed test gives a student: how a program died, else the first th::why() of the
// first failure, else the text of an exception that stopped the test, else the failure itself.
std::string reason_of(const testing::TestResult& result, const std::vector<std::string>& notes) {
    if (!notes.empty()) return one_line(notes.front());
    for (int i = 0; i < result.total_part_count(); ++i) {
        const testing::TestPartResult& part = result.GetTestPartResult(i);
        if (!part.failed()) continue;
        std::string msg = part.message();
        if (auto w = msg.find("why: "); w != std::string::npos && (w == 0 || msg[w - 1] == '\n'))
            return one_line(msg.substr(w + 5, msg.find('\n', w) - w - 5));
        const std::string exc = "C++ exception with description \"";
        if (msg.rfind(exc, 0) == 0) {
            std::string what = msg.substr(exc.size());
            return one_line(what.substr(0, what.rfind("\" thrown in")));
        }
        return one_line(msg);
    }
    return "failed";
}

class Runner : public testing::EmptyTestEventListener {
  public:
    explicit Runner(const char* results) {
        if (results != nullptr && *results != '\0')
            fd_ = ::open(results, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    }
    void OnTestStart(const testing::TestInfo&) override { th::ending_notes().clear(); }
    void OnTestEnd(const testing::TestInfo& info) override {
        th::kill_leftover_children();
        const testing::TestResult& r = *info.result();
        std::vector<std::string> notes = th::ending_notes();
        th::ending_notes().clear();
        if (r.Failed())
            for (const std::string& n : notes)
                std::printf("note: %s\n", n.c_str());
        if (fd_ < 0) return;
        std::string status = r.Failed() ? "FAIL" : r.Skipped() ? "SKIP" : "PASS";
        std::string reason;
        if (r.Failed()) reason = reason_of(r, notes);
        if (r.Skipped())
            for (int i = 0; i < r.total_part_count(); ++i)
                if (r.GetTestPartResult(i).skipped())
                    reason = one_line(r.GetTestPartResult(i).message());
        std::string line =
            status + "\t" + info.test_suite_name() + "." + info.name() + "\t" + reason + "\n";
        [[maybe_unused]] ssize_t n = ::write(fd_, line.data(), line.size());
    }

  private:
    int fd_ = -1;
};

}  // namespace

// SIGTERM or SIGINT (make grade's time limit, Ctrl-C): end every process the tests started,
// including those that escaped into a session of their own, remove the tests' temporary
// directories, then exit. The signals are blocked in every thread and taken by this one, where
// it is safe to walk /proc.
void end_on_signal() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    // A test's forked child (no exec) must see these signals as any program would.
    pthread_atfork(nullptr, nullptr, [] {
        sigset_t both;
        sigemptyset(&both);
        sigaddset(&both, SIGTERM);
        sigaddset(&both, SIGINT);
        pthread_sigmask(SIG_UNBLOCK, &both, nullptr);
    });
    std::thread([set] {
        int sig = 0;
        sigwait(&set, &sig);
        th::kill_leftover_children();
        th::remove_temp_dirs();  // _Exit runs no destructors: their directories would stay
        std::fprintf(stderr, "tests: stopped by %s\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        std::_Exit(128 + sig);
    }).detach();
}

int main(int argc, char** argv) {
    end_on_signal();
    testing::InitGoogleTest(&argc, argv);
    // Writing to a child's stdin after it exited must fail with EPIPE, not kill the runner.
    std::signal(SIGPIPE, SIG_IGN);
    // Orphaned descendants of the programs under test are re-parented to us, so we can end them.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    testing::UnitTest::GetInstance()->listeners().Append(
        new Runner(std::getenv("UDS_GRADE_RESULTS")));
    int rc = RUN_ALL_TESTS();
    const testing::UnitTest& u = *testing::UnitTest::GetInstance();
    std::printf("tests: %d passed, %d failed", u.successful_test_count(), u.failed_test_count());
    if (u.skipped_test_count() > 0) std::printf(", %d skipped", u.skipped_test_count());
    std::printf("\n");
    return rc;
}
