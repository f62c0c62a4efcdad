// exercise/model_thread.hpp - YOUR thread model: write the steps marked TODO (5 and 8).
// Tests: Ch04Steps.ThreadStep*, then every Ch04/Ch04Models.*/thread.
//
// (original header:) one thread per client.
//
// The main thread accepts; each client gets a thread (pthread_create) running the blocking
// loop of chapter 01. Threads are cheaper than processes (no fork, shared memory), but they
// share everything: one crash takes every client down, and any shared data needs a lock. Each
// thread still costs a stack (8 MiB of address space; only touched pages count in RSS) and a
// kernel task.
//
// Every thread is joined before the server exits. A finished thread closes its own socket at
// once (so a vanished client frees its descriptor immediately) and is joined by the main thread
// the next time it wakes up. On shutdown the main thread calls shutdown(SHUT_RDWR) on every
// client socket: a thread blocked in read() or in write_all() wakes up and returns.
//
// (pthread_create rather than std::thread: it reports "no more threads" as an error code,
// which we answer with "ERROR server busy", and it has no hidden heap object whose checks in
// sanitizer builds need free descriptors at the very moment we have none.)
#pragma once

#include <pthread.h>

#include <list>
#include <mutex>

#include "../serve.hpp"
#include "todo.hpp"

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

    // The body of each client's thread.
    static void* client_thread(void* arg) {
        auto* c = static_cast<Client*>(arg);
        try {
            serve_blocking(c->conn.get());  // the descriptor stays open while we serve
        } catch (const uds::SysError& e) {
            uds::log("client dropped: " + uds::describe(e));
        } catch (const uds::Stopped&) {
        }
        // 8. close, under the lock: the shutdown loop never pokes a reused number.
        std::lock_guard guard{c->model->mu};
        // TODO(step 8): close the connection now: c->conn.reset();
        //               (as it is, it stays open until the main thread next wakes up and joins)
        --c->model->active;
        uds::log("client left, " + std::to_string(c->model->active) + " connected");
        c->done = true;
        return nullptr;
    }
};

inline void run_thread_model(int listener, const Options& opt) {
    ThreadModel m;
    Acceptor acceptor{listener, 0};
    opt.ready();

    auto join_finished = [&] {
        std::lock_guard lock{m.mu};
        for (auto it = m.clients.begin(); it != m.clients.end();) {
            if (!it->done) {
                ++it;
                continue;
            }
            pthread_join(it->thread, nullptr);  // it has returned already (done is set last)
            it = m.clients.erase(it);
            acceptor.client_left();
        }
    };

    for (;;) {
        auto w = acceptor.paused() ? uds::wait_readable(-1, Acceptor::kPauseMs)
                                   : uds::wait_readable(listener);
        if (w == uds::Wait::Stop) break;
        join_finished();
        uds::Fd conn = acceptor.accept();
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
        // 5. pthread_create: a thread for this client, sharing our memory and descriptors.
        // TODO(step 5): int err = pthread_create(&c.thread, nullptr,
        //                                        ThreadModel::client_thread, &c)
        //               (it returns an error number, 0 on success; it does not set errno)
        if (int err = todo<int>("step 5: pthread_create, in run_thread_model")) {
            uds::log(std::string("pthread_create: ") + strerror(err) + ": turning it away");
            turn_away(std::move(c.conn));
            m.clients.pop_back();
            continue;
        }
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

}  // namespace ch04
