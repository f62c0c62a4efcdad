#include "cli.hpp"

#include <getopt.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "error.hpp"

namespace uds {

Cli::Cli(std::string program, std::string synopsis, std::string description)
    : program_(std::move(program)),
      synopsis_(std::move(synopsis)),
      description_(std::move(description)) {}

Cli& Cli::option(char short_name, std::string long_name, std::string arg_name, std::string help,
                 Handler handler) {
    opts_.push_back({short_name, std::move(long_name), std::move(arg_name), std::move(help),
                     std::move(handler)});
    return *this;
}

std::string Cli::usage() const {
    std::string u = "usage: " + program_ + " " + synopsis_ + "\n";
    if (!description_.empty()) u += description_ + "\n";
    u += "options:\n";
    auto line = [&](const std::string& left, const std::string& help) {
        std::string l = "  " + left;
        if (l.size() < 26)
            l.resize(26, ' ');
        else
            l += "  ";
        u += l + help + "\n";
    };
    for (const Opt& o : opts_) {
        std::string left = o.short_name ? std::string("-") + o.short_name + ", " : "    ";
        left += "--" + o.long_name;
        if (!o.arg_name.empty()) left += " " + o.arg_name;
        line(left, o.help);
    }
    line("-h, --help", "show this help and exit");
    return u;
}

std::vector<std::string> Cli::parse(int argc, char** argv) {
    set_usage(usage());
    std::vector<::option> longs;
    std::string shorts = "+:h";  // '+': stop at the first non-option; ':': report missing values
    for (std::size_t i = 0; i < opts_.size(); ++i) {
        const Opt& o = opts_[i];
        int has_arg = o.arg_name.empty() ? no_argument : required_argument;
        longs.push_back({o.long_name.c_str(), has_arg, nullptr, 1000 + static_cast<int>(i)});
        if (o.short_name) {
            shorts += o.short_name;
            if (has_arg == required_argument) shorts += ':';
        }
    }
    longs.push_back({"help", no_argument, nullptr, 'h'});
    longs.push_back({nullptr, 0, nullptr, 0});

    opterr = 0;  // we print our own messages
    optind = 0;  // 0 fully resets glibc's getopt, so parse() may be called more than once
    for (;;) {
        int c = ::getopt_long(argc, argv, shorts.c_str(), longs.data(), nullptr);
        if (c == -1) break;
        // What the user typed, for messages: "-x" for a short option, else the whole word.
        std::string given = optopt > 0 && optopt < 256     ? std::string("-") + char(optopt)
                            : optind > 0 && optind <= argc ? std::string(argv[optind - 1])
                                                           : std::string("?");
        if (c == 'h') {
            std::string u = usage();
            [[maybe_unused]] ssize_t n = ::write(STDOUT_FILENO, u.data(), u.size());
            throw Exit{0};
        }
        if (c == '?') throw UsageError("unknown option '" + given + "'");
        if (c == ':') throw UsageError("option '" + given + "' needs a value");
        const Opt* found = nullptr;
        if (c >= 1000) {
            found = &opts_[static_cast<std::size_t>(c - 1000)];
        } else {
            for (const Opt& o : opts_)
                if (o.short_name == c) found = &o;
        }
        if (found == nullptr) throw UsageError("unknown option '" + given + "'");
        found->handler(optarg != nullptr ? std::string(optarg) : std::string());
    }
    std::vector<std::string> rest;
    for (int i = optind; i < argc; ++i)
        rest.emplace_back(argv[i]);
    return rest;
}

std::uint64_t parse_number(const std::string& text, std::string_view what, std::uint64_t min,
                           std::uint64_t max) {
    auto bad = [&] {
        return UsageError(std::string(what) + " must be a whole number from " +
                          std::to_string(min) + " to " + std::to_string(max) + ", not '" + text +
                          "'");
    };
    if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) throw bad();
    errno = 0;
    char* end = nullptr;
    unsigned long long v = std::strtoull(text.c_str(), &end, 10);
    if (errno == ERANGE || *end != '\0' || v < min || v > max) throw bad();
    return v;
}

Address address_argument(const std::string& text) {
    try {
        return Address::parse(text);
    } catch (const AddressError& e) {
        throw UsageError(std::string("--socket: ") + e.what());
    }
}

}  // namespace uds
