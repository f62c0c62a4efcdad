// solutions/02-stream-abstract/peer-exe/server.cpp - chapter 02's server, logging each peer's
// program (/proc/PID/exe) next to its uid.
//
// Exercise 5 of chapter 02. The pid from SO_PEERCRED is a number recorded at connect(): by the
// time we read /proc/PID the peer may have exited and its pid been given to another process, so
// "/proc/PID/exe" may name somebody else's program. SO_PEERPIDFD (Linux 6.5) gives a pidfd that
// refers to the connecting process itself: read /proc, then ask the pidfd whether that process
// still lives; if it does, /proc/PID was it (a pid is reused only after its process is gone).
// --exe-by-pid reads /proc/PID/exe without that check, to show the race (check.sh does).
//
// The lesson, in the order the calls happen (the same step numbers as chapter 01):
//   S1   socket    make an AF_UNIX stream endpoint; it has no name yet
//   S2a  name      struct sockaddr_un filled by hand: sun_path[0] == '\0' and the name after
//                  it; the length offsetof(sun_path) + 1 + name length is where the name ends
//                  (never sizeof)
//   S2b  bind      give the socket that name. No file is created.
//   S3   listen    let the kernel queue incoming connections (the backlog)
//   S4   accept4   take one connection off the queue: a NEW descriptor for that one client
//   S4a  getsockopt(SO_PEERCRED)  an abstract name has no owner and no permission bits:
//                  anyone may connect, so ask the kernel who this peer is...
//   S4b  the peer check            ...and refuse the uids we do not serve, without waiting
//   S5a  read      collect bytes and cut them into lines (a stream has no message boundaries)
//   S5b  send      each reply, with MSG_NOSIGNAL
//   S6   close     the connection, then back to S4
//   S7   close     on SIGINT/SIGTERM: the name disappears with the listener; nothing to unlink
//
// It is iterative on purpose: while one client is being served, the next one waits in the
// listen queue. So no client may hold it forever: a connection that stays idle (sends nothing,
// or does not read its replies) for --idle-timeout seconds is closed. Chapter 04 serves many at
// once.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "uds.hpp"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77  // Linux 6.5; older C library headers do not name it yet
#endif

namespace {

// Defined below, after the main line of the lesson. ([[maybe_unused]]: in the exercise starter
// nothing calls refuse and reply until you have written the steps that do.)
[[maybe_unused]] void refuse(int conn, uid_t uid);
void serve(int conn, int idle_seconds);
[[maybe_unused]] void reply(int conn, std::string_view text);
std::string peer_exe(int conn, const ucred& peer, bool by_pid);

// Whom we serve. A socket file has an owner and mode bits, and connect() needs write
// permission on it; an abstract name has neither, so the server must decide for itself.
struct PeerPolicy {
    bool any = false;         // --allow-any
    std::vector<uid_t> uids;  // our own uid, then each --allow-uid

    [[nodiscard]] bool allows(uid_t uid) const {
        return any || std::find(uids.begin(), uids.end(), uid) != uids.end();
    }
    [[nodiscard]] std::string str() const {
        if (any) return "any uid (--allow-any)";
        std::string s;
        for (uid_t u : uids)
            s += (s.empty() ? "uid " : ", ") + std::to_string(u);
        return s;
    }
};

int run(int argc, char** argv) {
    std::optional<std::string> socket_arg;  // unset: the default name; "" is a usage error
    PeerPolicy policy{false, {geteuid()}};
    int idle_seconds = 30;
    bool exe_by_pid = false;
    uds::Cli cli("server",
                 "[-s ADDR] [--allow-uid UID]... [--allow-any] [--idle-timeout SECONDS] "
                 "[--exe-by-pid]",
                 "Upper-cases each line its clients send, one client at a time.\n"
                 "Default ADDR: @uds-tutorial-UID-02 (an abstract name; Linux only).\n"
                 "Serves only clients running as its own uid, unless told otherwise.");
    cli.option('s', "socket", "ADDR", "@name for an abstract name, or a socket path",
               [&](const std::string& v) { socket_arg = v; });
    cli.option(0, "allow-uid", "UID", "also serve clients running as UID (repeatable)",
               [&](const std::string& v) {
                   policy.uids.push_back(
                       static_cast<uid_t>(uds::parse_number(v, "--allow-uid", 0, 4294967294)));
               });
    cli.option(0, "allow-any", "", "serve every client, whatever its uid",
               [&](const std::string&) { policy.any = true; });
    cli.option(0, "idle-timeout", "SECONDS",
               "close a connection that sends nothing, or reads none of its replies, for "
               "SECONDS (default 30)",
               [&](const std::string& v) {
                   idle_seconds =
                       static_cast<int>(uds::parse_number(v, "--idle-timeout", 1, 86400));
               });
    cli.option(0, "exe-by-pid", "",
               "read /proc/PID/exe by the bare pid, without the pidfd check (shows the race)",
               [&](const std::string&) { exe_by_pid = true; });
    auto rest = cli.parse(argc, argv);
    if (!rest.empty()) throw uds::UsageError("unexpected argument '" + rest.front() + "'");
    // uds::Address checks what we will copy by hand in S2a: not empty, no NUL inside, at most
    // 107 bytes (a path 107 plus its NUL; an abstract name 107 after the leading NUL).
    const uds::Address addr =
        socket_arg ? uds::address_argument(*socket_arg)
                   : uds::Address::abstract("uds-tutorial-" + std::to_string(geteuid()) + "-02");
    uds::install_shutdown_handlers();

    // S1. socket: AF_UNIX + SOCK_STREAM is a reliable, ordered byte stream between two processes.
    //     SOCK_CLOEXEC: the descriptor is not inherited by programs we might exec.
    uds::Fd listener{uds::check(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")};

    // S2a. name: struct sockaddr_un is the family (2 bytes) and sun_path[108]; the length we
    //      pass says how many of its bytes are the address.
    //      An abstract name: sun_path[0] = '\0', the name's bytes after it, and the length
    //      offsetof(sun_path) + 1 + name length. The kernel does not look for a terminating
    //      NUL: every byte counted is part of the name, so sizeof(sockaddr_un) would add
    //      100-odd NULs to it and nobody using the exact length could find us (erratum E4).
    //      A path (-s PATH, as in chapter 01): the path and its NUL, offsetof + length + 1.
    sockaddr_un sa{};  // all zero: a path copied in below is followed by its NUL
    sa.sun_family = AF_UNIX;
    const std::string name = addr.name();
    socklen_t sa_len = 0;
    if (addr.kind() == uds::Address::Kind::Abstract) {
        sa.sun_path[0] = '\0';
        std::memcpy(sa.sun_path + 1, name.data(), name.size());
        sa_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    } else {
        std::memcpy(sa.sun_path, name.data(), name.size());
        sa_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + 1);
    }

    // S2b. bind: give the socket its name. No file is created for an abstract name.
    const int bound = bind(listener.get(), reinterpret_cast<const sockaddr*>(&sa), sa_len);
    // No file is created for an abstract name: the name lives only as long as a socket holds
    // it, so EADDRINUSE always means a live socket has it now; there is no stale file to clean.
    // (With -s PATH a stale file is handled as in chapter 01.)
    if (bound == -1) {
        if (errno == EADDRINUSE && addr.kind() == uds::Address::Kind::Abstract)
            throw uds::SysError(EADDRINUSE, "bind " + addr.str(),
                                "another server holds this name; an abstract name is never "
                                "stale, so stop that server or choose another name with -s @NAME");
        if (errno != EADDRINUSE || addr.kind() != uds::Address::Kind::Path)
            throw uds::SysError(errno, "bind " + addr.str());
        uds::remove_stale_socket_file(addr, SOCK_STREAM);
        uds::log("removed stale socket file " + addr.str() + " (nobody was listening)");
        uds::check(bind(listener.get(), reinterpret_cast<const sockaddr*>(&sa), sa_len),
                   "bind " + addr.str());
    }
    uds::SocketFile socket_file{addr};  // only for -s PATH: abstract names have no file

    // S3. listen: from now on connect() succeeds even before we accept; up to `backlog`
    //     connections wait in the queue, after that connect() blocks (or fails with EAGAIN).
    uds::check(listen(listener.get(), 16), "listen " + addr.str());
    uds::log("peer check: serving " + policy.str());
    uds::log("listening on " + addr.str());

    bool out_of_descriptors = false;  // accept4 failed for want of descriptors or memory
    uds::LogLimit refusals{10};       // log lines a second for refused peers
    while (uds::wait_readable(listener.get()) == uds::Wait::Ready) {
        // S4. accept4: a new descriptor for this one client; the listener keeps listening.
        //     No address buffer: the client is unnamed anyway. SOCK_CLOEXEC as in S1 (plain
        //     accept() cannot set it, and setting it afterwards leaves a window).
        uds::Fd conn{accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC)};
        if (!conn) {
            const int err = errno;
            if (err == EINTR || err == ECONNABORTED) continue;
            if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM)
                throw uds::SysError(err, "accept4 " + addr.str());
            // Out of descriptors (EMFILE: ours, ENFILE: the system's) or memory. The connection
            // stays in the queue and the listener stays readable: trying again at once would
            // spin at 100% CPU, exiting would end the service. Say so once, then try again
            // every 100 ms (or stop at once on SIGTERM); the client waits in the queue.
            if (!out_of_descriptors)
                uds::log(std::string("accept4: ") + std::strerror(err) +
                         ": trying again every 100 ms; clients wait in the queue");
            out_of_descriptors = true;
            uds::wait_readable(uds::stop_fd(), 100);
            continue;
        }
        if (out_of_descriptors) uds::log("accept4 works again");
        out_of_descriptors = false;
        try {
            // S4a. getsockopt(SO_PEERCRED): the kernel recorded the client's pid/uid/gid when
            //      it called connect(); the client cannot choose them.
            ucred peer{};
            socklen_t peer_len = sizeof peer;
            uds::check(getsockopt(conn.get(), SOL_SOCKET, SO_PEERCRED, &peer, &peer_len),
                       "getsockopt SO_PEERCRED");
            const std::string who = "peer pid=" + std::to_string(peer.pid) +
                                    " uid=" + std::to_string(peer.uid) +
                                    " gid=" + std::to_string(peer.gid);

            // S4b. the peer check: anyone may connect to an abstract name, so we decide here.
            //      A refused peer gets one line saying why, then we close at once: it must not
            //      cost the peers we do serve any time. Its log line holds numbers only, and
            //      at most 10 of them a second are written: a peer could multiply them.
            if (!policy.allows(peer.uid)) {
                refusals.log("refused a connection: " + who + ": serving " + policy.str() +
                             " (widen with --allow-uid UID or --allow-any)");
                refuse(conn.get(), peer.uid);
                continue;  // S6. close: conn's destructor closes the refused connection
            }
            // Only now do we log a name the peer may have chosen (escaped by uds::log, like
            // every byte a peer controls). getsockname/getpeername show that AF_UNIX has no
            // ports: the accepted socket carries the listener's name, and a client that never
            // called bind() is unnamed.
            uds::log("accepted a connection: " + who +
                     " exe=" + peer_exe(conn.get(), peer, exe_by_pid) +
                     "; getsockname=" + uds::local_address(conn.get()).str() +
                     " getpeername=" + uds::peer_address(conn.get()).str());
            // The idle deadline for our replies: a send() that cannot go on for that long
            // (the client stopped reading) fails with EAGAIN instead of blocking forever.
            const timeval send_timeout{idle_seconds, 0};
            uds::check(
                setsockopt(conn.get(), SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout),
                "setsockopt SO_SNDTIMEO");
            serve(conn.get(), idle_seconds);
            uds::log("connection closed");
        } catch (const uds::SysError& e) {  // this client failed (EPIPE, ECONNRESET): next one
            if (e.code_value() == EAGAIN || e.code_value() == EWOULDBLOCK)
                uds::log("the client read none of its replies for " + std::to_string(idle_seconds) +
                         " s: closing it (--idle-timeout)");
            else
                uds::log("client dropped: " + uds::describe(e));
        } catch (const uds::Stopped&) {
        }
        // S6. close: conn's destructor closes the connection here.
    }

    // S7. close: an abstract name belongs to the socket, not to the filesystem. When the last
    //     descriptor of the listener is closed (or the process dies, even by SIGKILL) the
    //     kernel frees the name at once; there is nothing to unlink. (-s PATH: unlink first.)
    uds::log(std::string("stopping on ") + strsignal(uds::stop_signal()));
    socket_file.unlink_if_ours();
    listener.reset();
    return 0;
}

// Which program is the peer running? Read through a pidfd, so that the answer is never another
// process's program.
std::string exe_through_pidfd(int pidfd);

std::string peer_exe(int conn, const ucred& peer, bool by_pid) {
    if (by_pid) {  // the race, on purpose: whoever has this pid NOW
        char exe[4096];
        const std::string link = "/proc/" + std::to_string(peer.pid) + "/exe";
        const ssize_t n = readlink(link.c_str(), exe, sizeof exe - 1);
        if (n == -1) return "? (" + std::string(std::strerror(errno)) + ")";
        return std::string(exe, static_cast<std::size_t>(n)) + " (by pid, unchecked)";
    }
    // SO_PEERPIDFD: a pidfd for the process that called connect(), made by the kernel.
    int raw = -1;
    socklen_t len = sizeof raw;
    if (getsockopt(conn, SOL_SOCKET, SO_PEERPIDFD, &raw, &len) == -1) {
        if (errno == ENOPROTOOPT) return "? (no SO_PEERPIDFD: Linux 6.5 or later)";
        if (errno == ESRCH) return "? (the peer has exited)";
        return "? (SO_PEERPIDFD: " + std::string(std::strerror(errno)) + ")";
    }
    uds::Fd pidfd{raw};
    return exe_through_pidfd(pidfd.get());
}

// The pid the pidfd stands for (its fdinfo "Pid:" line: -1 once the process is gone, 0 outside
// our PID namespace), /proc/PID opened, THEN the pidfd asked whether its process still lives
// (poll: readable means it has exited). Still alive: the directory we opened is that process.
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
    const ssize_t n = readlinkat(dir.get(), "exe", exe, sizeof exe - 1);
    if (n == -1) return "? (" + std::string(std::strerror(errno)) + ")";
    return std::string(exe, static_cast<std::size_t>(n));
}

// Tells a refused peer why, then lets the caller close, without ever waiting for the peer:
// every call here is non-blocking, so a refused peer (or twenty of them, holding their
// connections open) cannot hold up the one-at-a-time server.
// Closing a socket that still has unread data resets the connection: the peer would read our
// line and then fail with ECONNRESET instead of a clean end of file. So we first drop what it
// has already sent (up to 64 KiB, without waiting for more), then shutdown(SHUT_WR): its next
// read returns 0 right after our line.
void refuse(int conn, uid_t uid) {
    const std::string line = "ERROR not allowed (uid " + std::to_string(uid) + ")\n";
    // An empty socket buffer always has room for one short line; MSG_DONTWAIT just in case.
    [[maybe_unused]] ssize_t sent =
        send(conn, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    char sink[4096];
    for (int i = 0; i < 16 && recv(conn, sink, sizeof sink, MSG_DONTWAIT) > 0; ++i) {
    }
    shutdown(conn, SHUT_WR);
}

// Answers every line the client sends, until it closes its end, breaks the rules, or stays
// idle for idle_seconds.
void serve(int conn, int idle_seconds) {
    uds::LineFramer framer{uds::kMaxLine};
    std::string line;
    for (;;) {
        const uds::Wait ready = uds::wait_readable(conn, idle_seconds * 1000);
        if (ready == uds::Wait::Stop) throw uds::Stopped{};
        if (ready == uds::Wait::Timeout) {
            uds::log("the client sent nothing for " + std::to_string(idle_seconds) +
                     " s: closing it (--idle-timeout)");
            return;
        }
        // S5a. read: whatever bytes have arrived. Not "one message": a stream has no boundaries,
        //      so this may be half a line or many lines. 0 means the client closed its end.
        char buf[4096];
        const ssize_t n = read(conn, buf, sizeof buf);
        if (n == -1 && errno == EINTR) continue;
        uds::check(n, "read");
        if (n == 0) {
            if (framer.take_rest(line)) reply(conn, uds::upcase(line) + "\n");
            return;
        }
        framer.feed({buf, static_cast<std::size_t>(n)});
        for (;;) {
            const auto status = framer.next(line);
            if (status == uds::LineFramer::Status::NeedMore) break;
            if (status == uds::LineFramer::Status::TooLong) {
                uds::log("line longer than 4096 bytes: answering ERROR and closing");
                reply(conn, uds::kLineTooLong);
                return;
            }
            reply(conn, uds::upcase(line) + "\n");
        }
    }
}

// Sends all of text, however many send() calls that takes.
void reply(int conn, std::string_view text) {
    // S5b. send: a send may be short, so loop. MSG_NOSIGNAL: a client that vanished gives EPIPE
    //      instead of a SIGPIPE that would kill the server. A client that stops reading makes
    //      send() block until SO_SNDTIMEO (the idle timeout) turns it into EAGAIN.
    while (!text.empty()) {
        const ssize_t n = send(conn, text.data(), text.size(), MSG_NOSIGNAL);
        if (n == -1 && errno == EINTR) {
            if (uds::stop_requested()) throw uds::Stopped{};
            continue;
        }
        uds::check(n, "send");
        text.remove_prefix(static_cast<std::size_t>(n));
    }
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("server", argc, argv, run);
}
