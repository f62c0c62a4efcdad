// model_fork.hpp - one process per client (the classic Unix server).
//
// The parent only accepts; each client is served by a child process running the blocking loop
// of chapter 01 (S7, serve.hpp). Isolation is perfect (a crash takes one client down) and the
// code is simple; the price is a fork per connection and a whole process (page tables, a few
// hundred KiB of kernel and user memory) per client. So the number of children is capped
// (--max-clients, 128 by default): without a cap, one peer opening connections in a loop makes
// the server fork until the machine runs out of processes.
//
// Three chores come with it:
//   - reaping (S8): a child that exits stays a zombie until its parent calls waitpid. The
//     parent watches SIGCHLD through a signalfd, in the same poll() as the listener (S4), so no
//     SIGCHLD is ever missed (a flag set by a handler could arrive just before poll() and wait
//     there).
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

#include "serve.hpp"

namespace ch04 {

// Runs in the child, never returns: serve one client, then _exit (never return into the
// parent's code: its destructors would unlink the parent's socket file).
[[noreturn]] inline void child_main(uds::Fd conn, pid_t parent, const sigset_t& old_mask,
                                    int idle_ms) {
    int status = 0;
    try {
        uds::reinstall_shutdown_handlers_after_fork();  // our own self-pipe
        sigprocmask(SIG_SETMASK, &old_mask, nullptr);   // SIGCHLD, SIGINT, SIGTERM unblocked
        // SIGTERM us when the parent dies; if it died before this line, go now.
        uds::check(prctl(PR_SET_PDEATHSIG, SIGTERM), "prctl PR_SET_PDEATHSIG");
        if (getppid() != parent) _exit(0);
        serve_blocking(conn.get(), idle_ms);  // S7
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

// S8 (below run_fork_model): collect every child that has exited, so no zombie stays behind.
inline void reap_children(int sigchld, std::set<pid_t>& children, Acceptor& acceptor);

inline void run_fork_model(int listener, const Options& opt) {
    // S4a. signalfd: SIGCHLD as a descriptor. Block its normal delivery, read it from here.
    sigset_t chld, old_mask;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    uds::check(sigprocmask(SIG_BLOCK, &chld, &old_mask), "sigprocmask");
    uds::Fd sigchld{uds::check(signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK), "signalfd")};

    Acceptor acceptor{listener, 0};
    std::set<pid_t> children;
    opt.ready();

    while (!uds::stop_requested()) {
        // S4b. poll: sleep until a client connects, a child exits, or we are asked to stop.
        pollfd fds[3] = {{acceptor.paused() ? -1 : listener, POLLIN, 0},
                         {uds::stop_fd(), POLLIN, 0},
                         {sigchld.get(), POLLIN, 0}};
        int rc = poll(fds, 3, acceptor.paused() ? Acceptor::kPauseMs : -1);
        if (rc == -1 && errno == EINTR) continue;
        uds::check(rc, "poll");
        if (fds[2].revents != 0) reap_children(sigchld.get(), children, acceptor);  // S8
        if (fds[0].revents == 0 && !acceptor.paused()) continue;

        uds::Fd conn = acceptor.accept();  // S5
        if (!conn) continue;
        if (opt.max_clients != 0 && children.size() >= opt.max_clients) {
            uds::log("max clients (" + std::to_string(opt.max_clients) + ") reached: busy");
            turn_away(std::move(conn));
            continue;
        }
        // SIGINT/SIGTERM stay blocked across fork until the child has its own self-pipe.
        sigset_t all = chld;
        sigaddset(&all, SIGINT);
        sigaddset(&all, SIGTERM);
        sigprocmask(SIG_BLOCK, &all, nullptr);
        //@S6a fork: make a child process that serves this client: in the child, close what belongs to the parent (the signalfd, the listener, the spare descriptor), then serve and never come back | fork(2); README "Walkthrough"
        //@hint fork returns twice: 0 in the child, the child's pid in the parent, -1 if it failed (the code after this step handles -1).
        //@hint In the child: sigchld.reset(), close(listener), acceptor.close_spare_in_child(), then child_main(std::move(conn), parent, old_mask, opt.idle_timeout_ms), which never returns (parent: our pid, taken before fork).
        // S6a. fork: the child gets a copy of every descriptor, conn included. It keeps only
        //      conn: a child holding the listener would keep the socket alive after the parent.
        const pid_t parent = getpid();
        pid_t pid = fork();
        if (pid == 0) {
            sigchld.reset();
            close(listener);
            acceptor.close_spare_in_child();
            child_main(std::move(conn), parent, old_mask, opt.idle_timeout_ms);
        }
        //@stub pid_t pid = -1;
        //@end
        sigprocmask(SIG_SETMASK, &chld, nullptr);  // parent: only SIGCHLD stays blocked
        if (pid == -1) {
            uds::log(std::string("fork: ") + strerror(errno) + ": turning the client away");
            turn_away(std::move(conn));
            continue;
        }
        children.insert(pid);
        uds::log("client connected (pid " + peer_pid(conn.get()) + "), served by process " +
                 std::to_string(pid) + ", " + std::to_string(children.size()) + " connected");
        //@S6b close: give up the parent's copy of the client's socket at once: the connection lives on in the child, and the parent must not hold one descriptor per client | close(2); README "Walkthrough"
        //@hint uds::Fd closes its descriptor when reset (or destroyed).
        // S6b. close: the parent's copy. The connection lives on in the child; when the child
        //      closes it, the client sees end of file (no other copy is left open).
        conn.reset();
        //@end
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

inline void reap_children(int sigchld, std::set<pid_t>& children, Acceptor& acceptor) {
    signalfd_siginfo info;
    while (read(sigchld, &info, sizeof info) > 0) {  // drain the signalfd
    }
    const std::size_t before = children.size();
    //@S8 waitpid: collect every child that has exited, without ever waiting for one that is still serving, and forget (erase from children) each one collected | waitpid(2), wait(2) (zombies); README "Walkthrough"
    //@hint Several children can end while we handle one SIGCHLD (signals do not queue): loop until waitpid says there is nobody left to collect.
    //@hint waitpid(-1, nullptr, WNOHANG) returns a pid, 0 (children left, none exited) or -1 (no children); erase each pid it returns from children.
    // S8. waitpid: collect each child that exited (WNOHANG: never wait for a running one).
    pid_t pid;
    while ((pid = waitpid(-1, nullptr, WNOHANG)) > 0)
        children.erase(pid);
    //@end
    if (children.size() < before) acceptor.client_left();  // a slot (and descriptors) are free
}

}  // namespace ch04
