// 05-sendmsg-fds/client.cpp - asks the file broker for files and reads them through the
// descriptors it receives; or lends the broker its own stdout.
//
//   client [-s ADDR] FILE...    OPEN each FILE; print its content (read from the received fd)
//   client [-s ADDR] --greet    GREET with our stdout attached: the SERVER writes to our output
//
// The lesson, in order:
//   C1. socket     C2. connect   as in chapter 01
//   C3. sendmsg    "OPEN path\n" (no descriptor), or "GREET\n" with fd 1 attached (fdpass tx1-tx3)
//   C4. recvmsg    the reply line, and the descriptor that came with it (fdpass rx1-rx4)
//   C5. read       the file through the received descriptor: its number is ours, not the
//                  server's, but the open file behind it is the one the server opened
//   C6. close      the received descriptor, before the next request
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "fdpass.hpp"
#include "uds.hpp"

namespace {

struct Reply {
    std::string line;  // without '\n'
    std::vector<uds::Fd> fds;
    bool truncated = false;
};

// The steps after run() (declared here, so that the file reads in the order of the lesson).
Reply receive_reply(int sock, uds::LineFramer& framer, const std::string& where);  // C4
void print_file(const std::string& file, Reply r);                                 // C5, C6

int run(int argc, char** argv) {
    std::optional<std::string> socket_arg;
    bool greet = false;
    uds::Cli cli("client", "[-s ADDR] FILE... | [-s ADDR] --greet",
                 "Asks the file broker to open each FILE (a path beneath its root) and prints\n"
                 "the content, read through the descriptor it passes back. With --greet, lends\n"
                 "the server this program's stdout, and the server writes a greeting into it.");
    cli.option('s', "socket", "ADDR", "socket path, or @name for an abstract name",
               [&](const std::string& v) { socket_arg = v; });
    cli.option('g', "greet", "", "hand our stdout (fd 1) to the server",
               [&](const std::string&) { greet = true; });
    auto files = cli.parse(argc, argv);
    if (greet && !files.empty()) throw uds::UsageError("--greet takes no FILE arguments");
    if (!greet && files.empty()) throw uds::UsageError("name at least one FILE (or --greet)");
    // An empty -s '' is a mistake (an unset shell variable), never "the default".
    const uds::Address addr = socket_arg ? uds::address_argument(*socket_arg)
                                         : uds::default_path_address("05-fd-broker.sock");
    const std::string where = addr.str();
    // With stdout closed, socket() below would get number 1, and we would lend our own socket.
    if (greet && fcntl(STDOUT_FILENO, F_GETFD) == -1)
        throw uds::Failure("--greet: stdout (fd 1) is not open, so there is nothing to lend");

    //@C1 socket: create the client's socket, an AF_UNIX stream that is not inherited across exec | socket(2), README "C1-C6: the client"
    //@hint The same call as the server's S1, into a uds::Fd named sock.
    // C1. socket, as the server's S1.
    uds::Fd sock{uds::check(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")};
    //@stub uds::Fd sock;
    //@end
    //@C2 connect: connect to the server's address; a failure says what to try | connect(2), README "C1-C6: the client"
    //@hint connect(sock.get(), addr.sockaddr_ptr(), addr.length()); on -1 throw uds::SysError(errno, "connect " + where, hint).
    //@hint A good hint: "is the server running? start it with: 05-sendmsg-fds/server" (plus " -s ADDR" when one was given), or, for EACCES, that connect needs write permission on the socket file.
    // C2. connect; the client itself stays unnamed (chapter 01).
    if (connect(sock.get(), addr.sockaddr_ptr(), addr.length()) == -1) {
        int err = errno;
        std::string hint = "is the server running? start it with: 05-sendmsg-fds/server";
        if (socket_arg) hint += " -s " + *socket_arg;
        if (err == EACCES) hint = "connect needs write permission on the socket file";
        throw uds::SysError(err, "connect " + where, hint);
    }
    //@end
    uds::LineFramer framer{uds::kMaxLine + 64};

    // One request per FILE, or the one GREET that lends our stdout (we keep our own copy: the
    // server gets a second descriptor for the same open file).
    struct Request {
        std::string line, file;
        int fd;  // the descriptor to attach, or -1
    };
    std::vector<Request> requests;
    if (greet) requests.push_back({"GREET\n", "", STDOUT_FILENO});
    for (const std::string& file : files)
        requests.push_back({"OPEN " + file + "\n", file, -1});
    std::fflush(stdout);

    int status = 0;
    for (const Request& req : requests) {
        //@C3 sendmsg: send one request line, with the descriptor req.fd attached when there is one | README "C1-C6: the client", fdpass.hpp
        //@hint fdpass::send_with_fd(sock.get(), req.line, req.fd): what you wrote in tx1-tx3 (fd -1 attaches nothing).
        // C3. sendmsg the request (OPEN carries no descriptor: write() would do as well).
        fdpass::send_with_fd(sock.get(), req.line, req.fd);
        //@end
        Reply r = receive_reply(sock.get(), framer, where);  // C4
        if (greet) {
            if (r.line != "OK") throw uds::Failure("GREET: the server said: " + r.line);
            uds::log(
                "lent our stdout (fd 1) to the server: the greeting on our stdout was "
                "written by the server");
            continue;
        }
        if (r.line.rfind("OK ", 0) != 0) {
            uds::log(req.file + ": " + r.line);  // "ERROR <reason>" (and no descriptor)
            status = 1;
            continue;
        }
        if (r.truncated || r.fds.size() != 1) {  // r.fds closes whatever did arrive
            uds::log(req.file + ": expected one descriptor with '" + r.line + "', got " +
                     (r.truncated ? "too many" : std::to_string(r.fds.size())));
            status = 1;
            continue;
        }
        print_file(req.file, std::move(r));  // C5, C6
    }
    return status;
}

// C4. recvmsg until one reply line is complete, keeping every descriptor that arrives with it.
//     We send one request at a time, so everything received until then belongs to this reply.
Reply receive_reply(int sock, uds::LineFramer& framer, const std::string& where) {
    Reply reply;
    while (framer.next(reply.line) != uds::LineFramer::Status::Line) {
        //@C4 recvmsg: receive until one reply line is complete, keeping every descriptor that comes with it | recvmsg(2), README "C1-C6: the client", fdpass.hpp
        //@hint fdpass::recv_with_fds(sock, buf, sizeof buf) into a buffer of your own; move every descriptor into reply.fds and remember a truncation in reply.truncated.
        //@hint 0 bytes means the server closed the connection: throw uds::Failure("recvmsg " + where + ": the server closed the connection"). Otherwise framer.feed() the bytes; the loop asks the framer for the line.
        char buf[512];
        fdpass::Received r = fdpass::recv_with_fds(sock, buf, sizeof buf);
        for (auto& fd : r.fds)
            reply.fds.push_back(std::move(fd));
        reply.truncated = reply.truncated || r.truncated;
        if (r.bytes == 0)
            throw uds::Failure("recvmsg " + where + ": the server closed the connection");
        framer.feed({buf, r.bytes});
        //@stub static_cast<void>(sock), static_cast<void>(where);  // (only so that the starter compiles)
        //@end
    }
    return reply;
}

// C5. read the file through the descriptor and copy it to stdout; C6. close it.
void print_file(const std::string& file, Reply r) {
    const int fd = r.fds.front().get();
    uds::log(file + ": received descriptor " + std::to_string(fd) + " (" + r.line.substr(3) +
             " bytes)");
    std::size_t total = 0;
    //@C5 read: read the file through the received descriptor until end of file, copying it to stdout | read(2), README "C1-C6: the client"
    //@hint read(fd, buf, sizeof buf) in a loop: 0 is the end of the file, -1 with EINTR means try again, any other -1 is an error (uds::check).
    //@hint uds::write_all(STDOUT_FILENO, {buf, n}) writes what was read; count the bytes in total.
    // C5. read: the number is ours, the open file (and its offset) the one the server opened.
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == -1 && errno == EINTR) continue;
        uds::check(n, "read received descriptor");
        if (n == 0) break;
        uds::write_all(STDOUT_FILENO, {buf, static_cast<std::size_t>(n)});
        total += static_cast<std::size_t>(n);
    }
    //@end
    if (std::to_string(total) != r.line.substr(3))
        uds::log(file + ": read " + std::to_string(total) + " bytes (the file changed?)");
    //@C6 close: close the received descriptor before asking for the next file | close(2), README "C1-C6: the client"
    //@hint The descriptors live in r.fds as uds::Fd owners: clearing the vector closes them.
    // C6. close our descriptor now, not at exit: a client that asks for many files must not
    //     collect their descriptors. (uds::Fd's destructor calls close.)
    r.fds.clear();
    //@end
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("client", argc, argv, run);
}
