// YOUR server.cpp for 07-socket-activation: the exercise starter, generated from the
// reference 07-socket-activation/server.cpp by scripts/make-starter.
// Every TODO is one step of the lesson: write it, then run `make grade-07`;
// the first FAIL names the step to look at. Stuck? One hint at a time:
// 07-socket-activation/exercise/HINTS.md.
//
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
    // TODO S1. listen_fds: take the listening socket systemd passed as descriptor 3 when LISTEN_PID
    //      names this process and LISTEN_FDS is at least 1, and unset the variables.
    //      Read: sd_listen_fds(3), README "S1. listen_fds".
    uds::unwritten("S1", "listen_fds");
    (void)note;
    return uds::Fd{};
}

// S2. check: a unit file can pass anything (ListenDatagram=, Accept=yes passes one accepted
//     connection, ListenFIFO= a pipe). Serving the wrong thing would fail in strange ways later;
//     refuse now with one line that says what came instead.
void check_inherited(int fd) {
    // TODO S2. check: make sure descriptor 3 is an AF_UNIX stream socket that is listening, and end
    //      with one clear line (exit 1) when it is anything else.
    //      Read: getsockopt(2), socket(7) SO_DOMAIN SO_TYPE SO_ACCEPTCONN, README "S2. check".
    uds::unwritten("S2", "check");
    (void)fd;
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
    // TODO S4. bind: bind the socket to a temporary name inside a new directory that only this
    //      process may enter, in the same directory as the final path.
    //      Read: mkdtemp(3), bind(2), unix(7), README "S4. bind".
    uds::unwritten("S4", "bind");
    // TODO S5. chmod: give the socket file exactly the mode from --mode and the group from --group
    //      while it is still out of reach.
    //      Read: chmod(2), chown(2), README "S5. chmod".
    uds::unwritten("S5", "chmod");
    // TODO S6. rename: move the finished socket file to its real path without ever replacing an
    //      existing file, and remove a stale socket file left there by a dead server.
    //      Read: rename(2) RENAME_NOREPLACE, README "S6. rename".
    uds::unwritten("S6", "rename");
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
    // TODO S9. peercred: learn the pid, uid and gid the kernel recorded for the peer when it called
    //      connect().
    //      Read: unix(7) SO_PEERCRED, README "S9. SO_PEERCRED".
    uds::unwritten("S9", "peercred");
    (void)conn;
    ucred cred{};
    std::string who = "accepted a connection: peer pid=" + std::to_string(cred.pid) +
                      " uid=" + std::to_string(cred.uid) + " gid=" + std::to_string(cred.gid);
    // TODO S10. pidfd: get a pidfd for the peer from SO_PEERPIDFD, and when the kernel has none (or
    //      --no-peerpidfd) fall back to pidfd_open(pid), saying in the log that the pid may already
    //      name another process.
    //      Read: unix(7) SO_PEERPIDFD, pidfd_open(2), README "S10. SO_PEERPIDFD".
    uds::unwritten("S10", "pidfd");
    (void)opt;
    uds::Fd pidfd;
    std::string how;
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
    // TODO S11. exe: read the peer's executable from /proc, using the pidfd to make sure /proc/PID
    //      was that process and not a newer one with the same pid.
    //      Read: proc(5) /proc/pid/fdinfo /proc/pid/exe, pidfd_open(2), README "S11. exe".
    uds::unwritten("S11", "exe");
    (void)pidfd;
    return {};
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
