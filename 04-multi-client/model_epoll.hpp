// model_epoll.hpp - one thread, many clients: an event loop on epoll.
//
// Nothing ever blocks: every socket is non-blocking, and epoll_wait tells us which ones can
// make progress. Each client is a small record: its socket, a LineFramer for what it sent
// (input arrives in arbitrary pieces), and an output buffer for replies the socket could not
// take yet.
//
// Level-triggered epoll (the default): epoll_wait reports a socket as long as it is readable
// (or writable), so we may read once per wake-up and come back later; nothing is lost.
// Edge-triggered (EPOLLET) reports only changes, so each wake-up would have to read until
// EAGAIN, or a client could be forgotten. We use level-triggered and read once per event:
// a busy client cannot starve the others.
//
// Backpressure: a client that sends requests but never reads the replies. Its replies pile up
// in our output buffer, and we let them grow to kOutMax bytes at most: each read takes only
// as many bytes as the buffer can still answer (room()), and below kMinRead of room we stop
// reading from it (S7c: drop EPOLLIN from its interest set). Its requests then wait in the
// kernel's buffers, and then its own send() blocks. When its output drains, we read again.
// So whatever a client does, it costs us at most kOutMax (20 KiB) of replies, its unfinished
// line (at most 4 KiB, in a buffer at most twice that) and its record of a few hundred bytes;
// once its replies are all sent it keeps an output buffer of 1 KiB at most. The kernel's socket
// buffers come on top (they are in no process's RSS). A client that makes no progress at all (sends
// nothing, takes no reply) is closed after the idle timeout.
#pragma once

#include <malloc.h>
#include <sys/epoll.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <list>
#include <memory>
#include <unordered_map>

#include "serve.hpp"

namespace ch04 {

inline constexpr std::size_t kReadChunk = 16 * 1024;  // one read, into one buffer for everybody
inline constexpr std::size_t kOutMax = 20 * 1024;     // most reply bytes held for one client
inline constexpr std::size_t kMinRead = 4 * 1024;     // less room than this: stop reading it
inline constexpr std::size_t kFeed = 1024;            // framer input per step (see answer_lines)
class EpollServer {
  public:
    EpollServer(int listener, const Options& opt)
        : listener_(listener), opt_(opt), acceptor_(listener, SOCK_NONBLOCK) {
        //@S4a epoll_create1: create the kernel's event set (not inherited across exec) and register the listener and the stop pipe (uds::stop_fd()) in it for readability, each tagged with its id (kListenerId, kStopId) | epoll_create1(2), epoll_ctl(2), epoll(7); README "Walkthrough"
        //@hint epoll_create1(EPOLL_CLOEXEC) returns the set's descriptor: keep it in ep_. An epoll_event holds the events to watch (EPOLLIN) and 64 bits of data that epoll_wait hands back: the tag.
        //@hint epoll_ctl(ep_.get(), EPOLL_CTL_ADD, fd, &ev) once for listener_ (ev.data.u64 = kListenerId) and once for uds::stop_fd() (kStopId); uds::check each call.
        // S4a. epoll_create1: an event set in the kernel. We register each descriptor once
        //      (epoll_ctl ADD) with the events we want and a 64-bit tag of ours; epoll_wait
        //      then returns only the ready ones, with their tags. The stop pipe is the self-pipe
        //      of uds::install_shutdown_handlers: readable once SIGINT/SIGTERM came, however
        //      early, so a stop can never slip between a check and epoll_wait.
        ep_.reset(uds::check(epoll_create1(EPOLL_CLOEXEC), "epoll_create1"));
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = kListenerId;
        uds::check(epoll_ctl(ep_.get(), EPOLL_CTL_ADD, listener_, &ev), "epoll_ctl ADD listener");
        ev.data.u64 = kStopId;
        uds::check(epoll_ctl(ep_.get(), EPOLL_CTL_ADD, uds::stop_fd(), &ev), "epoll_ctl ADD stop");
        //@end
    }

    void run() {
        opt_.ready();
        epoll_event events[kMaxEvents];
        for (;;) {
            now_ = Clock::now();
            expire_idle_clients();
            if (!listening_ && now_ >= resume_at_) resume_accepting();
            //@S4b epoll_wait: sleep until at least one registered descriptor is ready (up to kMaxEvents of them into events), or until the next deadline that next_timeout() computes has come | epoll_wait(2); README "Walkthrough"
            //@hint The last argument is a timeout in milliseconds (-1: none), which next_timeout() gives. epoll_wait returns how many entries of events it filled (0 when the timeout passed, -1 on error: the code below handles EINTR).
            const int timeout = next_timeout();
            // S4b. epoll_wait: sleep until something is ready, or `timeout` ms (the next idle
            //      deadline or the end of an accept pause; -1: nothing to wait for but events).
            int n = epoll_wait(ep_.get(), events, kMaxEvents, timeout);
            //@stub int n = -1;
            //@end
            if (n == -1 && errno == EINTR) continue;
            uds::check(n, "epoll_wait");
            now_ = Clock::now();
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
    using Clock = std::chrono::steady_clock;
    struct Client {
        uds::Fd conn;
        uds::LineFramer framer{uds::kMaxLine};
        std::string out;           // replies not yet taken by the socket
        std::size_t out_sent = 0;  // bytes of `out` already sent
        std::uint32_t events = 0;  // what epoll watches for it now
        bool eof = false;          // it will send no more: flush, then close
        Clock::time_point last_active;
        std::list<std::uint64_t>::iterator age;  // its place in by_age_
        [[nodiscard]] std::size_t pending() const { return out.size() - out_sent; }
    };
    using Iter = std::unordered_map<std::uint64_t, std::unique_ptr<Client>>::iterator;
    static constexpr std::uint64_t kListenerId = ~0ULL, kStopId = ~0ULL - 1;  // clients: 1, 2, ...
    static constexpr int kMaxEvents = 256;
    static constexpr std::uint32_t kReading = EPOLLIN | EPOLLRDHUP;

    void accept_clients() {
        // Level-triggered: if more connections wait, epoll_wait reports the listener again.
        uds::Fd conn = acceptor_.accept();  // S5
        if (acceptor_.paused()) {  // out of descriptors: stop watching the listener for a while
            set_listener_events(0);
            listening_ = false;
            resume_at_ = now_ + std::chrono::milliseconds(Acceptor::kPauseMs);
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
        //@S6 epoll_ctl ADD: register the new client's socket in the event set, tagged with its id, to hear when it is readable or has hung up; remember what is watched in c->events; if the kernel refuses, turn the client away | epoll_ctl(2), epoll(7); README "Walkthrough"
        //@hint The events are EPOLLIN | EPOLLRDHUP (the peer shut down its writing side), which is kReading; the tag goes into data.u64.
        //@hint epoll_ctl fails with ENOMEM or ENOSPC when the kernel has no room: log it, turn_away(std::move(c->conn)) and return.
        // S6. epoll_ctl ADD: hand the client over to the event loop, tagged with its id.
        c->events = kReading;
        epoll_event ev{};
        ev.events = c->events;
        ev.data.u64 = id;
        if (epoll_ctl(ep_.get(), EPOLL_CTL_ADD, c->conn.get(), &ev) == -1) {  // ENOMEM, ENOSPC
            uds::log(std::string("epoll_ctl: ") + strerror(errno) + ": turning a client away");
            turn_away(std::move(c->conn));
            return;
        }
        //@end
        uds::log("client " + std::to_string(id) + " connected (pid " + peer_pid(c->conn.get()) +
                 "), " + std::to_string(clients_.size() + 1) + " connected");
        c->last_active = now_;
        c->age = by_age_.insert(by_age_.end(), id);
        clients_.emplace(id, std::move(c));
        peak_ = std::max(peak_, clients_.size());
    }

    void set_listener_events(std::uint32_t events) {
        epoll_event ev{};
        ev.events = events;
        ev.data.u64 = kListenerId;
        uds::check(epoll_ctl(ep_.get(), EPOLL_CTL_MOD, listener_, &ev), "epoll_ctl MOD listener");
    }

    void resume_accepting() {
        acceptor_.client_left();
        set_listener_events(EPOLLIN);
        listening_ = true;
    }

    void on_event(Iter it, std::uint32_t events) {
        Client& c = *it->second;
        bool progress = false;
        // EPOLLRDHUP: the peer shut down its writing side; EPOLLHUP/EPOLLERR: hung up or broken.
        // In every case read() tells the rest: the last data, then 0 (or an error).
        if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !c.eof &&
            (c.events & EPOLLIN)) {
            ssize_t got = read_from(c);
            if (got < 0) return close_client(it, "client dropped (read failed)");
            progress = got > 0 || c.eof;
        }
        ssize_t sent = flush(c);
        if (sent < 0) return close_client(it, "client dropped (it closed before reading)");
        if (c.eof && c.pending() == 0) return close_client(it, "client left");
        if (progress || sent > 0) {  // it is alive: to the back of the idle queue
            c.last_active = now_;
            by_age_.splice(by_age_.end(), by_age_, c.age);
        }
        // S7c only when it can change something: replies wait, or watching is not the default.
        if (c.pending() > 0 || c.events != kReading) update_interest(it->first, c);
    }

    // How many bytes we may read from c now, so that its replies never pass kOutMax: each byte
    // read becomes at most one byte of reply, and so does the start of a line its framer holds
    // already; an ERROR line or a final newline adds a few bytes.
    static std::size_t room(const Client& c) {
        const std::size_t used = c.pending() + c.framer.buffered() + 64;
        return used >= kOutMax ? 0 : std::min(kReadChunk, kOutMax - used);
    }

    // S7a. read: once, at most room(c) bytes; every complete line's reply goes to c.out.
    //      Returns the bytes read (0: nothing now, or end of input: c.eof), -1 if it failed.
    ssize_t read_from(Client& c) {
        const std::size_t max = room(c);  // what this client's reply buffer can still answer
        if (max == 0) return 0;           // (not while EPOLLIN is watched: see S7c)
        //@S7a read: read once without waiting, at most max bytes; answer the lines in what arrived with answer_lines; at end of input answer an unfinished last line and set c.eof | read(2); README "Walkthrough" (one read is not one message)
        //@hint The socket is non-blocking: -1 with EAGAIN (or EINTR) just means nothing to read now (return 0); any other error means the client is broken (return -1). 0 means end of input.
        //@hint answer_lines(c, {buf, n}) does the framing; at end of input c.framer.take_rest(line) gives the unfinished last line: add_reply(c, uds::upcase(line) + "\n").
        static char buf[kReadChunk];  // one buffer for every client: nothing stays in it
        ssize_t n = read(c.conn.get(), buf, max);
        if (n == -1) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
        if (n == 0) {  // end of input: answer an unterminated last line, then close
            std::string line;
            if (c.framer.take_rest(line)) add_reply(c, uds::upcase(line) + "\n");
            c.eof = true;
            return 0;
        }
        answer_lines(c, {buf, static_cast<std::size_t>(n)});
        //@stub ssize_t n = -1;
        //@end
        return n;
    }

    // Cuts what arrived into lines (they may be split across reads, or many in one read) and
    // queues each one's reply. Fed in pieces of kFeed bytes, the framer's buffer stays the
    // size of one line, not one read: a client that sent a partial line costs that much.
    static void answer_lines(Client& c, std::string_view bytes) {
        std::string line;
        while (!bytes.empty() && !c.eof) {
            const std::size_t piece = std::min(bytes.size(), kFeed);
            c.framer.feed(bytes.substr(0, piece));
            bytes.remove_prefix(piece);
            uds::LineFramer::Status status;
            while ((status = c.framer.next(line)) == uds::LineFramer::Status::Line)
                add_reply(c, uds::upcase(line) + "\n");
            if (status == uds::LineFramer::Status::TooLong) {
                uds::log("line longer than 4096 bytes: answering ERROR and closing");
                add_reply(c, uds::kLineTooLong);
                c.eof = true;  // read no more: send what is queued, then close
            }
        }
    }

    // Queues a reply. The buffer never grows past kOutMax: we read only what fits (see room).
    // Small replies get a small
    // buffer; past 1 KiB pending (the client's socket is full: a slow or a hostile reader) it
    // takes kOutMax at once, rather than leaving a trail of outgrown buffers behind.
    static void add_reply(Client& c, std::string_view reply) {
        if (c.out.size() + reply.size() > c.out.capacity()) {
            const std::size_t need = c.pending() + reply.size();
            std::string bigger;  // a fresh string: reserve() gives exactly what we ask for
            bigger.reserve(need <= 1024 ? 2 * need : std::max(need, kOutMax));
            bigger.append(c.out, c.out_sent);  // without what was sent already
            c.out.swap(bigger);
            c.out_sent = 0;
        }
        c.out.append(reply);
    }

    // S7b. send: as much as the socket takes now; the rest waits in c.out for EPOLLOUT.
    //      Returns the bytes sent (0: none, the socket is full), -1 if the client is gone.
    static ssize_t flush(Client& c) {
        const std::size_t before = c.out_sent;
        //@S7b send: send what is pending in c.out (from c.out_sent on) without ever waiting and without SIGPIPE; count what the socket took in c.out_sent; when the socket is full stop and keep the rest; return -1 if the client is gone | send(2) (MSG_DONTWAIT, MSG_NOSIGNAL); README "Walkthrough" (partial writes)
        //@hint send may take only part of what you give it: loop while c.pending() > 0, and stop on EAGAIN/EWOULDBLOCK (the rest waits for EPOLLOUT). EINTR: try again. EPIPE, ECONNRESET: the client is gone.
        //@hint send(c.conn.get(), c.out.data() + c.out_sent, c.pending(), MSG_NOSIGNAL | MSG_DONTWAIT).
        while (c.pending() > 0) {
            ssize_t n = send(c.conn.get(), c.out.data() + c.out_sent, c.pending(),
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n == -1 && errno == EINTR) continue;
            if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;  // full: wait
            if (n == -1) return -1;  // EPIPE, ECONNRESET: the client is gone
            c.out_sent += static_cast<std::size_t>(n);
        }
        //@end
        const std::size_t sent = c.out_sent - before;
        if (c.pending() == 0) {  // all taken: a quiet client keeps no big buffer
            if (c.out.capacity() > 1024) std::string().swap(c.out);
            c.out.clear();
            c.out_sent = 0;
        }
        return static_cast<ssize_t>(sent);
    }

    // S7c. epoll_ctl MOD: backpressure lives here. Read only while the client's replies have
    //      room for kMinRead bytes more (see room); watch for writability only while some
    //      replies are pending.
    void update_interest(std::uint64_t id, Client& c) {
        const std::uint32_t before = c.events;
        //@S7c epoll_ctl MOD: decide what to wait for next: readability only while the client is not at end of input and room(c) is at least kMinRead, writability only while replies are pending; tell the kernel when that differs from c.events, and remember it | epoll_ctl(2); README "Walkthrough" (backpressure)
        //@hint Watching EPOLLOUT while nothing is pending makes epoll_wait return at once, for ever (the socket is writable): the server spins. Never dropping EPOLLIN lets a client that does not read grow our buffer without bound.
        //@hint want = (reading allowed ? kReading : 0) | (pending ? EPOLLOUT : 0); if it differs from c.events: epoll_ctl(ep_.get(), EPOLL_CTL_MOD, fd, &ev) with ev.data.u64 = id, then c.events = want.
        std::uint32_t want = 0;
        if (!c.eof && room(c) >= kMinRead) want |= kReading;
        if (c.pending() > 0) want |= EPOLLOUT;
        if (want != c.events) {
            epoll_event ev{};
            ev.events = want;
            ev.data.u64 = id;
            uds::check(epoll_ctl(ep_.get(), EPOLL_CTL_MOD, c.conn.get(), &ev), "epoll_ctl MOD");
            c.events = want;
        }
        //@end
        if ((before & EPOLLIN) && !(c.events & EPOLLIN) && !c.eof)
            pause_log_.log("client " + std::to_string(id) + " is not reading its replies (" +
                           std::to_string(c.pending()) + " bytes pending): pausing its input");
    }

    // A client that sent nothing and took no reply for the idle timeout is closed (oldest
    // first: by_age_ is ordered by last activity). Otherwise --max-clients idle connections
    // would keep everybody else out for ever.
    void expire_idle_clients() {
        if (opt_.idle_timeout_ms <= 0) return;
        const auto limit = now_ - std::chrono::milliseconds(opt_.idle_timeout_ms);
        while (!by_age_.empty()) {
            auto it = clients_.find(by_age_.front());
            if (it->second->last_active > limit) break;
            close_client(it, ("idle for " + idle_text(opt_.idle_timeout_ms) + ", closed").c_str());
        }
    }

    // Milliseconds until the oldest client's idle deadline or the end of an accept pause
    // (rounded up: waking a millisecond early would only spin); -1: none.
    [[nodiscard]] int next_timeout() const {
        auto until = Clock::time_point::max();
        if (!listening_) until = resume_at_;
        if (opt_.idle_timeout_ms > 0 && !by_age_.empty())
            until = std::min(until, clients_.at(by_age_.front())->last_active +
                                        std::chrono::milliseconds(opt_.idle_timeout_ms));
        if (until == Clock::time_point::max()) return -1;
        auto ms = std::chrono::ceil<std::chrono::milliseconds>(until - now_).count();
        return static_cast<int>(std::clamp<long long>(ms, 0, INT_MAX));
    }

    void close_client(Iter it, const char* why) {
        std::uint64_t id = it->first;
        by_age_.erase(it->second->age);
        //@S8 close: forget the client and close its socket (which also takes it out of the event set) | close(2), epoll(7) ("closing a descriptor removes it from every epoll set"); README "Walkthrough"
        //@hint The record owns the socket (an uds::Fd): erasing it from clients_ destroys it, and that closes the descriptor. No EPOLL_CTL_DEL is needed when ours was the only descriptor of that socket.
        // S8. close: erasing the record closes the socket, which also removes it from the
        //     epoll set (epoll(7): a descriptor leaves every set when its last copy is closed).
        clients_.erase(it);
        //@end
        uds::log("client " + std::to_string(id) + ": " + why + ", " +
                 std::to_string(clients_.size()) + " connected");
        if (!listening_)
            resume_accepting();  // a descriptor is free again
        else
            acceptor_.client_left();
        // After a crowd has left, give back to the system the memory their buffers used: free()
        // keeps it for reuse, and in scattered pieces it may be megabytes.
        if (peak_ >= 16 && clients_.size() * 2 < peak_) {
            malloc_trim(0);
            peak_ = clients_.size();
        }
    }

    int listener_;
    Options opt_;
    Acceptor acceptor_;
    uds::Fd ep_;
    bool listening_ = true;  // false while accepting is paused
    Clock::time_point now_ = Clock::now(), resume_at_;
    std::uint64_t next_id_ = 1;
    std::unordered_map<std::uint64_t, std::unique_ptr<Client>> clients_;
    std::list<std::uint64_t> by_age_;  // client ids, least recently active first
    std::size_t peak_ = 0;             // most clients at once since the last malloc_trim
    uds::LogLimit pause_log_{5};       // a peer can make many clients pause and resume
};

inline void run_epoll_model(int listener, const Options& opt) {
    EpollServer{listener, opt}.run();
}

}  // namespace ch04
