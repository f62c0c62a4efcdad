// tests/fuzz/ch01_server.cpp - fuzz input sent in small chunks over a live connection to the real
// chapter 01 server, whose whole reply stream must be exactly what the protocol says.
//
// The server is the real program (01-stream-path/server, release build, or $UDS_BIN_DIR/...),
// started once per fuzz process in LLVMFuzzerInitialize on a socket in a private temporary
// directory. Copying its serve() loop here would test the copy; driving the binary tests the
// code students read. Each input is one connection:
//   byte 0      chunk-size seed: the rest is sent in chunks of 1..16 bytes (sizes from a tiny
//               PRNG seeded by it), while replies are read as they come (poll, no sleeps)
//   bytes 1..   the request stream; shutdown(SHUT_WR) marks its end
// Expected reply stream (the service contract of chapters 01-04): for each line, its ASCII
// upper-case + "\n"; a line over 4096 bytes gets "ERROR line too long (max 4096 bytes)\n" and the
// connection ends; a final line without "\n" is answered too. A wrong byte, a missing reply, a hang
// (10 s) or a dead server aborts. Coverage note: libFuzzer sees only this process's edges; the
// server is a separate process, so coverage grows with the driver's paths, and the findings are
// wrong or missing replies.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "address.hpp"
#include "service.hpp"

#ifndef UDS_SOURCE_ROOT
#define UDS_SOURCE_ROOT "."
#endif

namespace {

pid_t g_server = -1;
std::string g_dir;
uds::Address g_addr;

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "ch01_server: %s\n", what.c_str());
    std::abort();
}

void stop_server() {
    if (g_server > 0) {
        ::kill(g_server, SIGTERM);
        int status = 0;
        ::waitpid(g_server, &status, 0);
        g_server = -1;
    }
    if (!g_dir.empty()) {
        ::unlink((g_dir + "/s.sock").c_str());
        ::unlink((g_dir + "/s.sock.lock").c_str());  // the server keeps its (free) lock file
        ::unlink((g_dir + "/server.log").c_str());
        ::rmdir(g_dir.c_str());
    }
}

int connect_once() {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) fail(std::string("socket: ") + std::strerror(errno));
    if (::connect(fd, g_addr.sockaddr_ptr(), g_addr.length()) == 0) return fd;
    int err = errno;
    ::close(fd);
    errno = err;
    return -1;
}

// The reply stream the protocol promises for this request stream.
std::string expected_replies(std::string_view in) {
    std::string out;
    for (;;) {
        std::size_t nl = in.find('\n');
        std::string_view line = in.substr(0, nl);
        if (line.size() > uds::kMaxLine) return out + std::string(uds::kLineTooLong);
        if (nl == std::string_view::npos) {
            if (!line.empty()) out += uds::upcase(line) + "\n";
            return out;
        }
        out += uds::upcase(line) + "\n";
        in.remove_prefix(nl + 1);
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    std::signal(SIGPIPE, SIG_IGN);
    const char* bin_dir = std::getenv("UDS_BIN_DIR");
    std::string server =
        std::string(bin_dir != nullptr ? bin_dir : UDS_SOURCE_ROOT) + "/01-stream-path/server";
    if (::access(server.c_str(), X_OK) != 0) fail(server + " is missing: build it first (make)");
    char tmpl[] = "/tmp/uds-fuzz-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) fail("mkdtemp failed");
    g_dir = tmpl;
    g_addr = uds::Address::path(g_dir + "/s.sock");
    const std::string log = g_dir + "/server.log";
    pid_t parent = ::getpid();
    g_server = ::fork();
    if (g_server == -1) fail("fork failed");
    if (g_server == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the fuzzer
        if (::getppid() != parent) ::_exit(1);
        int devnull = ::open("/dev/null", O_RDWR);
        ::dup2(devnull, 0);
        ::dup2(devnull, 2);  // one log line per connection would drown libFuzzer's output
        const std::string sock = g_addr.name();
        ::execl(server.c_str(), server.c_str(), "-s", sock.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    std::atexit(stop_server);
    // Ready when connect() works (poll with a deadline; no sleeping).
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
        int fd = connect_once();
        if (fd >= 0) {
            ::close(fd);
            break;
        }
        if (std::chrono::steady_clock::now() > deadline) fail("the server did not start");
        int status = 0;
        if (::waitpid(g_server, &status, WNOHANG) == g_server) fail("the server exited at start");
        ::poll(nullptr, 0, 5);  // a connect retry interval, not synchronisation by sleeping
    }
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    std::uint32_t rng = data[0] * 2654435761u + 1;
    const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
    const std::string want = expected_replies(in);

    int fd = connect_once();
    if (fd == -1) fail(std::string("connect: ") + std::strerror(errno) + " (server died?)");
    std::string got;
    std::size_t sent = 0;
    bool write_closed = false;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
        if (!write_closed && sent == in.size()) {
            ::shutdown(fd, SHUT_WR);
            write_closed = true;
        }
        pollfd p{fd, static_cast<short>(POLLIN | (write_closed ? 0 : POLLOUT)), 0};
        int rc = ::poll(&p, 1, 1000);
        if (rc == -1 && errno == EINTR) continue;
        if (std::chrono::steady_clock::now() > deadline)
            fail("no end of the reply stream within 10 s; got " + std::to_string(got.size()) +
                 " of " + std::to_string(want.size()) + " bytes");
        if ((p.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
            char buf[8192];
            ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0) {
                got.append(buf, static_cast<std::size_t>(n));
                if (got.size() > want.size() || want.compare(0, got.size(), got) != 0) break;
                continue;
            }
            if (n == 0) break;               // EOF: the server is done with us
            if (errno == ECONNRESET) break;  // it closed with our bytes unread (too long)
            if (errno != EAGAIN && errno != EINTR)
                fail(std::string("recv: ") + std::strerror(errno));
        }
        if (!write_closed && (p.revents & POLLOUT) != 0) {
            std::size_t chunk = 1 + (rng >> 16) % 16;
            rng = rng * 1103515245u + 12345u;
            if (chunk > in.size() - sent) chunk = in.size() - sent;
            ssize_t n = ::send(fd, in.data() + sent, chunk, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                sent += static_cast<std::size_t>(n);
            } else if (errno == EPIPE || errno == ECONNRESET) {
                write_closed = true;  // the server hung up (after an overlong line): read on
            } else if (errno != EAGAIN && errno != EINTR) {
                fail(std::string("send: ") + std::strerror(errno));
            }
        }
    }
    ::close(fd);
    if (got != want) {
        std::size_t i = 0;
        while (i < got.size() && i < want.size() && got[i] == want[i])
            ++i;
        fail("reply stream differs at byte " + std::to_string(i) + ": got " +
             std::to_string(got.size()) + " bytes, want " + std::to_string(want.size()));
    }
    return 0;
}
