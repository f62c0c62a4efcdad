// 05-sendmsg-fds/exercise/client.cpp - YOUR client: fill in the steps marked TODO (here and in
// fdpass.hpp). It compiles as it is and fails Ch05ClientSteps.ClientStep... until you do.
// Reference: ../client.cpp.
//
// (original header:) asks the file broker for files and reads them through the
// descriptors it receives; or lends the broker its own stdout.
//
//   client [-s ADDR] FILE...    OPEN each FILE; print its content (read from the received fd)
//   client [-s ADDR] --greet    GREET with our stdout attached: the SERVER writes to our output
//
// The lesson, in order:
//   1. socket + connect   as in chapter 01
//   2. sendmsg            "OPEN path\n" (no descriptor), or "GREET\n" with fd 1 attached
//                         (fdpass.hpp S1-S7)
//   3. recvmsg            the reply line, and the descriptor that came with it (fdpass R1-R7)
//   4. read               the file through the received descriptor: its number is ours, not
//                         the server's, but the open file behind it is the one the server opened
//   5. close              the received descriptor (its Fd owner), then the socket
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include "fdpass.hpp"
#include "uds.hpp"

namespace {

struct Reply {
    std::string line;  // without '\n'
    std::vector<uds::Fd> fds;
    bool truncated = false;
};

// 3. recvmsg until one reply line is complete, keeping every descriptor that arrives with it.
//    We send one request at a time, so everything received until then belongs to this reply.
Reply receive_reply(int sock, uds::LineFramer& framer, const std::string& where) {
    Reply reply;
    char buf[512];
    while (framer.next(reply.line) != uds::LineFramer::Status::Line) {
        fdpass::Received r = fdpass::recv_with_fds(sock, buf, sizeof buf);
        for (auto& fd : r.fds)
            reply.fds.push_back(std::move(fd));
        reply.truncated = reply.truncated || r.truncated;
        if (r.bytes == 0)
            throw uds::Failure("recvmsg " + where + ": the server closed the connection");
        framer.feed({buf, r.bytes});
    }
    return reply;
}

// 4. read the file through the descriptor and copy it to stdout. Returns the bytes copied.
std::size_t copy_to_stdout(int fd) {
    char buf[65536];
    std::size_t total = 0;
    for (;;) {
        // TODO(step 4): ssize_t n = read(fd, buf, sizeof buf);
        (void)fd;
        ssize_t n = -1;
        errno = ENOSYS;
        if (n == -1 && errno == EINTR) continue;
        uds::check(n, "read received descriptor");
        if (n == 0) return total;
        uds::write_all(STDOUT_FILENO, {buf, static_cast<std::size_t>(n)});
        total += static_cast<std::size_t>(n);
    }
}

int run(int argc, char** argv) {
    std::string socket_arg;
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
    const uds::Address addr = socket_arg.empty() ? uds::default_path_address("05-fd-broker.sock")
                                                 : uds::address_argument(socket_arg);
    const std::string where = addr.str();
    // With stdout closed, socket() below would get number 1, and we would lend our own socket.
    if (greet && fcntl(STDOUT_FILENO, F_GETFD) == -1)
        throw uds::Failure("--greet: stdout (fd 1) is not open, so there is nothing to lend");

    // 1. socket + connect.
    uds::Fd sock{uds::check(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")};
    if (connect(sock.get(), addr.sockaddr_ptr(), addr.length()) == -1) {
        int err = errno;
        std::string hint = "is the server running? start it with: 05-sendmsg-fds/server";
        if (!socket_arg.empty()) hint += " -s " + socket_arg;
        if (err == EACCES) hint = "connect needs write permission on the socket file";
        throw uds::SysError(err, "connect " + where, hint);
    }
    uds::LineFramer framer{uds::kMaxLine + 64};

    if (greet) {
        // 2. sendmsg "GREET\n" with OUR fd 1 attached. We keep our own copy (it is our stdout):
        //    the server gets a second descriptor for the same open file.
        std::fflush(stdout);
        // TODO(step 2): attach STDOUT_FILENO instead of -1 (no descriptor). As it is, the server
        //               answers "ERROR GREET needs exactly one descriptor (got 0)".
        fdpass::send_with_fd(sock.get(), "GREET\n", -1);
        Reply r = receive_reply(sock.get(), framer, where);
        if (r.line != "OK") throw uds::Failure("GREET: the server said: " + r.line);
        uds::log(
            "lent our stdout (fd 1) to the server: the greeting on our stdout was written by the "
            "server");
        return 0;
    }

    int status = 0;
    for (const std::string& file : files) {
        // 2. sendmsg the request, no descriptor attached (write() would do as well).
        fdpass::send_with_fd(sock.get(), "OPEN " + file + "\n", -1);
        // 3. recvmsg the reply and its descriptor.
        Reply r = receive_reply(sock.get(), framer, where);
        if (r.line.rfind("OK ", 0) != 0) {
            uds::log(file + ": " + r.line);  // "ERROR <reason>" (and no descriptor)
            status = 1;
            continue;
        }
        if (r.truncated || r.fds.size() != 1) {  // r.fds closes whatever did arrive
            uds::log(file + ": expected one descriptor with '" + r.line + "', got " +
                     (r.truncated ? "too many" : std::to_string(r.fds.size())));
            status = 1;
            continue;
        }
        const uds::Fd& fd = r.fds.front();
        uds::log(file + ": received descriptor " + std::to_string(fd.get()) + " (" +
                 r.line.substr(3) + " bytes)");
        // 4. read through it. 5. r goes out of scope: the received descriptor is closed.
        std::size_t copied = copy_to_stdout(fd.get());
        if (std::to_string(copied) != r.line.substr(3))
            uds::log(file + ": read " + std::to_string(copied) + " bytes (the file changed?)");
    }
    return status;
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("client", argc, argv, run);
}
