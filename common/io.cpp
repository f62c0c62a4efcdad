#include "io.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "error.hpp"
#include "signals.hpp"

namespace uds {

void write_all(int fd, std::string_view data) {
    bool is_socket = true;
    while (!data.empty()) {
        ssize_t n = is_socket ? ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT)
                              : ::write(fd, data.data(), data.size());
        if (n >= 0) {
            data.remove_prefix(static_cast<std::size_t>(n));
            continue;
        }
        if (errno == EINTR) continue;
        if (errno == ENOTSOCK && is_socket) {  // a pipe, a file or a terminal: plain write()
            is_socket = false;
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            // The peer's buffer is full: wait until it reads, or until we are asked to stop.
            if (wait_writable(fd) == Wait::Stop) throw Stopped{};
            continue;
        }
        throw SysError(errno, is_socket ? "send" : "write");
    }
}

void LineFramer::feed(std::string_view bytes) {
    if (start_ > 0 && start_ >= buf_.size() / 2) {  // drop what was handed out, now and then
        buf_.erase(0, start_);
        start_ = 0;
    }
    buf_.append(bytes);
}

LineFramer::Status LineFramer::next(std::string& line) {
    if (too_long_) return Status::TooLong;
    std::size_t avail = buf_.size() - start_;
    // Only look at bytes we have not scanned before, and never further than a legal line.
    std::size_t limit = avail < max_line_ + 1 ? avail : max_line_ + 1;
    const char* base = buf_.data() + start_;
    const void* nl =
        scanned_ < limit ? std::memchr(base + scanned_, '\n', limit - scanned_) : nullptr;
    if (nl == nullptr) {
        scanned_ = limit;
        if (avail > max_line_) {
            too_long_ = true;
            return Status::TooLong;
        }
        return Status::NeedMore;
    }
    std::size_t len = static_cast<std::size_t>(static_cast<const char*>(nl) - base);
    line.assign(base, len);
    start_ += len + 1;
    scanned_ = 0;
    return Status::Line;
}

bool LineFramer::take_rest(std::string& line) {
    if (too_long_ || buffered() == 0) return false;
    if (buffered() > max_line_) {
        too_long_ = true;
        return false;
    }
    line.assign(buf_, start_, std::string::npos);
    start_ = buf_.size();
    scanned_ = 0;
    return true;
}

}  // namespace uds
