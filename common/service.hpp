// service.hpp - the tiny protocol served by chapters 01-04: ASCII upper-casing.
//
// A request is a line (at most kMaxLine bytes before '\n'); the reply is the same bytes with
// a-z mapped to A-Z, then '\n'. Every other byte (UTF-8, '\r', NUL) comes back unchanged.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace uds {

inline constexpr std::size_t kMaxLine = 4096;
inline constexpr std::string_view kLineTooLong = "ERROR line too long (max 4096 bytes)\n";
inline constexpr std::string_view kDatagramTooLong = "ERROR datagram too long (max 4096 bytes)";

// ASCII only, on purpose: toupper() would depend on the locale and could touch UTF-8 bytes.
inline std::string upcase(std::string_view text) {
    std::string out(text);
    for (char& c : out)
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    return out;
}

}  // namespace uds
