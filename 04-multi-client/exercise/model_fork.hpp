// exercise/model_fork.hpp - YOUR fork model: write the steps marked TODO (5 and 8).
// Tests: Ch04Steps.ForkStep*, then every Ch04/Ch04Models.*/fork.
//
// (original header:) one process per client (the classic Unix server).
//
// The parent only accepts; each client is served by a child process running the blocking loop
// of chapter 01. Isolation is perfect (a crash takes one client down) and the code is simple;
// the price is a fork per connection and a whole process (page tables, a few hundred KiB of
// kernel and user memory) per client.
//
// Three chores come with it:
//   - reaping: a child that exits stays a zombie until its parent calls waitpid. The parent
//     watches SIGCHLD through a signalfd, in the same poll() as the listener, so no SIGCHLD is
//     ever missed (a flag set by a handler could arrive just before poll() and wait there).
//   - no orphans: on shutdown the parent sends SIGTERM to every child and waits for them; and
//     each child asks the kernel for SIGTERM if the parent dies (PR_SET_PDEATHSIG), so even a
//     SIGKILLed parent leaves no child serving behind it.
//   - signals after fork: the child inherits the parent's SIGINT/SIGTERM handlers and their
//     self-pipe; it needs a pipe of its own, or its signals would wake the parent.
#pragma once

#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

#include <csignal>
#include <set>

#include "../serve.hpp"
#include "todo.hpp"

namespace ch04 {

// Runs in the child, never returns: serve one client, then _exit (never return into the
// parent's code: its destructors would unlink the parent's socket file).
[[noreturn]] inline void child_main(uds::Fd conn, pid_t parent, const sigset_t& old_mask) {
    int status = 0;
    try {
        uds::reinstall_shutdown_handlers_after_fork();  // our own self-pipe
        sigprocmask(SIG_SETMASK, &old_mask, nullptr);   // SIGCHLD, SIGINT, SIGTERM unblocked
        // SIGTERM us when the parent dies; if it died before this line, go now.
        uds::check(prctl(PR_SET_PDEATHSIG, SIGTERM), "prctl PR_SET_PDEATHSIG");
        if (getppid() != parent) _exit(0);
        serve_blocking(conn.get());
    } catch (const uds::SysError& e) {
        uds::log("client dropped: " + uds::describe(e));
    } catch (const uds::Stopped&) {
    } catch (...) {
        status = 1;
    }
    uds::log("process " + std::to_string(getpid()) + ": client left");
    conn.reset();
    _exit(status);
}

inline void run_fork_model(int listener, const Options& opt) {
    // SIGCHLD arrives through a descriptor: block its normal delivery, read it from a signalfd.
    sigset_t chld, old_mask;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    uds::check(sigprocmask(SIG_BLOCK, &chld, &old_mask), "sigprocmask");
    uds::Fd sigchld{uds::check(signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK), "signalfd")};

    Acceptor acceptor{listener, 0};
    std::set<pid_t> children;
    const pid_t parent = getpid();
    opt.ready();
    auto reap = [&] {  // collect every child that has exited: no zombie stays behind
        signalfd_siginfo info;
        while (read(sigchld.get(), &info, sizeof info) > 0) {
        }
        // 8. waitpid: collect each child that exited (WNOHANG: never wait for a running one).
        //    Several exits can come as one SIGCHLD: loop until waitpid finds no more.
        pid_t pid;
        // TODO(step 8): while ((pid = waitpid(-1, nullptr, WNOHANG)) > 0) {
        while ((pid = todo<pid_t>("step 8: waitpid, in run_fork_model's reap")) > 0) {
            children.erase(pid);
            acceptor.client_left();
        }
    };

    while (!uds::stop_requested()) {
        pollfd fds[3] = {{acceptor.paused() ? -1 : listener, POLLIN, 0},
                         {uds::stop_fd(), POLLIN, 0},
                         {sigchld.get(), POLLIN, 0}};
        int rc = poll(fds, 3, acceptor.paused() ? Acceptor::kPauseMs : -1);
        if (rc == -1 && errno == EINTR) continue;
        uds::check(rc, "poll");
        if (fds[2].revents != 0) reap();
        if (fds[0].revents == 0 && !acceptor.paused()) continue;

        uds::Fd conn = acceptor.accept();
        if (!conn) continue;
        if (opt.max_clients != 0 && children.size() >= opt.max_clients) {
            uds::log("max clients (" + std::to_string(opt.max_clients) + ") reached: busy");
            turn_away(std::move(conn));
            continue;
        }
        // 5. fork: the child gets a copy of every descriptor, conn included. SIGINT/SIGTERM
        //    stay blocked until the child has its own self-pipe (see child_main).
        sigset_t all = chld;
        sigaddset(&all, SIGINT);
        sigaddset(&all, SIGTERM);
        sigprocmask(SIG_BLOCK, &all, nullptr);
        // TODO(step 5): pid_t pid = fork();   (0 in the child, the child's pid in the parent)
        pid_t pid = todo<pid_t>("step 5: fork, in run_fork_model");
        if (pid == 0) {
            sigchld.reset();  // the child needs neither the signalfd nor the listener
            close(listener);
            child_main(std::move(conn), parent, old_mask);
        }
        sigprocmask(SIG_SETMASK, &chld, nullptr);  // parent: only SIGCHLD stays blocked
        if (pid == -1) {
            uds::log(std::string("fork: ") + strerror(errno) + ": turning the client away");
            turn_away(std::move(conn));
            continue;
        }
        children.insert(pid);
        uds::log("client connected (pid " + peer_pid(conn.get()) + "), served by process " +
                 std::to_string(pid) + ", " + std::to_string(children.size()) + " connected");
        // 6. close: the parent's copy. The connection lives on in the child.
        conn.reset();
    }

    // Shutdown: every child gets SIGTERM and is waited for (no orphans, no zombies).
    for (pid_t pid : children)
        kill(pid, SIGTERM);
    while (!children.empty()) {
        pid_t pid = waitpid(-1, nullptr, 0);
        if (pid > 0) children.erase(pid);
        if (pid == -1 && errno != EINTR) break;
    }
    sigprocmask(SIG_SETMASK, &old_mask, nullptr);
}

}  // namespace ch04
