// tests/fuzz/line_framer.cpp - uds::LineFramer against a reference model that is too simple to be
// wrong.
//
// The input is a byte stream plus a way to cut it into feeds: the first byte picks the maximum
// line length (small ones reach the limit often) and may prepend a line near 4096 bytes; then
// each chunk is <length byte><bytes>.
// The model splits the whole stream at '\n'. Both must agree on every line, on where TooLong is
// reported (exactly when a line has more than max bytes before its '\n', and only once the
// framer has seen more than max bytes of it), and on the unterminated rest at end of input.
// Also asserted: the framer's buffer never holds more than max + 1 + one feed.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "io.hpp"

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "line_framer: %s\n", what);
    std::abort();
}

// The reference: every complete line (or the first overlong one), then the rest.
struct Expected {
    std::vector<std::string> lines;
    bool too_long = false;
    std::string rest;  // unterminated tail (only if !too_long)
};

Expected model(std::string_view stream, std::size_t max) {
    Expected e;
    for (;;) {
        std::size_t nl = stream.find('\n');
        if (nl == std::string_view::npos) {
            if (stream.size() > max)
                e.too_long = true;
            else
                e.rest = std::string(stream);
            return e;
        }
        if (nl > max) {
            e.too_long = true;
            return e;
        }
        e.lines.emplace_back(stream.substr(0, nl));
        stream.remove_prefix(nl + 1);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    static const std::size_t kMaxes[] = {0, 1, 2, 3, 7, 16, 100, 4096};
    const std::size_t max = kMaxes[data[0] % 8];
    // Bit 7: start with one line of 4094..4097 bytes (no '\n' yet), to reach the real limit.
    std::string big;
    if ((data[0] & 0x80) != 0) big.assign(4094 + ((data[0] >> 3) & 3), 'x');
    data++;
    size--;

    // Cut the rest into chunks: <n><n bytes>..., n taken modulo 64 so feeds are small.
    std::vector<std::string_view> feeds;
    std::string stream = big;
    if (!big.empty()) feeds.emplace_back(big);
    while (size > 0) {
        std::size_t n = data[0] % 64;
        data++;
        size--;
        if (n > size) n = size;
        feeds.emplace_back(reinterpret_cast<const char*>(data), n);
        stream.append(reinterpret_cast<const char*>(data), n);
        data += n;
        size -= n;
    }
    const Expected want = model(stream, max);
    uds::LineFramer framer{max};
    std::vector<std::string> got;
    std::string line;
    bool too_long = false;
    for (std::string_view feed : feeds) {
        framer.feed(feed);
        for (;;) {
            auto st = framer.next(line);
            if (st == uds::LineFramer::Status::NeedMore) break;
            if (st == uds::LineFramer::Status::TooLong) {
                too_long = true;
                break;
            }
            got.push_back(line);
        }
        if (framer.buffered() > max + 1 + feed.size()) fail("buffer grew past max + 1 + one feed");
        if (too_long) break;
    }
    if (got.size() > want.lines.size()) fail("more lines than the model");
    for (std::size_t i = 0; i < got.size(); ++i)
        if (got[i] != want.lines[i]) fail("a line differs from the model");
    if (too_long) {
        if (!want.too_long) fail("TooLong for a stream whose lines all fit");
        if (got.size() != want.lines.size()) fail("TooLong reported before all good lines");
        if (framer.next(line) != uds::LineFramer::Status::TooLong) fail("TooLong is not sticky");
        if (framer.take_rest(line)) fail("take_rest after TooLong gave a line");
        return 0;
    }
    // End of input.
    if (got.size() != want.lines.size()) fail("lines missing at end of input");
    if (want.too_long) fail("an overlong line was never reported");
    bool has_rest = framer.take_rest(line);
    if (has_rest != !want.rest.empty()) fail("take_rest disagrees on whether a tail is left");
    if (has_rest && line != want.rest) fail("take_rest gave the wrong tail");
    if (framer.take_rest(line)) fail("take_rest gave the tail twice");
    return 0;
}
