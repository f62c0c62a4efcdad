// 01-stream-path/client.cpp - sends lines to the upper-casing server and prints the replies.
//
//   client [-s ADDR] [MESSAGE...]    each MESSAGE is one request; with none, lines from stdin
//
// The lesson, in order:
//   1. socket    the same family and type as the server's listening socket
//   2. connect   to the server's name; no bind() first: a client normally stays unnamed
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
                 "Sends each MESSAGE (or each line of stdin) to the server and prints the reply.");
    cli.option('s', "socket", "ADDR", "socket path, or @name for an abstract name",
               [&](const std::string& v) { socket_arg = v; });
    auto messages = cli.parse(argc, argv);
    const uds::Address addr = socket_arg.empty() ? uds::default_path_address("01-stream.sock")
                                                 : uds::address_argument(socket_arg);

    // 1. socket: the client's endpoint.
    uds::Fd sock{uds::check(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")};

    // 2. connect: the kernel finds the listening socket by its name (the path), and needs write
    //    permission on the socket file to let us in. ENOENT: no such file; ECONNREFUSED: a file
    //    but nobody listening (a stale socket file).
    if (connect(sock.get(), addr.sockaddr_ptr(), addr.length()) == -1) {
        int err = errno;
        std::string hint = "is the server running? start it with: 01-stream-path/server";
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
        uds::write_all(conn.sock, payload);
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
    }
}

std::string read_reply(Connection& conn) {
    std::string line;
    char buf[4096];
    while (conn.replies.next(line) != uds::LineFramer::Status::Line) {
        // 4. read: bytes as they come, maybe part of a line, maybe several: we cut them into
        //    lines ourselves. 0 means the server closed its end.
        ssize_t n = read(conn.sock, buf, sizeof buf);
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
