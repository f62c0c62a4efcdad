// 07-socket-activation/client.cpp - the chapter 01 client, checking who the server is first.
//
//   client [-s ADDR] [--server-uid UID]... [-v] [MESSAGE...]
//
// The lesson, in order:
//   C1. socket    as in chapter 01
//   C2. connect   to the server's name (under socket activation: to systemd's socket; the
//                 connection waits in its queue until the server has started and accepts)
//   C3. SO_PEERCRED   a name is not an identity: whoever bound the name first gets our data.
//                 Ask the kernel who is listening, and refuse anyone we did not expect
//   C4. send      one request line
//   C5. read      until the reply line is complete
//   C6. close     when done (the Fd destructor)
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <iostream>
#include <optional>
#include <set>
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
    std::optional<std::string> socket_arg;
    std::set<uid_t> server_uids;  // --server-uid; empty: our own uid or root
    bool verbose = false;
    uds::Cli cli("client", "[-s ADDR] [--server-uid UID]... [-v] [MESSAGE...]",
                 "Sends each MESSAGE (or each line of stdin) to the server and prints the reply.\n"
                 "It talks only to a server running as its own uid or as root, unless\n"
                 "--server-uid says which uid to expect.");
    cli.option('s', "socket", "ADDR", "socket path, or @name for an abstract name",
               [&](const std::string& v) {
                   uds::address_argument(v);  // an empty or overlong ADDR is a usage error
                   socket_arg = v;
               });
    cli.option(0, "server-uid", "UID", "the uid the server must run as (repeatable)",
               [&](const std::string& v) {
                   server_uids.insert(
                       static_cast<uid_t>(uds::parse_number(v, "--server-uid", 0, 0xFFFFFFFEu)));
               });
    cli.option('v', "verbose", "", "say who the server is (pid, uid, gid from SO_PEERCRED)",
               [&](const std::string&) { verbose = true; });
    auto messages = cli.parse(argc, argv);
    const uds::Address addr = socket_arg ? uds::address_argument(*socket_arg)
                                         : uds::default_path_address("07-activation.sock");

    // C1. socket: the client's endpoint.
    uds::Fd sock{uds::check(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")};

    // C2. connect: needs write permission on a path socket's file. EACCES: the socket is for
    //     a group we are not in (ls -l shows which); ECONNREFUSED: nobody listens there.
    if (connect(sock.get(), addr.sockaddr_ptr(), addr.length()) == -1) {
        int err = errno;
        std::string hint = "is the server running? start it with: 07-socket-activation/server";
        if (socket_arg) hint += " -s " + *socket_arg;
        if (err == EACCES)
            hint =
                "connect needs write permission on the socket file; ls -l shows its mode "
                "and group: are you in that group?";
        throw uds::SysError(err, "connect " + addr.str(), hint);
    }

    // C3. SO_PEERCRED: on our side of the connection it names the process that called listen()
    //     (under socket activation: systemd, pid 1). An abstract name, or a path in a directory
    //     others can write, can be taken by anyone: check before sending a byte.
    ucred server{};
    socklen_t len = sizeof server;
    uds::check(getsockopt(sock.get(), SOL_SOCKET, SO_PEERCRED, &server, &len),
               "getsockopt SO_PEERCRED");
    const bool expected = server_uids.empty() ? server.uid == geteuid() || server.uid == 0
                                              : server_uids.count(server.uid) > 0;
    if (!expected) {
        std::string want = "you (uid " + std::to_string(geteuid()) + ") or root";
        if (!server_uids.empty()) {
            want = "--server-uid";
            for (uid_t u : server_uids)
                want += " " + std::to_string(u);
        }
        throw uds::Failure(addr.str() + " is held by uid " + std::to_string(server.uid) + " (pid " +
                               std::to_string(server.pid) + "), not by " + want +
                               ": not talking to it",
                           "a name is not an identity; if you trust that server, pass "
                           "--server-uid " +
                               std::to_string(server.uid));
    }
    if (verbose)
        uds::log("connected to " + addr.str() + "; SO_PEERCRED says the listener is pid " +
                 std::to_string(server.pid) + " uid " + std::to_string(server.uid) + " gid " +
                 std::to_string(server.gid));

    Connection conn{sock.get(), addr.str()};
    if (!messages.empty()) {
        for (const std::string& m : messages)
            request(conn, m);
    } else {
        std::string line;
        while (std::getline(std::cin, line))
            request(conn, line);
    }
    // C6. close: the Fd destructor closes the socket; the server's read() then returns 0.
    return 0;
}

// Sends one request and prints its reply: a request "a\nb" is two lines, so two replies.
void request(Connection& conn, const std::string& text) {
    std::string payload = text + "\n";
    std::size_t expected = 0;
    for (char c : payload)
        expected += c == '\n';
    try {
        // C4. send: write_all calls send(..., MSG_NOSIGNAL) until every byte is out.
        uds::write_all(conn.sock, payload);
    } catch (const uds::SysError& e) {
        // The server may have answered ("ERROR line too long") and closed before reading
        // everything we sent: print what it did say before failing.
        if (e.code_value() != EPIPE && e.code_value() != ECONNRESET) throw;
    }
    for (std::size_t i = 0; i < expected; ++i) {
        std::string reply = read_reply(conn);
        std::fwrite(reply.data(), 1, reply.size(), stdout);
        std::fputc('\n', stdout);
        std::fflush(stdout);
    }
}

std::string read_reply(Connection& conn) {
    std::string line;
    char buf[4096];
    while (conn.replies.next(line) != uds::LineFramer::Status::Line) {
        // C5. read: bytes as they come; we cut them into lines ourselves.
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
