// harness.hpp - what the tests need to drive real programs and real sockets.
//
// Nothing here sleeps to synchronise: every wait is a poll() with a deadline, and a test that
// waits too long fails with a message instead of hanging the suite.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "address.hpp"
#include "fd.hpp"

namespace th {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// The normal patience for one step of a test. Generous: sanitizer builds are slow.
inline constexpr milliseconds kPatience{10000};

// The patience in force: kPatience, or UDS_PATIENCE_MS when set (make grade-NN sets a short one,
// so that a student's server that never answers costs seconds, not minutes). Once two waits
// have run out in this process (see strike()), a quarter of it: a program that hangs once
// usually hangs every time.
milliseconds patience();
// How long start_server waits for a ready line: UDS_READY_MS, else patience().
milliseconds ready_patience();
// Called by every wait of the harness that gave up because its deadline passed.
void strike();

class Deadline {
  public:
    Deadline() : Deadline(patience()) {}
    explicit Deadline(milliseconds d) : at_(Clock::now() + d) {}
    [[nodiscard]] int remaining_ms() const;  // >= 0
    [[nodiscard]] bool expired() const { return Clock::now() >= at_; }

  private:
    Clock::time_point at_;
};

// Path of a program under test: $UDS_BIN_DIR/<chapter>/<program>. UDS_BIN_DIR defaults to the
// source tree (set by make test); point it at another tree to grade your own programs.
// UDS_CH<NN>_DIR (for example UDS_CH01_DIR) overrides the directory of one chapter.
std::string bin(const std::string& chapter, const std::string& program);

// A fresh private directory under /tmp (short, so socket paths stay far below 108 bytes),
// removed with everything in it when the test ends.
class TempDir {
  public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    [[nodiscard]] const std::string& path() const { return path_; }
    [[nodiscard]] std::string file(std::string_view name) const;

  private:
    std::string path_;
};

// Removes every TempDir still alive: for a test program that is stopped by a signal and exits
// without running destructors (make grade-NN's time limit, Ctrl-C).
void remove_temp_dirs();

// An abstract name no other test (or parallel test run) uses: "uds-test-<pid>-<n>-<tag>".
std::string unique_abstract_name(std::string_view tag);

// A child process with its stdin, stdout and stderr connected to pipes.
// Its output is kept up to kMaxOutput bytes per stream (a runaway program cannot fill memory);
// how it ended is recorded for the grader (see ending_notes()). When it is destroyed, it and
// every process it started are killed and reaped.
class Process {
  public:
    struct Options {
        std::vector<std::string> env;  // "NAME=value" added to (or replacing in) our environment
        std::vector<std::string> unset_env;
    };
    Process(const std::string& path, const std::vector<std::string>& args, Options opts);
    Process(const std::string& path, const std::vector<std::string>& args)
        : Process(path, args, Options{}) {}
    ~Process();  // SIGKILL and reap if it is still running: no process outlives its test
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    [[nodiscard]] pid_t pid() const { return pid_; }
    void write_stdin(std::string_view data);
    void close_stdin();
    // Closes our end of its stderr pipe, as `server 2>&1 | head -1` does once head has its line:
    // the program's next write to stderr gets EPIPE (and SIGPIPE, unless it guards against it).
    void close_stderr() { err_fd_.reset(); }
    void signal(int sig);

    // Waits until the collected stderr (or stdout) contains `text`; true if it did in time.
    bool wait_stderr(std::string_view text, Deadline d = Deadline{});
    bool wait_stdout(std::string_view text, Deadline d = Deadline{});
    // Waits until a line of stderr starts with `prefix`.
    bool wait_stderr_line(std::string_view prefix, Deadline d = Deadline{});
    // Waits until a line of stderr starts with `text`, or with "word: " then `text`.
    bool wait_ready_line(std::string_view text, Deadline d = Deadline{});
    // Waits for the process to end, collecting all its output. Returns the exit status,
    // 128 + signal number if it was killed, or -1 if the deadline passed.
    int wait_exit(Deadline d = Deadline{});
    [[nodiscard]] bool running();
    // Both its stdout and stderr have reached end of file (it has exited, or closed them).
    [[nodiscard]] bool output_closed() const { return !out_fd_ && !err_fd_; }
    // Collects whatever output is ready, without waiting. Call it now and then when a child
    // logs a lot: a full pipe (64 KiB) would block the child in write().
    void drain() { pump(0); }

    [[nodiscard]] const std::string& out() const { return out_; }
    [[nodiscard]] const std::string& err() const { return err_; }
    // "server" for .../server: the name the grader uses when it reports how the process ended.
    [[nodiscard]] const std::string& name() const { return name_; }
    // How it ended, for messages: "exited with status 1", "was killed by SIGPIPE (13)", or
    // "is still running".
    [[nodiscard]] std::string ending();

    static constexpr std::size_t kMaxOutput = 1 << 20;

  private:
    void pump(int timeout_ms);  // one poll() round over stdout/stderr
    bool wait_text(const std::string& buf, std::string_view text, Deadline d);
    void reaped(int wait_status);

    std::string name_;
    int signalled_ = 0;  // the last signal this harness sent it (0: none)
    pid_t pid_ = -1;
    int status_ = -1;
    bool reaped_ = false;
    uds::Fd in_, out_fd_, err_fd_;
    std::string out_, err_;
};

// Starts a server and waits until its stderr says `ready_text` ("listening on", "bound to"),
// with ready_patience(). If it does not, the test stops here (th::Abort) with one line saying
// how the server ended: "the server exited with status 1 before it said 'listening on':
// server: step S2 (bind) is not written yet". After one server program has timed out this way,
// later starts of the same program wait only briefly: a server that never gets ready must not
// cost every test its full deadline.
std::unique_ptr<Process> start_server(const std::string& path, const std::vector<std::string>& args,
                                      std::string_view ready_text = "listening on",
                                      Process::Options opts = {});

// Thrown to stop a test with a one-line reason (gtest reports it as the test's failure).
struct Abort : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// ------------------------------------------------------------------ grading support
// `EXPECT_EQ(a, b) << th::why("the reply is the line in upper case (step S5b)");`
// The grader shows the first why() of a failed test as its one-line reason.
std::string why(std::string_view reason);
// A chapter's hint for a program killed by a signal (in the chapter's test file):
//   const bool registered = th::hint_on_signal(SIGPIPE, "send with MSG_NOSIGNAL (step S5b)");
bool hint_on_signal(int sig, std::string hint);
// Programs that ended by a signal during the current test ("the server was killed by SIGPIPE
// (13): send with MSG_NOSIGNAL (step S5b)"), oldest first. The grader's listener reads and
// clears it after each test.
std::vector<std::string>& ending_notes();
// Kills and reaps every child process still left (the test binary is a child subreaper, so
// orphans of a test's programs come back to it). Called after each test.
void kill_leftover_children();
// Skips the test when not root, with the reason the grader reports as "need root".
#define TH_NEED_ROOT()                                                                 \
    do {                                                                               \
        if (::geteuid() != 0) GTEST_SKIP() << "need root: it switches to another uid"; \
    } while (0)

// Runs a program to completion with the given stdin; kills it if it overruns the deadline.
struct Result {
    int status;  // as Process::wait_exit
    std::string out, err;
};
Result run(const std::string& path, const std::vector<std::string>& args,
           std::string_view input = {}, Process::Options opts = {}, Deadline d = Deadline{});

// Open descriptors of a process (this one by default), from /proc/PID/fd.
int count_fds(pid_t pid = 0);

// Raw peers, for tests that talk to servers like any outside program would.
uds::Fd connect_stream(const uds::Address& addr);  // fails the test (throws) if connect fails
void send_all(int fd, std::string_view data);
// Reads until '\n' (included in the result), EOF or the deadline.
std::string read_line(int fd, Deadline d = Deadline{});
// Reads until EOF (or the deadline); `err` gets errno if a read failed (ECONNRESET...).
std::string read_to_eof(int fd, Deadline d = Deadline{}, int* err = nullptr);
// Waits until fd is readable; false on timeout.
bool readable(int fd, int timeout_ms);

// Runs fn in a forked child that has dropped to uid/gid 65534 (nobody), and returns what fn
// returned (0..255), or -1 if the child failed to drop privileges or crashed.
// Needs root; tests that need it skip themselves when not root.
int run_as_nobody(const std::function<int()>& fn);
inline constexpr uid_t kNobody = 65534;

// Is a program on PATH?
bool have_program(const std::string& name);

}  // namespace th
