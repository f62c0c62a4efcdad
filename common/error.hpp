// error.hpp - turning failed system calls into one clear line and an exit code.
//
//   int fd = uds::check(socket(...), "socket");      // returns fd, or throws uds::SysError
//   return uds::run_main("server", argc, argv, real_main);
//
// run_main prints   program: what: strerror (hint)   and exits 1 for runtime errors,
// or the message plus usage and exit 2 for uds::UsageError.
#pragma once

#include <cerrno>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace uds {

// A failed system call: errno plus what we were doing ("connect /tmp/x.sock") and a hint.
class SysError : public std::system_error {
  public:
    SysError(int err, std::string what, std::string hint = {});
    [[nodiscard]] int code_value() const noexcept { return code().value(); }
    [[nodiscard]] const std::string& context() const noexcept { return context_; }
    [[nodiscard]] const std::string& hint() const noexcept { return hint_; }

  private:
    std::string context_;
    std::string hint_;
};

// A runtime failure that is not one errno ("a server is already listening on ...").
class Failure : public std::runtime_error {
  public:
    explicit Failure(const std::string& message, std::string hint = {});
    [[nodiscard]] const std::string& hint() const noexcept { return hint_; }

  private:
    std::string hint_;
};

// Bad command line: printed with the usage text, exit status 2.
class UsageError : public std::invalid_argument {
  public:
    using std::invalid_argument::invalid_argument;
};

// Thrown to end the program early with a given status (for example after --help).
struct Exit {
    int status;
};

// Returns rc when it is not -1; otherwise throws SysError(errno, what, hint).
template <typename T>
T check(T rc, std::string_view what, std::string_view hint = {}) {
    if (rc == static_cast<T>(-1)) throw SysError(errno, std::string(what), std::string(hint));
    return rc;
}

// The name used in messages ("server", "client"); set by run_main.
const std::string& program_name();
void set_program_name(std::string name);

// One line on stderr, "program: message", written with a single write() so that lines
// from several processes sharing the terminal do not interleave.
//  - Every control byte is escaped (see escape_for_log): a peer that puts "\n" or terminal
//    escape codes in its socket path or its request cannot forge or hide log lines.
//  - A failed write is ignored, and never kills the program: when stderr is a pipe whose reader
//    went away (`server 2>&1 | head -1`), write() would raise SIGPIPE. We block SIGPIPE for the
//    write and take back the signal it raised, so a server keeps serving (and still cleans up
//    on SIGTERM) when nobody reads its log.
void log(std::string_view message);

// Text as it may appear in a log line: bytes 0x00-0x1F, 0x7F, the C1 controls (U+0080-U+009F)
// and bytes that are not valid UTF-8 become \xNN; everything else (UTF-8 text, '\\') is kept.
std::string escape_for_log(std::string_view text);

// At most `per_second` lines of one kind of event; the rest are counted and reported once, in
// the next line that is allowed ("... (37 similar lines suppressed)"). For events a peer can
// multiply (an empty datagram per microsecond must not become 200 bytes of log each).
class LogLimit {
  public:
    explicit LogLimit(int per_second) : per_second_(per_second) {}
    // Logs message if the budget allows, else counts it.
    void log(std::string_view message);

  private:
    int per_second_;
    long window_ = -1;  // the second (CLOCK_MONOTONIC) the budget belongs to
    int used_ = 0;
    long suppressed_ = 0;
};

// For exercise starters: the step a student has not written yet. Prints
// "program: step S2 (bind) is not written yet" and ends the process at once with status 1
// (_exit: it works the same inside a thread or a forked child).
[[noreturn]] void unwritten(std::string_view step, std::string_view what);

// The one-line message for an exception, without the program name.
std::string describe(const std::exception& e);

// Runs body(argc, argv) and turns exceptions into a message and an exit status:
// UsageError -> 2 (and usage), everything else -> 1. Returns body's own status otherwise.
// The usage text is the one last registered with set_usage (uds::Cli does that).
int run_main(std::string name, int argc, char** argv,
             const std::function<int(int, char**)>& body) noexcept;

// The program's usage text, printed after a UsageError.
void set_usage(std::string text);

}  // namespace uds
