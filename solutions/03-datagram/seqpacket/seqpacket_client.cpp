// solutions/03-datagram/seqpacket/seqpacket_client.cpp - sends each MESSAGE as one SOCK_SEQPACKET
// message and prints each reply.
//
//   seqpacket_client [-s ADDR] MESSAGE...
//
// Exercise 4 of chapter 03. Compared with chapter 03's client: no bind (a connection needs no
// return address), no timeout guessing whether a reply will ever come (the connection tells us
// when the server is gone), and no '\n' framing as in chapter 01 (one message, one reply).
//   C1. socket    SOCK_SEQPACKET
//   C2. connect   to the server's name: a connection, as in chapter 01
//   C3. send      one message per MESSAGE, whole (an empty one is sent too, to show what it does)
//   C4. recv      one reply message; 0 means the server closed (POLLRDHUP tells it from an
//                 empty reply)
//   C5. close
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <optional>
#include <string>

#include "uds.hpp"

namespace {

int run(int argc, char** argv) {
    std::optional<std::string> socket_arg;
    uds::Cli cli("seqpacket_client", "[-s ADDR] MESSAGE...",
                 "Sends each MESSAGE as one SOCK_SEQPACKET message and prints each reply.");
    cli.option('s', "socket", "ADDR", "the server: socket path, or @name",
               [&](const std::string& v) { socket_arg = v; });
    const auto messages = cli.parse(argc, argv);
    if (messages.empty()) throw uds::UsageError("give at least one MESSAGE");
    const uds::Address server = socket_arg ? uds::address_argument(*socket_arg)
                                           : uds::default_path_address("03-seqpacket.sock");

    // C1. socket, C2. connect: no bind() first, unlike chapter 03's datagram client.
    uds::Fd sock{uds::check(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), "socket")};
    if (connect(sock.get(), server.sockaddr_ptr(), server.length()) == -1)
        throw uds::SysError(errno, "connect " + server.str(),
                            errno == EPROTOTYPE ? "a socket of another type is bound there"
                                                : "is the server running?");

    char buf[uds::kMaxLine + 64];
    for (const std::string& m : messages) {
        // C3. send: the message is the unit. No loop: SEQPACKET sends it whole or fails.
        if (send(sock.get(), m.data(), m.size(), MSG_NOSIGNAL) == -1)
            throw uds::SysError(errno, "send " + server.str());
        // C4. recv: one reply. 0 bytes: an empty reply, or the server closed the connection.
        const ssize_t n = recv(sock.get(), buf, sizeof buf, MSG_TRUNC);
        uds::check(n, "recv " + server.str());
        if (n == 0) {
            pollfd p{sock.get(), POLLRDHUP, 0};
            if (poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP)) != 0)
                throw uds::Failure(
                    "the server closed the connection" +
                        std::string(m.empty() ? " after our empty message: it reads 0 bytes, "
                                                "exactly like end of file"
                                              : ""),
                    "never send an empty message on SOCK_SEQPACKET");
        }
        if (static_cast<std::size_t>(n) > sizeof buf)
            throw uds::Failure("a reply longer than any this service sends");
        std::fwrite(buf, 1, static_cast<std::size_t>(n), stdout);
        std::fputc('\n', stdout);
        std::fflush(stdout);
    }
    return 0;  // C5. close: sock's destructor
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("seqpacket_client", argc, argv, run);
}
