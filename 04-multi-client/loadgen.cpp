// 04-multi-client/loadgen.cpp - many clients at once, every reply checked, latency measured.
//
//   loadgen [-s ADDR] -c CLIENTS -n REQUESTS [--size BYTES] [--pipeline K] [--idle N]
//   loadgen -s ADDR --raw [--line PING] -c CLIENTS -n REQUESTS     (any line-based server)
//
// It opens all CLIENTS connections first, then drives them all from one thread with epoll
// (the same technique as the epoll server): each connection keeps up to K requests in flight,
// REQUESTS in total are spread over the connections. Every reply must be the upper-cased
// request, in order; in --raw mode any one line counts as the reply to one request line (so it
// can drive, say, redis-server answering the inline command PING with +PONG).
//
// Output: requests/s, and the latency of each request (from writing it to reading its reply)
// as p50/p90/p99/max. Exit status 0 only if every reply arrived and was right; 1 on a wrong or
// missing reply, a closed connection, or no reply for --timeout seconds (it never hangs).
//
// It does not trust the server either: a reply line longer than kMaxReply bytes is an error
// (a server streaming one endless line would otherwise make us buffer it until memory runs
// out), and the timeout counts replies, not bytes (a server trickling bytes that never make a
// line cannot keep us waiting).
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "uds.hpp"

namespace {

using Clock = std::chrono::steady_clock;

// The longest reply line we accept: the longest request (4096 bytes) upper-cased, with room
// for an ERROR line; in --raw mode the same.
constexpr std::size_t kMaxReply = uds::kMaxLine + 64;

struct Config {
    uds::Address addr;
    std::uint64_t clients = 10, requests = 1000, size = 16, pipeline = 1, idle = 0;
    int timeout_ms = 10000;
    bool raw = false;
    std::string line = "PING";
};

// Request `seq` of connection `conn`: lowercase letters that differ from one request to the
// next, so a reply out of order is caught.
std::string make_request(const Config& cfg, std::uint64_t conn, std::uint64_t seq) {
    if (cfg.raw) return cfg.line;
    std::string s(cfg.size, 'a');
    for (std::size_t j = 0; j < s.size(); ++j)
        s[j] = static_cast<char>('a' + (conn * 7 + seq * 3 + j) % 26);
    return s;
}

// A connected, blocking socket; connect waits at most the timeout (SO_SNDTIMEO bounds it).
uds::Fd open_connection(const Config& cfg) {
    uds::Fd fd{uds::check(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket",
                          "out of descriptors? loadgen needs one per connection (ulimit -n)")};
    timeval tv{cfg.timeout_ms / 1000, (cfg.timeout_ms % 1000) * 1000};
    uds::check(setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), "setsockopt");
    uds::check(setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), "setsockopt");
    uds::check(connect(fd.get(), cfg.addr.sockaddr_ptr(), cfg.addr.length()),
               "connect " + cfg.addr.str(), "is the server running?");
    return fd;
}

struct Conn {
    uds::Fd fd;
    std::uint64_t index = 0, total = 0, sent = 0, received = 0;
    std::string out;
    std::size_t out_off = 0;
    std::deque<Clock::time_point> sent_at;
    uds::LineFramer framer{kMaxReply};
    std::uint32_t events = 0;
};

class Run {
  public:
    explicit Run(const Config& cfg) : cfg_(cfg) {}

    // Drives every connection to completion; returns the latencies (ns). Throws on failure.
    std::vector<std::uint64_t> drive(std::vector<std::unique_ptr<Conn>>& conns) {
        uds::Fd ep{uds::check(epoll_create1(EPOLL_CLOEXEC), "epoll_create1")};
        std::size_t busy = 0;
        for (std::size_t i = 0; i < conns.size(); ++i) {
            Conn& c = *conns[i];
            int fl = fcntl(c.fd.get(), F_GETFL);
            uds::check(fcntl(c.fd.get(), F_SETFL, fl | O_NONBLOCK), "fcntl");
            epoll_event ev{EPOLLIN, {.u64 = i}};
            uds::check(epoll_ctl(ep.get(), EPOLL_CTL_ADD, c.fd.get(), &ev), "epoll_ctl");
            c.events = EPOLLIN;
            if (c.total > 0) ++busy;
            pump(ep.get(), i, c);
        }
        epoll_event events[512];
        last_reply_ = Clock::now();
        while (busy > 0) {
            // The deadline moves only when a whole reply arrives: bytes alone are no progress.
            auto left = std::chrono::ceil<std::chrono::milliseconds>(
                last_reply_ + std::chrono::milliseconds(cfg_.timeout_ms) - Clock::now());
            if (left.count() <= 0)
                throw uds::Failure("no progress for " + std::to_string(cfg_.timeout_ms / 1000) +
                                   " s (no reply arrived): " + std::to_string(missing(conns)) +
                                   " replies missing");
            int n = epoll_wait(ep.get(), events, 512, static_cast<int>(left.count()));
            if (n == -1 && errno == EINTR) continue;
            uds::check(n, "epoll_wait");
            for (int k = 0; k < n; ++k) {
                std::size_t i = events[k].data.u64;
                Conn& c = *conns[i];
                if (events[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) receive(c);
                pump(ep.get(), i, c);
                if (c.received == c.total && c.fd) {
                    c.fd.reset();  // done: closing also takes it out of the epoll set
                    --busy;
                }
            }
        }
        return std::move(lat_);
    }

  private:
    static std::uint64_t missing(const std::vector<std::unique_ptr<Conn>>& conns) {
        std::uint64_t m = 0;
        for (const auto& c : conns)
            m += c->total - c->received;
        return m;
    }

    // Keeps up to `pipeline` requests in flight and writes what the socket takes.
    void pump(int ep, std::size_t i, Conn& c) {
        if (!c.fd) return;
        while (c.sent < c.total && c.sent - c.received < cfg_.pipeline) {
            c.out += make_request(cfg_, c.index, c.sent++);
            c.out += '\n';
            c.sent_at.push_back(Clock::now());
        }
        while (c.out_off < c.out.size()) {
            ssize_t n =
                send(c.fd.get(), c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
            if (n == -1 && errno == EINTR) continue;
            if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            uds::check(n, "send", "the server closed the connection");
            c.out_off += static_cast<std::size_t>(n);
        }
        if (c.out_off == c.out.size()) c.out.clear(), c.out_off = 0;
        std::uint32_t want = EPOLLIN | (c.out.empty() ? 0u : std::uint32_t{EPOLLOUT});
        if (want != c.events) {
            epoll_event ev{want, {.u64 = i}};
            uds::check(epoll_ctl(ep, EPOLL_CTL_MOD, c.fd.get(), &ev), "epoll_ctl");
            c.events = want;
        }
    }

    void receive(Conn& c) {
        char buf[65536];
        ssize_t n = read(c.fd.get(), buf, sizeof buf);
        if (n == -1 && (errno == EAGAIN || errno == EINTR)) return;
        uds::check(n, "read", "the server dropped the connection");
        if (n == 0)
            throw uds::Failure("connection " + std::to_string(c.index) +
                               ": the server closed it after " + std::to_string(c.received) +
                               " of " + std::to_string(c.total) + " replies");
        auto now = Clock::now();
        c.framer.feed({buf, static_cast<std::size_t>(n)});
        std::string line;
        uds::LineFramer::Status status;
        while ((status = c.framer.next(line)) == uds::LineFramer::Status::Line) {
            if (c.received == c.sent)
                throw uds::Failure("connection " + std::to_string(c.index) +
                                   ": a reply nobody asked for: '" + line.substr(0, 60) + "'");
            if (!cfg_.raw) {
                std::string want = uds::upcase(make_request(cfg_, c.index, c.received));
                if (line != want)
                    throw uds::Failure("connection " + std::to_string(c.index) + ", request " +
                                       std::to_string(c.received) + ": wrong reply '" +
                                       line.substr(0, 60) + "', expected '" + want.substr(0, 60) +
                                       "'");
            }
            lat_.push_back(static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::nanoseconds>(now - c.sent_at.front())
                    .count()));
            c.sent_at.pop_front();
            ++c.received;
            last_reply_ = now;
        }
        if (status == uds::LineFramer::Status::TooLong)
            throw uds::Failure("connection " + std::to_string(c.index) + ": a reply line longer " +
                                   "than " + std::to_string(kMaxReply) + " bytes",
                               "is this the upper-casing server?");
    }

    const Config& cfg_;
    std::vector<std::uint64_t> lat_;
    Clock::time_point last_reply_;
};

// Enough descriptors for every connection: raise the soft limit up to the hard one.
void ensure_descriptors(std::uint64_t needed) {
    rlimit rl{};
    uds::check(getrlimit(RLIMIT_NOFILE, &rl), "getrlimit");
    if (rl.rlim_cur >= needed) return;
    if (rl.rlim_max < needed)
        throw uds::Failure("need " + std::to_string(needed) + " descriptors, the hard limit is " +
                               std::to_string(rl.rlim_max),
                           "raise it (ulimit -Hn, or limits.conf), or use fewer clients");
    rl.rlim_cur = needed;
    uds::check(setrlimit(RLIMIT_NOFILE, &rl), "setrlimit RLIMIT_NOFILE");
}

double ms(std::uint64_t ns) {
    return static_cast<double>(ns) / 1e6;
}

int run(int argc, char** argv) {
    Config cfg;
    std::optional<std::string> socket_arg;
    uds::Cli cli("loadgen",
                 "[-s ADDR] [-c CLIENTS] [-n REQUESTS] [--size BYTES] [--pipeline K] [--raw]",
                 "Opens CLIENTS connections at once, sends REQUESTS lines in total over them, "
                 "checks every reply\nand prints requests/s and latency percentiles. "
                 "Exit 1 on any wrong or missing reply.");
    cli.option('s', "socket", "ADDR", "server address (default: chapter 04's socket)",
               [&](const std::string& v) { socket_arg = v; });
    cli.option('c', "clients", "N", "concurrent connections (default 10)",
               [&](const auto& v) { cfg.clients = uds::parse_number(v, "--clients", 1, 1000000); });
    cli.option('n', "requests", "N", "requests in total, over all connections (default 1000)",
               [&](const auto& v) { cfg.requests = uds::parse_number(v, "--requests", 0, 1e12); });
    cli.option(0, "size", "BYTES", "bytes per request line, without the newline (default 16)",
               [&](const auto& v) { cfg.size = uds::parse_number(v, "--size", 0, uds::kMaxLine); });
    cli.option('p', "pipeline", "K", "requests in flight per connection (default 1)",
               [&](const auto& v) { cfg.pipeline = uds::parse_number(v, "--pipeline", 1, 1e6); });
    cli.option(0, "idle", "N", "also hold N idle connections (one round trip each, then silent)",
               [&](const auto& v) { cfg.idle = uds::parse_number(v, "--idle", 0, 1000000); });
    cli.option(0, "raw", "", "send --line, count any one reply line per request (no check)",
               [&](const auto&) { cfg.raw = true; });
    cli.option(0, "line", "TEXT", "the request line for --raw (default PING)", [&](const auto& v) {
        if (v.empty() || v.size() > uds::kMaxLine || v.find('\n') != std::string::npos)
            throw uds::UsageError("--line must be one line of 1 to 4096 bytes");
        cfg.line = v;
    });
    cli.option('t', "timeout", "SECONDS", "fail after this long without a reply (default 10)",
               [&](const auto& v) {
                   cfg.timeout_ms =
                       static_cast<int>(uds::parse_number(v, "--timeout", 1, 3600)) * 1000;
               });
    auto rest = cli.parse(argc, argv);
    if (!rest.empty()) throw uds::UsageError("unexpected argument '" + rest.front() + "'");
    // An empty -s '' is a usage error (address_argument says so), never "the default".
    cfg.addr = socket_arg ? uds::address_argument(*socket_arg)
                          : uds::default_path_address("04-multi-client.sock");
    ensure_descriptors(cfg.clients + cfg.idle + 16);

    // Idle connections first: each does one round trip (so the server has surely accepted it)
    // and then stays silent for the whole run.
    std::vector<uds::Fd> idle;
    for (std::uint64_t i = 0; i < cfg.idle; ++i) {
        idle.push_back(open_connection(cfg));
        uds::write_all(idle.back().get(), "idle\n");
        std::string reply;
        char c;
        while (reply.size() < 5 && read(idle.back().get(), &c, 1) == 1)
            reply += c;
        if (reply != (cfg.raw ? reply : "IDLE\n"))
            throw uds::Failure("idle connection " + std::to_string(i) + ": no proper reply");
    }

    if (cfg.idle > 0)  // the benchmark measures the server's memory at this moment
        uds::log(std::to_string(cfg.idle) + " idle connections open");

    // All the active connections at once, before the first request.
    std::vector<std::unique_ptr<Conn>> conns;
    for (std::uint64_t i = 0; i < cfg.clients; ++i) {
        auto c = std::make_unique<Conn>();
        c->fd = open_connection(cfg);
        c->index = i;
        c->total = cfg.requests / cfg.clients + (i < cfg.requests % cfg.clients ? 1 : 0);
        conns.push_back(std::move(c));
    }
    auto start = Clock::now();
    std::vector<std::uint64_t> lat = Run{cfg}.drive(conns);
    double secs = std::chrono::duration<double>(Clock::now() - start).count();

    std::sort(lat.begin(), lat.end());
    auto pct = [&](double p) {
        if (lat.empty()) return 0.0;
        auto k = static_cast<std::size_t>(p * static_cast<double>(lat.size()));
        return ms(lat[std::min(k, lat.size() - 1)]);
    };
    std::printf(
        "loadgen: %llu clients (+%llu idle), %zu requests of %llu bytes, pipeline %llu: "
        "%s\n",
        static_cast<unsigned long long>(cfg.clients), static_cast<unsigned long long>(cfg.idle),
        lat.size(), static_cast<unsigned long long>(cfg.raw ? cfg.line.size() : cfg.size),
        static_cast<unsigned long long>(cfg.pipeline),
        cfg.raw ? "one reply line per request" : "every reply correct");
    std::printf("requests/s: %.0f\n", secs > 0 ? static_cast<double>(lat.size()) / secs : 0.0);
    std::printf("latency_ms: p50 %.3f p90 %.3f p99 %.3f max %.3f\n", pct(0.50), pct(0.90),
                pct(0.99), lat.empty() ? 0.0 : ms(lat.back()));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("loadgen", argc, argv, run);
}
