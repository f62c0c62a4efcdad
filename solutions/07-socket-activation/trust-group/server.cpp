// 07-socket-activation/server.cpp - the upper-casing service, run the way services are run.
//
// The lesson, in the order the calls happen (each step is numbered below):
//   S1. listen_fds   socket activation: systemd made, bound and listened on the socket before we
//                    existed, and hands it to us as descriptor 3 (LISTEN_PID, LISTEN_FDS)
//   S2. check        descriptor 3 must be what we serve: AF_UNIX, SOCK_STREAM, listening
//   Started by hand instead, we make the socket ourselves, reachable only once it is right:
//   S3. socket
//   S4. bind         to a temporary name inside a fresh directory nobody else may enter
//   S5. chmod/chown  the socket file gets exactly the mode and group asked for
//   S6. rename       into place, never over somebody else's file
//   S7. listen       only now can a client connect
//   Then, for each client, one at a time:
//   S8. accept4
//   S9. SO_PEERCRED   pid, uid, gid of the peer, recorded by the kernel at connect()
//   S10. SO_PEERPIDFD a pidfd: a handle on that very process, which no other process can reuse
//   S11. exe         the peer's program, read from /proc and confirmed through the pidfd
//   S12. serve       read / send lines (chapter 01), with an idle deadline
//   S13. close       on SIGTERM: unlink the socket file only if we created it
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "uds.hpp"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77  // Linux 6.5; older C library headers do not name it yet
#endif

namespace {

struct Options {
    std::optional<uds::Address> address;  // -s; unset: the default path
    std::optional<mode_t> mode;           // --mode 0660
    std::optional<gid_t> group;           // --group NAME
    std::string group_name;
    int idle_ms = 30'000;       // --idle-timeout SECONDS
    bool no_peerpidfd = false;  // --no-peerpidfd: act as on a kernel without SO_PEERPIDFD
};

// Defined below, after the main line of the lesson.
Options parse_options(int argc, char** argv);
uds::Fd inherited_listener(std::string& note);
void check_inherited(int fd);
uds::Fd bind_own_socket(const Options& opt, const uds::Address& addr, uds::SocketFile& file);
void log_peer(int conn, const Options& opt);
std::string exe_through_pidfd(int pidfd);
void serve(int conn, int idle_ms);

int run(int argc, char** argv) {
    const Options opt = parse_options(argc, argv);

    // Stays empty for an inherited socket: that file is not ours.
    uds::SocketFile socket_file;
    // What systemd told us, logged once the socket has passed step S2.
    std::string note;
    uds::Fd listener = inherited_listener(note);  // before we open a descriptor of our own:
    uds::install_shutdown_handlers();             // its pipe would take a free number from 3 up
    if (listener) {
        check_inherited(listener.get());
        if (!note.empty()) uds::log(note);
        if (opt.mode || opt.group)
            uds::log(
                "ignoring --mode and --group: the inherited socket's file was made by "
                "whoever created it (SocketMode=, SocketGroup= in the .socket unit)");
        uds::log("listening on " + uds::local_address(listener.get()).str() + " (inherited)");
    } else {
        const uds::Address addr =
            opt.address ? *opt.address : uds::default_path_address("07-activation.sock");
        listener = bind_own_socket(opt, addr, socket_file);
        uds::log("listening on " + addr.str());
    }

    while (uds::wait_readable(listener.get()) == uds::Wait::Ready) {
        // S8. accept4: one connection off the queue, as in chapter 01. Under socket activation
        //     the queue may already hold connections made before this process existed.
        uds::Fd conn{accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC)};
        if (!conn && (errno == EINTR || errno == ECONNABORTED)) continue;
        if (!conn && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
            uds::log(std::string("accept4: ") + std::strerror(errno) + " (trying again shortly)");
            uds::wait_readable(uds::stop_fd(), 100);
            continue;
        }
        if (!conn) uds::check(-1, "accept4");
        try {
            log_peer(conn.get(), opt);
            serve(conn.get(), opt.idle_ms);
        } catch (const uds::SysError& e) {  // this client failed (EPIPE, ECONNRESET): next one
            uds::log("client dropped: " + uds::describe(e));
        } catch (const uds::Stopped&) {
        }
    }

    // S13. close: remove the name only if it is still the file our step S6 put there. An
    //      inherited socket's file belongs to systemd, which keeps listening on it after we exit
    //      and starts us again on the next connection.
    uds::log(std::string("stopping on ") + strsignal(uds::stop_signal()));
    socket_file.unlink_if_ours();
    listener.reset();
    return 0;
}

// S1. listen_fds: the sd_listen_fds() protocol of systemd, written out. The service manager
//     sets LISTEN_PID to the pid of the process it starts and LISTEN_FDS to how many sockets it
//     passes, from descriptor 3 on (LISTEN_FDNAMES may name them, colon-separated, from
//     FileDescriptorName=). The variables are for that one process only: we unset them, so a
//     program we might start does not believe them, and check LISTEN_PID, because we may have
//     inherited them from a parent that did not unset them.
uds::Fd inherited_listener(std::string& note) {
    constexpr int kListenFdsStart = 3;  // SD_LISTEN_FDS_START: the first inherited descriptor
    auto take = [](const char* name) {
        const char* v = std::getenv(name);
        std::optional<std::string> value;
        if (v != nullptr) value = v;
        unsetenv(name);
        return value;
    };
    const auto pid = take("LISTEN_PID"), fds = take("LISTEN_FDS"), names = take("LISTEN_FDNAMES");
    if (!pid || !fds) return uds::Fd{};  // not socket-activated
    if (*pid != std::to_string(getpid())) {
        uds::log("LISTEN_PID=" + *pid + " is not our pid (" + std::to_string(getpid()) +
                 "): the inherited descriptors are not meant for us; binding a socket ourselves");
        return uds::Fd{};
    }
    const std::size_t count =
        fds->empty() || fds->size() > 4 || fds->find_first_not_of("0123456789") != std::string::npos
            ? SIZE_MAX
            : std::stoul(*fds);
    if (count == SIZE_MAX)
        throw uds::Failure("LISTEN_FDS='" + *fds + "' is not a count of descriptors");
    if (count == 0) return uds::Fd{};
    for (int fd = kListenFdsStart; fd < kListenFdsStart + static_cast<int>(count); ++fd)
        if (fcntl(fd, F_SETFD, FD_CLOEXEC) == -1)  // EBADF: nothing was passed there
            throw uds::Failure("LISTEN_FDS=" + *fds + ", but descriptor " + std::to_string(fd) +
                               " is not open: nothing was passed there");
    note = "socket activation: LISTEN_PID is our pid, LISTEN_FDS=" + *fds +
           (names ? ", LISTEN_FDNAMES=" + *names : "");
    for (int fd = kListenFdsStart + 1; fd < kListenFdsStart + static_cast<int>(count); ++fd)
        close(fd);  // we serve one socket; the service manager keeps its own copies
    return uds::Fd{kListenFdsStart};
}

// S2. check: a unit file can pass anything (ListenDatagram=, Accept=yes passes one accepted
//     connection, ListenFIFO= a pipe). Serving the wrong thing would fail in strange ways later;
//     refuse now with one line that says what came instead.
void check_inherited(int fd) {
    auto option = [fd](int name, const char* what) {
        int value = 0;
        socklen_t len = sizeof value;
        if (getsockopt(fd, SOL_SOCKET, name, &value, &len) == -1) {
            if (errno == ENOTSOCK || errno == EBADF)
                throw uds::Failure("descriptor 3 from LISTEN_FDS is not a socket (" +
                                       std::string(std::strerror(errno)) + ")",
                                   "the .socket unit must say ListenStream=");
            throw uds::SysError(errno, std::string("getsockopt ") + what + " on descriptor 3");
        }
        return value;
    };
    if (int domain = option(SO_DOMAIN, "SO_DOMAIN"); domain != AF_UNIX)
        throw uds::Failure("descriptor 3 from LISTEN_FDS is not an AF_UNIX socket (SO_DOMAIN=" +
                               std::to_string(domain) + ")",
                           "ListenStream= must name a path or an @name");
    if (int type = option(SO_TYPE, "SO_TYPE"); type != SOCK_STREAM)
        throw uds::Failure(std::string("descriptor 3 from LISTEN_FDS is ") +
                               (type == SOCK_DGRAM       ? "a datagram socket"
                                : type == SOCK_SEQPACKET ? "a seqpacket socket"
                                                         : "not a stream socket") +
                               " (SO_TYPE=" + std::to_string(type) + "), not a stream",
                           "use ListenStream=, not ListenDatagram= or ListenSequentialPacket=");
    if (option(SO_ACCEPTCONN, "SO_ACCEPTCONN") != 1)
        throw uds::Failure("descriptor 3 from LISTEN_FDS is not listening (SO_ACCEPTCONN=0)",
                           "with Accept=yes systemd passes one connection; this server wants "
                           "the listening socket (Accept=no)");
}

// A fresh directory beside the socket file, mode 0700: nobody but us can reach what is in it.
// The destructor removes what is left (the temporary name, the directory) on every way out.
struct PrivateDir {
    std::string path, inside;
    PrivateDir() = default;
    PrivateDir(const PrivateDir&) = delete;
    PrivateDir& operator=(const PrivateDir&) = delete;
    ~PrivateDir() {
        if (!inside.empty()) unlink(inside.c_str());
        if (!path.empty()) rmdir(path.c_str());
    }
};

[[maybe_unused]] std::string directory_of(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

uds::Fd bind_own_socket(const Options& opt, const uds::Address& addr, uds::SocketFile& file) {
    // S3. socket: as in chapter 01.
    uds::Fd sock{uds::check(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")};
    if (addr.kind() == uds::Address::Kind::Abstract) {  // no file, no mode: chapter 02
        uds::check(bind(sock.get(), addr.sockaddr_ptr(), addr.length()), "bind " + addr.str());
        uds::check(listen(sock.get(), 16), "listen " + addr.str());
        return sock;
    }
    const std::string path = addr.name();
    PrivateDir priv;
    // S4. bind: bind() makes the socket file with mode 0777 minus the umask, at once, and
    //     anything we do to it afterwards comes later: that gap is the window. So the name we
    //     bind is inside a fresh 0700 directory where nobody else can look it up.
    std::string tmpl = directory_of(path) + "/.uds-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr)
        throw uds::SysError(errno, "mkdtemp " + tmpl, "can this user create files there?");
    priv.path = tmpl;
    priv.inside = tmpl + "/s";
    const uds::Address temporary = uds::Address::path(priv.inside);
    uds::check(bind(sock.get(), temporary.sockaddr_ptr(), temporary.length()),
               "bind " + temporary.str());
    // S5. chmod, chown: the file, through its path. (fchmod on the descriptor would change the
    //     socket's own inode and return 0, while the file keeps the umask's mode.)
    if (opt.mode) uds::check(chmod(priv.inside.c_str(), *opt.mode), "chmod " + priv.inside);
    if (opt.group)
        uds::check(chown(priv.inside.c_str(), static_cast<uid_t>(-1), *opt.group),
                   "chown " + priv.inside + " to group " + opt.group_name,
                   "only root, or a member of that group, may give a file to a group");
    // S6. rename: the file appears at its path already finished: mode and group are right
    //     before anybody can find it. RENAME_NOREPLACE: never over an existing file (a live
    //     server's socket, or somebody's data); a stale socket file is checked and removed.
    if (renameat2(AT_FDCWD, priv.inside.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) == -1) {
        if (errno != EEXIST) throw uds::SysError(errno, "rename " + priv.inside + " to " + path);
        uds::remove_stale_socket_file(addr, SOCK_STREAM);
        uds::log("removed stale socket file " + path + " (nobody was listening)");
        uds::check(
            renameat2(AT_FDCWD, priv.inside.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE),
            "rename " + priv.inside + " to " + path);
    }
    priv.inside.clear();           // moved: nothing left to remove but the empty directory
    file = uds::SocketFile{addr};  // remembers the file is ours, for step S13
    if (opt.mode || opt.group) {
        char mode[8];
        struct stat st {};
        uds::check(lstat(path.c_str(), &st), "lstat " + path);
        std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
        uds::log("socket file " + path + ": mode " + mode + ", group " +
                 (opt.group ? opt.group_name : std::to_string(st.st_gid)) +
                 ", set before anyone could connect");
    }
    // S7. listen: last. Until now a connect() to the file was refused (nobody listening).
    uds::check(listen(sock.get(), 16), "listen " + path);
    return sock;
}

// Who is on the other end?
void log_peer(int conn, const Options& opt) {
    // S9. SO_PEERCRED: the peer's pid, uid and gid, as they were at connect(). The pid is
    //     translated into our PID namespace: a peer outside it reads as pid 0.
    ucred cred{};
    socklen_t len = sizeof cred;
    uds::check(getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len), "getsockopt SO_PEERCRED");
    std::string who = "accepted a connection: peer pid=" + std::to_string(cred.pid) +
                      " uid=" + std::to_string(cred.uid) + " gid=" + std::to_string(cred.gid);
    // S10. SO_PEERPIDFD (Linux 6.5): a pidfd for the process that connected, made by the kernel
    //      at connect(), so it cannot name anyone else. Without it, all we have is the pid: a
    //      pidfd_open(pid) now may already be too late.
    int raw = -1;
    socklen_t raw_len = sizeof raw;
    std::string how = "(pidfd from SO_PEERPIDFD)";
    int err = opt.no_peerpidfd ? ENOPROTOOPT : 0;
    if (err == 0 && getsockopt(conn, SOL_SOCKET, SO_PEERPIDFD, &raw, &raw_len) == -1) err = errno;
    if (err == ENOPROTOOPT) {  // a kernel before 6.5 (or --no-peerpidfd): only the pid is left
        how = std::string("(no SO_PEERPIDFD: ") +
              (opt.no_peerpidfd ? "turned off" : std::strerror(err)) + "; pidfd_open(" +
              std::to_string(cred.pid) + ") after accept, so that pid may name another " +
              "process by now)";
        raw = cred.pid > 0 ? static_cast<int>(syscall(SYS_pidfd_open, cred.pid, 0)) : -1;
        if (raw == -1 && cred.pid > 0)
            how += std::string(" [pidfd_open: ") + std::strerror(errno) + "]";
    } else if (err != 0) {  // the peer is gone: its old pid must not be turned into a pidfd
        how = std::string("(SO_PEERPIDFD: ") + std::strerror(err) + ")";
        raw = -1;
    }
    uds::Fd pidfd{raw};
    std::string exe = pidfd           ? exe_through_pidfd(pidfd.get())
                      : cred.pid == 0 ? "? (not in our PID namespace)"
                                      : "? (no pidfd)";
    uds::log(who + " exe=" + exe + " " + how);
}

// S11. exe: which process is it? /proc/PID/exe names a process's program, but a bare pid is
//      only a number: the peer may have exited and its pid been given to a new process. A pidfd
//      names the process itself, so: look up the pid the pidfd stands for (its fdinfo "Pid:"
//      line, in the numbering of our /proc), open /proc/PID, and only then ask the pidfd whether
//      its process still lives (poll: readable means it has exited). If it does, the directory
//      we opened is that process, since a pid is reused only after its process is gone.
std::string exe_through_pidfd(int pidfd) {
    FILE* info = std::fopen(("/proc/self/fdinfo/" + std::to_string(pidfd)).c_str(), "re");
    if (info == nullptr) return "? (" + std::string(std::strerror(errno)) + ")";
    char line[256];
    long pid = -2;
    while (std::fgets(line, sizeof line, info) != nullptr)
        if (std::sscanf(line, "Pid: %ld", &pid) == 1) break;
    std::fclose(info);
    if (pid == 0) return "? (not in our PID namespace)";
    if (pid < 0) return "? (the peer has exited)";
    uds::Fd dir{open(("/proc/" + std::to_string(pid)).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)};
    pollfd p{pidfd, POLLIN, 0};
    if (!dir || poll(&p, 1, 0) != 0) return "? (the peer has exited)";
    char exe[4096];
    ssize_t n = readlinkat(dir.get(), "exe", exe, sizeof exe - 1);
    if (n == -1) return "? (" + std::string(std::strerror(errno)) + ")";
    return std::string(exe, static_cast<std::size_t>(n));
}

// Sends all of data before the idle deadline (a client that never reads must not hold us).
void send_within(int conn, std::string_view data, int idle_ms) {
    while (!data.empty()) {
        // S12b. send: MSG_NOSIGNAL (a vanished client is EPIPE, not a fatal SIGPIPE) and
        //       MSG_DONTWAIT (a full buffer is EAGAIN: we wait with a deadline instead).
        ssize_t n = send(conn, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
            data.remove_prefix(static_cast<std::size_t>(n));
            continue;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) uds::check(-1, "send");
        uds::Wait w = uds::wait_writable(conn, idle_ms);
        if (w == uds::Wait::Stop) throw uds::Stopped{};
        if (w == uds::Wait::Timeout)
            throw uds::Failure("the client has not read its replies for " +
                               std::to_string(idle_ms / 1000) + " s");
    }
}

// S12. serve: chapter 01's loop, with a deadline: a client that says nothing (or reads nothing)
//      for --idle-timeout seconds is closed, so one idle client cannot hold the service.
void serve(int conn, int idle_ms) {
    uds::LineFramer framer{uds::kMaxLine};
    std::string line;
    char buf[4096];
    try {
        for (;;) {
            uds::Wait w = uds::wait_readable(conn, idle_ms);
            if (w == uds::Wait::Stop) return;
            if (w == uds::Wait::Timeout) {
                uds::log("idle for " + std::to_string(idle_ms / 1000) +
                         " s: closing the connection");
                return;
            }
            // S12a. read: whatever has arrived; not one message (a stream has no boundaries).
            ssize_t n = read(conn, buf, sizeof buf);
            if (n == -1 && errno == EINTR) continue;
            uds::check(n, "read");
            if (n == 0) {
                if (framer.take_rest(line)) send_within(conn, uds::upcase(line) + "\n", idle_ms);
                uds::log("connection closed");
                return;
            }
            framer.feed({buf, static_cast<std::size_t>(n)});
            for (auto s = framer.next(line); s != uds::LineFramer::Status::NeedMore;
                 s = framer.next(line)) {
                if (s == uds::LineFramer::Status::TooLong) {
                    uds::log("line longer than 4096 bytes: answering ERROR and closing");
                    send_within(conn, uds::kLineTooLong, idle_ms);
                    return;
                }
                send_within(conn, uds::upcase(line) + "\n", idle_ms);
            }
        }
    } catch (const uds::Failure& e) {
        uds::log(std::string(e.what()) + ": closing the connection");
    }
}

Options parse_options(int argc, char** argv) {
    Options opt;
    uds::Cli cli("server", "[-s ADDR] [--mode MODE] [--group NAME] [--idle-timeout SECONDS]",
                 "Upper-cases each line its clients send, one client at a time. Started by\n"
                 "systemd (or systemd-socket-activate) it serves the socket it inherits as\n"
                 "descriptor 3; otherwise it binds ADDR itself.\n"
                 "Default ADDR: $XDG_RUNTIME_DIR/uds-tutorial/07-activation.sock "
                 "(or /tmp/uds-tutorial-UID/...).");
    cli.option('s', "socket", "ADDR", "socket path, or @name for an abstract name",
               [&](const std::string& v) { opt.address = uds::address_argument(v); });
    cli.option(0, "mode", "MODE", "octal mode of the socket file, e.g. 0660 (path sockets)",
               [&](const std::string& v) {
                   if (v.empty() || v.size() > 4 || v.find_first_not_of("01234567") != v.npos ||
                       std::stoul(v, nullptr, 8) > 0777)
                       throw uds::UsageError("--mode: '" + v + "' is not an octal mode 0-0777");
                   opt.mode = static_cast<mode_t>(std::stoul(v, nullptr, 8));
               });
    cli.option(0, "group", "NAME", "group of the socket file (a name or a number)",
               [&](const std::string& v) {
                   if (v.empty()) throw uds::UsageError("--group: the name is empty");
                   std::vector<char> buf(16384);
                   group g{}, *found = nullptr;
                   getgrnam_r(v.c_str(), &g, buf.data(), buf.size(), &found);
                   if (found != nullptr) {
                       opt.group = found->gr_gid;
                   } else if (v.find_first_not_of("0123456789") == std::string::npos) {
                       opt.group =
                           static_cast<gid_t>(uds::parse_number(v, "--group", 0, 0xFFFFFFFEu));
                   } else {
                       throw uds::UsageError("--group: there is no group named '" + v + "'");
                   }
                   opt.group_name = v;
               });
    cli.option(0, "idle-timeout", "SECONDS", "close a client idle this long (default 30)",
               [&](const std::string& v) {
                   opt.idle_ms =
                       static_cast<int>(uds::parse_number(v, "--idle-timeout", 1, 86400)) * 1000;
               });
    cli.option(0, "no-peerpidfd", "",
               "do not use SO_PEERPIDFD: act as on Linux before 6.5 (the fallback); "
               "so does UDS_NO_PEERPIDFD=1 in the environment",
               [&](const std::string&) { opt.no_peerpidfd = true; });
    if (const char* v = std::getenv("UDS_NO_PEERPIDFD"); v != nullptr && *v != '\0' && *v != '0')
        opt.no_peerpidfd = true;
    auto rest = cli.parse(argc, argv);
    if (!rest.empty()) throw uds::UsageError("unexpected argument '" + rest.front() + "'");
    if ((opt.mode || opt.group) && opt.address &&
        opt.address->kind() == uds::Address::Kind::Abstract)
        throw uds::UsageError(
            "--mode and --group need a path socket: an abstract name has no file, so no "
            "permissions (chapter 02 checks SO_PEERCRED instead)");
    return opt;
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("server", argc, argv, run);
}
