// solutions/04-multi-client/all-cores/model_epoll.hpp - chapter 04's event loop, N of them.
//
// Exercise 6 of chapter 04. run_epoll_loops makes N EpollServers (their own epoll set, clients
// and idle deadlines), one thread each. Loop 1 alone watches the listener; it accepts and deals
// the connections out in turn: each goes into the next loop's inbox (a list under a mutex) and
// that loop's eventfd, which is in its epoll set, wakes it to adopt the connection. A client
// then stays with its loop. (Letting every loop watch the shared listener is simpler, but
// without EPOLLEXCLUSIVE every loop wakes for every connection, and with it the kernel tends to
// wake the same loop again and again: 199 of 200 clients on one loop in a trial. Dealing them
// out keeps the loops even.) The read buffer is one per thread now (thread_local).
// The chapter's text:
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
#include <sys/eventfd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "serve.hpp"

namespace ch04 {

inline constexpr std::size_t kReadChunk = 16 * 1024;  // one read, into one buffer for everybody
inline constexpr std::size_t kOutMax = 20 * 1024;     // most reply bytes held for one client
inline constexpr std::size_t kMinRead = 4 * 1024;     // less room than this: stop reading it
inline constexpr std::size_t kFeed = 1024;            // framer input per step (see answer_lines)
class EpollServer {
  public:
    // loop: 0 for the only loop, else 1..N; only loop 0 or 1 watches the listener.
    EpollServer(int listener, const Options& opt, int loop = 0)
        : listener_(listener), opt_(opt), acceptor_(listener, SOCK_NONBLOCK), loop_(loop) {
        // S4a. epoll_create1: an event set in the kernel. We register each descriptor once
        //      (epoll_ctl ADD) with the events we want and a 64-bit tag of ours; epoll_wait
        //      then returns only the ready ones, with their tags. The stop pipe is the self-pipe
        //      of uds::install_shutdown_handlers: readable once SIGINT/SIGTERM came, however
        //      early, so a stop can never slip between a check and epoll_wait.
        ep_.reset(uds::check(epoll_create1(EPOLL_CLOEXEC), "epoll_create1"));
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = kListenerId;
        if (loop_ <= 1)
            uds::check(epoll_ctl(ep_.get(), EPOLL_CTL_ADD, listener_, &ev),
                       "epoll_ctl ADD listener");
        // The inbox: other loops' accepted connections for us, announced through an eventfd.
        inbox_fd_.reset(uds::check(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "eventfd"));
        ev.data.u64 = kInboxId;
        uds::check(epoll_ctl(ep_.get(), EPOLL_CTL_ADD, inbox_fd_.get(), &ev),
                   "epoll_ctl ADD inbox");
        ev.data.u64 = kStopId;
        uds::check(epoll_ctl(ep_.get(), EPOLL_CTL_ADD, uds::stop_fd(), &ev), "epoll_ctl ADD stop");
    }

    // The loops to deal accepted connections to, in turn (this one among them).
    void deal_to(std::vector<EpollServer*> loops) { loops_ = std::move(loops); }

    // From another loop's thread: a connection for us.
    void give(uds::Fd conn) {
        {
            std::lock_guard<std::mutex> lock(inbox_mutex_);
            inbox_.push_back(std::move(conn));
        }
        const std::uint64_t one = 1;
        [[maybe_unused]] ssize_t n = write(inbox_fd_.get(), &one, sizeof one);
    }

    void run() {
        if (loop_ <= 1) opt_.ready();  // one "listening on", however many loops
        epoll_event events[kMaxEvents];
        for (;;) {
            now_ = Clock::now();
            expire_idle_clients();
            if (!listening_ && now_ >= resume_at_) resume_accepting();
            const int timeout = next_timeout();
            // S4b. epoll_wait: sleep until something is ready, or `timeout` ms (the next idle
            //      deadline or the end of an accept pause; -1: nothing to wait for but events).
            int n = epoll_wait(ep_.get(), events, kMaxEvents, timeout);
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
                if (id == kInboxId) {
                    take_inbox();
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
    static constexpr std::uint64_t kInboxId = ~0ULL - 2;
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
        if (!loops_.empty()) {  // deal it to the next loop (maybe this one)
            EpollServer* to = loops_[next_loop_++ % loops_.size()];
            if (to != this) return to->give(std::move(conn));
        }
        adopt(std::move(conn));
    }

    void take_inbox() {
        std::uint64_t count = 0;
        [[maybe_unused]] ssize_t n = read(inbox_fd_.get(), &count, sizeof count);
        std::vector<uds::Fd> conns;
        {
            std::lock_guard<std::mutex> lock(inbox_mutex_);
            conns.swap(inbox_);
        }
        for (uds::Fd& conn : conns)
            adopt(std::move(conn));
    }

    // S6 for a connection this loop will serve.
    void adopt(uds::Fd conn) {
        if (opt_.max_clients != 0 && clients_.size() >= opt_.max_clients) {
            uds::log("max clients (" + std::to_string(opt_.max_clients) + ") reached: busy");
            turn_away(std::move(conn));
            return;
        }
        std::uint64_t id = next_id_++;
        auto c = std::make_unique<Client>();
        c->conn = std::move(conn);
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
        uds::log(who() + "client " + std::to_string(id) + " connected (pid " +
                 peer_pid(c->conn.get()) + "), " + std::to_string(clients_.size() + 1) +
                 " connected");
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

    // "loop 2: " in front of a client's log lines when there are several loops.
    [[nodiscard]] std::string who() const {
        return loop_ == 0 ? std::string() : "loop " + std::to_string(loop_) + ": ";
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
        static thread_local char buf[kReadChunk];  // one per loop: nothing stays in it
        ssize_t n = read(c.conn.get(), buf, max);
        if (n == -1) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
        if (n == 0) {  // end of input: answer an unterminated last line, then close
            std::string line;
            if (c.framer.take_rest(line)) add_reply(c, uds::upcase(line) + "\n");
            c.eof = true;
            return 0;
        }
        answer_lines(c, {buf, static_cast<std::size_t>(n)});
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
        while (c.pending() > 0) {
            ssize_t n = send(c.conn.get(), c.out.data() + c.out_sent, c.pending(),
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n == -1 && errno == EINTR) continue;
            if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;  // full: wait
            if (n == -1) return -1;  // EPIPE, ECONNRESET: the client is gone
            c.out_sent += static_cast<std::size_t>(n);
        }
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
        // S8. close: erasing the record closes the socket, which also removes it from the
        //     epoll set (epoll(7): a descriptor leaves every set when its last copy is closed).
        clients_.erase(it);
        uds::log(who() + "client " + std::to_string(id) + ": " + why + ", " +
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
    int loop_;                         // 0: the only loop; 1, 2, ...: one of several
    std::vector<EpollServer*> loops_;  // loop 1: where accepted connections go, in turn
    std::size_t next_loop_ = 0;
    uds::Fd inbox_fd_;  // eventfd: "look in the inbox"
    std::mutex inbox_mutex_;
    std::vector<uds::Fd> inbox_;  // connections given to us by loop 1
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

// N event loops, one thread each; loop 1 accepts and deals. Every loop returns on SIGINT or
// SIGTERM (the stop pipe is in every epoll set); then we join them all.
inline void run_epoll_loops(int listener, const Options& opt, int count) {
    if (count <= 1) return run_epoll_model(listener, opt);
    std::vector<std::unique_ptr<EpollServer>> loops;
    std::vector<EpollServer*> all;
    for (int i = 1; i <= count; ++i) {
        loops.push_back(std::make_unique<EpollServer>(listener, opt, i));
        all.push_back(loops.back().get());
    }
    loops.front()->deal_to(all);
    std::vector<std::thread> threads;
    for (auto& l : loops)
        threads.emplace_back([&l] {
            try {
                l->run();
            } catch (const std::exception& e) {
                uds::log(std::string("a loop stopped: ") + e.what());
            }
        });
    for (std::thread& t : threads)
        t.join();
}

}  // namespace ch04
