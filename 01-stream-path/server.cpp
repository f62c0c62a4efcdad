// 01-stream-path/server.cpp - the upper-casing server on a filesystem path, one client at a time.
//
//   server [-s PATH] [--idle-timeout SECONDS]
//
// The lesson, in the order the calls happen:
//   S1  socket    an AF_UNIX stream endpoint; it has no name yet
//   S2a name      a struct sockaddr_un: the family, the path, and the exact length
//   S2b bind      give the socket that name; bind creates the socket file
//   S3  listen    let the kernel queue incoming connections (the backlog)
//   S4  accept4   take one connection off the queue: a NEW descriptor for that one client
//   S5a read      whatever bytes have arrived: part of a line, or many lines
//   S5b send      the reply, every byte of it, without dying when the client has gone
//   S6  close     the connection, then back to S4
//   S7  unlink    on SIGINT/SIGTERM: remove the name, then close the listener
// Iterative on purpose: while one client is served, the next waits in the listen queue.
#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <optional>
#include <string>

#include "uds.hpp"

namespace {

// Defined below, after the main line of the lesson.
uds::Fd claim_path(const std::string& path, const sockaddr_un& addr, socklen_t len);
void log_peer(int conn);
void serve(int conn, int idle_ms);
bool send_reply(int conn, std::string_view reply, int idle_ms);

int run(int argc, char** argv) {
    std::optional<std::string> path_arg;
    int idle_seconds = 30;
    uds::Cli cli("server", "[-s PATH] [--idle-timeout SECONDS]",
                 "Upper-cases each line its clients send, one client at a time.\n"
                 "Default PATH: $XDG_RUNTIME_DIR/uds-tutorial/01-stream.sock "
                 "(or /tmp/uds-tutorial-UID/01-stream.sock).");
    cli.option('s', "socket", "PATH", "the socket's path in the filesystem",
               [&](const std::string& v) { path_arg = v; });
    cli.option(0, "idle-timeout", "SECONDS",
               "drop a client that neither sends nor reads for this long (default 30)",
               [&](const std::string& v) {
                   idle_seconds =
                       static_cast<int>(uds::parse_number(v, "--idle-timeout", 1, 86400));
               });
    auto rest = cli.parse(argc, argv);
    if (!rest.empty()) throw uds::UsageError("unexpected argument '" + rest.front() + "'");
    if (path_arg && path_arg->empty()) throw uds::UsageError("-s needs a path, not ''");
    if (path_arg && path_arg->front() == '@')
        throw uds::UsageError("-s " + *path_arg + ": abstract names are chapter 02's");
    const std::string path = path_arg ? *path_arg : uds::runtime_dir() + "/01-stream.sock";
    uds::install_shutdown_handlers();  // SIGINT/SIGTERM wake every wait below (signals.hpp)

    //@S1 socket: create the listening socket, an AF_UNIX byte stream that programs we might exec do not inherit | socket(2), unix(7); README "S1. socket"
    //@hint The family is AF_UNIX, the type SOCK_STREAM, the protocol 0. Keep the descriptor in a uds::Fd: it closes it for you.
    //@hint OR SOCK_CLOEXEC into the type. uds::check(rc, "socket") turns -1 into an error that names the call.
    // S1. socket: AF_UNIX + SOCK_STREAM is a reliable, ordered byte stream between two processes
    //     of this machine. SOCK_CLOEXEC: a program we exec does not inherit the descriptor.
    uds::Fd listener{uds::check(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")};
    //@stub uds::Fd listener;
    //@end

    //@S2a name: fill a struct sockaddr_un with the family and the path, and compute its exact length; refuse a path that does not fit with a usage error | unix(7) "Address format"; README "S2a. name"
    //@hint Start from an all-zero sockaddr_un, so the byte after the path is already its NUL. sun_path has room for 108 bytes including that NUL: a longer path must be refused (throw uds::UsageError), never truncated or overflowed.
    //@hint The length counts the bytes used: offsetof(sockaddr_un, sun_path) + the path's length + 1 for its NUL; never sizeof(sockaddr_un).
    // S2a. name: the address is a path. {} zeroes every byte, so the path we copy in is followed
    //      by a NUL. A path that does not fit is refused: truncated, it would name another file.
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path)
        throw uds::UsageError("-s: the path has " + std::to_string(path.size()) +
                              " bytes; sun_path holds at most 107 and a NUL");
    path.copy(addr.sun_path, path.size());
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
    //@stub sockaddr_un addr{};
    //@stub socklen_t len = 0;
    //@end

    // The path must be free for bind. claim_path (below) takes PATH.lock, the file you see next
    // to the socket in ls, and removes a socket file left behind by a server that died.
    uds::Fd lock = claim_path(path, addr, len);

    //@S2b bind: give the listening socket the name you built | bind(2); README "S2b. bind"
    //@hint bind takes a const sockaddr*: pass the address of your sockaddr_un through reinterpret_cast, and your exact length.
    // S2b. bind: give the socket its name. On a path, bind creates a socket file there (ls -l
    //      shows type s). The kernel reads `len` bytes, not sizeof: the length is part of the name.
    uds::check(bind(listener.get(), reinterpret_cast<const sockaddr*>(&addr), len), "bind " + path);
    //@end

    //@S3 listen: let connections queue on the listening socket | listen(2); README "S3. listen"
    //@hint The second argument is the backlog: how many connections may wait for accept. 16 is plenty.
    // S3. listen: from now on connect() succeeds even before we accept: up to the backlog (16),
    //     connections wait in the listen queue. After that, connect() blocks (or EAGAIN).
    uds::check(listen(listener.get(), 16), "listen " + path);
    //@end
    uds::log("listening on " + path);

    uds::LogLimit accept_trouble{1};  // at most one line a second about it
    while (uds::wait_readable(listener.get()) == uds::Wait::Ready) {
        //@S4 accept4: take the next connection off the queue as a new descriptor that programs we might exec do not inherit | accept4(2); README "S4. accept4"
        //@hint accept4 is accept with flags. We need no address buffer: pass nullptr, nullptr.
        //@hint The flag is SOCK_CLOEXEC. Keep the result in a uds::Fd conn (it may be -1: errno says why; the code below checks it).
        // S4. accept4: a new descriptor for this one client; the listener keeps listening.
        //     No address buffer: the client is unnamed anyway (log_peer shows it).
        uds::Fd conn{accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC)};
        //@stub uds::Fd conn;
        //@end
        if (!conn) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno != EMFILE && errno != ENFILE && errno != ENOBUFS && errno != ENOMEM)
                throw uds::SysError(errno, "accept4 " + path);
            // Out of descriptors or memory. The connection stays queued and the listener stays
            // readable, so trying again at once would spin: pause 100 ms first.
            accept_trouble.log("accept4: " + std::string(strerror(errno)) + ": pausing 100 ms");
            poll(nullptr, 0, 100);
            continue;
        }
        try {
            log_peer(conn.get());
            serve(conn.get(), idle_seconds * 1000);
            uds::log("connection closed");
        } catch (const uds::SysError& e) {  // this client failed (ECONNRESET...): the next one
            uds::log(std::string("client dropped: ") + e.what());
        }
        // S6. close: conn's destructor closes the connection here; its client reads 0 (end of
        //     file). Then back to S4 for the next client in the queue.
    }

    uds::log(std::string("stopping on ") + strsignal(uds::stop_signal()));
    //@S7 unlink: remove the socket file, then close the listening socket | unlink(2); README "S7. unlink"
    //@hint Closing a socket never removes its file. unlink(path) does; if the file is already gone (ENOENT), that is fine.
    //@hint Then listener.reset() closes the listener. Order matters: no new client may find a name whose listener is going away.
    // S7. unlink, then close: remove the name first, so no new client can find a listener that
    //     is about to disappear. Only we can be here: we hold PATH.lock.
    if (unlink(path.c_str()) == -1 && errno != ENOENT)
        uds::log("unlink " + path + ": " + strerror(errno));
    listener.reset();
    //@end
    return 0;  // the lock goes with the process: the next server may take the path
}

// Claims `path` for this server, so that bind() finds it free. Returns the lock to keep.
//
// A socket file outlives its socket: a server that died without S7 (SIGKILL, a crash) leaves it,
// and the next bind fails with EADDRINUSE. Removing it blindly could take a live server's name.
// The classic recipe, "connect to it; ECONNREFUSED means nobody listens, so unlink", has a race:
// a server between its bind and its listen refuses connections too, and two servers starting on
// one stale file can both call it stale, the second removing the first one's fresh socket. So
// every server first takes PATH.lock with flock(), and holds it until it exits (the kernel drops
// the lock of a process that dies, however it dies). Holding it, no other server of ours is here.
uds::Fd claim_path(const std::string& path, const sockaddr_un& addr, socklen_t len) {
    const std::string lock_path = path + ".lock";
    uds::Fd lock{open(lock_path.c_str(), O_RDONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600)};
    if (!lock) throw uds::SysError(errno, "open " + lock_path);
    if (flock(lock.get(), LOCK_EX | LOCK_NB) == -1)
        throw uds::Failure(
            path + ": another server is running or starting there (it holds " + lock_path + ")",
            "stop it first, or choose another path with -s");
    struct stat st {};
    if (lstat(path.c_str(), &st) == -1) {
        if (errno == ENOENT) return lock;  // nothing there: the path is free
        throw uds::SysError(errno, "lstat " + path);
    }
    if (!S_ISSOCK(st.st_mode))
        throw uds::Failure(path + " exists and is not a socket", "choose another path with -s");
    // A program that knows nothing of our lock (socat, Python) may still listen there: ask it.
    uds::Fd probe{uds::check(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")};
    if (connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), len) == 0)
        throw uds::Failure(path + ": a server is already listening there", "stop it first");
    if (errno != ECONNREFUSED) throw uds::SysError(errno, "connect " + path);
    uds::check(unlink(path.c_str()), "unlink " + path);
    uds::log("removed stale socket file " + path + " (nobody was listening)");
    return lock;
}

// Who is on the other end? SO_PEERCRED: the peer's pid/uid/gid as they were at connect().
// getsockname/getpeername show that AF_UNIX has no ports: the accepted socket carries the
// listener's path, and a client that never called bind() is unnamed.
void log_peer(int conn) {
    ucred cred{};
    socklen_t cred_len = sizeof cred;
    uds::check(getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len), "SO_PEERCRED");
    uds::log("accepted a connection: peer pid=" + std::to_string(cred.pid) +
             " uid=" + std::to_string(cred.uid) + " gid=" + std::to_string(cred.gid) +
             "; getsockname=" + uds::local_address(conn).str() +
             " getpeername=" + uds::peer_address(conn).str());
}

// Answers every line the client sends, until it closes its end, breaks the rules or idles.
void serve(int conn, int idle_ms) {
    uds::LineFramer framer{uds::kMaxLine};  // cuts the byte stream into lines
    std::string line;
    for (;;) {
        uds::Wait w = uds::wait_readable(conn, idle_ms);
        if (w == uds::Wait::Stop) return;
        if (w == uds::Wait::Timeout) {
            uds::log("client sent nothing for " + std::to_string(idle_ms / 1000) + " s: closing");
            return;
        }
        //@S5a read: read the bytes that have arrived and feed them to the framer; at end of input answer a last line without '\n' and return | read(2); README "S5a. read"
        //@hint read returns what has arrived: maybe half a line, maybe many lines. Give those bytes to framer.feed(); the loop below takes out complete lines. On EINTR just read again.
        //@hint read returns 0 once the client has closed its end: if framer.take_rest(line) gives a last line, send_reply it (upper-cased, with '\n'), then return.
        // S5a. read: whatever bytes have arrived. Not "one message": a stream has no boundaries,
        //      so this may be half a line or many lines. 0 means the client closed its end.
        char buf[4096];
        ssize_t n = read(conn, buf, sizeof buf);
        if (n == -1 && errno == EINTR) continue;
        uds::check(n, "read");
        if (n == 0) {
            if (framer.take_rest(line)) send_reply(conn, uds::upcase(line) + "\n", idle_ms);
            return;
        }
        framer.feed({buf, static_cast<std::size_t>(n)});
        //@end
        for (;;) {  // every complete line in what we have, in order
            auto status = framer.next(line);
            if (status == uds::LineFramer::Status::NeedMore) break;
            if (status == uds::LineFramer::Status::TooLong) {
                uds::log("line longer than 4096 bytes: answering ERROR and closing");
                send_reply(conn, uds::kLineTooLong, idle_ms);
                return;
            }
            if (!send_reply(conn, uds::upcase(line) + "\n", idle_ms)) {
                if (!uds::stop_requested())
                    uds::log("client read nothing for " + std::to_string(idle_ms / 1000) +
                             " s: closing");
                return;
            }
        }
    }
}

// Sends the whole reply. Returns false when we stop waiting for this client: it has not read
// anything for idle_ms, or we were asked to stop.
bool send_reply(int conn, std::string_view reply, int idle_ms) {
    while (!reply.empty()) {
        //@S5b send: send what is left of the reply without blocking, and take off what was sent; a client that has gone must give an error (EPIPE), never kill the server | send(2) MSG_NOSIGNAL, MSG_DONTWAIT; README "S5b. send"
        //@hint send may take only part of the reply: remove what it took (reply.remove_prefix) and let the loop go round. On EINTR just try again. MSG_NOSIGNAL turns "the client has gone" into EPIPE instead of a SIGPIPE that kills the server.
        //@hint Add MSG_DONTWAIT: when the client's buffer is full, send fails with EAGAIN at once; fall through to the wait below. Other errors: throw uds::SysError(errno, "send").
        // S5b. send: MSG_NOSIGNAL: a client that has gone gives EPIPE (the default action of
        //      SIGPIPE would kill us). MSG_DONTWAIT: never block in send: see the wait below.
        ssize_t n = send(conn, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
            reply.remove_prefix(static_cast<std::size_t>(n));  // maybe only part of it
            continue;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN) throw uds::SysError(errno, "send");
        //@end
        // The client's socket buffer is full: it is not reading. Wait until it reads, but not
        // forever: a client that never reads must not hold an iterative server.
        if (uds::wait_writable(conn, idle_ms) != uds::Wait::Ready) return false;
    }
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("server", argc, argv, run);
}
