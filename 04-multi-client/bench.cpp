// 04-multi-client/bench.cpp - the measurements behind the chapter's comparison table.
//
//   make bench-04          (or: 04-multi-client/bench [--quick])
//
// For each model and 1, 10, 100, 1000 concurrent clients: a fresh server, one loadgen run,
// then requests/s and p99 (from loadgen), the server's CPU time (user + system, its children
// included: wait4's rusage after it exits) and its peak memory (VmHWM, or the PSS of the server
// and its children sampled while loadgen runs). Then the targets of the chapter:
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
#include <memory>
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

// Proportional set size (PSS) of one process in KiB: its resident memory, with each page
// shared by N processes counted 1/N. Summed over processes, shared pages count once.
long pss_kib(pid_t pid) {
    std::istringstream in(slurp("/proc/" + std::to_string(pid) + "/smaps_rollup"));
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("Pss:", 0) == 0) return std::stol(line.substr(4));
    return 0;
}

// Memory of pid and its children (the fork model's processes), in KiB.
long tree_pss_kib(pid_t pid) {
    long total = pss_kib(pid);
    std::istringstream kids(
        slurp("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children"));
    pid_t k;
    while (kids >> k)
        total += pss_kib(k);
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

// Runs loadgen; samples the server's memory meanwhile.
LoadResult run_loadgen(const std::string& loadgen, std::vector<std::string> args, pid_t server) {
    args.insert(args.begin(), loadgen);
    Child lg(args);
    LoadResult r;
    std::string o, e;
    auto next_sample = Clock::now();
    while (lg.out || lg.err) {
        lg.pump(o, e, 50);
        // Sampling is not free (the kernel walks every process's page tables): not too often.
        if (Clock::now() >= next_sample) {
            r.peak_rss_kib = std::max(r.peak_rss_kib, tree_pss_kib(server));
            next_sample = Clock::now() + std::chrono::milliseconds(250);
        }
        if (r.rss_at_idle_kib == 0 && e.find("idle connections open") != std::string::npos)
            r.rss_at_idle_kib = status_kib(server, "VmRSS");
    }
    // A single process also knows its own high-water mark exactly.
    r.peak_rss_kib = std::max(r.peak_rss_kib, status_kib(server, "VmHWM"));
    r.ok = lg.wait() == 0;
    r.text = o + e;
    auto at = o.find("requests/s: ");
    if (at != std::string::npos) r.rate = std::stod(o.substr(at + 12));
    at = o.find(" p99 ");
    if (at != std::string::npos) r.p99 = std::stod(o.substr(at + 5));
    if (!r.ok) std::fprintf(stderr, "bench: loadgen failed: %s\n", r.text.c_str());
    return r;
}

// utime + stime of a process so far, in clock ticks.
long cpu_ticks(pid_t pid) {
    std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
    std::istringstream in(stat.substr(stat.rfind(')') + 2));
    std::string field;
    long total = 0;
    for (int i = 3; i <= 15 && in >> field; ++i)
        if (i >= 14) total += std::stol(field);
    return total;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
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
    // The benchmark is the one place that wants every client served, however many, and idle
    // connections kept for the whole run: lift the server's default caps.
    auto start = [&](const std::string& model) {
        return Server({server, "-s", sock, "--model", model, "--max-clients", "100000",
                       "--idle-timeout", "0"},
                      "listening on");
    };

    auto load = [] {
        std::string l = slurp("/proc/loadavg");
        return l.substr(0, l.find(' '));
    };
    std::printf("Machine: %s. RLIMIT_NOFILE %llu. Load average (1 min) at start: %s.\n\n",
                machine().c_str(), static_cast<unsigned long long>(rl.rlim_cur), load().c_str());
    std::printf("| model | clients | requests/s | p99 latency | server CPU | peak memory |\n");
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
        "server and its children. Peak memory: the server's VmHWM, or the PSS of the server and "
        "its children sampled every 250 ms, whichever is larger.\n\n",
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

    // Target 2: epoll against redis-server answering PING, 50 clients, loadgen --raw. Both
    // servers run side by side and take turns, so that a change in the machine's load hits both;
    // we report the median of the rounds, and each server's CPU time per request (which other
    // load disturbs much less than requests/s).
    const long n_ping = quick ? 50000 : 200000;
    const int rounds = quick ? 3 : 5;
    const bool have_redis = std::system("command -v redis-server >/dev/null 2>&1") == 0;
    std::vector<double> rate_e, rate_r, cpu_e, cpu_r;
    double epoll_checked = 0;
    {
        Server e = start("epoll");
        std::unique_ptr<Server> r;
        const std::string rsock = dir / "redis.sock";
        if (have_redis)
            r = std::make_unique<Server>(
                std::vector<std::string>{"redis-server", "--port", "0", "--unixsocket", rsock,
                                         "--save", "", "--appendonly", "no", "--dir", dir},
                "accept connections");  // "Ready to ..." (6.x) / "ready to ... at" (7.x)
        auto measure = [&](pid_t pid, const std::string& at, std::vector<double>& rates,
                           std::vector<double>& cpus) {
            long t0 = cpu_ticks(pid);
            LoadResult lr = run_loadgen(
                loadgen, {"-s", at, "-c", "50", "-n", std::to_string(n_ping), "--raw"}, pid);
            if (!lr.ok) return;
            rates.push_back(lr.rate);
            cpus.push_back(static_cast<double>(cpu_ticks(pid) - t0) * 1e6 /
                           static_cast<double>(sysconf(_SC_CLK_TCK)) / static_cast<double>(n_ping));
        };
        for (int k = 0; k < rounds; ++k) {
            measure(e.child->pid, sock, rate_e, cpu_e);
            if (r) measure(r->child->pid, rsock, rate_r, cpu_r);
        }
        epoll_checked = run_loadgen(loadgen, {"-s", sock, "-c", "50", "-n", std::to_string(n_ping)},
                                    e.child->pid)
                            .rate;
        if (r) r->stop();
        e.stop();
    }
    std::printf("| target | measured | goal |\n|---|---|---|\n");
    std::printf(
        "| p99 of 100 active clients with %d idle connections (epoll) | %s ms (%s ms "
        "without them) | < 5 ms%s |\n",
        idle, fmt("%.3f", p99_idle).c_str(), fmt("%.3f", p99_alone).c_str(),
        idle_ok ? "" : " (a run FAILED)");
    std::printf("| server RSS growth per idle connection (epoll) | %s KiB | <= 10 KiB |\n",
                fmt("%.2f", per_idle_kib).c_str());
    auto list = [](const std::vector<double>& v) {
        std::string out;
        for (double x : v)
            out += (out.empty() ? "" : ", ") + fmt("%.0f", x);
        return out;
    };
    if (!rate_r.empty() && !rate_e.empty())
        std::printf(
            "| requests/s at 50 clients, inline PING (median of %d rounds, taking turns) | "
            "epoll %s vs redis-server %s (x%s); CPU per request: epoll %s us, redis %s us; "
            "rounds: epoll %s / redis %s; epoll with every reply checked: %s | epoll >= "
            "redis |\n",
            rounds, fmt("%.0f", median(rate_e)).c_str(), fmt("%.0f", median(rate_r)).c_str(),
            fmt("%.2f", median(rate_e) / median(rate_r)).c_str(),
            fmt("%.2f", median(cpu_e)).c_str(), fmt("%.2f", median(cpu_r)).c_str(),
            list(rate_e).c_str(), list(rate_r).c_str(), fmt("%.0f", epoll_checked).c_str());
    else
        std::printf(
            "| requests/s at 50 clients, inline PING | epoll %s (redis-server %s) | epoll >= "
            "redis |\n",
            fmt("%.0f", rate_e.empty() ? 0.0 : median(rate_e)).c_str(),
            have_redis ? "failed, see above"
                       : "not installed, so not compared: apt-get install redis-server");
    std::printf("\nLoad average (1 min) at the end: %s.\n", load().c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("bench", argc, argv, run);
}
