// tests/ch06_support.hpp - what chapter 06's tests share: a tree to serve, the monitor and its
// worker started as one session, a worker started under a fake monitor (the test), and the
// /proc readers that show a process's uid, groups and descriptors.
//
// A "fake worker" is this very test program, run by the monitor (--worker) with
// UDS_CH06_FAKE_WORKER set: it then speaks the protocol by hand, including what the real worker
// never sends (tests/ch06_socketpair_test.cpp, fake_worker_main).
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "harness.hpp"
#include "uds.hpp"

namespace ch06 {

inline const std::string kChapter = "06-socketpair";
inline std::string server_bin() {
    return th::bin(kChapter, "server");
}
inline std::string client_bin() {
    return th::bin(kChapter, "client");
}
// The monitor's line once it has a root and is about to start the worker.
inline constexpr std::string_view kReady = "serving files beneath";
inline const std::string kHello = "hello through descriptor 3\n";
inline const std::string kNotes = "notes, one directory down\n";
inline const std::string kSecret = "root only: 0600\n";
inline const std::string kUnsealed =
    "client: the monitor sent an unsealed buffer: refusing to map it";
inline const std::string kByHand =
    "client: descriptor 3 is not the monitor's socket: start me through 06-socketpair/server";

// th::run_as_nobody, for a fn that starts programs. Graded as root, the harness starts every
// program through "echo $$ > CGROUP/cgroup.procs": a process of uid 65534 may not write to that
// root-owned file, so nothing it started ever ran. Here the child joins the grader's cgroup while
// it is still root, and what the nobody process starts is born in the cgroup.
inline int run_as_nobody_starting_programs(const std::function<int()>& fn) {
    const char* cgroup = std::getenv("UDS_GRADE_CGROUP");
    if (cgroup == nullptr || *cgroup == '\0') return th::run_as_nobody(fn);
    const std::string procs = std::string(cgroup) + "/cgroup.procs";
    const pid_t pid = ::fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        const std::string me = std::to_string(::getpid());
        const int fd = ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0 || ::write(fd, me.data(), me.size()) != static_cast<ssize_t>(me.size()))
            ::_exit(255);
        ::close(fd);
        ::unsetenv("UDS_GRADE_CGROUP");  // joined: the programs inherit the cgroup
        const int rc = th::run_as_nobody(fn);
        ::_exit(rc < 0 ? 255 : rc & 0xff);
    }
    int st = 0;
    while (::waitpid(pid, &st, 0) == -1 && errno == EINTR) {
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) == 255) return -1;
    return WEXITSTATUS(st);
}

inline void write_file(const std::string& path, const std::string& content, mode_t mode = 0644) {
    std::ofstream(path, std::ios::binary) << content;
    ::chmod(path.c_str(), mode);
}

// TMP/ (0755, so the worker's user may pass), TMP/outside.txt, TMP/root/ with hello.txt,
// docs/notes.txt and secret.txt (0600); traps() adds what must be refused.
struct Tree {
    th::TempDir dir;
    std::string root = dir.file("root");
    Tree() {
        ::chmod(dir.path().c_str(), 0755);
        ::mkdir(root.c_str(), 0755);
        ::mkdir((root + "/docs").c_str(), 0755);
        write_file(root + "/hello.txt", kHello);
        write_file(root + "/docs/notes.txt", kNotes);
        write_file(root + "/secret.txt", kSecret, 0600);
        write_file(dir.file("outside.txt"), "outside the root\n");
    }
    // Symlinks out of the root, a FIFO, a directory, a hard link to a file outside.
    void traps() {
        static_cast<void>(::symlink("/etc/passwd", (root + "/escape").c_str()));
        static_cast<void>(::symlink("/", (root + "/slash").c_str()));
        static_cast<void>(::symlink("../outside.txt", (root + "/up").c_str()));
        ::mkfifo((root + "/fifo").c_str(), 0644);
        static_cast<void>(::link(dir.file("outside.txt").c_str(), (root + "/hardlink").c_str()));
    }
};

// ------------------------------------------------------------------ /proc
inline std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// "Uid:\t65534\t65534\t65534\t65534" -> "65534 65534 65534 65534"
inline std::string status_field(pid_t pid, const std::string& key) {
    std::istringstream in(slurp("/proc/" + std::to_string(pid) + "/status"));
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(key + ":", 0) != 0) continue;
        std::istringstream words(line.substr(key.size() + 1));
        std::string w, out;
        while (words >> w)
            out += (out.empty() ? "" : " ") + w;
        return out;
    }
    return "?";
}

inline std::vector<int> fds_of(pid_t pid) {
    std::vector<int> fds;
    std::error_code ec;
    for (const auto& e :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec))
        fds.push_back(std::stoi(e.path().filename().string()));
    std::sort(fds.begin(), fds.end());
    return fds;
}

inline std::string show(const std::vector<int>& fds) {
    std::string s;
    for (int fd : fds)
        s += (s.empty() ? "" : " ") + std::to_string(fd);
    return "{" + s + "}";
}

inline std::string fd_target(pid_t pid, int fd) {
    std::error_code ec;
    auto t = std::filesystem::read_symlink(
        "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd), ec);
    return ec ? "" : t.string();
}

// FD_CLOEXEC of a descriptor of another process (fdinfo shows it as O_CLOEXEC in flags).
inline bool close_on_exec(pid_t pid, int fd) {
    std::istringstream in(slurp("/proc/" + std::to_string(pid) + "/fdinfo/" + std::to_string(fd)));
    std::string key;
    while (in >> key) {
        if (key == "flags:") {
            unsigned long flags = 0;
            in >> std::oct >> flags;
            return (flags & O_CLOEXEC) != 0;
        }
    }
    return false;
}

// /proc/net/unix for one socket inode: its type (1 stream, 2 dgram, 5 seqpacket), its state
// (1 unconnected, 3 connected) and its path ("" when unnamed). type 0 if not found.
struct UnixSocket {
    int type = 0, state = 0;
    std::string path;
};
inline UnixSocket unix_socket(unsigned long inode) {
    std::istringstream in(slurp("/proc/net/unix"));
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string num, refs, proto, flags, type, st, ino, path;
        f >> num >> refs >> proto >> flags >> type >> st >> ino;
        std::getline(f, path);
        // A path with a newline in it (other tests make such sockets) breaks a line in two.
        if (ino.empty() || ino.find_first_not_of("0123456789") != std::string::npos) continue;
        if (std::stoul(ino) != inode) continue;
        path.erase(0, path.find_first_not_of(' '));
        return {std::stoi(type, nullptr, 16), std::stoi(st, nullptr, 16), path};
    }
    return {};
}
// The inode of a "socket:[N]" descriptor, 0 for anything else.
inline unsigned long socket_inode(const std::string& target) {
    if (target.rfind("socket:[", 0) != 0) return 0;
    return std::stoul(target.substr(8));
}

// The direct children of a process.
inline std::vector<pid_t> children_of(pid_t pid) {
    std::vector<pid_t> out;
    std::istringstream in(
        slurp("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children"));
    pid_t c;
    while (in >> c)
        out.push_back(c);
    return out;
}

inline bool alive(pid_t pid) {
    // A zombie is dead for our purposes.
    std::string st = status_field(pid, "State");
    return st != "?" && st.rfind("Z", 0) != 0 && st.rfind("X", 0) != 0;
}

// ------------------------------------------------------------------ monitor + worker
// The monitor started with `args`, once it said kReady; worker() waits for the worker's first
// line ("client: pid N, running as uid ...") and returns N.
struct Session {
    std::unique_ptr<th::Process> monitor;
    pid_t worker_pid = -1;

    explicit Session(const std::vector<std::string>& args, th::Process::Options opts = {}) {
        monitor = th::start_server(server_bin(), args, kReady, std::move(opts));
    }
    pid_t worker(th::Deadline d = th::Deadline{}) {
        if (worker_pid > 0) return worker_pid;
        if (!monitor->wait_stderr("client: pid ", d)) return -1;
        // The line is complete once its "running as" part is there.
        monitor->wait_stderr(", running as uid", d);
        const std::string& err = monitor->err();
        std::size_t at = err.find("client: pid ") + 12;
        worker_pid = static_cast<pid_t>(std::atoi(err.c_str() + at));
        return worker_pid;
    }
    std::string err() const { return monitor->err(); }
    // The monitor's descriptors once it has settled: right after fork it still holds the
    // worker's end for a moment (until step S6), so wait (briefly) until it holds one socket.
    std::vector<int> monitor_fds(th::Deadline d = th::Deadline{th::milliseconds{1000}}) {
        for (;;) {
            std::vector<int> fds = fds_of(monitor->pid());
            int sockets = 0;
            for (int fd : fds)
                sockets += fd_target(monitor->pid(), fd).rfind("socket:", 0) == 0 ? 1 : 0;
            if (sockets <= 1 || d.expired()) return fds;
            ::usleep(1000);
        }
    }
};

// Waits until process pid is gone (or a zombie); false after the deadline.
inline bool wait_gone(pid_t pid, th::Deadline d = th::Deadline{}) {
    while (alive(pid)) {
        if (d.expired()) {
            th::strike();
            return false;
        }
        ::usleep(2000);  // polling /proc: there is no descriptor to wait on for a non-child
    }
    return true;
}

// ------------------------------------------------------------------ worker + fake monitor
// The real client started by the test with descriptor 3 = one end of a socket pair whose other
// end (`ours`) the test keeps: the test is the monitor.
class Worker {
  public:
    struct Options {
        int type = SOCK_SEQPACKET;  // the pair's type (a wrong one for the C1 tests)
        std::string stdout_file;    // send stdout there instead of to a pipe
        bool give_fd3 = true;       // false: start it with nothing on descriptor 3
    };
    Worker(const std::vector<std::string>& args, Options o) {
        int sv[2] = {-1, -1};
        if (o.give_fd3) {
            uds::check(::socketpair(AF_UNIX, o.type | SOCK_CLOEXEC, 0, sv), "socketpair");
            ours.reset(sv[0]);
        }
        uds::Fd theirs{sv[1]};
        int pin[2], pout[2], perr[2];
        uds::check(::pipe2(pin, O_CLOEXEC), "pipe2");
        uds::check(::pipe2(pout, O_CLOEXEC), "pipe2");
        uds::check(::pipe2(perr, O_CLOEXEC), "pipe2");
        uds::Fd in_r{pin[0]}, out_w{pout[1]}, err_w{perr[1]};
        in_.reset(pin[1]);
        out_.reset(pout[0]);
        err_.reset(perr[0]);
        uds::Fd file;
        if (!o.stdout_file.empty()) {
            file.reset(
                ::open(o.stdout_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
            out_.reset();
        }
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, in_r.get(), 0);
        posix_spawn_file_actions_adddup2(&fa, file ? file.get() : out_w.get(), 1);
        posix_spawn_file_actions_adddup2(&fa, err_w.get(), 2);
        if (theirs) posix_spawn_file_actions_adddup2(&fa, theirs.get(), 3);
        // Nothing else of ours: descriptors this test program inherited stay here.
        posix_spawn_file_actions_addclosefrom_np(&fa, theirs ? 4 : 3);
        std::vector<std::string> argv_s{client_bin()};
        argv_s.insert(argv_s.end(), args.begin(), args.end());
        std::vector<char*> argv;
        for (auto& a : argv_s)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        int rc = ::posix_spawn(&pid, argv_s[0].c_str(), &fa, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&fa);
        if (rc != 0)
            throw std::runtime_error("posix_spawn " + argv_s[0] + ": " + std::strerror(rc));
    }
    explicit Worker(const std::vector<std::string>& args) : Worker(args, Options{}) {}
    ~Worker() {
        if (pid > 0 && status < 0) {
            ::kill(pid, SIGKILL);
            int st;
            ::waitpid(pid, &st, 0);
        }
    }
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // One request from the worker (what its sendmsg sent, whole). nullopt at EOF or deadline.
    std::optional<std::string> request(th::Deadline d = th::Deadline{}) {
        for (;;) {
            pollfd p[3] = {
                {ours.get(), POLLIN, 0}, {out_.get(), POLLIN, 0}, {err_.get(), POLLIN, 0}};
            if (::poll(p, 3, d.remaining_ms()) <= 0) return std::nullopt;
            pump(p[1].revents != 0, p[2].revents != 0);
            if (p[0].revents == 0) continue;
            char buf[70000];
            ssize_t n = ::recv(ours.get(), buf, sizeof buf, 0);
            if (n < 0) return std::nullopt;
            if (n == 0) {  // end of file, or an empty message
                pollfd q{ours.get(), POLLRDHUP, 0};
                if (::poll(&q, 1, 0) == 1 && (q.revents & POLLRDHUP)) return std::nullopt;
            }
            return std::string(buf, static_cast<std::size_t>(n));
        }
    }
    // Sends one reply, with descriptor fd attached when fd >= 0.
    void reply(std::string_view text, int fd = -1) {
        iovec iov{const_cast<char*>(text.data()), text.size()};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        std::vector<char> control;
        if (fd >= 0) {
            control.assign(CMSG_SPACE(sizeof(int)), 0);
            msg.msg_control = control.data();
            msg.msg_controllen = control.size();
            cmsghdr* c = CMSG_FIRSTHDR(&msg);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
        }
        uds::check(::sendmsg(ours.get(), &msg, MSG_NOSIGNAL), "sendmsg to the worker");
    }
    // Waits for the worker to exit, collecting its output; its status, 128+signal, or -1.
    int wait_exit(th::Deadline d = th::Deadline{}) {
        if (status >= 0) return status;
        while ((out_ || err_) && !d.expired()) {
            pollfd p[2] = {{out_.get(), POLLIN, 0}, {err_.get(), POLLIN, 0}};
            if (::poll(p, 2, d.remaining_ms()) <= 0) break;
            pump(p[0].revents != 0, p[1].revents != 0);
        }
        for (;;) {
            int st = 0;
            pid_t r = ::waitpid(pid, &st, WNOHANG);
            if (r == pid) {
                status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                return status;
            }
            if (d.expired()) {
                th::strike();
                return -1;
            }
            ::usleep(1000);
        }
    }
    // Waits until stderr (or stdout) contains text.
    bool wait_err(std::string_view text, th::Deadline d = th::Deadline{}) {
        return wait_in(err, text, d);
    }
    bool wait_out(std::string_view text, th::Deadline d = th::Deadline{}) {
        return wait_in(out, text, d);
    }
    void write_stdin(std::string_view s) {
        while (!s.empty()) {
            ssize_t n = ::write(in_.get(), s.data(), s.size());
            if (n < 0 && errno == EINTR) continue;
            uds::check(n, "write to the worker's stdin");
            s.remove_prefix(static_cast<std::size_t>(n));
        }
    }
    void close_stdin() { in_.reset(); }

    pid_t pid = -1;
    int status = -1;
    uds::Fd ours;
    std::string out, err;

  private:
    bool wait_in(const std::string& buf, std::string_view text, th::Deadline d) {
        while (buf.find(text) == std::string::npos) {
            if (d.expired() || (!out_ && !err_)) return buf.find(text) != std::string::npos;
            pollfd p[2] = {{out_.get(), POLLIN, 0}, {err_.get(), POLLIN, 0}};
            if (::poll(p, 2, d.remaining_ms()) <= 0) continue;
            pump(p[0].revents != 0, p[1].revents != 0);
        }
        return true;
    }
    void pump(bool o, bool e) {
        char buf[65536];
        if (o && out_) {
            ssize_t n = ::read(out_.get(), buf, sizeof buf);
            if (n <= 0)
                out_.reset();
            else if (out.size() < (1u << 20))
                out.append(buf, static_cast<std::size_t>(n));
        }
        if (e && err_) {
            ssize_t n = ::read(err_.get(), buf, sizeof buf);
            if (n <= 0)
                err_.reset();
            else if (err.size() < (1u << 20))
                err.append(buf, static_cast<std::size_t>(n));
        }
    }
    uds::Fd in_, out_, err_;
};

// A memfd holding `content`, sealed with `seals` (0: none).
inline uds::Fd memfd_with(const std::string& content, int seals) {
    uds::Fd fd{uds::check(::memfd_create("ch06-test", MFD_CLOEXEC | MFD_ALLOW_SEALING), "memfd")};
    std::size_t done = 0;
    while (done < content.size()) {
        ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
        if (n <= 0) throw std::runtime_error("write memfd");
        done += static_cast<std::size_t>(n);
    }
    if (seals != 0) uds::check(::fcntl(fd.get(), F_ADD_SEALS, seals), "F_ADD_SEALS");
    return fd;
}

// Runs the monitor to its end, like th::run, but starts it like a server (th::start_server): a
// monitor that never says kReady costs the readiness deadline once, later ones half a second.
inline th::Result run_monitor(const std::vector<std::string>& args, std::string_view input = {},
                              th::Process::Options opts = {}) {
    auto p = th::start_server(server_bin(), args, kReady, std::move(opts));
    try {
        if (!input.empty()) p->write_stdin(input);
    } catch (const std::exception&) {  // it ended without reading everything
    }
    p->close_stdin();
    int status = p->wait_exit();
    return {status, p->out(), p->err()};
}

// For a command line that must end at once (a usage error, --help): a short deadline.
inline th::Result run_briefly(const std::vector<std::string>& args) {
    return th::run(server_bin(), args, {}, {},
                   th::Deadline{std::min(th::patience(), th::milliseconds{3000})});
}

// ------------------------------------------------------------------ the fake worker
// This test program, run by the monitor as its worker (see ch06_socketpair_test.cpp).
inline std::string self_exe() {
    std::error_code ec;
    return std::filesystem::read_symlink("/proc/self/exe", ec).string();
}

// The monitor, with this test program as a fake worker in MODE.
inline th::Result run_fake(const Tree& t, const std::vector<std::string>& worker_args) {
    std::vector<std::string> args{"--root", t.root, "--worker", self_exe(), "--"};
    args.insert(args.end(), worker_args.begin(), worker_args.end());
    th::Process::Options o;
    o.env.push_back("UDS_CH06_FAKE_WORKER=1");
    return run_monitor(args, {}, o);
}

inline std::size_t count(const std::string& text, std::string_view needle) {
    std::size_t n = 0;
    for (std::size_t at = 0; (at = text.find(needle, at)) != std::string::npos; at += needle.size())
        ++n;
    return n;
}

inline std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    std::string l;
    while (std::getline(in, l))
        out.push_back(l);
    return out;
}

// True when every descriptor in `now` was already in `before` (both sorted, as fds_of returns).
inline bool holds_nothing_new(const std::vector<int>& before, const std::vector<int>& now) {
    return std::includes(before.begin(), before.end(), now.begin(), now.end());
}

// Waits (briefly) until process pid's descriptors satisfy `ok`, and returns them (the last ones
// seen when the deadline passes). A monitor closes its copy of a descriptor just after sending it,
// so the worker may report it received a moment earlier.
template <typename Ok>
std::vector<int> fds_settle_until(pid_t pid, Ok ok,
                                  th::Deadline d = th::Deadline{th::milliseconds{1000}}) {
    for (;;) {
        std::vector<int> now = fds_of(pid);
        if (ok(now)) return now;
        if (d.expired()) {
            th::strike();
            return now;
        }
        ::usleep(1000);
    }
}

// Until pid holds exactly `want`.
inline std::vector<int> fds_settle(pid_t pid, const std::vector<int>& want) {
    return fds_settle_until(pid, [&](const std::vector<int>& now) { return now == want; });
}

// Until pid holds nothing that is not in `before`. A leak check, not an equality: a monitor of
// more than one worker (a worked solution) may close a finished worker's end meanwhile.
inline std::vector<int> fds_settle_within(pid_t pid, const std::vector<int>& before) {
    return fds_settle_until(
        pid, [&](const std::vector<int>& now) { return holds_nothing_new(before, now); });
}

inline constexpr int kAllSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL;

}  // namespace ch06
