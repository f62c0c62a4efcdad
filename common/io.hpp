// io.hpp - the boring half of socket I/O: writing everything, and cutting a byte stream
// into lines.
//
// A stream socket has no message boundaries. One write() of "a\nb\n" may arrive as one read
// or as five; two writes may arrive as one read. So a reader must collect bytes and cut them
// into lines itself: that is LineFramer, fed whatever read() returned.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace uds {

// Writes all of data to fd, looping over short writes and EINTR. On sockets it uses
// send(..., MSG_NOSIGNAL) so a vanished peer gives EPIPE instead of killing us with SIGPIPE.
// If the peer stops reading, it waits (poll) and gives up with uds::Stopped when a shutdown
// was requested. Throws uds::SysError on failure (EPIPE, ECONNRESET, ...).
void write_all(int fd, std::string_view data);

// Collects bytes and hands out complete lines (without the '\n').
// A line may hold at most max_line bytes before its newline; a longer one is reported as
// TooLong as soon as it is certain, so the buffer never grows past max_line plus one feed.
class LineFramer {
  public:
    enum class Status { Line, NeedMore, TooLong };

    explicit LineFramer(std::size_t max_line) : max_line_(max_line) {}

    void feed(std::string_view bytes);
    // Line: `line` holds the next complete line. NeedMore: feed more. TooLong: the current line
    // is over the limit (the framer stays in this state; close the connection).
    Status next(std::string& line);
    // At end of input: the unterminated rest, if any bytes are left. False when nothing is left.
    bool take_rest(std::string& line);
    [[nodiscard]] std::size_t buffered() const noexcept { return buf_.size() - start_; }
    [[nodiscard]] std::size_t max_line() const noexcept { return max_line_; }

  private:
    std::string buf_;
    std::size_t start_ = 0;    // first byte not yet handed out
    std::size_t scanned_ = 0;  // bytes after start_ already known to hold no '\n'
    std::size_t max_line_;
    bool too_long_ = false;
};

}  // namespace uds
