// model_thread.hpp - one thread per client.
//
// The main thread accepts; each client gets a thread (pthread_create) running the blocking
// loop of chapter 01 (S7, serve.hpp). Threads are cheaper than processes (no fork, shared
// memory), but they share everything: one crash takes every client down, and any shared data
// needs a lock. Each thread still costs a stack (8 MiB of address space; only touched pages
// count in RSS) and a kernel task, so their number is capped (--max-clients, 256 by default).
//
// Every thread is joined (S8b). A finished thread closes its own socket at once (S8a: a
// vanished client frees its descriptor immediately) and is joined by the main thread the next
// time it wakes up; an unjoined thread would keep its 8 MiB stack mapped for ever. On shutdown
// the main thread calls shutdown(SHUT_RDWR) on every client socket: a thread blocked in read()
// or send() wakes up and returns.
//
// (pthread_create rather than std::thread: it reports "no more threads" as an error code,
// which we answer with "ERROR server busy", and it has no hidden heap object whose checks in
// sanitizer builds need free descriptors at the very moment we have none.)
#pragma once

#include <malloc.h>
#include <pthread.h>

#include <list>
#include <mutex>

#include "serve.hpp"

namespace ch04 {

struct ThreadModel {
    struct Client {
        ThreadModel* model;
        uds::Fd conn;  // guarded by mu: the thread closes it, shutdown() pokes it
        bool done = false;
        pthread_t thread{};
    };
    std::mutex mu;
    std::list<Client> clients;  // std::list: elements never move, threads keep a pointer
    std::size_t active = 0;
    int idle_ms = 0;
    std::size_t joined_since_trim = 0;

    static void* client_thread(void* arg);   // each client's thread: S7, S8a
    void join_finished(Acceptor& acceptor);  // S8b
};

inline void run_thread_model(int listener, const Options& opt) {
    ThreadModel m;
    m.idle_ms = opt.idle_timeout_ms;
    Acceptor acceptor{listener, 0};
    opt.ready();

    for (;;) {
        // S4. wait: until a client connects or we are asked to stop (poll, in wait_readable).
        auto w = acceptor.paused() ? uds::wait_readable(-1, Acceptor::kPauseMs)
                                   : uds::wait_readable(listener);
        if (w == uds::Wait::Stop) break;
        m.join_finished(acceptor);         // S8b
        uds::Fd conn = acceptor.accept();  // S5
        if (!conn) continue;
        std::lock_guard lock{m.mu};
        if (opt.max_clients != 0 && m.active >= opt.max_clients) {
            uds::log("max clients (" + std::to_string(opt.max_clients) + ") reached: busy");
            turn_away(std::move(conn));
            continue;
        }
        uds::log("client connected (pid " + peer_pid(conn.get()) + "), " +
                 std::to_string(m.active + 1) + " connected");
        ThreadModel::Client& c = m.clients.emplace_back();
        c.model = &m;
        c.conn = std::move(conn);
        //@S6 pthread_create: start a thread that serves this client with ThreadModel::client_thread; if no thread can be made, turn the client away and forget its record | pthread_create(3); README "Walkthrough"
        //@hint pthread_create returns an error number (0 on success) instead of setting errno; the new thread gets &c as its argument.
        //@hint On failure: turn_away(std::move(c.conn)), m.clients.pop_back(), and continue with the next client.
        // S6. pthread_create: a thread for this client, sharing our memory and descriptors.
        if (int err = pthread_create(&c.thread, nullptr, ThreadModel::client_thread, &c)) {
            uds::log(std::string("pthread_create: ") + strerror(err) + ": turning it away");
            turn_away(std::move(c.conn));
            m.clients.pop_back();
            continue;
        }
        //@end
        ++m.active;
    }

    // Shutdown: wake every thread that is blocked on its client, then join them all.
    {
        std::lock_guard lock{m.mu};
        for (ThreadModel::Client& c : m.clients)
            if (c.conn) shutdown(c.conn.get(), SHUT_RDWR);
    }
    for (ThreadModel::Client& c : m.clients)
        pthread_join(c.thread, nullptr);
}

// The body of each client's thread.
inline void* ThreadModel::client_thread(void* arg) {
    auto* c = static_cast<Client*>(arg);
    try {
        serve_blocking(c->conn.get(), c->model->idle_ms);  // S7
    } catch (const uds::SysError& e) {
        uds::log("client dropped: " + uds::describe(e));
    } catch (const uds::Stopped&) {
    }
    std::lock_guard guard{c->model->mu};
    //@S8a close: as soon as this thread's client is done, close its socket (under the lock, which is held here) so that a vanished client's descriptor is free at once | close(2); README "Walkthrough"
    //@hint The Client record owns the socket in an uds::Fd: resetting it closes the descriptor.
    // S8a. close, under the lock: the shutdown loop never pokes a reused number.
    c->conn.reset();
    //@end
    --c->model->active;
    uds::log("client left, " + std::to_string(c->model->active) + " connected");
    c->done = true;
    return nullptr;
}

// Called by the main thread each time it wakes up: joins the threads that have finished.
inline void ThreadModel::join_finished(Acceptor& acceptor) {
    std::lock_guard lock{mu};
    for (auto it = clients.begin(); it != clients.end();) {
        if (!it->done) {
            ++it;
            continue;
        }
        //@S8b pthread_join: wait for this finished thread (it has returned already: done is set last) so that its stack and other resources are given back | pthread_join(3); README "Walkthrough"
        //@hint A thread that is never joined (or detached) keeps its stack mapped after it has returned.
        // S8b. pthread_join: the thread has returned; this gives its stack back.
        pthread_join(it->thread, nullptr);
        //@end
        it = clients.erase(it);
        acceptor.client_left();
        ++joined_since_trim;
    }
    // After a crowd has left, give the memory its threads used back to the system.
    if (joined_since_trim >= 64 && clients.size() < joined_since_trim) {
        malloc_trim(0);
        joined_since_trim = 0;
    }
}

}  // namespace ch04
