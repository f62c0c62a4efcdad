// 04-multi-client/bench.cpp - the measurements behind the chapter's comparison table.
//
//   make bench-04          (or: 04-multi-client/bench [--quick])
//
// For each model and 1, 10, 100, 1000 concurrent clients: a fresh server, one loadgen run,
// then requests/s and p99 (from loadgen), the server's CPU time (user + system, its children
// included: wait4's rusage after it exits) and its peak memory (resident set of the server and
// its children, sampled every 20 ms while loadgen runs). Then the targets of the chapter:
// 10,000 idle connections next to 100 active ones (epoll), and epoll against redis-server
// answering PING, measured by the same loadgen in the same run. Prints Markdown.
//
// Not a test: the figures depend on the machine and on what else runs on it.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "uds.hpp"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// A field of /proc/PID/status in KiB ("VmRSS", "VmHWM"); 0 if gone.
long status_kib(pid_t pid, const std::string& field) {
    std::istringstream in(slurp("/proc/" + std::to_string(pid) + "/status"));
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
    return 0;
}

// Resident memory of pid and its children (the fork model's processes), in KiB.
long tree_rss_kib(pid_t pid) {
    long total = status_kib(pid, "VmRSS");
    std::istringstream kids(
        slurp("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children"));
    pid_t k;
    while (kids >> k)
        total += status_kib(k, "VmRSS");
    return total;
}

// A child process with stdout and stderr on pipes.
struct Child {
    pid_t pid = -1;
    uds::Fd out, err;

    Child(const std::vector<std::string>& argv) {
        int o[2], e[2];
        uds::check(pipe2(o, O_CLOEXEC), "pipe2");
        uds::check(pipe2(e, O_CLOEXEC), "pipe2");
        uds::Fd ow{o[1]}, ew{e[1]};
        out.reset(o[0]);
        err.reset(e[0]);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, ow.get(), 1);
        posix_spawn_file_actions_adddup2(&fa, ew.get(), 2);
        std::vector<char*> args;
        for (const auto& a : argv)
            args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
        posix_spawn_file_actions_destroy(&fa);
        if (rc != 0) throw uds::SysError(rc, "posix_spawn " + argv[0]);
    }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    ~Child() {
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, nullptr, 0);
        }
    }

    // Reads whatever is available on both pipes within timeout_ms into the buffers.
    void pump(std::string& o, std::string& e, int timeout_ms) {
        pollfd p[2] = {{out.get(), POLLIN, 0}, {err.get(), POLLIN, 0}};
        if (poll(p, 2, timeout_ms) <= 0) return;
        char buf[65536];
        for (int i = 0; i < 2; ++i) {
            if (p[i].revents == 0) continue;
            uds::Fd& fd = i == 0 ? out : err;
            ssize_t n = read(fd.get(), buf, sizeof buf);
            if (n > 0) (i == 0 ? o : e).append(buf, static_cast<std::size_t>(n));
            if (n == 0) fd.reset();
        }
    }

    // Waits for the exit; returns the status and (through ru) its rusage, children included.
    int wait(rusage* ru = nullptr) {
        int st = 0;
        rusage r{};
        while (wait4(pid, &st, 0, &r) == -1 && errno == EINTR) {
        }
        pid = -1;
        if (ru != nullptr) *ru = r;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
};

// A server (ours or redis) whose log is drained by a thread so it never blocks on stderr.
struct Server {
    std::unique_ptr<Child> child;
    std::thread drain;

    Server(const std::vector<std::string>& argv, const std::string& ready) {
        child = std::make_unique<Child>(argv);
        std::string o, e;
        auto deadline = Clock::now() + std::chrono::seconds(10);
        while ((o + e).find(ready) == std::string::npos) {
            if (Clock::now() > deadline || (!child->out && !child->err))
                throw uds::Failure(argv[0] + " did not start: " + e + o);
            child->pump(o, e, 100);
        }
        drain = std::thread([c = child.get()] {
            std::string so, se;
            while (c->out || c->err) {
                c->pump(so, se, -1);
                so.clear();
                se.clear();
            }
        });
    }
    // SIGTERM, wait; returns CPU seconds (user + system, children included).
    double stop() {
        kill(child->pid, SIGTERM);
        rusage ru{};
        int status = child->wait(&ru);
        drain.join();
        if (status != 0) std::fprintf(stderr, "bench: server exited with status %d\n", status);
        auto secs = [](const timeval& t) {
            return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
        };
        return secs(ru.ru_utime) + secs(ru.ru_stime);
    }
    ~Server() {
        if (drain.joinable()) {
            child.reset();  // SIGKILL: the pipes close and the drain thread ends
            drain.join();
        }
    }
};

struct LoadResult {
    double rate = 0, p99 = 0;
    long peak_rss_kib = 0, rss_at_idle_kib = 0;
    bool ok = false;
    std::string text;
};

// Runs loadgen; samples the server's memory every 20 ms meanwhile.
LoadResult run_loadgen(const std::string& loadgen, std::vector<std::string> args, pid_t server) {
    args.insert(args.begin(), loadgen);
    Child lg(args);
    LoadResult r;
    std::string o, e;
    while (lg.out || lg.err) {
        lg.pump(o, e, 20);
        long rss = tree_rss_kib(server);
        r.peak_rss_kib = std::max(r.peak_rss_kib, rss);
        if (r.rss_at_idle_kib == 0 && e.find("idle connections open") != std::string::npos)
            r.rss_at_idle_kib = status_kib(server, "VmRSS");
    }
    r.ok = lg.wait() == 0;
    r.text = o + e;
    auto at = o.find("requests/s: ");
    if (at != std::string::npos) r.rate = std::stod(o.substr(at + 12));
    at = o.find(" p99 ");
    if (at != std::string::npos) r.p99 = std::stod(o.substr(at + 5));
    if (!r.ok) std::fprintf(stderr, "bench: loadgen failed: %s\n", r.text.c_str());
    return r;
}

std::string machine() {
    std::string cpu = "unknown CPU";
    std::istringstream in(slurp("/proc/cpuinfo"));
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("model name", 0) == 0) {
            cpu = line.substr(line.find(':') + 2);
            break;
        }
    utsname u{};
    uname(&u);
    return cpu + ", " + std::to_string(std::thread::hardware_concurrency()) + " cores, Linux " +
           u.release;
}

std::string fmt(const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

int run(int argc, char** argv) {
    bool quick = false;
    uds::Cli cli("bench", "[--quick]",
                 "Benchmarks the three server models and prints a Markdown table.");
    cli.option('q', "quick", "", "fewer requests and no 1000-client runs (about 20 s)",
               [&](const std::string&) { quick = true; });
    cli.parse(argc, argv);
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each table row as soon as it is measured

    const fs::path here = fs::read_symlink("/proc/self/exe").parent_path();
    const std::string server = here / "server", loadgen = here / "loadgen";
    // Thousands of connections need thousands of descriptors, in us and in our children.
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);

    char tmpl[] = "/tmp/uds-bench-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) throw uds::SysError(errno, "mkdtemp");
    const fs::path dir = tmpl;
    struct Cleanup {
        fs::path d;
        ~Cleanup() {
            std::error_code ec;
            fs::remove_all(d, ec);
        }
    } cleanup{dir};
    const std::string sock = dir / "bench.sock";
    auto start = [&](const std::string& model) {
        return Server({server, "-s", sock, "--model", model}, "listening on");
    };

    auto load = [] {
        std::string l = slurp("/proc/loadavg");
        return l.substr(0, l.find(' '));
    };
    std::printf("Machine: %s. RLIMIT_NOFILE %llu. Load average (1 min) at start: %s.\n\n",
                machine().c_str(), static_cast<unsigned long long>(rl.rlim_cur), load().c_str());
    std::printf("| model | clients | requests/s | p99 latency | server CPU | peak RSS |\n");
    std::printf("|---|---:|---:|---:|---:|---:|\n");
    std::vector<int> counts = {1, 10, 100, 1000};
    if (quick) counts.pop_back();
    for (const char* model : {"fork", "thread", "epoll"}) {
        for (int c : counts) {
            long n = std::max<long>(quick ? 20000 : 100000, c * 20L);
            Server s = start(model);
            LoadResult r =
                run_loadgen(loadgen, {"-s", sock, "-c", std::to_string(c), "-n", std::to_string(n)},
                            s.child->pid);
            double cpu = s.stop();
            std::printf("| %s | %d | %s | %s ms | %s s | %s MiB |%s\n", model, c,
                        fmt("%.0f", r.rate).c_str(), fmt("%.3f", r.p99).c_str(),
                        fmt("%.2f", cpu).c_str(),
                        fmt("%.1f", static_cast<double>(r.peak_rss_kib) / 1024).c_str(),
                        r.ok ? "" : " (loadgen FAILED)");
            std::fflush(stdout);
        }
    }
    std::printf(
        "\nEach run: a fresh server, loadgen -c CLIENTS -n max(%d, 20 x CLIENTS), one "
        "request in flight per client, 16-byte lines. Server CPU: user + system of the "
        "server and its children. Peak RSS: server plus children, sampled every 20 "
        "ms.\n\n",
        quick ? 20000 : 100000);

    // Target 1: 10,000 idle connections next to 100 active clients (epoll).
    const int idle = quick ? 2000 : 10000;
    const long n_active = quick ? 50000 : 200000;
    double p99_alone = 0, p99_idle = 0, per_idle_kib = 0;
    bool idle_ok = false;
    {
        Server s = start("epoll");
        LoadResult alone = run_loadgen(
            loadgen, {"-s", sock, "-c", "100", "-n", std::to_string(n_active)}, s.child->pid);
        long rss0 = status_kib(s.child->pid, "VmRSS");
        LoadResult with = run_loadgen(loadgen,
                                      {"-s", sock, "-c", "100", "-n", std::to_string(n_active),
                                       "--idle", std::to_string(idle), "--timeout", "30"},
                                      s.child->pid);
        s.stop();
        p99_alone = alone.p99;
        p99_idle = with.p99;
        per_idle_kib = static_cast<double>(with.rss_at_idle_kib - rss0) / idle;
        idle_ok = alone.ok && with.ok;
    }

    // Target 2: epoll against redis-server answering PING, 50 clients, loadgen --raw.
    const long n_ping = quick ? 50000 : 200000;
    std::optional<double> redis_rate;
    double epoll_raw = 0, epoll_checked = 0;
    {
        Server s = start("epoll");
        epoll_checked = run_loadgen(loadgen, {"-s", sock, "-c", "50", "-n", std::to_string(n_ping)},
                                    s.child->pid)
                            .rate;
        epoll_raw =
            run_loadgen(loadgen, {"-s", sock, "-c", "50", "-n", std::to_string(n_ping), "--raw"},
                        s.child->pid)
                .rate;
        s.stop();
    }
    if (std::system("command -v redis-server >/dev/null 2>&1") == 0) {
        const std::string rsock = dir / "redis.sock";
        Server r({"redis-server", "--port", "0", "--unixsocket", rsock, "--save", "",
                  "--appendonly", "no", "--dir", dir},
                 "accept connections");  // "Ready to ..." / "ready to ... at"
        LoadResult lr =
            run_loadgen(loadgen, {"-s", rsock, "-c", "50", "-n", std::to_string(n_ping), "--raw"},
                        r.child->pid);
        r.stop();
        if (lr.ok) redis_rate = lr.rate;
    }

    std::printf("| target | measured | goal |\n|---|---|---|\n");
    std::printf(
        "| p99 of 100 active clients with %d idle connections (epoll) | %s ms (%s ms "
        "without them) | < 5 ms%s |\n",
        idle, fmt("%.3f", p99_idle).c_str(), fmt("%.3f", p99_alone).c_str(),
        idle_ok ? "" : " (a run FAILED)");
    std::printf("| server RSS growth per idle connection (epoll) | %s KiB | <= 10 KiB |\n",
                fmt("%.2f", per_idle_kib).c_str());
    if (redis_rate)
        std::printf(
            "| requests/s at 50 clients, PING: epoll vs redis-server | %s vs %s (x%s); "
            "epoll with checked replies: %s | epoll >= redis |\n",
            fmt("%.0f", epoll_raw).c_str(), fmt("%.0f", *redis_rate).c_str(),
            fmt("%.2f", epoll_raw / *redis_rate).c_str(), fmt("%.0f", epoll_checked).c_str());
    else
        std::printf(
            "| requests/s at 50 clients: epoll | %s (redis-server not installed: "
            "apt-get install redis-server to compare) | epoll >= redis |\n",
            fmt("%.0f", epoll_raw).c_str());
    std::printf("\nLoad average (1 min) at the end: %s.\n", load().c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("bench", argc, argv, run);
}
