#include "signals.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>

#include "error.hpp"

namespace uds {

namespace {
// std::atomic, not volatile sig_atomic_t: worker threads (chapter 04) read it too, which
// ThreadSanitizer rightly reports as a race; a lock-free atomic is also safe in a handler.
std::atomic<int> g_stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free);
int g_pipe_read = -1;
int g_pipe_write = -1;

extern "C" void on_shutdown_signal(int sig) {
    int saved = errno;  // a handler must not change errno under the interrupted code
    g_stop_signal = sig;
    if (g_pipe_write >= 0) {
        char byte = 1;
        [[maybe_unused]] ssize_t n = ::write(g_pipe_write, &byte, 1);  // non-blocking
    }
    errno = saved;
}

void open_pipe() {
    int fds[2];
    check(::pipe2(fds, O_CLOEXEC | O_NONBLOCK), "pipe2");
    // Intentionally process-lifetime: the pipe lives as long as the handlers that use it.
    if (g_pipe_read >= 0) ::close(g_pipe_read);
    if (g_pipe_write >= 0) ::close(g_pipe_write);
    g_pipe_read = fds[0];
    g_pipe_write = fds[1];
}

Wait wait_for(int fd, short events, int timeout_ms) {
    for (;;) {
        if (g_stop_signal != 0) return Wait::Stop;
        pollfd fds[2] = {{fd, events, 0}, {g_pipe_read, POLLIN, 0}};
        nfds_t n = g_pipe_read >= 0 ? 2 : 1;
        int rc = ::poll(fds, n, timeout_ms);
        if (rc < 0 && errno == EINTR) continue;  // the loop head looks at the flag
        check(rc, "poll");
        if (g_stop_signal != 0) return Wait::Stop;
        if (rc == 0) return Wait::Timeout;
        if (fds[0].revents != 0) return Wait::Ready;  // includes POLLHUP/POLLERR: the call will say
    }
}
}  // namespace

void install_shutdown_handlers() {
    open_pipe();
    struct sigaction sa {};
    sa.sa_handler = on_shutdown_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: blocking calls return EINTR
    check(::sigaction(SIGINT, &sa, nullptr), "sigaction SIGINT");
    check(::sigaction(SIGTERM, &sa, nullptr), "sigaction SIGTERM");
}

void reinstall_shutdown_handlers_after_fork() {
    g_stop_signal = 0;
    install_shutdown_handlers();
}

bool stop_requested() noexcept {
    return g_stop_signal != 0;
}
int stop_fd() noexcept {
    return g_pipe_read;
}
int stop_signal() noexcept {
    return g_stop_signal;
}

void clear_stop_request() noexcept {
    g_stop_signal = 0;
    if (g_pipe_read >= 0) {
        char buf[64];
        while (::read(g_pipe_read, buf, sizeof buf) > 0) {
        }
    }
}

Wait wait_readable(int fd, int timeout_ms) {
    return wait_for(fd, POLLIN, timeout_ms);
}
Wait wait_writable(int fd, int timeout_ms) {
    return wait_for(fd, POLLOUT, timeout_ms);
}

}  // namespace uds
