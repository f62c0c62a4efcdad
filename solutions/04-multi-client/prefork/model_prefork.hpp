// solutions/04-multi-client/prefork/model_prefork.hpp - N worker processes, forked once, all
// accepting on the one listener they inherited (Apache's prefork, nginx's workers).
//
// Exercise 5 of chapter 04. Who gets each connection depends on how the workers wait:
//   --wake accept           each worker blocks in accept4 (a blocking listener). The kernel
//                           queues the waiters and wakes ONE per connection, in turn.
//   --wake epoll            each worker has its own epoll set holding the listener, and waits in
//                           epoll_wait. A connection wakes EVERY worker (the thundering herd):
//                           one wins accept4, the others get EAGAIN and go back to sleep.
//   --wake epoll-exclusive  the same with EPOLLEXCLUSIVE (Linux 4.5): the kernel wakes one
//                           waiter (or a few) per connection.
// Each worker serves one client at a time with chapter 01's loop (serve_blocking), counts the
// clients it served and its wake-ups that found nothing to accept, and logs both when it stops.
#pragma once

#include <poll.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <csignal>
#include <string>
#include <vector>

#include "serve.hpp"

namespace ch04 {

enum class Wake { Accept, Epoll, EpollExclusive };

// One worker: runs until SIGTERM (or its parent dies), never returns.
[[noreturn]] inline void prefork_worker(int listener, int number, Wake wake, const Options& opt) {
    int status = 0;
    long clients = 0, wasted = 0;
    try {
        uds::reinstall_shutdown_handlers_after_fork();
        uds::check(prctl(PR_SET_PDEATHSIG, SIGTERM), "prctl PR_SET_PDEATHSIG");
        uds::Fd ep;
        if (wake != Wake::Accept) {
            ep.reset(uds::check(epoll_create1(EPOLL_CLOEXEC), "epoll_create1"));
            epoll_event ev{};
            ev.events = EPOLLIN;
            if (wake == Wake::EpollExclusive) ev.events |= EPOLLEXCLUSIVE;
            uds::check(epoll_ctl(ep.get(), EPOLL_CTL_ADD, listener, &ev), "epoll_ctl ADD");
        }
        while (!uds::stop_requested()) {
            if (wake != Wake::Accept) {  // S4. wait: in our own epoll set
                epoll_event ev{};
                if (epoll_wait(ep.get(), &ev, 1, -1) == -1) {
                    if (errno == EINTR) continue;
                    uds::check(-1, "epoll_wait");
                }
            }
            // S5. accept4: blocking for --wake accept (the kernel picks which waiter returns);
            //     non-blocking for the epoll ways (another worker may have taken it: EAGAIN).
            uds::Fd conn{accept4(listener, nullptr, nullptr, SOCK_CLOEXEC)};
            if (!conn) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) ++wasted;
                if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK ||
                    errno == ECONNABORTED)
                    continue;
                uds::check(-1, "accept4");
            }
            ++clients;
            // S6-S7. the worker serves it itself, to the end; then it accepts again.
            try {
                serve_blocking(conn.get(), opt.idle_timeout_ms);
            } catch (const uds::SysError& e) {
                uds::log("worker " + std::to_string(number) +
                         ": client dropped: " + uds::describe(e));
            }
        }
    } catch (const uds::Stopped&) {
    } catch (const std::exception& e) {
        uds::log("worker " + std::to_string(number) + ": " + e.what());
        status = 1;
    }
    uds::log("worker " + std::to_string(number) + " (pid " + std::to_string(getpid()) +
             "): served " + std::to_string(clients) + " clients, woke " + std::to_string(wasted) +
             " times for nothing");
    _exit(status);
}

// The parent: forks the workers once, then only waits for SIGINT/SIGTERM and passes it on.
inline void run_prefork_model(int listener, const Options& opt, int workers, Wake wake) {
    std::vector<pid_t> children;
    for (int i = 1; i <= workers; ++i) {
        const pid_t pid = uds::check(fork(), "fork");
        if (pid == 0) prefork_worker(listener, i, wake, opt);
        children.push_back(pid);
    }
    opt.ready();
    while (uds::wait_readable(uds::stop_fd()) != uds::Wait::Stop) {
    }
    for (pid_t pid : children)
        kill(pid, SIGTERM);
    for (pid_t pid : children)  // S8. reap every worker
        while (waitpid(pid, nullptr, 0) == -1 && errno == EINTR) {
        }
}

}  // namespace ch04
