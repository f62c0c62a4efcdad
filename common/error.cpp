#include "error.hpp"

#include <unistd.h>

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

void log(std::string_view message) {
    std::string line = program_name() + ": ";
    line.append(message);
    line.push_back('\n');
    // One write for the whole line; a short write to stderr is not worth a loop here.
    [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
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
