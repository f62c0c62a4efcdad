// 04-multi-client/client.cpp - chapter 01's client, pointed at the multi-client server.
//
// Start several of these in different terminals (with no MESSAGE they are interactive: type a
// line, get it back upper-cased): with 04's server they are all served at once, with 01's the
// second one waits until the first one quits. For many clients at once, see loadgen.cpp.
//
//   client [-s ADDR] [MESSAGE...]    each MESSAGE is one request; with none, lines from stdin
//
// The lesson, in order:
//   C1. socket    the same family and type as the server's listening socket
//   C2. connect   to the server's name; no bind() first: a client normally stays unnamed
//   C3. write     one request line
//   C4. read      until the reply line is complete (a stream has no message boundaries)
//   C5. close     when done (the Fd destructor)
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include "uds.hpp"

namespace {

// Sends one request and prints the reply line(s): a request "a\nb" is two lines, two replies.
// (Its steps C3 and C4 are below run(), in lesson order.)
class Session {
  public:
    Session(int sock, std::string where) : sock_(sock), where_(std::move(where)) {}
    void request(const std::string& text);

  private:
    std::string read_line();
    static void print(const std::string& line);

    [[maybe_unused]] int sock_;  // (in the exercise starter only the unwritten C3, C4 use it)
    std::string where_;
    uds::LineFramer framer_{uds::kMaxLine + 64};  // replies: a line, or an ERROR line
};

int run(int argc, char** argv) {
    std::optional<std::string> socket_arg;
    uds::Cli cli("client", "[-s ADDR] [MESSAGE...]",
                 "Sends each MESSAGE (or each line of stdin) to the server and prints the reply.");
    cli.option('s', "socket", "ADDR", "socket path, or @name for an abstract name",
               [&](const std::string& v) { socket_arg = v; });
    auto messages = cli.parse(argc, argv);
    // An empty -s '' is a usage error (address_argument says so), never "the default".
    const uds::Address addr = socket_arg ? uds::address_argument(*socket_arg)
                                         : uds::default_path_address("04-multi-client.sock");

    // C1. socket: the client's endpoint.
    uds::Fd sock{uds::check(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")};

    // C2. connect: the kernel finds the listening socket by its name (the path), and needs write
    //     permission on the socket file to let us in. ENOENT: no such file; ECONNREFUSED: a file
    //     but nobody listening (a stale socket file).
    if (connect(sock.get(), addr.sockaddr_ptr(), addr.length()) == -1) {
        int err = errno;
        std::string hint = "is the server running? start it with: 04-multi-client/server";
        if (socket_arg) hint += " -s " + *socket_arg;
        if (err == EACCES) hint = "connect needs write permission on the socket file";
        throw uds::SysError(err, "connect " + addr.str(), hint);
    }

    Session session{sock.get(), addr.str()};
    if (!messages.empty()) {
        for (const std::string& m : messages)
            session.request(m);
    } else {
        std::string line;
        while (std::getline(std::cin, line))
            session.request(line);
    }
    // C5. close: the Fd destructor closes the socket; the server's read() then returns 0.
    return 0;
}

void Session::request(const std::string& text) {
    std::string payload = text + "\n";
    std::size_t expected = 0;
    for (char c : payload)
        expected += c == '\n';
    try {
        // C3. write: write_all loops until every byte is sent; MSG_NOSIGNAL turns a closed
        //     server into EPIPE instead of a fatal SIGPIPE.
        uds::write_all(sock_, payload);
    } catch (const uds::SysError& e) {
        // The server may have answered (for example "ERROR line too long") and closed
        // before reading everything we sent: print what it did say before failing.
        if (e.code_value() != EPIPE && e.code_value() != ECONNRESET) throw;
    }
    for (std::size_t i = 0; i < expected; ++i) {
        std::string reply = read_line();
        print(reply);
        if (reply == "ERROR server busy")  // --max-clients reached, or out of descriptors
            throw uds::Failure("the server at " + where_ + " is busy and closed the connection",
                               "try again when fewer clients are connected");
    }
}

std::string Session::read_line() {
    std::string line;
    for (;;) {
        auto status = framer_.next(line);
        if (status == uds::LineFramer::Status::Line) return line;
        if (status == uds::LineFramer::Status::TooLong)  // not our server: stop reading
            throw uds::Failure("read " + where_ + ": a reply line longer than " +
                               std::to_string(framer_.max_line()) + " bytes");
        // C4. read: bytes as they come; we cut them into lines ourselves.
        char buf[4096];
        ssize_t n = read(sock_, buf, sizeof buf);
        if (n == -1 && errno == EINTR) continue;
        uds::check(n, "read " + where_);
        if (n == 0)
            throw uds::Failure("read " + where_ + ": the server closed the connection " +
                               "before replying");
        framer_.feed({buf, static_cast<std::size_t>(n)});
    }
}

void Session::print(const std::string& line) {
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);  // show each reply at once when used interactively
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("client", argc, argv, run);
}
