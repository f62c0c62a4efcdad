// cli.hpp - the command line, the same way in every program (getopt_long underneath).
//
//   std::string socket_arg;
//   uds::Cli cli("client", "[-s ADDR] [MESSAGE...]", "Sends each MESSAGE ...");
//   cli.option('s', "socket", "ADDR", "filesystem path, or @name", [&](auto v) { socket_arg = v;
//   }); std::vector<std::string> rest = cli.parse(argc, argv);
//
// -h/--help is built in: usage on stdout, exit 0. Unknown options and bad values throw
// uds::UsageError, which run_main turns into a message, the usage on stderr, and exit 2.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "address.hpp"

namespace uds {

class Cli {
  public:
    using Handler = std::function<void(const std::string& value)>;

    Cli(std::string program, std::string synopsis, std::string description);

    // An option with a value (arg_name non-empty) or a flag (arg_name empty: value is "").
    // short_name 0 means long form only.
    Cli& option(char short_name, std::string long_name, std::string arg_name, std::string help,
                Handler handler);

    // Parses argv; returns the positional arguments. Throws UsageError or Exit{0} (after --help).
    std::vector<std::string> parse(int argc, char** argv);

    [[nodiscard]] std::string usage() const;

  private:
    struct Opt {
        char short_name;
        std::string long_name, arg_name, help;
        Handler handler;
    };
    std::string program_, synopsis_, description_;
    std::vector<Opt> opts_;
};

// Parses a whole decimal number in [min, max]; throws UsageError naming `what` otherwise.
std::uint64_t parse_number(const std::string& text, std::string_view what, std::uint64_t min,
                           std::uint64_t max);

// The -s/--socket value as an address ("@name" = abstract, else a path); a value we cannot
// use (empty, too long, NUL) is a usage error.
Address address_argument(const std::string& text);

}  // namespace uds
