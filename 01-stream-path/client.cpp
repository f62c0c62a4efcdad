// 01-stream-path/client.cpp - sends lines to the upper-casing server and prints the replies.
//
//   client [-s PATH] [MESSAGE...]    each MESSAGE is one request; with none, lines from stdin
//
// The lesson, in order:
//   C1  socket    the same family and type as the server's listening socket
//   C2  connect   to the server's name, a sockaddr_un filled like the server's; no bind() first:
//                 a client normally stays unnamed
//   C3  send      one request line, every byte of it
//   C4  read      until the reply line is complete (a stream has no message boundaries)
//   C5  close     when done
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include "uds.hpp"

namespace {

// Defined below, after the main line of the lesson.
void request(int sock, const std::string& text, uds::LineFramer& replies);

int run(int argc, char** argv) {
    std::optional<std::string> path_arg;
    uds::Cli cli("client", "[-s PATH] [MESSAGE...]",
                 "Sends each MESSAGE (or each line of stdin) to the server and prints the reply.");
    cli.option('s', "socket", "PATH", "the server's socket (default: the server's default)",
               [&](const std::string& v) { path_arg = v; });
    auto messages = cli.parse(argc, argv);
    if (path_arg && path_arg->empty()) throw uds::UsageError("-s needs a path, not ''");
    if (path_arg && path_arg->front() == '@')
        throw uds::UsageError("-s " + *path_arg + ": abstract names are chapter 02's");
    const std::string path = path_arg ? *path_arg : uds::runtime_dir() + "/01-stream.sock";

    //@C1 socket: create the client's socket, of the same family and type as the server's, not inherited across exec | socket(2); README "C1. socket"
    //@hint Exactly the server's S1: AF_UNIX, SOCK_STREAM with SOCK_CLOEXEC, protocol 0, in a uds::Fd.
    // C1. socket: the client's endpoint.
    uds::Fd sock{uds::check(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")};
    //@stub uds::Fd sock;
    //@end

    //@C2 connect: fill a sockaddr_un with the server's path and its exact length (refuse a path that does not fit with a usage error), then connect to it | connect(2), unix(7); README "C2. connect"
    //@hint The address is built exactly like the server's in S2a: all zero, AF_UNIX, the path copied in, length offsetof(sockaddr_un, sun_path) + path length + 1.
    //@hint connect(sock.get(), reinterpret_cast<const sockaddr*>(&addr), len); when it returns -1, throw uds::SysError(errno, "connect " + path): it prints one line and the program exits 1.
    // C2. connect: the server's name, built as in its S2a. The kernel finds the listening socket
    //     by that path, and needs write permission on the socket file to let us in.
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path)
        throw uds::UsageError("-s: the path has " + std::to_string(path.size()) +
                              " bytes; sun_path holds at most 107 and a NUL");
    path.copy(addr.sun_path, path.size());
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
    if (connect(sock.get(), reinterpret_cast<const sockaddr*>(&addr), len) == -1) {
        // ENOENT: no such file. ECONNREFUSED: a socket file nobody listens on (a stale one).
        int err = errno;
        std::string hint = "is the server running? start it with: 01-stream-path/server";
        if (path_arg) hint += " -s " + path;
        if (err == EACCES) hint = "connect needs write permission on the socket file";
        throw uds::SysError(err, "connect " + path, hint);
    }
    //@end

    uds::LineFramer replies{uds::kMaxLine + 64};  // a reply is a line, or an ERROR line
    if (!messages.empty()) {
        for (const std::string& m : messages)
            request(sock.get(), m, replies);
    } else {
        std::string line;
        while (std::getline(std::cin, line))
            request(sock.get(), line, replies);
    }
    // C5. close: sock's destructor closes the socket; the server's read() then returns 0.
    return 0;
}

// Sends one request and prints its reply: a request "a\nb" is two lines, so two replies.
void request(int sock, const std::string& text, uds::LineFramer& replies) {
    const std::string payload = text + "\n";
    std::size_t expected = 0;
    for (char c : payload)
        expected += c == '\n';

    //@C3 send: send every byte of the request; a server that has hung up must give an error, never kill the client | send(2) MSG_NOSIGNAL; README "C3. send"
    //@hint send may take only part of it: loop until all is out, and retry on EINTR. MSG_NOSIGNAL turns "the server has gone" into EPIPE instead of a SIGPIPE that kills us.
    //@hint On EPIPE or ECONNRESET stop sending (break) but still read: the server may have said why ("ERROR line too long"). Other errors: throw uds::SysError(errno, "send").
    //@stub (void)sock, (void)replies;  // (used once C3 and C4 are written)
    // C3. send: loop, because send may take only part of it; MSG_NOSIGNAL turns a closed server
    //     into EPIPE instead of a fatal SIGPIPE.
    std::string_view rest = payload;
    while (!rest.empty()) {
        ssize_t n = send(sock, rest.data(), rest.size(), MSG_NOSIGNAL);
        if (n == -1 && errno == EINTR) continue;
        // The server may have answered ("ERROR line too long") and closed before reading all we
        // sent: stop sending, and read what it did say.
        if (n == -1 && (errno == EPIPE || errno == ECONNRESET)) break;
        uds::check(n, "send");
        rest.remove_prefix(static_cast<std::size_t>(n));
    }
    //@end

    std::string line;
    for (std::size_t i = 0; i < expected; ++i) {
        //@C4 read: read until the framer holds a complete reply line; a server that closes before replying, or sends a line longer than a reply can be, is an error | read(2); README "C4. read"
        //@hint A reply may come in pieces, and one read may hold the start of the next reply: feed every read into replies (the framer) until replies.next(line) says Line.
        //@hint read returns 0 when the server has closed: throw uds::Failure("read: the server closed the connection before replying"). When next() says TooLong, throw too: an endless line must not eat all memory.
        for (;;) {
            auto status = replies.next(line);
            if (status == uds::LineFramer::Status::Line) break;
            if (status == uds::LineFramer::Status::TooLong)
                throw uds::Failure("read: a reply line longer than any this protocol has");
            // C4. read: bytes as they come, maybe part of a line, maybe more than one: the framer
            //     cuts them into lines. 0 means the server closed its end.
            char buf[4096];
            ssize_t n = read(sock, buf, sizeof buf);
            if (n == -1 && errno == EINTR) continue;
            uds::check(n, "read");
            if (n == 0)
                throw uds::Failure("read: the server closed the connection before replying");
            replies.feed({buf, static_cast<std::size_t>(n)});
        }
        //@end
        std::fwrite(line.data(), 1, line.size(), stdout);
        std::fputc('\n', stdout);
        std::fflush(stdout);  // show each reply at once when used interactively
    }
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("client", argc, argv, run);
}
