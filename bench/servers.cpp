// bench/servers.cpp - chapter 04's three server models under load, and redis-server as an
// outside reference.
//
//   servers [--quick] [--dir DIR]        DIR holds chapter 04's server and loadgen
//                                        (default 04-multi-client)
//
// For each client count (1, 10, 100, 1000) and model (fork, thread, epoll) it starts a fresh
// `server --model M -s @name`, waits for its "listening on" line, runs
// `loadgen -s @name -c CLIENTS -n REQUESTS`, then stops the server with SIGTERM and collects its
// resource usage with wait4(): CPU time (user + system, of the server and of every child it
// reaped: the fork model's per-client processes) and peak RSS (the largest single process).
// When redis-server is installed, the same loads go to it over a unix socket with
// `loadgen --raw` (inline PING, any one reply line counts), and redis-benchmark (if present)
// compares Redis over its unix socket with Redis over TCP 127.0.0.1 in the same run.
//
// loadgen's output is read by pattern ("requests/s: N", "p50 N ... p99 N" on a latency line
// that says its unit); if the patterns are not found, this program stops with the output it got.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bench.hpp"

namespace {

constexpr int kReadyTimeoutMs = 10'000;
constexpr int kExitTimeoutMs = 20'000;

// A started program whose stdout and stderr go to one pipe we read.
struct Proc {
    pid_t pid = -1;
    uds::Fd out;
    uds::Fd pidfd;  // becomes readable when the process exits: a wait with a deadline, no sleep

    Proc() = default;
    Proc(Proc&& o) noexcept
        : pid(std::exchange(o.pid, -1)), out(std::move(o.out)), pidfd(std::move(o.pidfd)) {}
    Proc& operator=(Proc&&) = delete;
    ~Proc() {  // only on an error path: a process nobody reaped is killed, never left behind
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, nullptr, 0);
        }
    }
};

Proc spawn(const std::vector<std::string>& args) {
    int p[2];
    uds::check(pipe2(p, O_CLOEXEC), "pipe2");
    uds::Fd rd{p[0]}, wr{p[1]};
    std::vector<char*> argv;
    for (const auto& a : args)
        argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = uds::check(fork(), "fork");
    if (pid == 0) {
        dup2(wr.get(), 1);
        dup2(wr.get(), 2);
        execvp(argv[0], argv.data());
        std::string msg = "servers: exec " + args[0] + ": " + std::strerror(errno) + "\n";
        (void)!write(2, msg.data(), msg.size());
        _exit(127);
    }
    Proc pr;
    pr.pid = pid;
    pr.out = std::move(rd);
    pr.pidfd = uds::Fd{static_cast<int>(syscall(SYS_pidfd_open, pid, 0))};
    return pr;
}

// Waits (at most timeout_ms) for the process to end; SIGKILL after that. Returns the status and
// fills `ru` with the process's usage plus that of every child it reaped (wait4 semantics).
int reap(Proc& pr, int timeout_ms, rusage* ru) {
    if (pr.pidfd) {
        pollfd pfd{pr.pidfd.get(), POLLIN, 0};
        if (poll(&pfd, 1, timeout_ms) == 0) kill(pr.pid, SIGKILL);
    }
    int status = 0;
    while (wait4(pr.pid, &status, 0, ru) == -1)
        if (errno != EINTR) throw uds::SysError(errno, "wait4");
    pr.pid = -1;
    return status;
}

// Reads everything the process prints until it closes its output or the deadline passes.
std::string read_all(int fd, int timeout_ms) {
    std::string text;
    std::uint64_t deadline = bench::now_ns() + static_cast<std::uint64_t>(timeout_ms) * 1'000'000;
    char buf[4096];
    for (;;) {
        std::uint64_t now = bench::now_ns();
        if (now >= deadline) throw uds::Failure("no end of output within the time limit:\n" + text);
        pollfd pfd{fd, POLLIN, 0};
        int left = static_cast<int>((deadline - now) / 1'000'000) + 1;
        if (poll(&pfd, 1, left) < 0 && errno != EINTR) throw uds::SysError(errno, "poll");
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == 0) return text;
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            throw uds::SysError(errno, "read");
        }
        text.append(buf, static_cast<std::size_t>(n));
    }
}

// A server: started, waited for until it prints `ready`, its log drained by a thread (a server
// logging one line per client would otherwise block once the pipe is full).
class Server {
  public:
    Server(const std::vector<std::string>& args, const std::string& ready) : pr_(spawn(args)) {
        std::string seen;
        std::uint64_t deadline = bench::now_ns() + kReadyTimeoutMs * 1'000'000ull;
        while (seen.find(ready) == std::string::npos) {
            std::uint64_t now = bench::now_ns();
            pollfd pfd{pr_.out.get(), POLLIN, 0};
            if (now >= deadline ||
                poll(&pfd, 1, static_cast<int>((deadline - now) / 1'000'000) + 1) == 0) {
                stop();
                throw uds::Failure(args[0] + " did not print '" + ready +
                                   "' within 10 s; it said:\n" + seen);
            }
            char buf[4096];
            ssize_t n = read(pr_.out.get(), buf, sizeof buf);
            if (n <= 0) {
                stop();
                throw uds::Failure(args[0] + " exited before it was ready; it said:\n" + seen);
            }
            seen.append(buf, static_cast<std::size_t>(n));
        }
        drain_ = std::thread([fd = pr_.out.get()] {
            char buf[65536];
            for (;;) {
                ssize_t n = read(fd, buf, sizeof buf);
                if (n == 0 || (n < 0 && errno != EINTR)) return;
            }
        });
    }
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;
    ~Server() { stop(); }

    // SIGTERM, wait for the exit (and the last log lines); returns the usage.
    rusage stop() {
        rusage ru{};
        if (pr_.pid > 0) {
            kill(pr_.pid, SIGTERM);
            reap(pr_, kExitTimeoutMs, &ru);
        }
        if (drain_.joinable()) drain_.join();  // EOF once every process holding the log exited
        return ru;
    }

  private:
    Proc pr_;
    std::thread drain_;
};

struct LoadResult {
    double rps = NAN, p50_ms = NAN, p99_ms = NAN;
};

// loadgen printed something we cannot read: no point in trying the other cells.
struct FormatError : uds::Failure {
    using uds::Failure::Failure;
};

// The first number after `key` in text (skipping anything that is not a digit, like ": " or
// " = "), or NaN when the key or a number is missing.
double number_after(const std::string& text, const std::string& key) {
    std::size_t at = text.find(key);
    if (at == std::string::npos) return NAN;
    std::size_t pos = text.find_first_of("0123456789", at + key.size());
    std::size_t eol = text.find('\n', at);
    if (pos == std::string::npos || (eol != std::string::npos && eol < pos)) return NAN;
    return std::strtod(text.c_str() + pos, nullptr);
}

// Pulls requests/s and p50/p99 out of loadgen's output, whatever the exact wording around them:
// "requests/s: N" anywhere, and a latency line holding "p50 N" and "p99 N" that names its unit.
LoadResult parse_loadgen(const std::string& out) {
    LoadResult r;
    r.rps = number_after(out, "requests/s");
    for (std::size_t pos = 0; pos < out.size();) {
        std::size_t end = out.find('\n', pos);
        std::string line =
            out.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
        pos = end == std::string::npos ? out.size() : end + 1;
        if (line.find("p99") == std::string::npos) continue;
        double unit = line.find("ms") != std::string::npos ? 1.0
                      : line.find("µs") != std::string::npos || line.find("us") != std::string::npos
                          ? 1e-3
                      : line.find("ns") != std::string::npos ? 1e-6
                                                             : NAN;
        r.p50_ms = number_after(line, "p50") * unit;
        r.p99_ms = number_after(line, "p99") * unit;
    }
    if (std::isnan(r.rps) || std::isnan(r.p99_ms))
        throw FormatError(
            "cannot read loadgen's output: expected a line 'requests/s: N' and a latency line "
            "with its unit and 'p99 N' (did loadgen's output format change?). It printed:\n" +
            out);
    return r;
}

struct Cell {
    std::vector<double> rps, p50, p99, cpu_s, rss_kib;
    std::uint64_t requests = 0;
    std::string error;
};

double secs(const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

// One measurement: a fresh server, one loadgen run, the server stopped and accounted.
void measure(Cell& cell, const std::vector<std::string>& server_args, const std::string& ready,
             const std::string& loadgen, const std::string& addr, std::uint64_t clients,
             std::uint64_t requests, bool raw) {
    Server server(server_args, ready);
    std::vector<std::string> args{
        loadgen, "-s", addr, "-c", std::to_string(clients), "-n", std::to_string(requests)};
    if (raw) args.push_back("--raw");
    Proc lg = spawn(args);
    std::string out = read_all(lg.out.get(), 120'000);
    rusage lru{};
    int status = reap(lg, kExitTimeoutMs, &lru);
    rusage ru = server.stop();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        throw uds::Failure("loadgen failed (" + addr + ", " + std::to_string(clients) +
                           " clients):\n" + out);
    LoadResult r = parse_loadgen(out);
    cell.rps.push_back(r.rps);
    cell.p50.push_back(r.p50_ms);
    cell.p99.push_back(r.p99_ms);
    cell.cpu_s.push_back(secs(ru.ru_utime) + secs(ru.ru_stime));
    cell.rss_kib.push_back(static_cast<double>(ru.ru_maxrss));
    cell.requests = requests;
}

bool executable(const std::string& path) {
    return access(path.c_str(), X_OK) == 0;
}

std::optional<std::string> find_in_path(const std::string& name) {
    const char* path = std::getenv("PATH");
    std::string p = path ? path : "/usr/bin:/bin";
    for (std::size_t pos = 0; pos <= p.size();) {
        std::size_t end = p.find(':', pos);
        std::string dir = p.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
        if (!dir.empty() && executable(dir + "/" + name)) return dir + "/" + name;
        if (end == std::string::npos) break;
        pos = end + 1;
    }
    return std::nullopt;
}

std::string rss_name(double kib) {
    return bench::num(kib / 1024) + " MiB";
}

// A free TCP port on 127.0.0.1 for redis-server (asked from the kernel, then released).
int free_port() {
    uds::Fd s{uds::check(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")};
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sin;
    uds::check(bind(s.get(), reinterpret_cast<sockaddr*>(&sin), len), "bind 127.0.0.1");
    uds::check(getsockname(s.get(), reinterpret_cast<sockaddr*>(&sin), &len), "getsockname");
    return ntohs(sin.sin_port);
}

// redis-benchmark's requests/s for PING_INLINE and PING_MBULK (its --csv output).
std::map<std::string, double> redis_benchmark(const std::string& rb,
                                              std::vector<std::string> target, std::uint64_t n) {
    std::vector<std::string> args{rb};
    args.insert(args.end(), target.begin(), target.end());
    for (std::string a : {"-t", "ping", "-c", "50", "--csv", "-n"})
        args.push_back(a);
    args.push_back(std::to_string(n));
    Proc p = spawn(args);
    std::string out = read_all(p.out.get(), 120'000);
    int status = reap(p, kExitTimeoutMs, nullptr);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        throw uds::Failure("redis-benchmark failed:\n" + out);
    // Rows look like  "PING_INLINE","123456.79",...  (the first column is the test's name).
    std::map<std::string, double> r;
    for (std::size_t pos = out.find("\"PING_"); pos != std::string::npos;
         pos = out.find("\"PING_", pos + 1)) {
        std::size_t name_end = out.find('"', pos + 1);
        if (name_end == std::string::npos) break;
        double v = number_after(out.substr(name_end), "\"");
        if (!std::isnan(v)) r[out.substr(pos + 1, name_end - pos - 1)] = v;
    }
    if (r.empty()) throw uds::Failure("cannot read redis-benchmark's --csv output:\n" + out);
    return r;
}

int run(int argc, char** argv) {
    bool quick = false;
    std::string dir = "04-multi-client";
    uds::Cli cli("servers", "[--quick] [--dir DIR]",
                 "Chapter 04's fork/thread/epoll servers (and redis-server) under loadgen.");
    cli.option('q', "quick", "", "fewer requests, one repetition",
               [&](const std::string&) { quick = true; });
    cli.option('d', "dir", "DIR",
               "where chapter 04's server and loadgen are (default 04-multi-client)",
               [&](const std::string& v) { dir = v; });
    if (!cli.parse(argc, argv).empty()) throw uds::UsageError("no arguments expected");
    std::signal(SIGPIPE, SIG_IGN);

    bench::heading("Server models: chapter 04 under loadgen");
    const std::string server = dir + "/server", loadgen = dir + "/loadgen";
    if (!executable(server) || !executable(loadgen)) {
        std::printf(
            "skipped: chapter 04 not built (no %s or %s; run `make` first, or point "
            "BENCH_CH04_DIR at a directory that has them).\n\n",
            server.c_str(), loadgen.c_str());
    }
    const bool have_ch04 = executable(server) && executable(loadgen);

    const std::vector<std::uint64_t> client_counts = {1, 10, 100, 1000};
    const int reps = quick ? 1 : 3;
    auto requests_for = [&](std::uint64_t clients) -> std::uint64_t {
        std::uint64_t n = clients == 1 ? 3000 : clients == 10 ? 8000 : 10000;
        return quick ? n : n * 2;
    };
    std::vector<std::string> names = {"fork", "thread", "epoll"};
    std::optional<std::string> redis = find_in_path("redis-server");
    std::string redis_dir, redis_sock;
    struct Cleanup {  // the temporary directory for Redis's socket goes, whatever happens
        std::string* dir;
        ~Cleanup() {
            if (dir->empty()) return;
            unlink((*dir + "/redis.sock").c_str());
            rmdir(dir->c_str());
        }
    } cleanup{&redis_dir};
    if (redis) {
        char tmpl[] = "/tmp/uds-bench-redis-XXXXXX";
        if (!mkdtemp(tmpl)) throw uds::SysError(errno, "mkdtemp");
        redis_dir = tmpl;
        redis_sock = redis_dir + "/redis.sock";
        names.push_back("redis-server");
    }
    auto redis_args = [&](int port) {
        return std::vector<std::string>{*redis,
                                        "--port",
                                        std::to_string(port),
                                        "--bind",
                                        "127.0.0.1",
                                        "--unixsocket",
                                        redis_sock,
                                        "--unixsocketperm",
                                        "700",
                                        "--save",
                                        "",
                                        "--appendonly",
                                        "no",
                                        "--dir",
                                        redis_dir,
                                        "--maxclients",
                                        "4000"};
    };

    std::string failure;
    if (have_ch04) {
        std::map<std::pair<std::string, std::uint64_t>, Cell> cells;
        int serial = 0;
        for (int rep = 0; rep < reps; ++rep)
            for (std::uint64_t c : client_counts)
                for (std::size_t k = 0; k < names.size(); ++k) {
                    // Rotate which model goes first, so none always runs on a "cold" machine.
                    const std::string& name =
                        names[(k + static_cast<std::size_t>(rep)) % names.size()];
                    Cell& cell = cells[{name, c}];
                    try {
                        if (name == "redis-server") {
                            measure(cell, redis_args(0), "accept connections", loadgen, redis_sock,
                                    c, requests_for(c), true);
                        } else {
                            std::string addr = "@uds-bench-" + std::to_string(getpid()) + "-" +
                                               std::to_string(serial++);
                            // The models' default caps (fork 128, thread 256) and idle deadline
                            // protect a server from its peers; a benchmark lifts them.
                            measure(cell,
                                    {server, "--model", name, "-s", addr, "--max-clients", "100000",
                                     "--idle-timeout", "0"},
                                    "listening on", loadgen, addr, c, requests_for(c), false);
                        }
                    } catch (const FormatError& e) {
                        throw;  // every other cell would fail the same way
                    } catch (const std::exception& e) {
                        cell.error = uds::describe(e);
                        if (failure.empty())
                            failure = name + ", " + std::to_string(c) + " clients: " + cell.error;
                    }
                }

        bench::Table t({"clients", "server", "requests/s", "p50 (ms)", "p99 (ms)", "server CPU (s)",
                        "server CPU per request (µs)", "peak RSS (largest process)"});
        for (std::uint64_t c : client_counts) {
            double epoll_rps = bench::median(cells[{"epoll", c}].rps);
            for (const auto& name : names) {
                const Cell& cell = cells[{name, c}];
                if (!cell.error.empty()) {
                    t.row({std::to_string(c), name, "failed (see below)", "", "", "", "", ""});
                    continue;
                }
                double rps = bench::median(cell.rps), cpu = bench::median(cell.cpu_s);
                std::string rss = rss_name(bench::median(cell.rss_kib));
                if (name == "fork")
                    rss += bench::fmt(" ×%llu processes", static_cast<unsigned long long>(c + 1));
                t.row({std::to_string(c), name, bench::num(rps) + bench::ratio(rps / epoll_rps),
                       bench::num(bench::median(cell.p50)), bench::num(bench::median(cell.p99)),
                       bench::num(cpu), bench::num(cpu / static_cast<double>(cell.requests) * 1e6),
                       rss});
            }
        }
        t.print();
        for (const auto& [key, cell] : cells)
            if (!cell.error.empty())
                std::printf("- failed: %s, %llu clients: %s\n\n", key.first.c_str(),
                            static_cast<unsigned long long>(key.second), cell.error.c_str());
        std::printf(
            "Each cell: a fresh server, `loadgen -c CLIENTS -n REQUESTS` (%llu/%llu/%llu/%llu "
            "requests for 1/10/100/1000 clients, 16-byte lines, one request in flight per "
            "connection), %s. (×) = requests/s / epoll's at the same client count. Server CPU: "
            "user + system time of the server and every child it reaped (wait4), including "
            "start-up and shutdown. Peak RSS: the largest single process; the fork model "
            "has one process per client. loadgen runs on the same 2 CPUs, so it competes with "
            "the server.%s\n\n",
            static_cast<unsigned long long>(requests_for(1)),
            static_cast<unsigned long long>(requests_for(10)),
            static_cast<unsigned long long>(requests_for(100)),
            static_cast<unsigned long long>(requests_for(1000)),
            reps == 1 ? "one run" : "median of 3 runs, models in rotating order",
            redis ? " redis-server answers inline `PING` with `+PONG` over its unix socket "
                    "(`loadgen --raw`): an outside reference for a production event loop."
                  : " redis-server is not installed: no outside reference row.");
    }

    // Redis's own claim, measured: the same server over its unix socket and over TCP loopback.
    std::optional<std::string> rb = find_in_path("redis-benchmark");
    if (redis && rb) {
        bench::heading("Redis over its unix socket vs TCP 127.0.0.1 (redis-benchmark)");
        try {
            int port = free_port();
            Server srv(redis_args(port), "accept connections");
            std::uint64_t n = quick ? 20000 : 50000;
            std::vector<std::map<std::string, double>> unix_runs, tcp_runs;
            for (int rep = 0; rep < reps; ++rep) {
                unix_runs.push_back(redis_benchmark(*rb, {"-s", redis_sock}, n));
                tcp_runs.push_back(
                    redis_benchmark(*rb, {"-h", "127.0.0.1", "-p", std::to_string(port)}, n));
            }
            srv.stop();
            bench::Table rt(
                {"test", "unix socket (requests/s)", "TCP 127.0.0.1 (requests/s)", "unix / TCP"});
            for (const auto& [test, _] : unix_runs.front()) {
                std::vector<double> u, tc;
                for (auto& m : unix_runs)
                    u.push_back(m[test]);
                for (auto& m : tcp_runs)
                    tc.push_back(m[test]);
                double mu = bench::median(u), mt = bench::median(tc);
                rt.row({test, bench::num(mu), bench::num(mt), bench::fmt("%.2f×", mu / mt)});
            }
            rt.print();
            std::printf(
                "`redis-benchmark -t ping -c 50 -n %llu`, %s, unix and TCP alternating, "
                "against one redis-server listening on both.\n\n",
                static_cast<unsigned long long>(n),
                reps == 1 ? "one run each" : "median of 3 runs each");
        } catch (const std::exception& e) {
            if (failure.empty()) failure = "redis-benchmark: " + uds::describe(e);
            std::printf("failed: %s\n\n", uds::describe(e).c_str());
        }
    } else if (redis) {
        std::printf("(redis-benchmark is not installed: no unix-vs-TCP Redis table.)\n\n");
    }
    if (!failure.empty())
        throw uds::Failure("some measurements failed (see above); first: " + failure);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("servers", argc, argv, run);
}
