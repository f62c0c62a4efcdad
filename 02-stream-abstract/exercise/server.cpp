// 02-stream-abstract/exercise/server.cpp - YOUR server: fill in the steps marked TODO.
//
// It compiles as it is, and fails the chapter's tests (make grade-02
// STUDENT=02-stream-abstract/exercise) with test names that say which step is missing:
// Ch02Steps.ServerStep1to3_..., ServerStep2_Bind_UsesTheExactLength..., ServerStep4b_...
// The reference solution is ../server.cpp; try without it first.
//
// (original header:) the upper-casing server of chapter 01 on a Linux abstract name, one
// client at a time, serving only the users it was told to serve.
//
// The lesson, in the order the calls happen (each step is numbered below):
//   1. socket   make an AF_UNIX stream endpoint; it has no name yet
//   2. bind     give it a name: an abstract name (sun_path[0] == '\0'); no file is created
//   3. listen   let the kernel queue incoming connections (the backlog)
//   4. accept4  take one connection off the queue: a NEW descriptor for that one client
//      4b. getsockopt SO_PEERCRED: an abstract name has no permissions, anyone may connect;
//          so ask the kernel who this peer is
//      4c. the decision: refuse the uids we do not serve, with one exact line, then shutdown
//   5. read / send    serve that client until it closes its end
//   6. close    the connection, then back to 4
//   7. close    on SIGINT/SIGTERM: the name disappears with the listener; nothing to unlink
//
// It is iterative on purpose: while one client is being served, the next one waits in the
// listen queue. Chapter 04 serves many at once.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <string>
#include <vector>

#include "uds.hpp"

namespace {

// Defined below, after the main line of the lesson.
ucred log_peer(int conn);
void refuse(int conn, uid_t uid);
void serve(int conn);

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
    std::string socket_arg;
    PeerPolicy policy{false, {geteuid()}};
    uds::Cli cli("server", "[-s ADDR] [--allow-uid UID]... [--allow-any]",
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
    auto rest = cli.parse(argc, argv);
    if (!rest.empty()) throw uds::UsageError("unexpected argument '" + rest.front() + "'");
    const uds::Address addr =
        socket_arg.empty()
            ? uds::Address::abstract("uds-tutorial-" + std::to_string(geteuid()) + "-02")
            : uds::address_argument(socket_arg);
    uds::install_shutdown_handlers();

    // 1. socket: AF_UNIX + SOCK_STREAM is a reliable, ordered byte stream between two processes.
    //    SOCK_CLOEXEC: the descriptor is not inherited by programs we might exec.
    // TODO(step 1): uds::Fd listener{uds::check(socket(...), "socket")};
    uds::Fd listener;

    // 2. bind: give the socket its name. An abstract name is sun_path[0] == '\0' followed by
    //    the name, and the length says where it ends: offsetof(sun_path) + 1 + name length.
    //    Every byte counted is part of the name, so never pass sizeof(sockaddr_un) here.
    //    No file is created: the name lives only as long as a socket holds it, so EADDRINUSE
    //    always means a live socket has it now; there is no stale file to clean up.
    //    (With -s PATH we bind a path instead, and a stale file is handled as in chapter 01.)
    //    addr already holds the filled-in sockaddr_un (uds::Address::abstract wrote the NUL and
    //    the name's bytes); addr.length() is the exact length: for -s @demo, 2 + 1 + 4 = 7.
    // TODO(step 2): int bound = bind(listener.get(), addr.sockaddr_ptr(), addr.length());
    //               Try sizeof(sockaddr_un) as the length once, and see which test fails.
    int bound = 0;
    if (bound == -1) {
        if (errno == EADDRINUSE && addr.kind() == uds::Address::Kind::Abstract)
            throw uds::SysError(EADDRINUSE, "bind " + addr.str(),
                                "another server holds this name; an abstract name is never "
                                "stale, so stop that server or choose another name with -s @NAME");
        if (errno != EADDRINUSE || addr.kind() != uds::Address::Kind::Path)
            throw uds::SysError(errno, "bind " + addr.str());
        uds::remove_stale_socket_file(addr, SOCK_STREAM);
        uds::log("removed stale socket file " + addr.str() + " (nobody was listening)");
        uds::check(bind(listener.get(), addr.sockaddr_ptr(), addr.length()), "bind " + addr.str());
    }
    uds::SocketFile socket_file{addr};  // only for -s PATH: abstract names have no file

    // 3. listen: from now on connect() succeeds even before we accept; up to `backlog`
    //    connections wait in the queue, after that connect() blocks (or fails with EAGAIN).
    // TODO(step 3): listen(listener.get(), 16), checked with uds::check
    uds::log("peer check: serving " + policy.str());
    uds::log("listening on " + addr.str());

    while (uds::wait_readable(listener.get()) == uds::Wait::Ready) {
        // 4. accept4: a new descriptor for this one client; the listener keeps listening.
        //    We pass no address buffer: the client is unnamed anyway (see log_peer).
        // TODO(step 4): uds::Fd conn{accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC)};
        uds::Fd conn;
        errno = ENOSYS;  // so that the placeholder fails at once instead of looping
        if (!conn && (errno == EINTR || errno == ECONNABORTED)) continue;
        if (!conn) uds::check(-1, "accept4 " + addr.str());
        try {
            // 4b. getsockopt(SO_PEERCRED) (in log_peer): the kernel recorded the client's
            //     pid/uid/gid when it called connect(); the client cannot fake them. A refused
            //     peer gets one line saying why, then we close; the next client is served.
            const ucred peer = log_peer(conn.get());
            // TODO(step 4c): refuse the peers the policy does not allow: policy.allows(peer.uid)
            //                (the block below is written; it only needs the right condition)
            if (false) {
                uds::log("refused uid " + std::to_string(peer.uid) + ": serving " + policy.str() +
                         " (widen with --allow-uid UID or --allow-any)");
                refuse(conn.get(), peer.uid);
                continue;  // 6. close: conn's destructor closes the refused connection
            }
            serve(conn.get());
            uds::log("connection closed");
        } catch (const uds::SysError& e) {  // this client failed (EPIPE, ECONNRESET): next one
            uds::log("client dropped: " + uds::describe(e));
        } catch (const uds::Stopped&) {
        }
        // 6. close: conn's destructor closes the connection here.
    }

    // 7. close: an abstract name belongs to the socket, not to the filesystem. When the last
    //    descriptor of the listener is closed (or the process dies, even by SIGKILL) the kernel
    //    frees the name at once; there is nothing to unlink. (-s PATH: unlink first, as in 01.)
    uds::log(std::string("stopping on ") + strsignal(uds::stop_signal()));
    socket_file.unlink_if_ours();
    listener.reset();
    return 0;
}

// Who is on the other end? SO_PEERCRED gives the peer's pid/uid/gid as they were at connect().
// getsockname/getpeername show that AF_UNIX has no ports: the accepted socket carries the
// listener's name, and a client that never called bind() is unnamed.
ucred log_peer(int conn) {
    ucred cred{};
    socklen_t len = sizeof cred;
    // TODO(step 4b): getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len), checked with
    //                uds::check. Until then this pretends that every peer is you (pid 0).
    cred.uid = geteuid();
    cred.gid = getegid();
    (void)len;
    uds::log("accepted a connection: peer pid=" + std::to_string(cred.pid) +
             " uid=" + std::to_string(cred.uid) + " gid=" + std::to_string(cred.gid) +
             "; getsockname=" + uds::local_address(conn).str() +
             " getpeername=" + uds::peer_address(conn).str());
    return cred;
}

// Tells a refused peer why, then ends the connection in order. Closing at once would be rude to
// a peer that has already sent its request: closing a socket with unread data makes the kernel
// reset the connection, and the peer's read fails with ECONNRESET instead of returning 0 after
// our line. So: send the line, shutdown(SHUT_WR) (the peer's read returns 0 right after it),
// then discard what the peer sends until it closes, for half a second and 64 KiB at most.
void refuse(int conn, uid_t uid) {
    // TODO(step 4c): send exactly "ERROR not allowed (uid N)\n" with uds::write_all, then
    //                shutdown(conn, SHUT_WR), checked with uds::check.
    (void)uid;
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
    char buf[4096];
    for (std::size_t discarded = 0; discarded < 65536;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        give_up - std::chrono::steady_clock::now())
                        .count();
        if (left <= 0 || uds::wait_readable(conn, static_cast<int>(left)) != uds::Wait::Ready)
            return;
        ssize_t n = read(conn, buf, sizeof buf);
        if (n == -1 && errno == EINTR) continue;
        if (n <= 0) return;  // the peer has closed its end (or is gone): we may close ours
        discarded += static_cast<std::size_t>(n);
    }
}

// Answers every line the client sends, until it closes its end or breaks the rules.
void serve(int conn) {
    uds::LineFramer framer{uds::kMaxLine};
    std::string line;
    char buf[4096];
    while (uds::wait_readable(conn) == uds::Wait::Ready) {
        // 5a. read: whatever bytes have arrived. Not "one message": a stream has no boundaries,
        //     so this may be half a line or many lines. 0 means the client closed its end.
        // TODO(step 5a): ssize_t n = read(conn, buf, sizeof buf);
        ssize_t n = 0;
        (void)buf;
        if (n == -1 && errno == EINTR) continue;
        uds::check(n, "read");
        if (n == 0) {
            if (framer.take_rest(line)) uds::write_all(conn, uds::upcase(line) + "\n");
            return;
        }
        framer.feed({buf, static_cast<std::size_t>(n)});
        for (;;) {
            auto status = framer.next(line);
            if (status == uds::LineFramer::Status::NeedMore) break;
            if (status == uds::LineFramer::Status::TooLong) {
                uds::log("line longer than 4096 bytes: answering ERROR and closing");
                uds::write_all(conn, uds::kLineTooLong);
                return;
            }
            // 5b. send: the reply. write_all calls send() until every byte is out, with
            //     MSG_NOSIGNAL: a client that vanished gives EPIPE instead of a fatal SIGPIPE.
            // TODO(step 5b): uds::write_all(conn, uds::upcase(line) + "\n");
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("server", argc, argv, run);
}
