// exercise/model_epoll.hpp - YOUR event loop: write the steps marked TODO
// (4, 5, 6, 7a, 7b, 7c, 8).
// Each todo(...) stops the server with the step's name; replace it with the real call.
// Tests: Ch04Steps.EpollStep*, then every Ch04/Ch04Models.*/epoll.
//
// (original header:) one thread, many clients: an event loop on epoll.
//
// Nothing ever blocks: every socket is non-blocking, and epoll_wait tells us which ones can
// make progress. Each client is a small record: its socket, a LineFramer for what it sent
// (input arrives in arbitrary pieces), and an output buffer for replies the socket could not
// take yet. A client costs a few hundred bytes plus the kernel's socket buffers.
//
// Level-triggered epoll (the default): epoll_wait reports a socket as long as it is readable
// (or writable), so we may read once per wake-up and come back later; nothing is lost.
// Edge-triggered (EPOLLET) reports only changes, so each wake-up would have to read until
// EAGAIN, or a client could be forgotten. We use level-triggered and read once per event:
// a busy client cannot starve the others.
//
// Backpressure: a client that sends requests but never reads the replies. Its replies pile up
// in our output buffer. Once more than kHighWater bytes are pending, we stop reading from it
// (drop EPOLLIN from its interest set): its requests now wait in the kernel's buffers, then its
// own send() blocks. When its output drains, we read again. Memory per client stays below
// kHighWater + kReadChunk (+ one line in the framer), and the other clients never wait for it.
#pragma once

#include <sys/epoll.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <unordered_map>

#include "../serve.hpp"
#include "todo.hpp"

namespace ch04 {

inline constexpr std::size_t kReadChunk = 16 * 1024;
inline constexpr std::size_t kHighWater = 64 * 1024;

class EpollServer {
  public:
    EpollServer(int listener, const Options& opt)
        // TODO(step 4): the accepted sockets must be non-blocking too: pass SOCK_NONBLOCK
        //               (Acceptor adds it to accept4's flags) instead of 0.
        : listener_(listener), opt_(opt), acceptor_(listener, 0) {
        // 5. epoll_create1: an event set in the kernel. We register each descriptor once and
        //    say which events we want; epoll_wait then returns only the ready ones.
        // TODO(step 5): ep_.reset(uds::check(epoll_create1(EPOLL_CLOEXEC), "epoll_create1"));
        ep_.reset(todo<int>("step 5: epoll_create1, in EpollServer's constructor"));
        watch(listener_, kListenerId, EPOLLIN, EPOLL_CTL_ADD);
        // The self-pipe of uds::install_shutdown_handlers: readable once SIGINT/SIGTERM came,
        // however early. A stop can never slip between a check and epoll_wait.
        watch(uds::stop_fd(), kStopId, EPOLLIN, EPOLL_CTL_ADD);
    }

    void run() {
        opt_.ready();
        epoll_event events[256];
        for (;;) {
            int timeout = -1;
            if (!listening_) {  // accepting is paused (out of descriptors) until resume_at_
                auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    resume_at_ - std::chrono::steady_clock::now());
                if (left.count() <= 0)
                    resume_accepting();
                else
                    timeout = static_cast<int>(left.count());
            }
            // 6. epoll_wait: sleep until something is ready (or the accept pause is over).
            //    It fills `events` (at most 256) and returns how many it filled; each carries
            //    the data.u64 tag we registered the descriptor with.
            // TODO(step 6): int n = epoll_wait(ep_.get(), events, 256, timeout);
            int n = todo<int>("step 6: epoll_wait, in EpollServer::run");
            (void)timeout;
            if (n == -1 && errno == EINTR) continue;
            uds::check(n, "epoll_wait");
            for (int i = 0; i < n; ++i) {
                std::uint64_t id = events[i].data.u64;
                if (id == kStopId) return;  // clients_ closes every connection on the way out
                if (id == kListenerId) {
                    accept_clients();
                    continue;
                }
                // Look the client up by id, not by descriptor number: a client closed earlier in
                // this batch may have had its number reused by a fresh accept.
                auto it = clients_.find(id);
                if (it != clients_.end()) on_event(it, events[i].events);
            }
        }
    }

  private:
    struct Client {
        uds::Fd conn;
        uds::LineFramer framer{uds::kMaxLine};
        std::string out;           // replies not yet taken by the socket
        std::size_t out_sent = 0;  // bytes of `out` already sent
        std::uint32_t events = 0;  // what epoll watches for it now
        bool eof = false;          // it will send no more: flush, then close
        [[nodiscard]] std::size_t pending() const { return out.size() - out_sent; }
    };
    using Iter = std::unordered_map<std::uint64_t, std::unique_ptr<Client>>::iterator;
    static constexpr std::uint64_t kListenerId = ~0ULL, kStopId = ~0ULL - 1;  // clients: 1, 2, ...

    void watch(int fd, std::uint64_t id, std::uint32_t events, int op) {
        epoll_event ev{};
        ev.events = events;
        ev.data.u64 = id;
        // 5. epoll_ctl: ADD a descriptor to the set, or MOD(ify) what we watch it for.
        // TODO(step 5): uds::check(epoll_ctl(ep_.get(), op, fd, &ev), "epoll_ctl");
        (void)fd;
        (void)op;
        (void)ev;
        todo("step 5: epoll_ctl, in EpollServer::watch");
    }

    void accept_clients() {
        // Level-triggered: if more connections wait, epoll_wait reports the listener again.
        uds::Fd conn = acceptor_.accept();
        if (acceptor_.paused()) {  // out of descriptors: stop watching the listener for a while
            watch(listener_, kListenerId, 0, EPOLL_CTL_MOD);
            listening_ = false;
            resume_at_ =
                std::chrono::steady_clock::now() + std::chrono::milliseconds(Acceptor::kPauseMs);
        }
        if (!conn) return;
        if (opt_.max_clients != 0 && clients_.size() >= opt_.max_clients) {
            uds::log("max clients (" + std::to_string(opt_.max_clients) + ") reached: busy");
            turn_away(std::move(conn));
            return;
        }
        std::uint64_t id = next_id_++;
        auto c = std::make_unique<Client>();
        c->conn = std::move(conn);
        c->events = EPOLLIN | EPOLLRDHUP;
        epoll_event ev{c->events, {.u64 = id}};
        // 6. epoll_ctl ADD the new client, tagged with its id (not its descriptor number).
        //    If the kernel refuses (ENOMEM, ENOSPC), turn the client away: it is not watched.
        // TODO(step 6): if (epoll_ctl(ep_.get(), EPOLL_CTL_ADD, c->conn.get(), &ev) == -1) {
        (void)ev;
        if (todo<int>("step 6: epoll_ctl ADD the client, in accept_clients") == -1) {
            uds::log(std::string("epoll_ctl: ") + strerror(errno) + ": turning a client away");
            turn_away(std::move(c->conn));
            return;
        }
        uds::log("client " + std::to_string(id) + " connected (pid " + peer_pid(c->conn.get()) +
                 "), " + std::to_string(clients_.size() + 1) + " connected");
        clients_.emplace(id, std::move(c));
    }

    void resume_accepting() {
        acceptor_.client_left();
        watch(listener_, kListenerId, EPOLLIN, EPOLL_CTL_MOD);
        listening_ = true;
    }

    void on_event(Iter it, std::uint32_t events) {
        Client& c = *it->second;
        // EPOLLRDHUP: the peer shut down its writing side; EPOLLHUP/EPOLLERR: hung up or broken.
        // In every case read() tells the rest: the last data, then 0 (or an error).
        if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !c.eof &&
            (c.events & EPOLLIN)) {
            if (!read_from(c)) return close_client(it, "client dropped (read failed)");
        }
        if (!flush(c)) return close_client(it, "client dropped (it closed before reading)");
        if (c.eof && c.pending() == 0) return close_client(it, "client left");
        update_interest(it->first, c);
    }

    // 7a. read: once, at most kReadChunk bytes; answer every complete line into c.out.
    bool read_from(Client& c) {
        static char buf[kReadChunk];
        // TODO(step 7a): ssize_t n = read(c.conn.get(), buf, sizeof buf);
        //                (the socket is non-blocking: -1 with EAGAIN just means "nothing yet")
        ssize_t n = todo<ssize_t>("step 7a: read, in read_from");
        if (n == -1) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        std::string line;
        if (n == 0) {  // end of input: answer an unterminated last line, then close
            if (c.framer.take_rest(line)) c.out += uds::upcase(line) + "\n";
            c.eof = true;
            return true;
        }
        c.framer.feed({buf, static_cast<std::size_t>(n)});
        uds::LineFramer::Status status;
        while ((status = c.framer.next(line)) == uds::LineFramer::Status::Line) {
            c.out += uds::upcase(line);
            c.out += '\n';
        }
        if (status == uds::LineFramer::Status::TooLong) {
            uds::log("line longer than 4096 bytes: answering ERROR and closing");
            c.out += uds::kLineTooLong;
            c.eof = true;
        }
        return true;
    }

    // 7b. send: as much as the socket takes now; the rest waits for EPOLLOUT.
    static bool flush(Client& c) {
        while (c.pending() > 0) {
            // TODO(step 7b): send what is pending (from c.out.data() + c.out_sent, c.pending()
            //                bytes) with MSG_NOSIGNAL | MSG_DONTWAIT: never wait, never SIGPIPE.
            ssize_t n = todo<ssize_t>("step 7b: send, in flush");
            if (n == -1 && errno == EINTR) continue;
            if (n == -1) return errno == EAGAIN || errno == EWOULDBLOCK;  // EPIPE: gone
            c.out_sent += static_cast<std::size_t>(n);
        }
        if (c.out_sent == c.out.size()) {
            c.out.clear();
            c.out_sent = 0;
            if (c.out.capacity() > kHighWater) c.out.shrink_to_fit();  // give memory back
        } else if (c.out_sent >= c.out.size() / 2) {
            c.out.erase(0, c.out_sent);
            c.out_sent = 0;
        }
        return true;
    }

    // 7c. Backpressure lives here: read only while little output is pending; watch for
    //     writability only while something is pending. (The watch() below is epoll_ctl MOD.)
    void update_interest(std::uint64_t id, Client& c) {
        // TODO(step 7c): compute `want`: EPOLLIN | EPOLLRDHUP while !c.eof and
        //                c.pending() < kHighWater; EPOLLOUT while c.pending() > 0.
        //                As it is, a reply the socket could not take at once waits forever.
        std::uint32_t want = c.events;
        if (want == c.events) return;
        if ((c.events & EPOLLIN) && !(want & EPOLLIN) && !c.eof)
            uds::log("client " + std::to_string(id) + " is not reading its replies (" +
                     std::to_string(c.pending()) + " bytes pending): pausing its input");
        watch(c.conn.get(), id, want, EPOLL_CTL_MOD);
        c.events = want;
    }

    void close_client(Iter it, const char* why) {
        // 8. close: also removes the descriptor from the epoll set (it was its only reference).
        std::uint64_t id = it->first;
        // TODO(step 8): clients_.erase(it); (its uds::Fd closes the socket). An explicit
        //               epoll_ctl(EPOLL_CTL_DEL) first is allowed, but close alone suffices.
        todo("step 8: close the client, in close_client");
        uds::log("client " + std::to_string(id) + ": " + why + ", " +
                 std::to_string(clients_.size()) + " connected");
        if (!listening_)
            resume_accepting();  // a descriptor is free again
        else
            acceptor_.client_left();
    }

    int listener_;
    Options opt_;
    Acceptor acceptor_;
    uds::Fd ep_;
    bool listening_ = true;  // false while accepting is paused
    std::chrono::steady_clock::time_point resume_at_;
    std::uint64_t next_id_ = 1;
    std::unordered_map<std::uint64_t, std::unique_ptr<Client>> clients_;
};

inline void run_epoll_model(int listener, const Options& opt) {
    EpollServer{listener, opt}.run();
}

}  // namespace ch04
