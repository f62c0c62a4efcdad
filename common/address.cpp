#include "address.hpp"

#include <cstring>

#include "error.hpp"

namespace uds {

namespace {
constexpr socklen_t kPathOffset = offsetof(sockaddr_un, sun_path);

std::string_view visible(std::string_view text) {
    return text.size() > 60 ? "..." : "";
}
}  // namespace

Address::Address() noexcept : sa_{}, len_(sizeof(sa_family_t)) {
    sa_.sun_family = AF_UNIX;
}

Address Address::path(std::string_view path) {
    if (path.empty()) throw AddressError("socket path is empty");
    if (path.find('\0') != std::string_view::npos)
        throw AddressError("socket path contains a NUL byte");
    if (path.size() > kMaxPathLength)
        throw AddressError("socket path is " + std::to_string(path.size()) +
                           " bytes; the limit is " + std::to_string(kMaxPathLength) +
                           " (sun_path has 108 bytes including the final NUL): '" +
                           std::string(path.substr(0, 60)) + std::string(visible(path)) + "'");
    Address a;
    std::memcpy(a.sa_.sun_path, path.data(), path.size());
    a.sa_.sun_path[path.size()] = '\0';
    a.len_ = static_cast<socklen_t>(kPathOffset + path.size() + 1);  // count the final NUL
    return a;
}

Address Address::abstract(std::string_view name) {
    if (name.empty()) throw AddressError("abstract socket name is empty (write @name)");
    if (name.find('\0') != std::string_view::npos)
        throw AddressError("abstract socket name contains a NUL byte");
    if (name.size() > kMaxAbstractLength)
        throw AddressError("abstract socket name is " + std::to_string(name.size()) +
                           " bytes; the limit is " + std::to_string(kMaxAbstractLength));
    Address a;
    a.sa_.sun_path[0] = '\0';  // the leading NUL says "abstract"
    std::memcpy(a.sa_.sun_path + 1, name.data(), name.size());
    // Exactly the bytes of the name: no trailing NUL, never sizeof(sockaddr_un).
    a.len_ = static_cast<socklen_t>(kPathOffset + 1 + name.size());
    return a;
}

Address Address::parse(std::string_view text) {
    if (!text.empty() && text.front() == '@') return abstract(text.substr(1));
    return path(text);
}

Address Address::from_kernel(const sockaddr_un& sa, socklen_t len) noexcept {
    Address a;
    if (len > sizeof(sockaddr_un)) len = sizeof(sockaddr_un);
    std::memcpy(&a.sa_, &sa, len);
    a.len_ = len < sizeof(sa_family_t) ? static_cast<socklen_t>(sizeof(sa_family_t)) : len;
    return a;
}

Address::Kind Address::kind() const noexcept {
    if (len_ <= kPathOffset) return Kind::Unnamed;
    return sa_.sun_path[0] == '\0' ? Kind::Abstract : Kind::Path;
}

std::string Address::name() const {
    std::size_t bytes = len_ > kPathOffset ? len_ - kPathOffset : 0;
    switch (kind()) {
        case Kind::Unnamed:
            return {};
        case Kind::Abstract:
            return std::string(sa_.sun_path + 1, bytes - 1);
        case Kind::Path:
            // The kernel may hand back a path without a terminating NUL (all 108 bytes used).
            return std::string(sa_.sun_path, strnlen(sa_.sun_path, bytes));
    }
    return {};
}

std::string Address::str() const {
    switch (kind()) {
        case Kind::Unnamed:
            return "(unnamed)";
        case Kind::Path:
            return name();
        case Kind::Abstract: {
            std::string out = "@";
            for (char ch : name()) {
                auto c = static_cast<unsigned char>(ch);
                if (c == '\0') {
                    out += '@';
                } else if (c < 0x20 || c == 0x7f) {
                    static const char hex[] = "0123456789abcdef";
                    out += "\\x";
                    out += hex[c >> 4];
                    out += hex[c & 0xf];
                } else {
                    out += static_cast<char>(c);
                }
            }
            return out;
        }
    }
    return {};
}

bool operator==(const Address& a, const Address& b) noexcept {
    return a.len_ == b.len_ && std::memcmp(&a.sa_, &b.sa_, a.len_) == 0;
}

Address local_address(int fd) {
    sockaddr_un sa{};
    socklen_t len = sizeof(sa);
    check(::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len), "getsockname");
    return Address::from_kernel(sa, len);
}

Address peer_address(int fd) {
    sockaddr_un sa{};
    socklen_t len = sizeof(sa);
    check(::getpeername(fd, reinterpret_cast<sockaddr*>(&sa), &len), "getpeername");
    return Address::from_kernel(sa, len);
}

}  // namespace uds
