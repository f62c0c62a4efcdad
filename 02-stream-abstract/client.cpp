// 02-stream-abstract/client.cpp - sends lines to the upper-casing server on an abstract name
// and prints the replies, after making sure the name is held by a server it trusts.
//
//   client [-s ADDR] [--server-uid UID]... [MESSAGE...]
//                             each MESSAGE is one request; with none, the lines of stdin
//
// The lesson, in order (the same step numbers as chapter 01):
//   C1   socket    the same family and type as the server's listening socket
//   C2   connect   to the server's abstract name: struct sockaddr_un filled by hand, with its
//                  exact length; no bind() first
//   C2a  getsockopt(SO_PEERCRED)  who holds that name? Anyone can bind an abstract name
//                  first, so a name is not an identity: talk only to a server running as us
//                  (or root), unless --server-uid says otherwise
//   C3   send      one request line (a send may be short: loop; MSG_NOSIGNAL)
//   C4   read      until the reply line is complete (a stream has no message boundaries)
//   C5   close     when done (the Fd destructor)
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "uds.hpp"

namespace {

// Defined below, after the main line of the lesson.
struct Connection {
    int sock;
    std::string where;                            // the server's address, for messages
    uds::LineFramer replies{uds::kMaxLine + 64};  // a reply is a line, or an ERROR line
};
void request(Connection& conn, const std::string& text);
std::string read_reply(Connection& conn);

int run(int argc, char** argv) {
    std::optional<std::string> socket_arg;  // unset: the default name; "" is a usage error
    std::vector<uid_t> trusted;             // --server-uid; none given: our own uid and root
    uds::Cli cli("client", "[-s ADDR] [--server-uid UID]... [MESSAGE...]",
                 "Sends each MESSAGE (or each line of stdin) to the server and prints the reply.\n"
                 "Default ADDR: @uds-tutorial-UID-02 (an abstract name; Linux only).\n"
                 "Talks only to a server running as your own uid or root, unless told otherwise.");
    cli.option('s', "socket", "ADDR", "socket path, or @name for an abstract name",
               [&](const std::string& v) { socket_arg = v; });
    cli.option(0, "server-uid", "UID",
               "trust a server running as UID instead (repeatable; replaces the default)",
               [&](const std::string& v) {
                   trusted.push_back(
                       static_cast<uid_t>(uds::parse_number(v, "--server-uid", 0, 4294967294)));
               });
    auto messages = cli.parse(argc, argv);
    const bool default_trust = trusted.empty();
    if (default_trust) trusted = {geteuid(), 0};
    // uds::Address checks what we will copy by hand in C2: not empty, no NUL inside, at most
    // 107 bytes.
    const uds::Address addr =
        socket_arg ? uds::address_argument(*socket_arg)
                   : uds::Address::abstract("uds-tutorial-" + std::to_string(geteuid()) + "-02");

    //@C1 socket: create the client's endpoint, of the same family and type as the server's, not inherited across exec | socket(2); README "Walkthrough"
    //@hint Exactly the call of the server's step S1.
    // C1. socket: the client's endpoint.
    uds::Fd sock{uds::check(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")};
    //@stub uds::Fd sock;
    //@end

    //@C2 connect: fill a struct sockaddr_un for addr by hand, exactly as the server's step S2a did, and connect to it | connect(2), unix(7) "Abstract sockets"; README "The idea"
    //@hint The same bytes and the same length the server bound: for an abstract name sun_path[0] = '\0', the name after it, offsetof(sockaddr_un, sun_path) + 1 + name length; for a path the path and its NUL.
    //@hint connect(fd, (const sockaddr*) &sa, length) returns 0 or -1; keep its result in `connected` and errno untouched: the code after this step explains a failure.
    // C2. connect: the kernel looks the name up among the abstract names of this network
    //     namespace, comparing exactly the bytes the length counts: so the length must be the
    //     one the server bound with (offsetof(sun_path) + 1 + name length). No file, so no
    //     permission check and no ENOENT: if nobody holds that name, ECONNREFUSED.
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
    const int connected = connect(sock.get(), reinterpret_cast<const sockaddr*>(&sa), sa_len);
    //@stub int connected = -1;
    //@end
    if (connected == -1) {
        const int err = errno;
        std::string hint = "is the server running? start it with: 02-stream-abstract/server";
        if (socket_arg) hint += " -s " + *socket_arg;
        if (err == EACCES) hint = "connect needs write permission on the socket file";
        throw uds::SysError(err, "connect " + addr.str(), hint);
    }

    //@C2a server check: ask the kernel who holds the name we reached, and refuse to send anything unless its uid is one we trust (trusted) | unix(7) "SO_PEERCRED"; README "Pitfalls"
    //@hint The server's step S4a from the other side: getsockopt(SO_PEERCRED) on our connected socket gives the pid, uid and gid of the process that called listen().
    //@hint Not trusted: throw uds::Failure with one line saying who holds the name (uid, pid) and how to trust it anyway (--server-uid UID); run_main prints it and exits 1.
    // C2a. getsockopt(SO_PEERCRED) on the client side: the credentials of the process that
    //      called listen() on the name we reached. Anyone may bind an abstract name, and the
    //      first to bind it wins (a squatter that started before the server, or after it
    //      crashed): a name is not an identity. So check before sending a single byte.
    ucred server{};
    socklen_t server_len = sizeof server;
    uds::check(getsockopt(sock.get(), SOL_SOCKET, SO_PEERCRED, &server, &server_len),
               "getsockopt SO_PEERCRED");
    if (std::find(trusted.begin(), trusted.end(), server.uid) == trusted.end()) {
        std::string expected = "--server-uid";
        for (uid_t u : trusted)
            expected += " " + std::to_string(u);
        if (default_trust) expected = "you (uid " + std::to_string(geteuid()) + ") or root";
        throw uds::Failure(addr.str() + " is held by uid " + std::to_string(server.uid) + " (pid " +
                               std::to_string(server.pid) + "), not by " + expected +
                               ": not talking to it",
                           "a name is not an identity; if you trust that server, pass "
                           "--server-uid " +
                               std::to_string(server.uid));
    }
    //@end

    Connection conn{sock.get(), addr.str()};
    if (!messages.empty()) {
        for (const std::string& m : messages)
            request(conn, m);
    } else {
        std::string line;
        while (std::getline(std::cin, line))
            request(conn, line);
    }
    // C5. close: the Fd destructor closes the socket; the server's read() then returns 0.
    return 0;
}

// Sends one request and prints its reply: a request "a\nb" is two lines, so two replies.
void request(Connection& conn, const std::string& text) {
    const std::string payload = text + "\n";
    const auto expected =
        static_cast<std::size_t>(std::count(payload.begin(), payload.end(), '\n'));
    try {
        //@C3 send: send all of payload to the server; a server that has gone away must cost us an error (EPIPE), not our life (SIGPIPE) | send(2) "MSG_NOSIGNAL"; README "Walkthrough"
        //@hint The server's step S5b: loop until every byte is out, try again on EINTR, MSG_NOSIGNAL.
        // C3. send: a send may be short, so loop; MSG_NOSIGNAL turns a closed server into EPIPE
        //     instead of a SIGPIPE that would kill us.
        std::string_view rest = payload;
        while (!rest.empty()) {
            const ssize_t n = send(conn.sock, rest.data(), rest.size(), MSG_NOSIGNAL);
            if (n == -1 && errno == EINTR) continue;
            uds::check(n, "send " + conn.where);
            rest.remove_prefix(static_cast<std::size_t>(n));
        }
        //@end
    } catch (const uds::SysError& e) {
        // The server may have answered (for example "ERROR line too long") and closed before
        // reading everything we sent: print what it did say before failing.
        if (e.code_value() != EPIPE && e.code_value() != ECONNRESET) throw;
    }
    for (std::size_t i = 0; i < expected; ++i) {
        const std::string reply = read_reply(conn);
        std::fwrite(reply.data(), 1, reply.size(), stdout);
        std::fputc('\n', stdout);
        std::fflush(stdout);  // show each reply at once when used interactively
        // The server looked at our uid (SO_PEERCRED) and will not serve us: it has closed.
        // (An upper-cased reply can never contain the lower-case "not allowed".)
        if (reply.starts_with("ERROR not allowed"))
            throw uds::Failure(conn.where + ": the server refused us: " + reply,
                               "it serves only its own uid unless started with --allow-uid " +
                                   std::to_string(geteuid()) + " or --allow-any");
    }
}

// The next reply line, however many reads it takes.
std::string read_reply(Connection& conn) {
    std::string line;
    while (conn.replies.next(line) != uds::LineFramer::Status::Line) {
        //@C4 read: read whatever bytes have arrived from the server and feed them to conn.replies, until it holds a complete line; a server that closed before replying is an error | read(2); README "Walkthrough"
        //@hint One read() may return part of the reply or several replies: feed every byte to the framer; the while condition takes lines out.
        //@hint read() returning 0 means the server closed its end: throw uds::Failure("read " + conn.where + ": the server closed the connection before replying").
        // C4. read: bytes as they come, maybe part of a line, maybe several: the framer cuts
        //     them into lines. 0 means the server closed its end.
        char buf[4096];
        const ssize_t n = read(conn.sock, buf, sizeof buf);
        if (n == -1 && errno == EINTR) continue;
        uds::check(n, "read " + conn.where);
        if (n == 0)
            throw uds::Failure("read " + conn.where +
                               ": the server closed the connection before replying");
        conn.replies.feed({buf, static_cast<std::size_t>(n)});
        //@end
    }
    return line;
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("client", argc, argv, run);
}
