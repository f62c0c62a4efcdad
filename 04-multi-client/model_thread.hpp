// model_thread.hpp - one thread per client.
//
// The main thread accepts; each client gets a std::thread running the blocking loop of
// chapter 01. Threads are cheaper than processes (no fork, shared memory), but they share
// everything: one crash takes every client down, and any shared data needs a lock. Each thread
// still costs a stack (8 MiB of address space, touched pages only in RSS) and a kernel task.
//
// Every thread is joined before the server exits. A finished thread closes its own socket at
// once (so a vanished client frees its descriptor immediately) and is joined by the main thread
// the next time it wakes up. On shutdown the main thread calls shutdown(SHUT_RDWR) on every
// client socket: a thread blocked in read() or in write_all() wakes up and returns.
#pragma once

#include <list>
#include <mutex>
#include <system_error>
#include <thread>

#include "serve.hpp"

namespace ch04 {

inline void run_thread_model(int listener, const Options& opt) {
    struct Client {
        uds::Fd conn;  // guarded by mu: the thread closes it, shutdown() pokes it
        bool done = false;
        std::thread thread;
    };
    std::mutex mu;
    std::list<Client> clients;  // std::list: elements never move, threads keep a reference
    std::size_t active = 0;
    Acceptor acceptor{listener, 0};

    auto join_finished = [&] {
        std::lock_guard lock{mu};
        for (auto it = clients.begin(); it != clients.end();) {
            if (!it->done) {
                ++it;
                continue;
            }
            it->thread.join();  // it has returned already (done is set last): no waiting
            it = clients.erase(it);
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
        std::lock_guard lock{mu};
        if (opt.max_clients != 0 && active >= opt.max_clients) {
            uds::log("max clients (" + std::to_string(opt.max_clients) + ") reached: busy");
            turn_away(std::move(conn));
            continue;
        }
        uds::log("client connected (pid " + peer_pid(conn.get()) + "); " +
                 std::to_string(active + 1) + " clients");
        Client& c = clients.emplace_back();
        c.conn = std::move(conn);
        ++active;
        // 5. a thread for this client. It gets the descriptor number; the Fd stays in the list.
        try {
            c.thread = std::thread([&mu, &active, &c, fd = c.conn.get()] {
                try {
                    serve_blocking(fd);
                } catch (const uds::SysError& e) {
                    uds::log("client dropped: " + uds::describe(e));
                } catch (const uds::Stopped&) {
                }
                // 6. close, under the lock: shutdown() below never hits a reused number.
                std::lock_guard guard{mu};
                c.conn.reset();
                --active;
                uds::log("client left; " + std::to_string(active) + " clients");
                c.done = true;
            });
        } catch (const std::system_error& e) {  // EAGAIN: no more threads for now
            uds::log(std::string("std::thread: ") + e.what() + ": turning the client away");
            turn_away(std::move(c.conn));
            clients.pop_back();
            --active;
        }
    }

    // Shutdown: wake every thread that is blocked on its client, then join them all.
    {
        std::lock_guard lock{mu};
        for (Client& c : clients)
            if (c.conn) shutdown(c.conn.get(), SHUT_RDWR);
    }
    for (Client& c : clients)
        c.thread.join();
}

}  // namespace ch04
