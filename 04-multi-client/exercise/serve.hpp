// YOUR serve.hpp for 04-multi-client: the exercise starter, generated from the
// reference 04-multi-client/serve.hpp by scripts/make-starter.
// Every TODO is one step of the lesson: write it, then run `make grade-04`;
// the first FAIL names the step to look at. Stuck? One hint at a time:
// 04-multi-client/exercise/HINTS.md.
//
// serve.hpp - what the three models of server.cpp share: their options, S5 (accept4, with the
// EMFILE trap handled), turning a client away, and the blocking service loop S7 that the fork
// and thread models run for each client (chapter 01's, with an idle deadline).
//
// Every .cpp file in a chapter is a program, so code shared by the models lives in headers.
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>

#include "uds.hpp"

namespace ch04 {

inline constexpr std::string_view kBusy = "ERROR server busy\n";

struct Options {
    std::size_t max_clients = 0;  // 0: no limit
    // A client that sends nothing and takes none of its replies for this long is closed, so
    // that idle connections cannot hold every --max-clients slot for ever. 0: no deadline.
    int idle_timeout_ms = 30000;
    // Called by the model once everything it needs exists (it logs "listening on ..."): a test
    // that counts our descriptors from that line on sees no late arrival.
    std::function<void()> ready = [] {};
};

// "idle for 30 s" for the log.
inline std::string idle_text(int idle_ms) {
    return std::to_string(idle_ms / 1000) + " s";
}

// Who connected? SO_PEERCRED gives the pid the client had when it called connect().
inline std::string peer_pid(int conn) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) return "?";
    return std::to_string(cred.pid);
}

// Says "ERROR server busy" and closes. The reply fits in the empty send buffer of a fresh
// connection, so a non-blocking send never waits. Before closing we read (and drop) what the
// client already sent: closing a socket with unread data makes the peer's next read fail with
// ECONNRESET, and the client should see our reply followed by a plain end of file.
inline void turn_away(uds::Fd conn) {
    [[maybe_unused]] ssize_t n =
        send(conn.get(), kBusy.data(), kBusy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    char sink[4096];
    for (int i = 0; i < 16 && recv(conn.get(), sink, sizeof sink, MSG_DONTWAIT) > 0; ++i) {
    }
    shutdown(conn.get(), SHUT_WR);
}

// accept4 with the EMFILE trap handled.
//
// The trap: when the process has no descriptor left, accept4 fails with EMFILE (ENFILE: the
// whole system) and leaves the connection in the queue. The listener stays readable, so a
// loop that just tries again spins at 100% CPU, and the waiting client is never answered.
// The way out: keep one spare descriptor open. When accept4 says EMFILE, close the spare,
// accept the connection with the freed number, tell the client we are busy, close it, and
// open the spare again. If even that fails (another thread or process took the number),
// pause accepting for a moment (paused() is true) instead of spinning.
class Acceptor {
  public:
    Acceptor(int listener, int flags) : listener_(listener), flags_(flags) { reopen_spare(); }

    // One connection, or an invalid Fd when there was none to take or we turned it away.
    uds::Fd accept() {
        paused_ = false;
        // TODO S5. accept4: take the next connection from the listener's queue as a new descriptor
        //      that no exec'd program inherits and that, for the epoll model, never blocks (flags_
        //      says so); on failure leave an invalid uds::Fd and errno for the code below.
        //      Read: accept4(2); README "Walkthrough".
        uds::unwritten("S5", "accept4");
        uds::Fd conn;
        if (conn) {
            paused_before_ = false;
            if (!spare_) reopen_spare();  // descriptors are back: refill the spare
            return conn;
        }
        int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED) return {};
        if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM)
            throw uds::SysError(err, "accept4");
        if (spare_) {
            spare_.reset();  // one free descriptor number, just for this
            uds::Fd victim{accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC | flags_)};
            if (victim) {
                limit_.log(std::string("accept4: ") + strerror(err) +
                           ": turned a client away (ERROR server busy)");
                turn_away(std::move(victim));
            }
            reopen_spare();
            if (spare_) return {};
        }
        if (!paused_before_)  // once, not every 100 ms
            uds::log(std::string("accept4: ") + strerror(err) + ": pausing accept (100 ms at a " +
                     "time) until a descriptor is free");
        paused_ = paused_before_ = true;
        return {};
    }

    // After an accept() that could not even turn the client away: wait kPauseMs (or until a
    // client leaves) before trying again. The listener stays readable meanwhile, so do not
    // wait for it.
    [[nodiscard]] bool paused() const noexcept { return paused_; }
    static constexpr int kPauseMs = 100;

    // A client left: a descriptor is free again, and the spare can be refilled.
    void client_left() {
        if (!spare_) reopen_spare();
        paused_ = false;
    }

    // In a forked child: the spare belongs to the parent; the child must not keep a copy.
    void close_spare_in_child() noexcept { spare_.reset(); }

  private:
    void reopen_spare() { spare_.reset(open("/dev/null", O_RDONLY | O_CLOEXEC)); }

    int listener_;
    int flags_;
    uds::Fd spare_;
    bool paused_ = false;
    bool paused_before_ = false;  // the last accept4 failed for want of descriptors, too
    uds::LogLimit limit_{5};      // a peer can make us turn away thousands a second
};

// S7b for the blocking models: sends all of data, waiting at most idle_ms (0: for ever) each
// time the client's socket is full. False when the client took nothing for that long: it
// sends but does not read, and would otherwise hold this process or thread for ever.
inline bool send_within(int conn, std::string_view data, int idle_ms) {
    while (!data.empty()) {
        ssize_t n = send(conn, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
            data.remove_prefix(static_cast<std::size_t>(n));
            continue;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) throw uds::SysError(errno, "send");
        uds::Wait w = uds::wait_writable(conn, idle_ms > 0 ? idle_ms : -1);
        if (w == uds::Wait::Stop) throw uds::Stopped{};
        if (w == uds::Wait::Timeout) return false;
    }
    return true;
}

// S7, the blocking service loop of chapter 01, used by the fork and thread models: read what
// arrived, answer every complete line, until the client closes, breaks the rules or stays idle
// for idle_ms. Returns normally when the client is done; throws uds::SysError (EPIPE,
// ECONNRESET) or uds::Stopped (SIGINT/SIGTERM while waiting).
inline void serve_blocking(int conn, int idle_ms) {
    uds::LineFramer framer{uds::kMaxLine};
    std::string line;
    char buf[16384];
    for (;;) {
        uds::Wait w = uds::wait_readable(conn, idle_ms > 0 ? idle_ms : -1);
        if (w == uds::Wait::Stop) throw uds::Stopped{};
        if (w == uds::Wait::Timeout) {
            uds::log("client sent nothing for " + idle_text(idle_ms) + ": closing");
            return;
        }
        // S7a. read: whatever bytes have arrived (part of a line, or many lines); 0 = end.
        ssize_t n = read(conn, buf, sizeof buf);
        if (n == -1 && errno == EINTR) continue;
        uds::check(n, "read");
        std::string replies;
        auto status = uds::LineFramer::Status::NeedMore;
        if (n == 0) {
            if (framer.take_rest(line)) replies = uds::upcase(line) + "\n";
        } else {
            framer.feed({buf, static_cast<std::size_t>(n)});
            // Answer all complete lines of this read with one send: fewer system calls.
            while ((status = framer.next(line)) == uds::LineFramer::Status::Line)
                replies += uds::upcase(line) + "\n";
            if (status == uds::LineFramer::Status::TooLong) replies += uds::kLineTooLong;
        }
        // S7b. write: all of it. If the client does not read, its socket buffer fills up and
        //      we wait (natural backpressure: we read nothing more from it meanwhile), but at
        //      most idle_ms: a client that takes no reply for that long is closed.
        if (!replies.empty() && !send_within(conn, replies, idle_ms)) {
            uds::log("client took no reply for " + idle_text(idle_ms) + ": closing");
            return;
        }
        if (n == 0) return;
        if (status == uds::LineFramer::Status::TooLong) {
            uds::log("line longer than 4096 bytes: answered ERROR and closing");
            return;
        }
    }
}

}  // namespace ch04
