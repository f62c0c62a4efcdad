// tests/soak/soak.cpp - soak and fault injection against the real stream servers (AF_UNIX only).
//
//   soak cycles  --server BIN [--arg A]... [--cycles N] [--concurrency C] [--kill-percent P]
//                [--seconds S]
//       N connect/request/close cycles from C threads; P% of the clients are SIGKILLed by us in
//       the middle of a request (half of them with a partial line sent, half right after a full
//       request, before reading the reply). Every answered request must be exactly right.
//       The server's descriptor count (/proc/PID/fd) must come back to its idle baseline and its
//       RSS (VmRSS) must stay flat (end <= warmed-up value + max(4 MiB, 25%)); it must have no
//       child processes left (zombies) and must exit 0 on SIGTERM, removing its socket file.
//   soak restart --server BIN [--arg A]... [--rounds R]
//       R times: SIGKILL a serving server (its socket file stays behind, stale) and start a new
//       one on the same path: it must recover the stale file and serve.
//   soak race    --server BIN [--arg A]... [--rounds R]
//       R times: on a path holding a stale socket file (even rounds) or nothing (odd rounds),
//       start two servers at the same instant
//       (both released by closing one pipe). Exactly one may end up serving; the other must exit
//       non-zero; the socket file must lead to the winner (SO_PEERCRED pid of a connection).
//
// Bounded in count (N, R) and time (--seconds, and a deadline on every wait). No sleeps: waits
// are poll() on descriptors with deadlines; the descriptor-count wait re-reads /proc with one.
// Prints one summary line per run; exit 0 when every check held, 1 otherwise.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "uds.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct Options {
    std::string server;
    std::vector<std::string> args;
    std::uint64_t cycles = 10000, concurrency = 4, kill_percent = 10, seconds = 120, rounds = 50;
};

int remaining_ms(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    return left > 0 ? static_cast<int>(left) : 0;
}

// ---------------------------------------------------------------- a server under test
class Server {
  public:
    // gate: if not -1, the read end of a pipe the child waits on before exec (the starting
    // gun: the parent closes the write end, gate_write, which the child closes first).
    Server(const Options& o, const std::string& sock, int gate = -1, int gate_write = -1) {
        int err[2];
        uds::check(pipe2(err, O_CLOEXEC), "pipe2");
        // Everything the child needs is prepared before fork: other threads may hold malloc's lock.
        std::string s_opt = "-s";
        std::vector<char*> argv;
        argv.push_back(const_cast<char*>(o.server.c_str()));
        for (const auto& a : o.args)
            argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(s_opt.data());
        argv.push_back(const_cast<char*>(sock.c_str()));
        argv.push_back(nullptr);
        pid_t parent = getpid();
        pid_ = uds::check(fork(), "fork");
        if (pid_ == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent) _exit(127);
            if (gate >= 0) {
                close(gate_write);
                char c;
                while (read(gate, &c, 1) == -1 && errno == EINTR) {
                }
            }
            dup2(err[1], 2);
            int devnull = open("/dev/null", O_RDWR);
            dup2(devnull, 0);
            dup2(devnull, 1);
            execv(argv[0], argv.data());
            _exit(127);
        }
        close(err[1]);
        pidfd_.reset(static_cast<int>(syscall(SYS_pidfd_open, pid_, 0)));
        err_.reset(err[0]);
        drain_ = std::thread([this] { drain(); });
    }
    ~Server() {
        if (!reaped_) {
            kill(pid_, SIGKILL);
            wait_exit(Clock::now() + milliseconds(10000));
        }
        if (drain_.joinable()) drain_.join();
    }
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    [[nodiscard]] pid_t pid() const { return pid_; }
    // Waits until the log contains text or the server exits. True if the text appeared.
    bool wait_log(const std::string& text, Clock::time_point deadline) {
        std::unique_lock lock(mu_);
        while (log_.find(text) == std::string::npos) {
            if (eof_ || Clock::now() >= deadline) return false;
            lock.unlock();
            pollfd p{wake_[0], POLLIN, 0};
            poll(&p, 1, std::min(remaining_ms(deadline), 50));
            char buf[64];
            while (read(wake_[0], buf, sizeof buf) > 0) {
            }
            lock.lock();
        }
        return true;
    }
    // Exit status, 128+signal, or -1 on timeout.
    int wait_exit(Clock::time_point deadline) {
        if (reaped_) return status_;
        for (;;) {
            int st = 0;
            pid_t r = waitpid(pid_, &st, WNOHANG);
            if (r == pid_) {
                reaped_ = true;
                status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                return status_;
            }
            if (Clock::now() >= deadline) return -1;
            // A pidfd becomes readable when the process exits (Linux 5.3+).
            pollfd p{pidfd_.get(), POLLIN, 0};
            if (poll(&p, 1, std::min(remaining_ms(deadline), pidfd_ ? 1000 : 10)) == -1 &&
                errno != EINTR)
                return -1;
        }
    }
    std::string log() {
        std::lock_guard lock(mu_);
        return log_;
    }

  private:
    void drain() {
        char buf[4096];
        for (;;) {
            ssize_t n = read(err_.get(), buf, sizeof buf);
            if (n == -1 && errno == EINTR) continue;
            std::lock_guard lock(mu_);
            if (n <= 0) {
                eof_ = true;
                [[maybe_unused]] auto w = write(wake_[1], "x", 1);
                return;
            }
            log_.append(buf, static_cast<std::size_t>(n));
            if (log_.size() > (1u << 20)) log_.erase(0, log_.size() - (1u << 19));  // keep the tail
            [[maybe_unused]] auto w = write(wake_[1], "x", 1);
        }
    }
    struct Pipe {
        int fds[2];
        Pipe() { uds::check(pipe2(fds, O_CLOEXEC | O_NONBLOCK), "pipe2"); }
        ~Pipe() {
            close(fds[0]);
            close(fds[1]);
        }
        int operator[](int i) const { return fds[i]; }
    } wake_;
    pid_t pid_ = -1;
    bool reaped_ = false;
    int status_ = -1;
    uds::Fd err_, pidfd_;
    std::mutex mu_;
    std::string log_;
    bool eof_ = false;
    std::thread drain_;
};

int count_fds(pid_t pid) {
    DIR* d = opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
    if (d == nullptr) return -1;
    int n = 0;
    while (dirent* e = readdir(d))
        if (e->d_name[0] != '.') ++n;
    closedir(d);
    return n;
}

long rss_kib(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string key;
    long value = -1;
    while (in >> key) {
        if (key == "VmRSS:") {
            in >> value;
            return value;
        }
        in.ignore(1 << 12, '\n');
    }
    return value;
}

std::string children_of(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
    std::string s;
    std::getline(in, s);
    return s;
}

// One connection: send `request`, read until `want` bytes arrived (or EOF/deadline).
// Returns "" on success, else what went wrong.
std::string exchange(const uds::Address& addr, const std::string& request, const std::string& want,
                     pid_t* peer_pid = nullptr) {
    uds::Fd fd{socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    if (!fd) return std::string("socket: ") + std::strerror(errno);
    if (connect(fd.get(), addr.sockaddr_ptr(), addr.length()) == -1)
        return std::string("connect: ") + std::strerror(errno);
    if (peer_pid != nullptr) {
        ucred cred{};
        socklen_t len = sizeof cred;
        getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len);
        *peer_pid = cred.pid;
    }
    try {
        uds::write_all(fd.get(), request);
    } catch (const std::exception& e) {
        return std::string("send: ") + e.what();
    }
    std::string got;
    auto deadline = Clock::now() + milliseconds(20000);
    while (got.size() < want.size()) {
        pollfd p{fd.get(), POLLIN, 0};
        int rc = poll(&p, 1, remaining_ms(deadline));
        if (rc == 0) return "no reply within 20 s (got " + std::to_string(got.size()) + " bytes)";
        if (rc == -1 && errno == EINTR) continue;
        char buf[4096];
        ssize_t n = read(fd.get(), buf, sizeof buf);
        if (n == -1 && errno == EINTR) continue;
        if (n <= 0) return "connection ended early after " + std::to_string(got.size()) + " bytes";
        got.append(buf, static_cast<std::size_t>(n));
    }
    if (got != want) return "wrong reply: '" + got.substr(0, 80) + "'";
    return {};
}

// A client process that connects, sends `request` and then waits to be SIGKILLed by us.
bool killed_client(const uds::Address& addr, const std::string& request) {
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) == -1) return false;
    pid_t pid = fork();
    if (pid == -1) {
        close(ready[0]);
        close(ready[1]);
        return false;
    }
    if (pid == 0) {  // async-signal-safe calls only: we forked a threaded process
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, addr.sockaddr_ptr(), addr.length()) == 0) [[maybe_unused]]
            auto n = send(fd, request.data(), request.size(), MSG_NOSIGNAL);
        [[maybe_unused]] auto w = write(ready[1], "r", 1);
        for (;;)
            pause();
    }
    close(ready[1]);
    pollfd p{ready[0], POLLIN, 0};
    poll(&p, 1, 20000);  // it says it sent; a bound, not a guess: the kill comes right after
    close(ready[0]);
    kill(pid, SIGKILL);
    int st;
    while (waitpid(pid, &st, 0) == -1 && errno == EINTR) {
    }
    return true;
}

std::string make_dir() {
    char tmpl[] = "/tmp/uds-soak-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) throw uds::SysError(errno, "mkdtemp");
    return tmpl;
}

void remove_dir(const std::string& dir) {
    if (DIR* d = opendir(dir.c_str())) {
        while (dirent* e = readdir(d))
            if (e->d_name[0] != '.') unlink((dir + "/" + e->d_name).c_str());
        closedir(d);
    }
    rmdir(dir.c_str());
}

std::string label(const Options& o) {
    std::string s = o.server;
    for (const auto& a : o.args)
        s += " " + a;
    return s;
}

// ---------------------------------------------------------------- soak cycles
int run_cycles(const Options& o) {
    const std::string dir = make_dir();
    const std::string sock = dir + "/soak.sock";
    const uds::Address addr = uds::Address::path(sock);
    int failures = 0;
    {
        Server server(o, sock);
        if (!server.wait_log("listening on", Clock::now() + milliseconds(20000))) {
            std::printf("soak: %s: did not start: %s\n", label(o).c_str(), server.log().c_str());
            remove_dir(dir);
            return 1;
        }
        if (auto e = exchange(addr, "warm up\n", "WARM UP\n"); !e.empty()) {
            std::printf("soak: warm-up request failed: %s\n", e.c_str());
            return 1;
        }
        const int fd_base = count_fds(server.pid());
        std::atomic<std::uint64_t> next{0}, answered{0}, killed{0}, wrong{0};
        std::atomic<long> rss_warm{-1}, rss_max{0};
        std::atomic<int> fd_max{fd_base};
        std::mutex report_mu;
        std::string first_error;
        const auto stop_at = Clock::now() + std::chrono::seconds(o.seconds);
        auto worker = [&](unsigned id) {
            std::string request, want;
            for (;;) {
                std::uint64_t i = next.fetch_add(1);
                if (i >= o.cycles || Clock::now() >= stop_at) return;
                if (i % 1000 == 999) {  // sample the server now and then
                    long rss = rss_kib(server.pid());
                    int fds = count_fds(server.pid());
                    if (i >= 1999) {  // warmed up after 2000 cycles: the reference RSS
                        long unset = -1;
                        rss_warm.compare_exchange_strong(unset, rss);
                    }
                    long m = rss_max;
                    while (rss > m && !rss_max.compare_exchange_weak(m, rss)) {
                    }
                    int f = fd_max;
                    while (fds > f && !fd_max.compare_exchange_weak(f, fds)) {
                    }
                }
                // A request of 1..3 lines with a varying length, some near the 4096 limit.
                request.clear();
                unsigned lines = 1 + static_cast<unsigned>(i % 3);
                for (unsigned l = 0; l < lines; ++l) {
                    std::size_t len = (i * 7919 + l * 104729) % (i % 50 == 0 ? 4096 : 200);
                    std::string line = "c" + std::to_string(i) + " w" + std::to_string(id) + " ";
                    for (std::size_t k = line.size(); k < len; ++k)
                        line += static_cast<char>('a' + (i + k) % 26);
                    request += line + "\n";
                }
                if (i % 100 < o.kill_percent) {
                    // Killed mid-request: half with a partial line, half before reading replies.
                    std::string sent =
                        (i / 100) % 2 == 0 ? request.substr(0, request.size() / 2) : request;
                    if (killed_client(addr, sent)) ++killed;
                    continue;
                }
                want = uds::upcase(request);
                if (auto e = exchange(addr, request, want); !e.empty()) {
                    ++wrong;
                    std::lock_guard lock(report_mu);
                    if (first_error.empty()) first_error = "cycle " + std::to_string(i) + ": " + e;
                } else {
                    ++answered;
                }
            }
        };
        std::vector<std::thread> threads;
        auto t0 = Clock::now();
        for (unsigned t = 0; t < o.concurrency; ++t)
            threads.emplace_back(worker, t);
        for (auto& t : threads)
            t.join();
        double secs = std::chrono::duration<double>(Clock::now() - t0).count();

        // Quiescence: every connection closed on the server's side again (deadline 20 s).
        auto deadline = Clock::now() + milliseconds(20000);
        int fds_end = count_fds(server.pid());
        while (fds_end != fd_base && Clock::now() < deadline) {
            exchange(addr, "probe\n", "PROBE\n");  // for an iterative server: all before are done
            fds_end = count_fds(server.pid());
        }
        const long rss_end = rss_kib(server.pid());
        const long warm = rss_warm < 0 ? rss_end : rss_warm.load();
        const long allowed = warm + std::max(4096L, warm / 4);
        std::string kids = children_of(server.pid());
        deadline = Clock::now() + milliseconds(20000);
        while (!kids.empty() && Clock::now() < deadline) {
            exchange(addr, "probe\n", "PROBE\n");
            kids = children_of(server.pid());
        }
        const std::uint64_t cycles = answered + killed + wrong;

        auto fail = [&](const std::string& why) {
            ++failures;
            std::printf("soak: %s: FAIL: %s\n", label(o).c_str(), why.c_str());
        };
        if (wrong > 0)
            fail(std::to_string(wrong.load()) + " wrong or missing replies; first: " + first_error);
        if (fds_end != fd_base)
            fail("descriptors: " + std::to_string(fds_end) + " at the end, " +
                 std::to_string(fd_base) + " when idle before");
        if (rss_end > allowed)
            fail("RSS grew: " + std::to_string(warm) + " KiB warmed up, " +
                 std::to_string(rss_end) + " KiB at the end");
        if (!kids.empty()) fail("child processes left: " + kids);
        if (cycles < o.cycles)
            std::printf("soak: %s: note: stopped by the time bound (%llu s) after %llu cycles\n",
                        label(o).c_str(), static_cast<unsigned long long>(o.seconds),
                        static_cast<unsigned long long>(cycles));
        kill(server.pid(), SIGTERM);
        int st = server.wait_exit(Clock::now() + milliseconds(20000));
        struct stat sb {};
        if (st != 0) fail("exit status on SIGTERM: " + std::to_string(st));
        if (lstat(sock.c_str(), &sb) == 0) fail("socket file still there after SIGTERM");
        std::printf(
            "soak: %s: %llu cycles in %.1f s (%.0f/s), %llu answered correctly, %llu clients "
            "SIGKILLed mid-request, %llu wrong; fds idle %d, max %d, end %d; RSS warm %ld KiB, "
            "max %ld, end %ld; exit %d: %s\n",
            label(o).c_str(), static_cast<unsigned long long>(cycles), secs,
            static_cast<double>(cycles) / secs, static_cast<unsigned long long>(answered.load()),
            static_cast<unsigned long long>(killed.load()),
            static_cast<unsigned long long>(wrong.load()), fd_base, fd_max.load(), fds_end, warm,
            rss_max.load(), rss_end, st, failures == 0 ? "ok" : "FAILED");
    }
    remove_dir(dir);
    return failures == 0 ? 0 : 1;
}

// ---------------------------------------------------------------- SIGKILL and restart
int run_restart(const Options& o) {
    const std::string dir = make_dir();
    const std::string sock = dir + "/soak.sock";
    const uds::Address addr = uds::Address::path(sock);
    int failures = 0;
    for (std::uint64_t r = 0; r < o.rounds && failures == 0; ++r) {
        Server server(o, sock);
        if (!server.wait_log("listening on", Clock::now() + milliseconds(20000))) {
            std::printf("soak: restart round %llu: server did not start: %s\n",
                        static_cast<unsigned long long>(r), server.log().c_str());
            ++failures;
            break;
        }
        if (auto e = exchange(addr, "round\n", "ROUND\n"); !e.empty()) {
            std::printf("soak: restart round %llu: %s\n", static_cast<unsigned long long>(r),
                        e.c_str());
            ++failures;
        }
        kill(server.pid(), SIGKILL);
        server.wait_exit(Clock::now() + milliseconds(20000));
        struct stat sb {};
        if (lstat(sock.c_str(), &sb) != 0 || !S_ISSOCK(sb.st_mode)) {
            std::printf("soak: restart round %llu: no stale socket file after SIGKILL\n",
                        static_cast<unsigned long long>(r));
            ++failures;
        }
    }
    // The last server was killed too: one more start must recover it.
    if (failures == 0) {
        Server server(o, sock);
        if (!server.wait_log("listening on", Clock::now() + milliseconds(20000)) ||
            !exchange(addr, "last\n", "LAST\n").empty()) {
            std::printf("soak: restart: final server did not recover: %s\n", server.log().c_str());
            ++failures;
        }
        kill(server.pid(), SIGTERM);
        if (server.wait_exit(Clock::now() + milliseconds(20000)) != 0) ++failures;
    }
    std::printf(
        "soak: %s: %llu SIGKILLs, each followed by a restart on the same path that "
        "recovered the stale socket file and served: %s\n",
        label(o).c_str(), static_cast<unsigned long long>(o.rounds),
        failures == 0 ? "ok" : "FAILED");
    remove_dir(dir);
    return failures == 0 ? 0 : 1;
}

// ---------------------------------------------------------------- two servers at the same instant
int run_race(const Options& o) {
    const std::string dir = make_dir();
    const std::string sock = dir + "/soak.sock";
    const uds::Address addr = uds::Address::path(sock);
    int failures = 0;
    std::uint64_t both_serving = 0, none_serving = 0, wrong_owner = 0, one_serving = 0;
    std::string first_problem;
    for (std::uint64_t r = 0; r < o.rounds; ++r) {
        // Even rounds: a stale socket file (bound, never listened, closed). Odd rounds: nothing.
        unlink(sock.c_str());
        if (r % 2 == 0) {
            uds::Fd s{uds::check(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")};
            uds::check(bind(s.get(), addr.sockaddr_ptr(), addr.length()), "bind stale");
        }
        int gate[2];
        uds::check(pipe2(gate, O_CLOEXEC), "pipe2");
        Server a(o, sock, gate[0], gate[1]);
        Server b(o, sock, gate[0], gate[1]);
        close(gate[0]);
        close(gate[1]);  // the starting gun: both read() calls return now
        auto deadline = Clock::now() + milliseconds(20000);
        // Each one either says it listens, or exits.
        bool a_up = a.wait_log("listening on", deadline);
        bool b_up = b.wait_log("listening on", deadline);
        // A loser may still be on its way out: its exit must come.
        int a_st = a_up ? -2 : a.wait_exit(deadline);
        int b_st = b_up ? -2 : b.wait_exit(deadline);
        pid_t peer = 0;
        std::string e = exchange(addr, "who\n", "WHO\n", &peer);
        std::string problem;
        if (a_up && b_up) {
            ++both_serving;
            problem = "both servers say they listen (one of them is unreachable)";
        } else if (!a_up && !b_up) {
            ++none_serving;
            problem = "neither server serves (exits " + std::to_string(a_st) + ", " +
                      std::to_string(b_st) + ")";
        } else if (!e.empty() || peer != (a_up ? a.pid() : b.pid())) {
            ++wrong_owner;
            problem = "the socket file does not lead to the winner: " +
                      (e.empty() ? "peer pid " + std::to_string(peer) : e);
        } else if ((a_up ? b_st : a_st) == 0 || (a_up ? b_st : a_st) == -1) {
            problem = "the loser did not exit with an error";
        } else {
            ++one_serving;
        }
        if (!problem.empty()) {
            ++failures;
            if (first_problem.empty())
                first_problem = "round " + std::to_string(r) + ": " + problem +
                                "\n  A: " + a.log() + "  B: " + b.log();
        }
        kill(a.pid(), SIGTERM);
        kill(b.pid(), SIGTERM);
        a.wait_exit(Clock::now() + milliseconds(20000));
        b.wait_exit(Clock::now() + milliseconds(20000));
    }
    std::printf(
        "soak: %s: %llu simultaneous starts of two servers on one path (half of them on a stale "
        "socket file): %llu with exactly one server "
        "serving from the socket file, %llu with both listening, %llu with none, %llu "
        "with the file not leading to the winner: %s\n",
        label(o).c_str(), static_cast<unsigned long long>(o.rounds),
        static_cast<unsigned long long>(one_serving), static_cast<unsigned long long>(both_serving),
        static_cast<unsigned long long>(none_serving), static_cast<unsigned long long>(wrong_owner),
        failures == 0 ? "ok" : "FAILED");
    if (!first_problem.empty()) std::printf("soak: first problem: %s\n", first_problem.c_str());
    remove_dir(dir);
    return failures == 0 ? 0 : 1;
}

int run(int argc, char** argv) {
    Options o;
    uds::Cli cli("soak", "cycles|restart|race --server BIN [options]",
                 "Soak and fault injection against a stream server (see tests/soak/soak.cpp).");
    cli.option(0, "server", "BIN", "the server program",
               [&](const std::string& v) { o.server = v; });
    cli.option(0, "arg", "ARG", "an extra server argument (repeatable)",
               [&](const std::string& v) { o.args.push_back(v); });
    cli.option(
        0, "cycles", "N", "connect/request/close cycles (default 10000)",
        [&](const std::string& v) { o.cycles = uds::parse_number(v, "cycles", 1, 100000000); });
    cli.option(0, "concurrency", "C", "client threads (default 4)", [&](const std::string& v) {
        o.concurrency = uds::parse_number(v, "concurrency", 1, 256);
    });
    cli.option(0, "kill-percent", "P", "share of clients SIGKILLed mid-request (default 10)",
               [&](const std::string& v) {
                   o.kill_percent = uds::parse_number(v, "kill-percent", 0, 100);
               });
    cli.option(0, "seconds", "S", "time bound (default 120)", [&](const std::string& v) {
        o.seconds = uds::parse_number(v, "seconds", 1, 86400);
    });
    cli.option(0, "rounds", "R", "restart/race rounds (default 50)", [&](const std::string& v) {
        o.rounds = uds::parse_number(v, "rounds", 1, 1000000);
    });
    // The mode comes first: soak MODE --options...
    std::string mode = argc > 1 && argv[1][0] != '-' ? argv[1] : "";
    if (!mode.empty()) {
        argv[1] = argv[0];
        ++argv;
        --argc;
    }
    auto rest = cli.parse(argc, argv);
    if (!rest.empty()) throw uds::UsageError("unexpected argument '" + rest.front() + "'");
    if (mode.empty() || o.server.empty()) throw uds::UsageError("need a mode and --server");
    signal(SIGPIPE, SIG_IGN);
    if (mode == "cycles") return run_cycles(o);
    if (mode == "restart") return run_restart(o);
    if (mode == "race") return run_race(o);
    throw uds::UsageError("unknown mode '" + mode + "'");
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("soak", argc, argv, run);
}
