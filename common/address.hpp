// address.hpp - a sockaddr_un together with its exact length.
//
// An AF_UNIX address is three different things, told apart by its length:
//   path      "/run/x.sock"  -> offsetof(sun_path) + strlen(path) + 1   (a file in the filesystem)
//   abstract  "@name"        -> offsetof(sun_path) + 1 + name length     (sun_path[0] == '\0';
//                                                        every byte counted by the length is the
//                                                        name)
//   unnamed                  -> sizeof(sa_family_t)                       (a socket that never
//   bound)
// The length is part of the address. Passing sizeof(struct sockaddr_un) for an abstract name
// makes the trailing NULs part of the name (see 02-stream-abstract/README.md).
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

namespace uds {

// sun_path holds 108 bytes on Linux: a path may have 107 bytes plus its NUL,
// an abstract name 107 bytes after the leading NUL.
inline constexpr std::size_t kSunPathSize = sizeof(sockaddr_un{}.sun_path);
inline constexpr std::size_t kMaxPathLength = kSunPathSize - 1;      // 107
inline constexpr std::size_t kMaxAbstractLength = kSunPathSize - 1;  // 107

// Thrown for addresses we refuse to build (too long, empty, embedded NUL).
class AddressError : public std::invalid_argument {
  public:
    using std::invalid_argument::invalid_argument;
};

class Address {
  public:
    enum class Kind { Unnamed, Path, Abstract };

    Address() noexcept;  // unnamed

    // Factories. They refuse (AddressError) instead of truncating.
    static Address path(std::string_view path);
    static Address abstract(std::string_view name);
    // Command-line form: "@name" is abstract (as ss and systemd print it), anything else a path.
    static Address parse(std::string_view text);
    // Whatever the kernel filled in (getsockname, getpeername, accept, recvfrom).
    static Address from_kernel(const sockaddr_un& sa, socklen_t len) noexcept;

    [[nodiscard]] const sockaddr* sockaddr_ptr() const noexcept {
        return reinterpret_cast<const sockaddr*>(&sa_);
    }
    [[nodiscard]] socklen_t length() const noexcept { return len_; }
    [[nodiscard]] Kind kind() const noexcept;
    // The path, or the abstract name's bytes (without the leading NUL); empty when unnamed.
    [[nodiscard]] std::string name() const;
    // For logs: the path, "@name" (NULs inside shown as '@', other unprintables as \xNN,
    // like ss does), or "(unnamed)".
    [[nodiscard]] std::string str() const;

    friend bool operator==(const Address& a, const Address& b) noexcept;

  private:
    sockaddr_un sa_;
    socklen_t len_;
};

// getsockname / getpeername as Address values.
Address local_address(int fd);
Address peer_address(int fd);

}  // namespace uds
