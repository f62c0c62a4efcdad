// solutions/03-datagram/seqpacket/seqpacket_server.cpp - the upper-casing service over
// SOCK_SEQPACKET: connections like chapter 01, message boundaries like chapter 03 (E11).
//
//   seqpacket_server [-s ADDR] [--idle-timeout SECONDS]
//
// Exercise 4 of chapter 03. One message in, one message out, on a connection:
//   S1. socket      AF_UNIX + SOCK_SEQPACKET
//   S2. bind        the name, as in chapters 01 and 03
//   S3. listen      connections queue, as in chapter 01
//   S4. accept4     one connected socket per client; SO_PEERCRED says who it is
//   S5. recv        exactly one message (MSG_TRUNC: a longer one is detected, never half-read)
//   S6. send        exactly one reply message, on the connection: no return address to check
//   S7. close       the connection; then back to S4 (one client at a time, like chapter 01)
//   S8. unlink      on SIGINT/SIGTERM
// What is gone, compared with 01 and 03: the line framer (a message is its own boundary), the
// client's bind and the whole return-address check (S5-S6 of chapter 03: the reply goes down the
// connection, not to a name). What comes back from 01: a client that never reads can hold this
// iterative server, hence the idle deadline. What is new: recv() returns 0 for an empty message
// AND at end of file, so this protocol treats an empty message as the end of the conversation.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "uds.hpp"

namespace {

void serve(int conn, int idle_ms);

int run(int argc, char** argv) {
    std::optional<std::string> socket_arg;
    int idle_seconds = 30;
    uds::Cli cli("seqpacket_server", "[-s ADDR] [--idle-timeout SECONDS]",
                 "Answers each message with the message upper-cased, over SOCK_SEQPACKET.\n"
                 "Default ADDR: $XDG_RUNTIME_DIR/uds-tutorial/03-seqpacket.sock.");
    cli.option('s', "socket", "ADDR", "socket path, or @name for an abstract name",
               [&](const std::string& v) { socket_arg = v; });
    cli.option(0, "idle-timeout", "SECONDS", "close a client idle this long (default 30)",
               [&](const std::string& v) {
                   idle_seconds =
                       static_cast<int>(uds::parse_number(v, "--idle-timeout", 1, 86400));
               });
    auto rest = cli.parse(argc, argv);
    if (!rest.empty()) throw uds::UsageError("unexpected argument '" + rest.front() + "'");
    const uds::Address addr = socket_arg ? uds::address_argument(*socket_arg)
                                         : uds::default_path_address("03-seqpacket.sock");
    uds::install_shutdown_handlers();

    // S1. socket: SOCK_SEQPACKET is connection-oriented like a stream and keeps message
    //     boundaries like datagrams: one send is one recv, whole, in order, reliably.
    uds::Fd listener{uds::check(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), "socket")};

    // S2. bind: the name, exactly as before; a stale socket file is removed as in chapter 01.
    if (bind(listener.get(), addr.sockaddr_ptr(), addr.length()) == -1) {
        if (errno != EADDRINUSE || addr.kind() != uds::Address::Kind::Path)
            throw uds::SysError(errno, "bind " + addr.str());
        uds::remove_stale_socket_file(addr, SOCK_SEQPACKET);
        uds::log("removed stale socket file " + addr.str() + " (nobody was listening)");
        uds::check(bind(listener.get(), addr.sockaddr_ptr(), addr.length()), "bind " + addr.str());
    }
    uds::SocketFile socket_file{addr};

    // S3. listen: connections wait in the queue, as in chapter 01.
    uds::check(listen(listener.get(), 16), "listen " + addr.str());
    uds::log("listening on " + addr.str());

    while (uds::wait_readable(listener.get()) == uds::Wait::Ready) {
        // S4. accept4: a connected socket for this one client. No address to remember or check:
        //     replies go down this connection. The peer's uid comes from SO_PEERCRED.
        uds::Fd conn{accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC)};
        if (!conn) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno != EMFILE && errno != ENFILE && errno != ENOBUFS && errno != ENOMEM)
                throw uds::SysError(errno, "accept4 " + addr.str());
            uds::log(std::string("accept4: ") + std::strerror(errno) + ": pausing 100 ms");
            uds::wait_readable(uds::stop_fd(), 100);
            continue;
        }
        ucred peer{};
        socklen_t len = sizeof peer;
        uds::check(getsockopt(conn.get(), SOL_SOCKET, SO_PEERCRED, &peer, &len), "SO_PEERCRED");
        uds::log("accepted a connection: peer pid=" + std::to_string(peer.pid) +
                 " uid=" + std::to_string(peer.uid));
        try {
            serve(conn.get(), idle_seconds * 1000);
        } catch (const uds::SysError& e) {
            uds::log("client dropped: " + uds::describe(e));
        }
        // S7. close: conn's destructor closes the connection; the client reads end of file.
    }

    // S8. unlink, then close, as in chapter 01.
    uds::log(std::string("stopping on ") + strsignal(uds::stop_signal()));
    socket_file.unlink_if_ours();
    listener.reset();
    return 0;
}

// Answers every message of one client until it closes, sends an empty message, or idles.
void serve(int conn, int idle_ms) {
    char buf[uds::kMaxLine];
    for (;;) {
        const uds::Wait w = uds::wait_readable(conn, idle_ms);
        if (w == uds::Wait::Stop) return;
        if (w == uds::Wait::Timeout) {
            uds::log("idle for " + std::to_string(idle_ms / 1000) + " s: closing the connection");
            return;
        }
        // S5. recv: exactly one message. MSG_TRUNC makes recv return the message's real length
        //     even when it did not fit: the rest of a longer message is discarded, and we know.
        const ssize_t n = recv(conn, buf, sizeof buf, MSG_TRUNC | MSG_DONTWAIT);
        if (n == -1 && (errno == EINTR || errno == EAGAIN)) continue;
        uds::check(n, "recv");
        if (n == 0) {
            // End of file, or an empty message: recv cannot tell them apart (poll's POLLRDHUP
            // could). Either way this protocol ends here: its clients never send empty messages.
            uds::log("recv returned 0 (end of file, or an empty message): closing the connection");
            return;
        }
        const auto size = static_cast<std::size_t>(n);
        const std::string reply =
            size > sizeof buf ? std::string(uds::kDatagramTooLong) : uds::upcase({buf, size});
        if (size > sizeof buf) uds::log(std::to_string(size) + " bytes: longer than 4096, refused");
        // S6. send: one message. On SEQPACKET a message is sent whole or not at all (no short
        //     sends, no loop). MSG_NOSIGNAL: a client that left gives EPIPE, not SIGPIPE.
        //     MSG_DONTWAIT + a deadline: a client that stops reading must not hold us forever.
        for (;;) {
            if (send(conn, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT) >= 0) break;
            if (errno == EINTR) continue;
            if (errno != EAGAIN) uds::check(-1, "send");
            if (uds::wait_writable(conn, idle_ms) != uds::Wait::Ready) {
                uds::log("the client read nothing for " + std::to_string(idle_ms / 1000) +
                         " s: closing the connection");
                return;
            }
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("seqpacket_server", argc, argv, run);
}
