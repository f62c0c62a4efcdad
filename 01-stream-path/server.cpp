// 01-stream-path/server.cpp - an upper-casing server on a filesystem path, one client at a time.
//
// The lesson, in the order the calls happen (each step is numbered below):
//   1. socket   make an AF_UNIX stream endpoint; it has no name yet
//   2. bind     give it a name: a path; bind creates the socket file there
//   3. listen   let the kernel queue incoming connections (the backlog)
//   4. accept4  take one connection off the queue: a NEW descriptor for that one client
//   5. read / send    serve that client until it closes its end
//   6. close    the connection, then back to 4
//   7. unlink + close   on SIGINT/SIGTERM: remove the name first, then the listener
//
// It is iterative on purpose: while one client is being served, the next one waits in the
// listen queue. Chapter 04 serves many at once.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>

#include "uds.hpp"

namespace {

// Defined below, after the main line of the lesson.
void log_peer(int conn);
void serve(int conn);

int run(int argc, char** argv) {
    std::string socket_arg;
    uds::Cli cli("server", "[-s ADDR]",
                 "Upper-cases each line its clients send, one client at a time.\n"
                 "Default ADDR: $XDG_RUNTIME_DIR/uds-tutorial/01-stream.sock "
                 "(or /tmp/uds-tutorial-UID/...).");
    cli.option('s', "socket", "ADDR", "socket path, or @name for an abstract name",
               [&](const std::string& v) { socket_arg = v; });
    auto rest = cli.parse(argc, argv);
    if (!rest.empty()) throw uds::UsageError("unexpected argument '" + rest.front() + "'");
    const uds::Address addr = socket_arg.empty() ? uds::default_path_address("01-stream.sock")
                                                 : uds::address_argument(socket_arg);
    uds::install_shutdown_handlers();

    // 1. socket: AF_UNIX + SOCK_STREAM is a reliable, ordered byte stream between two processes.
    //    SOCK_CLOEXEC: the descriptor is not inherited by programs we might exec.
    uds::Fd listener{uds::check(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")};

    // 2. bind: give the socket its name. The length is exact: offsetof(sun_path) + strlen + 1.
    //    If the path already exists, bind fails with EADDRINUSE. Never unlink blindly: first find
    //    out whether a live server still owns it (then refuse) or it is stale (then remove it).
    if (bind(listener.get(), addr.sockaddr_ptr(), addr.length()) == -1) {
        if (errno != EADDRINUSE || addr.kind() != uds::Address::Kind::Path)
            throw uds::SysError(errno, "bind " + addr.str());
        uds::remove_stale_socket_file(addr, SOCK_STREAM);
        uds::log("removed stale socket file " + addr.str() + " (nobody was listening)");
        uds::check(bind(listener.get(), addr.sockaddr_ptr(), addr.length()), "bind " + addr.str());
    }
    uds::SocketFile socket_file{addr};  // remembers which file is ours, for step 7

    // 3. listen: from now on connect() succeeds even before we accept; up to `backlog`
    //    connections wait in the queue, after that connect() blocks (or fails with EAGAIN).
    uds::check(listen(listener.get(), 16), "listen " + addr.str());
    uds::log("listening on " + addr.str());

    while (uds::wait_readable(listener.get()) == uds::Wait::Ready) {
        // 4. accept4: a new descriptor for this one client; the listener keeps listening.
        //    We pass no address buffer: the client is unnamed anyway (see log_peer).
        uds::Fd conn{accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC)};
        if (!conn && (errno == EINTR || errno == ECONNABORTED)) continue;
        if (!conn) uds::check(-1, "accept4 " + addr.str());
        try {
            log_peer(conn.get());
            serve(conn.get());
            uds::log("connection closed");
        } catch (const uds::SysError& e) {  // this client failed (EPIPE, ECONNRESET): next one
            uds::log("client dropped: " + uds::describe(e));
        } catch (const uds::Stopped&) {
        }
        // 6. close: conn's destructor closes the connection here.
    }

    // 7. unlink, then close: remove the name first (only if the file is still the one we
    //    created), so no new client can find a listener that is about to disappear.
    uds::log(std::string("stopping on ") + strsignal(uds::stop_signal()));
    socket_file.unlink_if_ours();
    listener.reset();
    return 0;
}

// Who is on the other end? SO_PEERCRED gives the peer's pid/uid/gid as they were at connect().
// getsockname/getpeername show that AF_UNIX has no ports: the accepted socket carries the
// listener's path, and a client that never called bind() is unnamed.
void log_peer(int conn) {
    ucred cred{};
    socklen_t len = sizeof cred;
    uds::check(getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len), "getsockopt SO_PEERCRED");
    uds::log("accepted a connection: peer pid=" + std::to_string(cred.pid) +
             " uid=" + std::to_string(cred.uid) + " gid=" + std::to_string(cred.gid) +
             "; getsockname=" + uds::local_address(conn).str() +
             " getpeername=" + uds::peer_address(conn).str());
}

// Answers every line the client sends, until it closes its end or breaks the rules.
void serve(int conn) {
    uds::LineFramer framer{uds::kMaxLine};
    std::string line;
    char buf[4096];
    while (uds::wait_readable(conn) == uds::Wait::Ready) {
        // 5a. read: whatever bytes have arrived. Not "one message": a stream has no boundaries,
        //     so this may be half a line or many lines. 0 means the client closed its end.
        ssize_t n = read(conn, buf, sizeof buf);
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
            uds::write_all(conn, uds::upcase(line) + "\n");
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("server", argc, argv, run);
}
