#include "ch07_helpers.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "address.hpp"
#include "error.hpp"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

namespace ch07 {

std::string server_bin() {
    return th::bin(kChapter, "server");
}
std::string client_bin() {
    return th::bin(kChapter, "client");
}

std::string find_program(const std::string& name) {
    const char* path = std::getenv("PATH");
    std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
    dirs += ":/usr/sbin:/sbin:/usr/local/bin";
    std::istringstream in(dirs);
    std::string d;
    while (std::getline(in, d, ':')) {
        if (d.empty()) continue;
        std::string candidate = d + "/" + name;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    return {};
}

std::string real_path(const std::string& path) {
    std::error_code ec;
    auto p = std::filesystem::canonical(path, ec);
    return ec ? std::string{} : p.string();
}

std::string self_exe() {
    return real_path("/proc/self/exe");
}

uds::Fd listening_socket(const std::string& path) {
    auto addr = uds::Address::path(path);
    uds::Fd s{uds::check(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")};
    uds::check(::bind(s.get(), addr.sockaddr_ptr(), addr.length()), "bind " + path);
    uds::check(::listen(s.get(), 16), "listen " + path);
    return s;
}

std::string ask(const std::string& addr, const std::string& line) {
    uds::Fd c = th::connect_stream(uds::Address::parse(addr));
    th::send_all(c.get(), line + "\n");
    return th::read_line(c.get());
}

int try_connect(const std::string& path) {
    auto addr = uds::Address::path(path);
    uds::Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    if (!s) return errno;
    return ::connect(s.get(), addr.sockaddr_ptr(), addr.length()) == 0 ? 0 : errno;
}

namespace {
// bash, not sh: dash may not take two-digit descriptor numbers in redirections.
const char* kFd3Script =
    "exec 3<&\"$UDS_T_FD\"; exec {UDS_T_FD}<&-; "
    "export LISTEN_PID=\"${UDS_T_PID:-$$}\" LISTEN_FDS=\"${UDS_T_FDS:-1}\"; "
    "unset UDS_T_FD UDS_T_PID UDS_T_FDS; exec \"$0\" \"$@\"";

// Our descriptor, duplicated without FD_CLOEXEC above the low numbers, so the shell inherits it.
struct Inheritable {
    int fd;
    explicit Inheritable(int from) : fd(::fcntl(from, F_DUPFD, 50)) {
        if (fd < 0) throw std::runtime_error("fcntl F_DUPFD failed");
    }
    ~Inheritable() { ::close(fd); }
};

th::Process::Options fd3_options(int fd, const std::string& listen_pid,
                                 const std::string& listen_fds) {
    th::Process::Options o;
    o.env = {"UDS_T_FD=" + std::to_string(fd)};
    if (!listen_pid.empty()) o.env.push_back("UDS_T_PID=" + listen_pid);
    if (!listen_fds.empty()) o.env.push_back("UDS_T_FDS=" + listen_fds);
    o.unset_env = {"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"};
    return o;
}

std::vector<std::string> fd3_args(const std::vector<std::string>& args) {
    std::vector<std::string> a{"-c", kFd3Script, server_bin()};
    a.insert(a.end(), args.begin(), args.end());
    return a;
}

}  // namespace

std::string launcher() {
    static const std::string path = [] {
        std::string bash = find_program("bash");
        if (bash.empty()) bash = "/bin/bash";
        char tmpl[] = "/tmp/udst-07-XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
        static std::string dir = tmpl;
        std::atexit([] {
            ::unlink((dir + "/server").c_str());
            ::rmdir(dir.c_str());
        });
        std::string link = dir + "/server";
        if (::symlink(bash.c_str(), link.c_str()) != 0) throw std::runtime_error("symlink failed");
        return link;
    }();
    return path;
}

std::unique_ptr<th::Process> start_plain(const std::vector<std::string>& args,
                                         th::Process::Options opts) {
    std::vector<std::string> a{"-c", "exec \"$0\" \"$@\"", server_bin()};
    a.insert(a.end(), args.begin(), args.end());
    return th::start_server(launcher(), a, "listening on", std::move(opts));
}

std::unique_ptr<th::Process> spawn_with_fd3(int fd, const std::vector<std::string>& args,
                                            const std::string& listen_pid,
                                            const std::string& listen_fds_env) {
    Inheritable dup(fd);
    std::string fds = listen_fds_env.rfind("LISTEN_FDS=", 0) == 0 ? listen_fds_env.substr(11) : "";
    return std::make_unique<th::Process>(launcher(), fd3_args(args),
                                         fd3_options(dup.fd, listen_pid, fds));
}

std::unique_ptr<th::Process> start_with_fd3(int fd, const std::vector<std::string>& args,
                                            std::string_view ready, const std::string& listen_pid) {
    Inheritable dup(fd);
    return th::start_server(launcher(), fd3_args(args), ready, fd3_options(dup.fd, listen_pid, ""));
}

std::string fdinfo_field(pid_t pid, int fd, const std::string& key) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/fdinfo/" + std::to_string(fd));
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(key, 0) == 0) {
            std::string v = line.substr(key.size());
            v.erase(0, v.find_first_not_of(" \t"));
            return v;
        }
    return {};
}

Group some_group() {
    for (const char* name : {"users", "daemon", "staff", "adm", "bin", "sys"}) {
        if (const group* g = ::getgrnam(name);
            g != nullptr && g->gr_gid != 0 && g->gr_gid != th::kNobody)
            return {name, g->gr_gid};
    }
    return {"4242", 4242};  // the server takes a number too
}

int run_as(uid_t uid, gid_t gid, const std::vector<gid_t>& groups, const std::function<int()>& fn) {
    pid_t pid = ::fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(gid) != 0 ||
            ::setuid(uid) != 0)
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

bool no_temporary_left(const std::string& dir) {
    for (const auto& e : std::filesystem::directory_iterator(dir))
        if (e.path().filename().string().rfind(".uds-", 0) == 0) return false;
    return true;
}

bool kernel_has_peerpidfd() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return false;
    uds::Fd a{sv[0]}, b{sv[1]};
    int fd = -1;
    socklen_t len = sizeof fd;
    if (::getsockopt(a.get(), SOL_SOCKET, SO_PEERPIDFD, &fd, &len) != 0) return false;
    ::close(fd);
    return true;
}

// ----------------------------------------------------------------------------- ConnectLoop
struct ConnectLoop::Shared {
    std::atomic<int> stop{0};
    std::atomic<long> attempts{0}, connected{0}, enoent{0}, refused{0}, eacces{0}, other{0},
        connected_wide{0};
};

ConnectLoop::ConnectLoop(const std::string& path, uid_t uid, gid_t gid,
                         const std::vector<gid_t>& groups, mode_t asked) {
    void* mem =
        ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) throw std::runtime_error("mmap failed");
    shared_ = new (mem) Shared{};
    const uds::Address addr = uds::Address::path(path);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ != 0) return;
    if (uid != ::geteuid() && (::setgroups(groups.size(), groups.data()) != 0 ||
                               ::setgid(gid) != 0 || ::setuid(uid) != 0))
        ::_exit(1);
    const auto give_up = th::Clock::now() + std::chrono::seconds(60);
    while (shared_->stop.load() == 0 && th::Clock::now() < give_up) {
        // Non-blocking: with the server's queue full, connect fails (EAGAIN) instead of waiting.
        int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        struct stat st {};
        bool wide = asked != 0 && ::lstat(path.c_str(), &st) == 0 && (st.st_mode & 0777 & ~asked);
        int rc = ::connect(s, addr.sockaddr_ptr(), addr.length());
        int err = errno;
        ::close(s);
        if (rc == 0 && wide) ++shared_->connected_wide;
        if (rc == 0)
            ++shared_->connected;
        else if (err == ENOENT)
            ++shared_->enoent;
        else if (err == ECONNREFUSED)
            ++shared_->refused;
        else if (err == EACCES)
            ++shared_->eacces;
        else
            ++shared_->other;
        ++shared_->attempts;
    }
    ::_exit(0);
}

long ConnectLoop::attempts() const {
    return shared_->attempts.load();
}

bool ConnectLoop::wait_for_refusals(long n) {
    th::Deadline d;
    while (shared_->eacces.load() < n) {
        if (d.expired()) return false;
        ::poll(nullptr, 0, 5);  // a counter in shared memory has no descriptor to wait on
    }
    return true;
}

bool ConnectLoop::wait_for_connections(long n) {
    th::Deadline d;
    while (shared_->connected.load() < n) {
        if (d.expired()) return false;
        ::poll(nullptr, 0, 5);
    }
    return true;
}

ConnectLoop::Counts ConnectLoop::stop() {
    shared_->stop = 1;
    if (pid_ > 0) {
        int st = 0;
        while (::waitpid(pid_, &st, 0) == -1 && errno == EINTR) {
        }
        pid_ = -1;
    }
    Counts c;
    c.attempts = shared_->attempts;
    c.connected = shared_->connected;
    c.enoent = shared_->enoent;
    c.refused = shared_->refused;
    c.eacces = shared_->eacces;
    c.other = shared_->other;
    c.connected_wide = shared_->connected_wide;
    return c;
}

ConnectLoop::~ConnectLoop() {
    if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        int st = 0;
        ::waitpid(pid_, &st, 0);
    }
    if (shared_ != nullptr) {
        shared_->~Shared();
        ::munmap(shared_, sizeof(Shared));
    }
}

// -------------------------------------------------------------------------------- Squatter
Squatter::Squatter(const std::string& at_name, uid_t uid) {
    int ready[2], result[2];
    if (::pipe2(ready, O_CLOEXEC) != 0 || ::pipe2(result, O_CLOEXEC) != 0)
        throw std::runtime_error("pipe2 failed");
    const uds::Address addr = uds::Address::parse(at_name);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
        ::close(ready[0]);
        ::close(result[0]);
        if (::setgroups(0, nullptr) != 0 || ::setgid(uid) != 0 || ::setuid(uid) != 0) ::_exit(1);
        int l = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (::bind(l, addr.sockaddr_ptr(), addr.length()) != 0 || ::listen(l, 4) != 0) ::_exit(1);
        if (::write(ready[1], "r", 1) != 1) ::_exit(1);
        pollfd p{l, POLLIN, 0};
        if (::poll(&p, 1, 30000) != 1) ::_exit(1);
        int c = ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
        std::string got;
        char buf[4096];
        for (;;) {
            pollfd q{c, POLLIN, 0};
            if (::poll(&q, 1, 30000) != 1) break;
            ssize_t n = ::read(c, buf, sizeof buf);
            if (n <= 0) break;
            for (ssize_t i = 0; i < n; ++i)
                if (buf[i] == '\n') ::send(c, "SQUATTED\n", 9, MSG_NOSIGNAL);
            got.append(buf, static_cast<std::size_t>(n));
        }
        [[maybe_unused]] ssize_t w = ::write(result[1], got.data(), got.size());
        ::_exit(0);
    }
    ::close(ready[1]);
    ::close(result[1]);
    result_.reset(result[0]);
    uds::Fd r{ready[0]};
    char c = 0;
    if (!th::readable(r.get(), th::Deadline{}.remaining_ms()) || ::read(r.get(), &c, 1) != 1)
        throw std::runtime_error("the squatter did not start listening on " + at_name);
}

std::string Squatter::received() {
    std::string all;
    char buf[4096];
    th::Deadline d;
    while (th::readable(result_.get(), d.remaining_ms())) {
        ssize_t n = ::read(result_.get(), buf, sizeof buf);
        if (n <= 0) break;
        all.append(buf, static_cast<std::size_t>(n));
    }
    return all;
}

Squatter::~Squatter() {
    if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        int st = 0;
        ::waitpid(pid_, &st, 0);
    }
}

}  // namespace ch07
