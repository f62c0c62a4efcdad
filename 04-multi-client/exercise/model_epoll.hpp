// YOUR model_epoll.hpp for 04-multi-client: the exercise starter, generated from the
// reference 04-multi-client/model_epoll.hpp by scripts/make-starter.
// Every TODO is one step of the lesson: write it, then run `make grade-04`;
// the first FAIL names the step to look at. Stuck? One hint at a time:
// 04-multi-client/exercise/HINTS.md.
//
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
        // TODO S4a. epoll_create1: create the kernel's event set (not inherited across exec) and
        //      register the listener and the stop pipe (uds::stop_fd()) in it for readability, each
        //      tagged with its id (kListenerId, kStopId).
        //      Read: epoll_create1(2), epoll_ctl(2), epoll(7); README "Walkthrough".
        uds::unwritten("S4a", "epoll_create1");
    }

    void run() {
        opt_.ready();
        epoll_event events[kMaxEvents];
        for (;;) {
            now_ = Clock::now();
            expire_idle_clients();
            if (!listening_ && now_ >= resume_at_) resume_accepting();
            // TODO S4b. epoll_wait: sleep until at least one registered descriptor is ready (up to
            //      kMaxEvents of them into events), or until the next deadline that next_timeout()
            //      computes has come.
            //      Read: epoll_wait(2); README "Walkthrough".
            uds::unwritten("S4b", "epoll_wait");
            int n = -1;
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
        // TODO S6. epoll_ctl ADD: register the new client's socket in the event set, tagged with
        //      its id, to hear when it is readable or has hung up; remember what is watched in
        //      c->events; if the kernel refuses, turn the client away.
        //      Read: epoll_ctl(2), epoll(7); README "Walkthrough".
        uds::unwritten("S6", "epoll_ctl ADD");
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
        // TODO S7a. read: read once without waiting, at most max bytes; answer the lines in what
        //      arrived with answer_lines; at end of input answer an unfinished last line and set
        //      c.eof.
        //      Read: read(2); README "Walkthrough" (one read is not one message).
        uds::unwritten("S7a", "read");
        ssize_t n = -1;
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
        // TODO S7b. send: send what is pending in c.out (from c.out_sent on) without ever waiting
        //      and without SIGPIPE; count what the socket took in c.out_sent; when the socket is
        //      full stop and keep the rest; return -1 if the client is gone.
        //      Read: send(2) (MSG_DONTWAIT, MSG_NOSIGNAL); README "Walkthrough" (partial writes).
        uds::unwritten("S7b", "send");
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
        // TODO S7c. epoll_ctl MOD: decide what to wait for next: readability only while the client
        //      is not at end of input and room(c) is at least kMinRead, writability only while
        //      replies are pending; tell the kernel when that differs from c.events, and remember
        //      it.
        //      Read: epoll_ctl(2); README "Walkthrough" (backpressure).
        uds::unwritten("S7c", "epoll_ctl MOD");
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
        // TODO S8. close: forget the client and close its socket (which also takes it out of the
        //      event set).
        //      Read: close(2), epoll(7) ("closing a descriptor removes it from every epoll set");
        //      README "Walkthrough".
        uds::unwritten("S8", "close");
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
