// YOUR server.cpp for 02-stream-abstract: the exercise starter, generated from the
// reference 02-stream-abstract/server.cpp by scripts/make-starter.
// Every TODO is one step of the lesson: write it, then run `make grade-02`;
// the first FAIL names the step to look at. Stuck? One hint at a time:
// 02-stream-abstract/exercise/HINTS.md.
//
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

    // TODO S1. socket: create the listening endpoint, an AF_UNIX stream socket that is not
    //      inherited by programs we exec.
    //      Read: socket(2), unix(7); README "Walkthrough".
    uds::unwritten("S1", "socket");
    uds::Fd listener;

    // TODO S2a. name: fill a struct sockaddr_un for addr by hand and compute its exact length; for
    //      an abstract name sun_path[0] is '\0', the name follows, and the length counts exactly
    //      the bytes used.
    //      Read: unix(7) "Abstract sockets"; README "The picture: what sun_path holds".
    uds::unwritten("S2a", "name");
    sockaddr_un sa{};
    socklen_t sa_len = 0;

    // TODO S2b. bind: give the listening socket the name you built, with its exact length; keep the
    //      result in `bound` (the code after this step explains a failure).
    //      Read: bind(2); README "Walkthrough".
    uds::unwritten("S2b", "bind");
    int bound = -1;
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

    // TODO S3. listen: make the bound socket a listening one, so that clients can connect before we
    //      accept them.
    //      Read: listen(2); README "Walkthrough".
    uds::unwritten("S3", "listen");
    uds::log("peer check: serving " + policy.str());
    uds::log("listening on " + addr.str());

    bool out_of_descriptors = false;  // accept4 failed for want of descriptors or memory
    uds::LogLimit refusals{10};       // log lines a second for refused peers
    while (uds::wait_readable(listener.get()) == uds::Wait::Ready) {
        // TODO S4. accept4: take the next connection off the queue as a new descriptor that is not
        //      inherited across exec.
        //      Read: accept4(2); README "Walkthrough".
        uds::unwritten("S4", "accept4");
        uds::Fd conn;
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
            // TODO S4a. peer credentials: ask the kernel who is on the other end of conn: the pid,
            //      uid and gid it recorded when the peer called connect().
            //      Read: unix(7) "SO_PEERCRED", getsockopt(2); README "Walkthrough".
            uds::unwritten("S4a", "peer credentials");
            ucred peer{};
            const std::string who = "peer pid=" + std::to_string(peer.pid) +
                                    " uid=" + std::to_string(peer.uid) +
                                    " gid=" + std::to_string(peer.gid);

            // TODO S4b. peer check: serve only the uids policy allows; refuse any other peer at
            //      once (refuse() below tells it why without waiting) and go back to accept4.
            //      Read: README "Pitfalls".
            uds::unwritten("S4b", "peer check");
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
        // TODO S5a. read: read whatever bytes have arrived, feed them to framer, and answer every
        //      complete line with reply(); at end of input answer a last unterminated line, then
        //      return.
        //      Read: read(2); README "Walkthrough".
        uds::unwritten("S5a", "read");
    }
}

// Sends all of text, however many send() calls that takes.
void reply(int conn, std::string_view text) {
    // TODO S5b. send: send all of text on conn; a client that has gone away must cost us an error
    //      (EPIPE), never our life (SIGPIPE).
    //      Read: send(2) "MSG_NOSIGNAL"; README "Pitfalls".
    uds::unwritten("S5b", "send");
    static_cast<void>(conn);  // until you write the step: "unused parameter"
    static_cast<void>(text);
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("server", argc, argv, run);
}
