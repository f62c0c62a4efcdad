// tests/fuzz/address.cpp - uds::Address: parse, from_kernel and str never crash, and keep their
// promises.
//
// Input byte 0 chooses the mode; the rest is the text (parse) or the raw sockaddr bytes
// (from_kernel). Asserted:
//   parse   accepts exactly: "@name" with 1..107 name bytes, or a path of 1..107 bytes, no NUL;
//           the length is offsetof(sun_path) + 1 + name (abstract) or + path + 1 (path);
//           name() gives the bytes back, from_kernel(sockaddr, length) is the same address,
//           and str() parses back to the same address when it has no bytes str() escapes.
//   from_kernel  any bytes and any length (0..200) give an address whose length is within
//           [sizeof(sa_family_t), sizeof(sockaddr_un)], whose name() fits, and whose str() ends.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "address.hpp"

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "address: %s\n", what);
    std::abort();
}

constexpr std::size_t kOffset = offsetof(sockaddr_un, sun_path);

void check_parse(std::string_view text) {
    const bool abstract = !text.empty() && text.front() == '@';
    const std::string_view body = abstract ? text.substr(1) : text;
    const bool valid =
        !body.empty() && body.size() <= 107 && body.find('\0') == std::string_view::npos;
    uds::Address a;
    try {
        a = uds::Address::parse(text);
    } catch (const uds::AddressError& e) {
        if (valid) fail("a valid address was refused");
        if (std::strlen(e.what()) == 0) fail("refusal without a message");
        return;
    }
    if (!valid) fail("an invalid address was accepted");
    const auto want_kind = abstract ? uds::Address::Kind::Abstract : uds::Address::Kind::Path;
    if (a.kind() != want_kind) fail("wrong kind");
    const std::size_t want_len = kOffset + (abstract ? 1 + body.size() : body.size() + 1);
    if (a.length() != want_len) fail("length is not exact");
    if (a.name() != body) fail("name() does not give the bytes back");
    sockaddr_un raw{};
    std::memcpy(&raw, a.sockaddr_ptr(), a.length());
    if (!(uds::Address::from_kernel(raw, a.length()) == a)) fail("from_kernel round trip");
    if (raw.sun_family != AF_UNIX) fail("family is not AF_UNIX");
    const std::string s = a.str();
    bool plain = true;
    for (char ch : body) {
        auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c == 0x7f) plain = false;
    }
    if (abstract && plain && s != text) fail("str() of a plain abstract name is not @name");
    if (!abstract && s != text) fail("str() of a path is not the path");
    if (plain && !(uds::Address::parse(s) == a)) fail("parse(str()) round trip");
}

void check_kernel(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return;
    const auto len = static_cast<socklen_t>(data[0] % 201);  // may exceed sizeof(sockaddr_un)
    sockaddr_un raw{};
    std::memcpy(&raw, data + 1, std::min(size - 1, sizeof raw));
    const uds::Address a = uds::Address::from_kernel(raw, len);
    if (a.length() < sizeof(sa_family_t) || a.length() > sizeof(sockaddr_un))
        fail("from_kernel length out of range");
    const std::string name = a.name();
    if (name.size() > sizeof(raw.sun_path)) fail("name() longer than sun_path");
    const std::string s = a.str();
    switch (a.kind()) {
        case uds::Address::Kind::Unnamed:
            if (a.length() > kOffset) fail("unnamed with sun_path bytes");
            if (s != "(unnamed)") fail("unnamed str()");
            break;
        case uds::Address::Kind::Abstract:
            if (name.size() != a.length() - kOffset - 1) fail("abstract name is not len bytes");
            if (s.empty() || s.front() != '@') fail("abstract str() without @");
            break;
        case uds::Address::Kind::Path:
            if (name.find('\0') != std::string::npos) fail("path name with a NUL");
            if (name.empty()) fail("path kind with an empty name");
            if (s != name) fail("path str()");
            break;
    }
    if (!(uds::Address::from_kernel(raw, len) == a)) fail("from_kernel is not deterministic");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::uint8_t mode = data[0];
    ++data;
    --size;
    if ((mode & 1) == 0)
        check_parse({reinterpret_cast<const char*>(data), size});
    else
        check_kernel(data, size);
    return 0;
}
