// 02-stream-abstract/exercise/client.cpp - YOUR client: fill in the steps marked TODO.
// It compiles as it is and fails Ch02ClientSteps.ClientStep... until you do. Reference:
// ../client.cpp.
//
// (original header:) sends lines to the upper-casing server on an abstract name and prints
// the replies.
//
//   client [-s ADDR] [MESSAGE...]    each MESSAGE is one request; with none, lines from stdin
//
// The lesson, in order:
//   1. socket    the same family and type as the server's listening socket
//   2. connect   to the server's abstract name, with its exact length; no bind() first
//   3. send      one request line (write_all calls send(..., MSG_NOSIGNAL) until all is out)
//   4. read      until the reply line is complete (a stream has no message boundaries)
//   5. close     when done (the Fd destructor)
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <iostream>
#include <string>

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
    std::string socket_arg;
    uds::Cli cli("client", "[-s ADDR] [MESSAGE...]",
                 "Sends each MESSAGE (or each line of stdin) to the server and prints the reply.\n"
                 "Default ADDR: @uds-tutorial-UID-02 (an abstract name; Linux only).");
    cli.option('s', "socket", "ADDR", "socket path, or @name for an abstract name",
               [&](const std::string& v) { socket_arg = v; });
    auto messages = cli.parse(argc, argv);
    const uds::Address addr =
        socket_arg.empty()
            ? uds::Address::abstract("uds-tutorial-" + std::to_string(geteuid()) + "-02")
            : uds::address_argument(socket_arg);

    // 1. socket: the client's endpoint.
    // TODO(step 1): uds::Fd sock{uds::check(socket(...), "socket")};
    uds::Fd sock;

    // 2. connect: the kernel looks the name up among the abstract names of this network
    //    namespace, comparing exactly `length` bytes: so the length must be the one the server
    //    bound with (offsetof(sun_path) + 1 + name length). No file, so no permission check and
    //    no ENOENT: if nobody holds that name, connect fails with ECONNREFUSED.
    // TODO(step 2): connect(sock.get(), addr.sockaddr_ptr(), addr.length()) instead of 0;
    //               addr.length() is the exact length, as the server's bind used.
    if (0 == -1) {
        int err = errno;
        std::string hint = "is the server running? start it with: 02-stream-abstract/server";
        if (!socket_arg.empty()) hint += " -s " + socket_arg;
        if (err == EACCES) hint = "connect needs write permission on the socket file";
        throw uds::SysError(err, "connect " + addr.str(), hint);
    }

    Connection conn{sock.get(), addr.str()};
    if (!messages.empty()) {
        for (const std::string& m : messages)
            request(conn, m);
    } else {
        std::string line;
        while (std::getline(std::cin, line))
            request(conn, line);
    }
    // 5. close: the Fd destructor closes the socket; the server's read() then returns 0.
    return 0;
}

// Sends one request and prints its reply: a request "a\nb" is two lines, so two replies.
void request(Connection& conn, const std::string& text) {
    std::string payload = text + "\n";
    std::size_t expected = 0;
    for (char c : payload)
        expected += c == '\n';
    try {
        // 3. send: write_all calls send() until every byte is out (a send may be short);
        //    MSG_NOSIGNAL turns a closed server into EPIPE instead of a fatal SIGPIPE.
        // TODO(step 3): uds::write_all(conn.sock, payload);
        throw uds::Failure("step 3 (send) is not written yet");
    } catch (const uds::SysError& e) {
        // The server may have answered (for example "ERROR line too long") and closed before
        // reading everything we sent: print what it did say before failing.
        if (e.code_value() != EPIPE && e.code_value() != ECONNRESET) throw;
    }
    for (std::size_t i = 0; i < expected; ++i) {
        std::string reply = read_reply(conn);
        std::fwrite(reply.data(), 1, reply.size(), stdout);
        std::fputc('\n', stdout);
        std::fflush(stdout);  // show each reply at once when used interactively
        // The server looked at our uid (SO_PEERCRED) and will not serve us: it has closed.
        // (An upper-cased reply can never start with the lower-case "not allowed".)
        if (reply.starts_with("ERROR not allowed"))
            throw uds::Failure(conn.where + ": the server refused us: " + reply,
                               "it serves only its own uid unless started with --allow-uid " +
                                   std::to_string(geteuid()) + " or --allow-any");
    }
}

std::string read_reply(Connection& conn) {
    std::string line;
    char buf[4096];
    while (conn.replies.next(line) != uds::LineFramer::Status::Line) {
        // 4. read: bytes as they come, maybe part of a line, maybe several: we cut them into
        //    lines ourselves. 0 means the server closed its end.
        // TODO(step 4): ssize_t n = read(conn.sock, buf, sizeof buf);
        ssize_t n = -1;
        errno = ENOSYS;
        (void)buf;
        if (n == -1 && errno == EINTR) continue;
        uds::check(n, "read " + conn.where);
        if (n == 0)
            throw uds::Failure("read " + conn.where +
                               ": the server closed the connection before replying");
        conn.replies.feed({buf, static_cast<std::size_t>(n)});
    }
    return line;
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("client", argc, argv, run);
}
