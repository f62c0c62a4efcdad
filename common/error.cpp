#include "error.hpp"

#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <new>

namespace uds {

namespace {
std::string& name_storage() {
    static std::string name = "uds";
    return name;
}
std::string& usage_storage() {
    static std::string usage;
    return usage;
}
}  // namespace

SysError::SysError(int err, std::string what, std::string hint)
    : std::system_error(err, std::generic_category(), what),
      context_(std::move(what)),
      hint_(std::move(hint)) {}

Failure::Failure(const std::string& message, std::string hint)
    : std::runtime_error(message), hint_(std::move(hint)) {}

const std::string& program_name() {
    return name_storage();
}
void set_program_name(std::string name) {
    name_storage() = std::move(name);
}

std::string escape_for_log(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    auto hex = [&out](unsigned char c) {
        static constexpr char digits[] = "0123456789abcdef";
        out += "\\x";
        out += digits[c >> 4];
        out += digits[c & 0xf];
    };
    for (std::size_t i = 0; i < text.size();) {
        auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                hex(c);
            else
                out += static_cast<char>(c);
            ++i;
            continue;
        }
        // A UTF-8 sequence: its length from the lead byte, then continuation bytes 10xxxxxx.
        std::size_t len = c >= 0xc2 && c <= 0xdf   ? 2
                          : c >= 0xe0 && c <= 0xef ? 3
                          : c >= 0xf0 && c <= 0xf4 ? 4
                                                   : 0;
        bool valid = len != 0 && i + len <= text.size();
        for (std::size_t k = 1; valid && k < len; ++k)
            valid = (static_cast<unsigned char>(text[i + k]) & 0xc0) == 0x80;
        if (valid && len == 3) {  // no overlong forms, no UTF-16 surrogates
            auto c1 = static_cast<unsigned char>(text[i + 1]);
            valid = !(c == 0xe0 && c1 < 0xa0) && !(c == 0xed && c1 >= 0xa0);
        }
        if (valid && len == 4) {  // no overlong forms, nothing above U+10FFFF
            auto c1 = static_cast<unsigned char>(text[i + 1]);
            valid = !(c == 0xf0 && c1 < 0x90) && !(c == 0xf4 && c1 >= 0x90);
        }
        // C1 controls (U+0080-U+009F, encoded C2 80-C2 9F) act on terminals like ESC does.
        bool c1_control =
            valid && len == 2 && c == 0xc2 && static_cast<unsigned char>(text[i + 1]) < 0xa0;
        if (!valid || c1_control) {
            std::size_t n = valid ? len : 1;
            for (std::size_t k = 0; k < n; ++k)
                hex(static_cast<unsigned char>(text[i + k]));
            i += n;
            continue;
        }
        out.append(text.substr(i, len));
        i += len;
    }
    return out;
}

void log(std::string_view message) {
    std::string line = program_name() + ": " + escape_for_log(message);
    line.push_back('\n');
    // Block SIGPIPE in this thread for the write: a closed log pipe gives EPIPE, and the
    // SIGPIPE it raised (aimed at this thread) is taken back before the mask is restored.
    sigset_t pipe_only, old;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
    // One write for the whole line; a short write to stderr is not worth a loop here.
    ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
    if (n == -1 && errno == EPIPE && !sigismember(&old, SIGPIPE)) {
        const timespec now{0, 0};
        while (sigtimedwait(&pipe_only, nullptr, &now) == -1 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

void LogLimit::log(std::string_view message) {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec != window_) {
        window_ = now.tv_sec;
        used_ = 0;
    }
    if (used_ >= per_second_) {
        ++suppressed_;
        return;
    }
    ++used_;
    if (suppressed_ == 0) {
        uds::log(message);
        return;
    }
    uds::log(std::string(message) + " (" + std::to_string(suppressed_) +
             " similar lines suppressed)");
    suppressed_ = 0;
}

void unwritten(std::string_view step, std::string_view what) {
    std::string line = program_name() + ": step " + std::string(step) + " (" + std::string(what) +
                       ") is not written yet\n";
    [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
    ::_exit(1);
}

std::string describe(const std::exception& e) {
    if (const auto* se = dynamic_cast<const SysError*>(&e)) {
        std::string s = se->context() + ": " + std::strerror(se->code_value());
        if (!se->hint().empty()) s += " (" + se->hint() + ")";
        return s;
    }
    if (const auto* f = dynamic_cast<const Failure*>(&e)) {
        std::string s = f->what();
        if (!f->hint().empty()) s += " (" + f->hint() + ")";
        return s;
    }
    if (const auto* sys = dynamic_cast<const std::system_error*>(&e)) {
        return std::string(sys->what());
    }
    return e.what();
}

void set_usage(std::string text) {
    usage_storage() = std::move(text);
}

int run_main(std::string name, int argc, char** argv,
             const std::function<int(int, char**)>& body) noexcept {
    try {
        set_program_name(std::move(name));
        return body(argc, argv);
    } catch (const Exit& e) {
        return e.status;
    } catch (const UsageError& e) {
        log(e.what());
        const std::string& text = usage_storage();
        [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, text.data(), text.size());
        return 2;
    } catch (const std::bad_alloc&) {
        log("out of memory");
        return 1;
    } catch (const std::exception& e) {
        log(describe(e));
        return 1;
    } catch (...) {
        log("unknown error");
        return 1;
    }
}

}  // namespace uds
