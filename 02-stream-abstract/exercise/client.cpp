// YOUR client.cpp for 02-stream-abstract: the exercise starter, generated from the
// reference 02-stream-abstract/client.cpp by scripts/make-starter.
// Every TODO is one step of the lesson: write it, then run `make grade-02`;
// the first FAIL names the step to look at. Stuck? One hint at a time:
// 02-stream-abstract/exercise/HINTS.md.
//
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

    // TODO C1. socket: create the client's endpoint, of the same family and type as the server's,
    //      not inherited across exec.
    //      Read: socket(2); README "Walkthrough".
    uds::unwritten("C1", "socket");
    uds::Fd sock;

    // TODO C2. connect: fill a struct sockaddr_un for addr by hand, exactly as the server's step
    //      S2a did, and connect to it.
    //      Read: connect(2), unix(7) "Abstract sockets"; README "The idea".
    uds::unwritten("C2", "connect");
    int connected = -1;
    if (connected == -1) {
        const int err = errno;
        std::string hint = "is the server running? start it with: 02-stream-abstract/server";
        if (socket_arg) hint += " -s " + *socket_arg;
        if (err == EACCES) hint = "connect needs write permission on the socket file";
        throw uds::SysError(err, "connect " + addr.str(), hint);
    }

    // TODO C2a. server check: ask the kernel who holds the name we reached, and refuse to send
    //      anything unless its uid is one we trust (trusted).
    //      Read: unix(7) "SO_PEERCRED"; README "Pitfalls".
    uds::unwritten("C2a", "server check");

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
        // TODO C3. send: send all of payload to the server; a server that has gone away must cost
        //      us an error (EPIPE), not our life (SIGPIPE).
        //      Read: send(2) "MSG_NOSIGNAL"; README "Walkthrough".
        uds::unwritten("C3", "send");
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
        // TODO C4. read: read whatever bytes have arrived from the server and feed them to
        //      conn.replies, until it holds a complete line; a server that closed before replying
        //      is an error.
        //      Read: read(2); README "Walkthrough".
        uds::unwritten("C4", "read");
    }
    return line;
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("client", argc, argv, run);
}
