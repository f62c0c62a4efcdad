// signals.hpp - graceful shutdown on SIGINT/SIGTERM, without races.
//
// A flag set by a signal handler is not enough on its own: if the signal arrives just before
// the program enters accept() or read(), the call blocks and nobody looks at the flag again.
// So the handler also writes one byte into a pipe (the "self-pipe trick"), and the program
// waits with poll() on its socket *and* that pipe. A stop request that arrived at any earlier
// moment is still sitting in the pipe, so the wait returns at once.
//
//   uds::install_shutdown_handlers();         // once, in main
//   while (uds::wait_readable(fd) == uds::Wait::Ready) { ... read(fd) ... }
#pragma once

namespace uds {

// SIGINT and SIGTERM set the stop flag and wake wait_*(). Installed without SA_RESTART.
void install_shutdown_handlers();
// In a forked child: give the child its own pipe, so that its signals do not wake the parent.
void reinstall_shutdown_handlers_after_fork();
// Has SIGINT or SIGTERM arrived?
[[nodiscard]] bool stop_requested() noexcept;
// The read end of the self-pipe (readable once a stop was requested), for epoll loops;
// -1 if the handlers are not installed.
[[nodiscard]] int stop_fd() noexcept;
// Which signal asked us to stop (0 if none).
[[nodiscard]] int stop_signal() noexcept;
// For tests: forget an earlier stop request.
void clear_stop_request() noexcept;

enum class Wait { Ready, Stop, Timeout };
// Waits until fd is readable / writable (or has hung up), a stop was requested, or
// timeout_ms passed (-1: no timeout). EINTR is handled inside.
Wait wait_readable(int fd, int timeout_ms = -1);
Wait wait_writable(int fd, int timeout_ms = -1);

// Thrown by helpers that had to give up waiting because a stop was requested.
struct Stopped {};

}  // namespace uds
