#include "harness.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>

#include "error.hpp"

extern char** environ;

namespace th {

namespace {
int env_ms(const char* name, int fallback) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') return fallback;
    char* end = nullptr;
    long n = std::strtol(v, &end, 10);
    return end != nullptr && *end == '\0' && n > 0 && n < 3600000 ? static_cast<int>(n) : fallback;
}
std::atomic<int> strikes{0};
}  // namespace

milliseconds patience() {
    static const int base = env_ms("UDS_PATIENCE_MS", static_cast<int>(kPatience.count()));
    // Only a shortened patience (grading) shrinks further: the normal suite keeps its margin.
    bool grading = base < kPatience.count();
    return milliseconds{grading && strikes.load() >= 2 ? std::max(base / 4, 250) : base};
}

milliseconds ready_patience() {
    return milliseconds{env_ms("UDS_READY_MS", static_cast<int>(patience().count()))};
}

void strike() {
    ++strikes;
}

int Deadline::remaining_ms() const {
    auto left = std::chrono::duration_cast<milliseconds>(at_ - Clock::now()).count();
    return left > 0 ? static_cast<int>(left) : 0;
}

std::string bin(const std::string& chapter, const std::string& program) {
    std::string key = "UDS_CH" + chapter.substr(0, 2) + "_DIR";
    if (const char* dir = std::getenv(key.c_str()); dir != nullptr && *dir != '\0')
        return std::string(dir) + "/" + program;
    const char* root = std::getenv("UDS_BIN_DIR");
    std::string base = root != nullptr && *root != '\0' ? root : ".";
    return base + "/" + chapter + "/" + program;
}

namespace {
// Every TempDir alive, so that a test program stopped by a signal can still remove them.
std::mutex temp_dirs_mutex;
std::set<std::string>& temp_dirs() {
    static std::set<std::string> dirs;
    return dirs;
}
}  // namespace

TempDir::TempDir() {
    char tmpl[] = "/tmp/udst-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
    std::lock_guard<std::mutex> lock(temp_dirs_mutex);
    temp_dirs().insert(path_);
}

TempDir::~TempDir() {
    {
        std::lock_guard<std::mutex> lock(temp_dirs_mutex);
        temp_dirs().erase(path_);
    }
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

void remove_temp_dirs() {
    std::lock_guard<std::mutex> lock(temp_dirs_mutex);
    for (const std::string& dir : temp_dirs()) {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    temp_dirs().clear();
}

std::string TempDir::file(std::string_view name) const {
    return path_ + "/" + std::string(name);
}

std::string unique_abstract_name(std::string_view tag) {
    static std::atomic<unsigned> counter{0};
    static const unsigned salt = std::random_device{}();
    return "uds-test-" + std::to_string(::getpid()) + "-" + std::to_string(salt % 100000) + "-" +
           std::to_string(counter++) + "-" + std::string(tag);
}

namespace {
void set_nonblocking(int fd) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

std::vector<std::string> make_env(const Process::Options& opts) {
    std::map<std::string, std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
        std::string kv = *e;
        auto eq = kv.find('=');
        if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    for (const auto& name : opts.unset_env)
        env.erase(name);
    for (const auto& kv : opts.env) {
        auto eq = kv.find('=');
        env[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
    }
    std::vector<std::string> out;
    for (const auto& [k, v] : env)
        out.push_back(k + "=" + v);
    return out;
}
}  // namespace

Process::Process(const std::string& path, const std::vector<std::string>& args, Options opts)
    : name_(path.substr(path.find_last_of('/') + 1)) {
    int in[2], out[2], err[2];
    if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC))
        throw std::runtime_error("pipe2 failed");
    uds::Fd in_r{in[0]}, out_w{out[1]}, err_w{err[1]};
    in_.reset(in[1]);
    out_fd_.reset(out[0]);
    err_fd_.reset(err[0]);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in_r.get(), 0);
    posix_spawn_file_actions_adddup2(&fa, out_w.get(), 1);
    posix_spawn_file_actions_adddup2(&fa, err_w.get(), 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);  // the child starts with default signal handling
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    std::vector<std::string> argv_s{path};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    // Grading as root: every program joins the grader's pids cgroup before it runs, so that a
    // fork bomb stops at the cgroup's limit and whatever is left can be killed at the end.
    // A program that cannot join (started by a test that switched to uid 65534 on its own;
    // run_as_nobody joins before it drops root) still runs: the grader's process limit bounds
    // it and the runner reaps it.
    std::string exe = path;
    if (const char* cg = std::getenv("UDS_GRADE_CGROUP"); cg != nullptr && *cg != '\0') {
        argv_s.insert(
            argv_s.begin(),
            {"/bin/sh", "-c", "echo $$ 2>/dev/null >\"$0/cgroup.procs\"; exec \"$@\"", cg});
        exe = "/bin/sh";
    }
    std::vector<char*> argv;
    for (auto& a : argv_s)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_s = make_env(opts);
    std::vector<char*> envp;
    for (auto& e : env_s)
        envp.push_back(e.data());
    envp.push_back(nullptr);

    int rc = ::posix_spawn(&pid_, exe.c_str(), &fa, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) throw std::runtime_error("posix_spawn " + path + ": " + std::strerror(rc));
    set_nonblocking(out_fd_.get());
    set_nonblocking(err_fd_.get());
}

namespace {
// The processes pid started (and theirs), from /proc/PID/task/TID/children.
void collect_descendants(pid_t pid, std::vector<pid_t>& out, int depth = 0) {
    if (depth > 16 || out.size() > 4096) return;
    std::error_code ec;
    std::string tasks = "/proc/" + std::to_string(pid) + "/task";
    for (const auto& t : std::filesystem::directory_iterator(tasks, ec)) {
        FILE* f = std::fopen((t.path() / "children").c_str(), "r");
        if (f == nullptr) continue;
        int child = 0;
        while (std::fscanf(f, "%d", &child) == 1) {
            out.push_back(child);
            collect_descendants(child, out, depth + 1);
        }
        std::fclose(f);
    }
}

std::map<int, std::string>& signal_hints() {
    static std::map<int, std::string> hints;
    return hints;
}

std::string signal_name(int sig) {
    const char* abbrev = ::sigabbrev_np(sig);
    return std::string("SIG") + (abbrev != nullptr ? abbrev : "?") + " (" + std::to_string(sig) +
           ")";
}
}  // namespace

Process::~Process() {
    // Did it end on its own (a crash, SIGPIPE)? running() records how.
    if (pid_ > 0 && running()) {
        // Stop it first, so that it cannot start more processes while we look for them.
        std::vector<pid_t> family;
        ::kill(pid_, SIGSTOP);
        collect_descendants(pid_, family);
        ::kill(pid_, SIGKILL);
        for (pid_t p : family)
            ::kill(p, SIGKILL);
        int st = 0;
        while (::waitpid(pid_, &st, 0) == -1 && errno == EINTR) {
        }
        reaped_ = true;
    }
}

void Process::reaped(int st) {
    reaped_ = true;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (WIFSIGNALED(st) && WTERMSIG(st) != SIGKILL && WTERMSIG(st) != signalled_) {
        std::string note = "the " + name_ + " was killed by " + signal_name(WTERMSIG(st));
        auto hint = signal_hints().find(WTERMSIG(st));
        if (hint != signal_hints().end()) note += ": " + hint->second;
        ending_notes().push_back(note);
    }
}

std::string Process::ending() {
    if (running()) return "is still running";
    if (status_ >= 128) return "was killed by " + signal_name(status_ - 128);
    return "exited with status " + std::to_string(status_);
}

void Process::write_stdin(std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::write(in_.get(), data.data(), data.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0)
            throw std::runtime_error(std::string("write to child stdin: ") + strerror(errno));
        data.remove_prefix(static_cast<size_t>(n));
    }
}

void Process::close_stdin() {
    in_.reset();
}

void Process::signal(int sig) {
    if (reaped_) return;
    signalled_ = sig;
    ::kill(pid_, sig);
}

void Process::pump(int timeout_ms) {
    pollfd fds[2] = {{out_fd_.get(), POLLIN, 0}, {err_fd_.get(), POLLIN, 0}};
    int rc = ::poll(fds, 2, timeout_ms);
    if (rc <= 0) return;
    for (int i = 0; i < 2; ++i) {
        if (fds[i].revents == 0) continue;
        uds::Fd& fd = i == 0 ? out_fd_ : err_fd_;
        std::string& buf = i == 0 ? out_ : err_;
        char tmp[65536];
        for (;;) {
            ssize_t n = ::read(fd.get(), tmp, sizeof tmp);
            if (n > 0) {
                // Keep at most kMaxOutput bytes; read (and drop) the rest so the child never
                // blocks on a full pipe.
                if (buf.size() < kMaxOutput)
                    buf.append(tmp, std::min(static_cast<size_t>(n), kMaxOutput - buf.size()));
                continue;
            }
            if (n == 0) fd.reset();  // EOF: poll ignores negative fds from now on
            break;
        }
    }
}

bool Process::wait_text(const std::string& buf, std::string_view text, Deadline d) {
    for (;;) {
        if (buf.find(text) != std::string::npos) return true;
        if (d.expired()) {
            strike();
            return false;
        }
        if (!out_fd_ && !err_fd_) return buf.find(text) != std::string::npos;
        pump(d.remaining_ms());
    }
}

bool Process::wait_stderr_line(std::string_view prefix, Deadline d) {
    for (;;) {
        for (auto pos = err_.find(prefix); pos != std::string::npos;
             pos = err_.find(prefix, pos + 1))
            if (pos == 0 || err_[pos - 1] == '\n') return true;
        if (d.expired()) {
            strike();
            return false;
        }
        if (!out_fd_ && !err_fd_) return false;
        pump(d.remaining_ms());
    }
}

bool Process::wait_ready_line(std::string_view text, Deadline d) {
    for (;;) {
        // A line that starts with `text`, or with one word and a colon and then `text`
        // ("server: listening on ..."); never `text` in the middle of some other line.
        for (auto pos = err_.find(text); pos != std::string::npos; pos = err_.find(text, pos + 1)) {
            std::size_t start = err_.rfind('\n', pos == 0 ? 0 : pos - 1);
            start = (start == std::string::npos || pos == 0) ? 0 : start + 1;
            std::string_view before(err_.data() + start, pos - start);
            if (before.empty() ||
                (before.size() >= 3 && before.substr(before.size() - 2) == ": " &&
                 before.substr(0, before.size() - 2).find_first_of(" :") == std::string_view::npos))
                return true;
        }
        if (d.expired()) return false;  // (start_server counts the strike)
        if (!out_fd_ && !err_fd_) return false;
        pump(d.remaining_ms());
    }
}

bool Process::wait_stderr(std::string_view text, Deadline d) {
    return wait_text(err_, text, d);
}
bool Process::wait_stdout(std::string_view text, Deadline d) {
    return wait_text(out_, text, d);
}

bool Process::running() {
    if (reaped_) return false;
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
        reaped(st);
        return false;
    }
    return true;
}

int Process::wait_exit(Deadline d) {
    // First the output (a child that exited closes its pipes), then the status.
    while ((out_fd_ || err_fd_) && !d.expired())
        pump(d.remaining_ms());
    while (running()) {
        if (d.expired()) {
            strike();
            return -1;
        }
        // The pipes are closed but the process has not been reaped yet: it is exiting.
        // Poll its pidfd with the remaining time instead of sleeping.
        int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
        if (pidfd >= 0) {
            uds::Fd guard{pidfd};
            pollfd p{pidfd, POLLIN, 0};
            ::poll(&p, 1, d.remaining_ms());
        }
    }
    return status_;
}

Result run(const std::string& path, const std::vector<std::string>& args, std::string_view input,
           Process::Options opts, Deadline d) {
    Process p(path, args, std::move(opts));
    if (!input.empty()) {
        try {
            p.write_stdin(input);
        } catch (const std::exception&) {  // the program exited without reading it all
        }
    }
    p.close_stdin();
    int status = p.wait_exit(d);
    return {status, p.out(), p.err()};
}

int count_fds(pid_t pid) {
    std::string dir = pid == 0 ? "/proc/self/fd" : "/proc/" + std::to_string(pid) + "/fd";
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return -1;
    int n = 0;
    while (dirent* e = ::readdir(d))
        if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    return pid == 0 ? n - 1 : n;  // do not count opendir's own descriptor
}

uds::Fd connect_stream(const uds::Address& addr) {
    uds::Fd fd{uds::check(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")};
    uds::check(::connect(fd.get(), addr.sockaddr_ptr(), addr.length()), "connect " + addr.str());
    return fd;
}

void send_all(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        uds::check(n, "send");
        data.remove_prefix(static_cast<size_t>(n));
    }
}

bool readable(int fd, int timeout_ms) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) > 0;
}

std::string read_line(int fd, Deadline d) {
    std::string line;
    char c;
    for (;;) {
        if (!readable(fd, d.remaining_ms())) {
            strike();
            break;
        }
        ssize_t n = ::recv(fd, &c, 1, 0);
        if (n <= 0) break;
        line.push_back(c);
        if (c == '\n') break;
    }
    return line;
}

std::string read_to_eof(int fd, Deadline d, int* err) {
    std::string all;
    char buf[65536];
    if (err != nullptr) *err = 0;
    for (;;) {
        if (!readable(fd, d.remaining_ms())) {
            strike();
            break;
        }
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && err != nullptr) *err = errno;
        if (n <= 0) break;
        all.append(buf, static_cast<size_t>(n));
    }
    return all;
}

int run_as_nobody(const std::function<int()>& fn) {
    pid_t pid = ::fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        // Graded as root: join the grader's cgroup while still root, so that what fn starts is
        // born in it (uid 65534 may not write to the root-owned cgroup.procs that Process uses).
        if (const char* cg = std::getenv("UDS_GRADE_CGROUP"); cg != nullptr && *cg != '\0') {
            const std::string me = std::to_string(::getpid());
            const int fd =
                ::open((std::string(cg) + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
            if (fd < 0 || ::write(fd, me.data(), me.size()) != static_cast<ssize_t>(me.size()))
                ::_exit(255);
            ::close(fd);
            ::unsetenv("UDS_GRADE_CGROUP");
        }
        if (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0)
            ::_exit(255);
        int rc = 255;
        try {
            rc = fn();
        } catch (...) {
        }
        ::_exit(rc & 0xff);
    }
    int st = 0;
    while (::waitpid(pid, &st, 0) == -1 && errno == EINTR) {
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) == 255) return -1;
    return WEXITSTATUS(st);
}

namespace {
// First line of a program's stderr, for one-line reasons (escaped, at most 160 bytes).
std::string first_line(const std::string& text) {
    std::string line = text.substr(0, text.find('\n'));
    std::string out;
    for (char ch : line) {
        auto c = static_cast<unsigned char>(ch);
        if (out.size() >= 160) {
            out += "...";
            break;
        }
        if (c < 0x20 || c == 0x7f) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "\\x%02x", c);
            out += hex;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

// Programs that once failed to get ready within the readiness deadline, in this process.
std::map<std::string, int>& slow_starters() {
    static std::map<std::string, int> seen;
    return seen;
}
}  // namespace

std::unique_ptr<Process> start_server(const std::string& path, const std::vector<std::string>& args,
                                      std::string_view ready_text, Process::Options opts) {
    auto p = std::make_unique<Process>(path, args, std::move(opts));
    bool timed_out_before = slow_starters().count(path) > 0;
    milliseconds wait =
        timed_out_before ? std::min(ready_patience(), milliseconds{500}) : ready_patience();
    // The ready line is the server's own log line, "server: listening on ...", at the start of a
    // line: a peer that smuggles "listening on" into some other line cannot fake it.
    // In slices, so that a server that exited (leaving a daemon child holding its pipes open)
    // is not waited for until the deadline.
    for (Deadline whole{wait};;) {
        milliseconds slice{std::min(whole.remaining_ms(), 100)};
        if (p->wait_ready_line(ready_text, Deadline{slice})) return p;
        if (whole.expired() || !p->running()) break;
    }
    strike();
    // Both pipes can reach end of file a moment before the process can be reaped: let it finish
    // exiting, so that a program that already ended is not reported as still running.
    if (p->output_closed()) (void)p->wait_exit(Deadline{milliseconds{200}});
    std::string name = p->name();
    std::string said = p->err().empty() ? "" : ": " + first_line(p->err());
    if (p->running()) {
        slow_starters()[path]++;
        char secs[32];
        std::snprintf(secs, sizeof secs, "%.1f", static_cast<double>(wait.count()) / 1000.0);
        throw Abort("the " + name + " did not say '" + std::string(ready_text) + "' within " +
                    secs + " s (it is still running" + (said.empty() ? ")" : ") and said" + said) +
                    (timed_out_before ? " [it did not get ready in an earlier test either]" : ""));
    }
    throw Abort("the " + name + " " + p->ending() + " before it said '" + std::string(ready_text) +
                "'" + said);
}

std::string why(std::string_view reason) {
    return "\nwhy: " + std::string(reason);
}

bool hint_on_signal(int sig, std::string hint) {
    signal_hints()[sig] = std::move(hint);
    return true;
}

std::vector<std::string>& ending_notes() {
    static std::vector<std::string> notes;
    return notes;
}

void kill_leftover_children() {
    for (int round = 0; round < 8; ++round) {
        std::vector<pid_t> family;
        collect_descendants(::getpid(), family);
        if (family.empty()) return;
        for (pid_t p : family)
            ::kill(p, SIGKILL);
        for (pid_t p : family) {
            int st = 0;
            ::waitpid(p, &st, WNOHANG);  // our own children; grandchildren come back to us
        }
        int st = 0;
        while (::waitpid(-1, &st, WNOHANG) > 0) {
        }
    }
}

bool have_program(const std::string& name) {
    return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0;
}

}  // namespace th
