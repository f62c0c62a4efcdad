// YOUR client.cpp for 01-stream-path: the exercise starter, generated from the
// reference 01-stream-path/client.cpp by scripts/make-starter.
// Every TODO is one step of the lesson: write it, then run `make grade-01`;
// the first FAIL names the step to look at. Stuck? One hint at a time:
// 01-stream-path/exercise/HINTS.md.
//
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

    // TODO C1. socket: create the client's socket, of the same family and type as the server's, not
    //      inherited across exec.
    //      Read: socket(2); README "C1. socket".
    uds::unwritten("C1", "socket");
    uds::Fd sock;

    // TODO C2. connect: fill a sockaddr_un with the server's path and its exact length (refuse a
    //      path that does not fit with a usage error), then connect to it.
    //      Read: connect(2), unix(7); README "C2. connect".
    uds::unwritten("C2", "connect");

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

    // TODO C3. send: send every byte of the request; a server that has hung up must give an error,
    //      never kill the client.
    //      Read: send(2) MSG_NOSIGNAL; README "C3. send".
    uds::unwritten("C3", "send");
    (void)sock, (void)replies;  // (used once C3 and C4 are written)

    std::string line;
    for (std::size_t i = 0; i < expected; ++i) {
        // TODO C4. read: read until the framer holds a complete reply line; a server that closes
        //      before replying, or sends a line longer than a reply can be, is an error.
        //      Read: read(2); README "C4. read".
        uds::unwritten("C4", "read");
        std::fwrite(line.data(), 1, line.size(), stdout);
        std::fputc('\n', stdout);
        std::fflush(stdout);  // show each reply at once when used interactively
    }
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("client", argc, argv, run);
}
