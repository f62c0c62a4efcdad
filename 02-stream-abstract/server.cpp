// 02-stream-abstract/server.cpp - the upper-casing server of chapter 01 on a Linux abstract
// name, one client at a time, serving only the users it was told to serve.
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
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "uds.hpp"

namespace {

// Defined below, after the main line of the lesson. ([[maybe_unused]]: in the exercise starter
// nothing calls refuse and reply until you have written the steps that do.)
[[maybe_unused]] void refuse(int conn, uid_t uid);
void serve(int conn, int idle_seconds);
[[maybe_unused]] void reply(int conn, std::string_view text);

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
    uds::Cli cli("server", "[-s ADDR] [--allow-uid UID]... [--allow-any] [--idle-timeout SECONDS]",
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
    auto rest = cli.parse(argc, argv);
    if (!rest.empty()) throw uds::UsageError("unexpected argument '" + rest.front() + "'");
    // uds::Address checks what we will copy by hand in S2a: not empty, no NUL inside, at most
    // 107 bytes (a path 107 plus its NUL; an abstract name 107 after the leading NUL).
    const uds::Address addr =
        socket_arg ? uds::address_argument(*socket_arg)
                   : uds::Address::abstract("uds-tutorial-" + std::to_string(geteuid()) + "-02");
    uds::install_shutdown_handlers();

    //@S1 socket: create the listening endpoint, an AF_UNIX stream socket that is not inherited by programs we exec | socket(2), unix(7); README "Walkthrough"
    //@hint The family is AF_UNIX and the type SOCK_STREAM; the protocol is 0. One more flag goes into the type so that the descriptor closes itself on exec.
    //@hint SOCK_CLOEXEC. uds::check(rc, "socket") turns -1 into an error that names the call; uds::Fd owns the descriptor.
    // S1. socket: AF_UNIX + SOCK_STREAM is a reliable, ordered byte stream between two processes.
    //     SOCK_CLOEXEC: the descriptor is not inherited by programs we might exec.
    uds::Fd listener{uds::check(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")};
    //@stub uds::Fd listener;
    //@end

    //@S2a name: fill a struct sockaddr_un for addr by hand and compute its exact length; for an abstract name sun_path[0] is '\0', the name follows, and the length counts exactly the bytes used | unix(7) "Abstract sockets"; README "The picture: what sun_path holds"
    //@hint Zero the struct, set sun_family to AF_UNIX. addr.name() gives the name's bytes (without the '@') or the path; addr.kind() says which. Copy the name to sun_path + 1 for an abstract name, to sun_path for a path.
    //@hint The length is offsetof(sockaddr_un, sun_path) + 1 + name length (abstract: no trailing NUL) or + path length + 1 (a path: its NUL). Never sizeof(sockaddr_un): every byte the length counts is part of an abstract name.
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
    //@stub sockaddr_un sa{};
    //@stub socklen_t sa_len = 0;
    //@end

    //@S2b bind: give the listening socket the name you built, with its exact length; keep the result in `bound` (the code after this step explains a failure) | bind(2); README "Walkthrough"
    //@hint bind takes a const sockaddr* (cast &sa) and the length from S2a. Do not check the result with uds::check here: errno is read just below.
    // S2b. bind: give the socket its name. No file is created for an abstract name.
    const int bound = bind(listener.get(), reinterpret_cast<const sockaddr*>(&sa), sa_len);
    //@stub int bound = -1;
    //@end
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

    //@S3 listen: make the bound socket a listening one, so that clients can connect before we accept them | listen(2); README "Walkthrough"
    //@hint listen(fd, backlog): the backlog is how many connections may wait in the queue (16 is plenty here).
    // S3. listen: from now on connect() succeeds even before we accept; up to `backlog`
    //     connections wait in the queue, after that connect() blocks (or fails with EAGAIN).
    uds::check(listen(listener.get(), 16), "listen " + addr.str());
    //@end
    uds::log("peer check: serving " + policy.str());
    uds::log("listening on " + addr.str());

    bool out_of_descriptors = false;  // accept4 failed for want of descriptors or memory
    uds::LogLimit refusals{10};       // log lines a second for refused peers
    while (uds::wait_readable(listener.get()) == uds::Wait::Ready) {
        //@S4 accept4: take the next connection off the queue as a new descriptor that is not inherited across exec | accept4(2); README "Walkthrough"
        //@hint We need neither the client's address (it is unnamed anyway) nor its length: pass nullptr for both.
        //@hint The last argument takes flags: SOCK_CLOEXEC, for the same reason as in S1. Wrap the result in uds::Fd; check it below.
        // S4. accept4: a new descriptor for this one client; the listener keeps listening.
        //     No address buffer: the client is unnamed anyway. SOCK_CLOEXEC as in S1 (plain
        //     accept() cannot set it, and setting it afterwards leaves a window).
        uds::Fd conn{accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC)};
        //@stub uds::Fd conn;
        //@end
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
            //@S4a peer credentials: ask the kernel who is on the other end of conn: the pid, uid and gid it recorded when the peer called connect() | unix(7) "SO_PEERCRED", getsockopt(2); README "Walkthrough"
            //@hint getsockopt at level SOL_SOCKET fills a struct ucred (pid, uid, gid); its length is an in-out socklen_t.
            // S4a. getsockopt(SO_PEERCRED): the kernel recorded the client's pid/uid/gid when
            //      it called connect(); the client cannot choose them.
            ucred peer{};
            socklen_t peer_len = sizeof peer;
            uds::check(getsockopt(conn.get(), SOL_SOCKET, SO_PEERCRED, &peer, &peer_len),
                       "getsockopt SO_PEERCRED");
            //@stub ucred peer{};
            //@end
            const std::string who = "peer pid=" + std::to_string(peer.pid) +
                                    " uid=" + std::to_string(peer.uid) +
                                    " gid=" + std::to_string(peer.gid);

            //@S4b peer check: serve only the uids policy allows; refuse any other peer at once (refuse() below tells it why without waiting) and go back to accept4 | README "Pitfalls"
            //@hint policy.allows(uid) decides. A refused peer gets refuse(conn.get(), uid), then `continue`: conn's destructor closes it.
            //@hint Log the refusal with `who` and whom we serve (policy.str()) through refusals.log(...), which a flood of refused peers cannot turn into a flood of log lines.
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
            //@end
            // Only now do we log a name the peer may have chosen (escaped by uds::log, like
            // every byte a peer controls). getsockname/getpeername show that AF_UNIX has no
            // ports: the accepted socket carries the listener's name, and a client that never
            // called bind() is unnamed.
            uds::log("accepted a connection: " + who +
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
        //@S5a read: read whatever bytes have arrived, feed them to framer, and answer every complete line with reply(); at end of input answer a last unterminated line, then return | read(2); README "Walkthrough"
        //@hint One read() is not one message: it may return half a line or many lines. uds::LineFramer collects bytes (feed) and hands out complete lines (next: Line, NeedMore or TooLong).
        //@hint read() returns 0 when the client has closed its end: framer.take_rest(line) gives a last line without '\n'. A line over 4096 bytes gets uds::kLineTooLong, then return (the connection closes).
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
        //@end
    }
}

// Sends all of text, however many send() calls that takes.
void reply(int conn, std::string_view text) {
    //@S5b send: send all of text on conn; a client that has gone away must cost us an error (EPIPE), never our life (SIGPIPE) | send(2) "MSG_NOSIGNAL"; README "Pitfalls"
    //@hint send() may send less than asked: loop until nothing is left. EINTR means "try again" (unless uds::stop_requested(): then throw uds::Stopped{}).
    //@hint Without MSG_NOSIGNAL a send to a vanished client raises SIGPIPE, which kills the whole server. uds::check(n, "send") turns -1 into an error that drops only this client.
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
    //@stub static_cast<void>(conn);  // until you write the step: "unused parameter"
    //@stub static_cast<void>(text);
    //@end
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("server", argc, argv, run);
}
