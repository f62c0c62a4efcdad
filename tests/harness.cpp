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

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <stdexcept>

#include "error.hpp"

extern char** environ;

namespace th {

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

TempDir::TempDir() {
    char tmpl[] = "/tmp/udst-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
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

Process::Process(const std::string& path, const std::vector<std::string>& args, Options opts) {
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
    std::vector<char*> argv;
    for (auto& a : argv_s)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_s = make_env(opts);
    std::vector<char*> envp;
    for (auto& e : env_s)
        envp.push_back(e.data());
    envp.push_back(nullptr);

    int rc = ::posix_spawn(&pid_, path.c_str(), &fa, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) throw std::runtime_error("posix_spawn " + path + ": " + std::strerror(rc));
    set_nonblocking(out_fd_.get());
    set_nonblocking(err_fd_.get());
}

Process::~Process() {
    if (!reaped_ && pid_ > 0) {
        ::kill(pid_, SIGKILL);
        int st = 0;
        while (::waitpid(pid_, &st, 0) == -1 && errno == EINTR) {
        }
    }
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
    if (!reaped_) ::kill(pid_, sig);
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
                buf.append(tmp, static_cast<size_t>(n));
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
        if (d.expired()) return false;
        if (!out_fd_ && !err_fd_) return buf.find(text) != std::string::npos;
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
        reaped_ = true;
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        return false;
    }
    return true;
}

int Process::wait_exit(Deadline d) {
    // First the output (a child that exited closes its pipes), then the status.
    while ((out_fd_ || err_fd_) && !d.expired())
        pump(d.remaining_ms());
    while (running()) {
        if (d.expired()) return -1;
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
    while (readable(fd, d.remaining_ms())) {
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
    while (readable(fd, d.remaining_ms())) {
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

bool have_program(const std::string& name) {
    return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0;
}

}  // namespace th
