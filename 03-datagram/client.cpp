// 03-datagram/client.cpp - sends datagrams to the upper-casing server and prints the replies.
//
//   client [-s ADDR] [--bind ADDR] [--timeout SECONDS] [-v] [MESSAGE...]
//   each MESSAGE is one datagram; with none, each line of stdin (without its '\n')
//
// The lesson, in order:
//   C1. socket    SOCK_DGRAM, like the server
//   C2. bind      give OUR socket an address too, or the server cannot answer: by default
//                 autobind (the kernel picks a unique abstract name), or --bind PATH
//   C3. connect   set the default peer: send()/recv() without addresses, only the server's
//                 datagrams get in, and "nobody there" is reported at once
//   C4. send      one datagram per message
//   C5. recv      one reply datagram, waiting at most --timeout seconds
//   C6. close     (and unlink our --bind file), also when stopped by SIGINT/SIGTERM
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "uds.hpp"

namespace {

constexpr std::size_t kMaxStdinLine = 1 << 20;  // a guard; the server's limit is 4096

std::string request(int sock, const std::string& message, int timeout_ms, const std::string& where);

void print(const std::string& reply) {
    std::fwrite(reply.data(), 1, reply.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);  // show each reply at once when used interactively
}

// Calls fn for each line of stdin (without '\n'; a last line without '\n' counts too).
// Read with poll() + read() rather than std::getline, so SIGINT/SIGTERM always get through.
template <typename Fn>
void for_each_stdin_line(Fn fn) {
    uds::LineFramer framer{kMaxStdinLine};
    std::string line;
    char buf[4096];
    for (;;) {
        if (uds::wait_readable(STDIN_FILENO) == uds::Wait::Stop) throw uds::Stopped{};
        ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
        if (n == -1 && (errno == EINTR || errno == EAGAIN)) continue;
        uds::check(n, "read stdin");
        if (n == 0) break;
        framer.feed({buf, static_cast<std::size_t>(n)});
        uds::LineFramer::Status status;
        while ((status = framer.next(line)) == uds::LineFramer::Status::Line)
            fn(line);
        if (status == uds::LineFramer::Status::TooLong)
            throw uds::Failure("stdin: a line longer than 1 MiB", "one line is one datagram");
    }
    if (framer.take_rest(line)) fn(line);
}

// What a failed connect() means here, as a hint.
std::string connect_hint(int err, const uds::Address& addr,
                         const std::optional<std::string>& socket_arg) {
    std::string start = "03-datagram/server" + (socket_arg ? " -s " + *socket_arg : "");
    struct stat st {};
    switch (err) {
        case ENOENT:
            return "no such file: is the server running? start it with: " + start;
        case ECONNREFUSED:  // a path that is not a socket, or a socket nobody is bound to
            if (addr.kind() == uds::Address::Kind::Path && lstat(addr.name().c_str(), &st) == 0 &&
                !S_ISSOCK(st.st_mode))
                return "the path is not a socket at all; is -s right?";
            return "nobody is bound there (a stale socket file?); start the server: " + start;
        case EPROTOTYPE:
            return "a socket of another type (a stream server?) is bound there, not a datagram one";
        case EACCES:
            return "sending needs write permission on the socket file";
        default:
            return {};
    }
}

int run(int argc, char** argv) {
    std::optional<std::string> socket_arg, bind_arg;
    std::uint64_t timeout_s = 5;
    bool verbose = false;
    uds::Cli cli("client", "[-s ADDR] [--bind ADDR] [--timeout SECONDS] [-v] [MESSAGE...]",
                 "Sends each MESSAGE (or each line of stdin) as one datagram to the server and "
                 "prints each reply on its own line.");
    cli.option('s', "socket", "ADDR", "the server: socket path, or @name for an abstract name",
               [&](const std::string& v) { socket_arg = v; })
        .option('b', "bind", "ADDR",
                "our own address (path, removed on exit, or @name); default: autobind",
                [&](const std::string& v) { bind_arg = v; })
        .option(
            't', "timeout", "SECONDS", "how long to wait for each reply (default 5)",
            [&](const std::string& v) { timeout_s = uds::parse_number(v, "--timeout", 1, 3600); })
        .option('v', "verbose", "", "say on stderr which addresses are used",
                [&](const std::string&) { verbose = true; });
    auto messages = cli.parse(argc, argv);
    // An option given with an empty value (-s "$UNSET") is a usage error, never "the default".
    const uds::Address server = socket_arg ? uds::address_argument(*socket_arg)
                                           : uds::default_path_address("03-datagram.sock");
    uds::Address me;  // unnamed: with exactly sizeof(sa_family_t) bytes, bind() autobinds
    if (bind_arg) {
        try {
            me = uds::Address::parse(*bind_arg);
        } catch (const uds::AddressError& e) {
            throw uds::UsageError(std::string("--bind: ") + e.what());
        }
    }
    const int timeout_ms = static_cast<int>(timeout_s * 1000);
    uds::install_shutdown_handlers();  // so that SIGINT/SIGTERM still remove our --bind file

    //@C1 socket: create the client's socket: the same family and type as the server's, not inherited across exec | socket(2), unix(7); README "C1. socket"
    //@hint AF_UNIX, SOCK_DGRAM with SOCK_CLOEXEC OR-ed in, protocol 0.
    // C1. socket: the same family and type as the server's.
    uds::Fd sock{uds::check(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), "socket")};
    //@stub uds::Fd sock;
    //@end

    //@C2 bind: give the client's socket an address (me: autobind when no --bind was given, else that path or @name with its exact length) so that the server can answer | bind(2), unix(7) "Autobind feature"; README "C2. bind"
    //@hint me.sockaddr_ptr() and me.length(). An unnamed uds::Address is just the family: its length is sizeof(sa_family_t), which is what asks Linux to autobind.
    // C2. bind: a datagram has a "from" address only if the sending socket has a name. Unbound,
    //     our datagrams arrive with msg_namelen 0 and the server has nowhere to send the reply.
    //     Autobind: an address of just the family (addrlen == sizeof(sa_family_t)) asks Linux
    //     to pick a unique abstract name like @0001f: no file, gone when we close.
    int bound = bind(sock.get(), me.sockaddr_ptr(), me.length());
    //@stub int bound = -1;
    //@end
    if (bound == -1) {
        int err = errno;
        throw uds::SysError(err, "bind " + (bind_arg ? me.str() : "(autobind)"),
                            err == EADDRINUSE ? "that address is taken; choose another --bind, "
                                                "or leave --bind out to autobind"
                                              : "");
    }
    uds::SocketFile my_file{me};  // step C6: unlink our own --bind file, however we leave
    if (verbose) uds::log("bound to " + uds::local_address(sock.get()).str());

    //@C3 connect: make the server the socket's default peer, so that send and recv need no address, only the server's datagrams get in, and a missing server is reported at once | connect(2) on a datagram socket, unix(7); README "C3. connect"
    //@hint server.sockaddr_ptr() and server.length(). On a datagram socket connect sends nothing and waits for nobody.
    // C3. connect: on a datagram socket this sends nothing and waits for nobody. It records the
    //     server as our default peer: send()/recv() need no address, datagrams from anyone else
    //     are refused (their sendto gets EPERM), and a server that is not there is reported
    //     right here (ENOENT, ECONNREFUSED) instead of by a reply that never comes.
    int connected = connect(sock.get(), server.sockaddr_ptr(), server.length());
    //@stub int connected = -1;
    //@end
    if (connected == -1) {
        int err = errno;
        throw uds::SysError(err, "connect " + server.str(), connect_hint(err, server, socket_arg));
    }
    if (verbose) uds::log("connected to " + server.str());

    const std::string where = server.str();
    try {
        if (!messages.empty()) {
            for (const std::string& m : messages)
                print(request(sock.get(), m, timeout_ms, where));
        } else {
            for_each_stdin_line(
                [&](const std::string& m) { print(request(sock.get(), m, timeout_ms, where)); });
        }
    } catch (const uds::Stopped&) {
        uds::log(std::string("stopped by signal: ") + strsignal(uds::stop_signal()) +
                 (bind_arg ? "; removing " + me.str() : ""));
        return 1;  // main() re-raises the signal once the destructors have cleaned up
    }
    // C6. close: the destructors close the socket and unlink our --bind file (my_file).
    return 0;
}

// Sends one message and waits for its reply. Throws on failure, uds::Stopped on a signal.
std::string request(int sock, const std::string& message, int timeout_ms,
                    const std::string& where) {
    for (;;) {
        //@C4 send: send the whole message as one datagram to the connected server, never blocking (so a signal is always noticed) and never raising SIGPIPE | send(2), unix(7); README "C4. send"
        //@hint The socket is connected (C3): send() needs no address. One call, one datagram.
        //@hint The flags are MSG_DONTWAIT | MSG_NOSIGNAL; the code after this step waits and retries on EAGAIN.
        // C4. send: the whole message as one datagram. MSG_DONTWAIT + wait_writable instead of
        //     a blocking send, so that SIGINT/SIGTERM can interrupt the wait: when the server's
        //     queue is full, send says EAGAIN, and because we are connected, poll() reports the
        //     socket writable exactly when the server's queue has room again.
        ssize_t sent = send(sock, message.data(), message.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        //@stub ssize_t sent = -1;
        //@end
        if (sent != -1) break;
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN) {
            auto w = uds::wait_writable(sock, timeout_ms);
            if (w == uds::Wait::Stop) throw uds::Stopped{};
            if (w == uds::Wait::Timeout)
                throw uds::Failure("send " + where + ": the server's queue stayed full for " +
                                   std::to_string(timeout_ms / 1000) + " s");
            continue;
        }
        if (err == EMSGSIZE)
            throw uds::SysError(err, "send " + where,
                                "a datagram of " + std::to_string(message.size()) +
                                    " bytes does not fit in the socket send buffer (SO_SNDBUF)");
        if (err == ECONNREFUSED)  // the socket we connected to is closed: the server stopped
            throw uds::SysError(err, "send " + where, "the server has stopped");
        throw uds::SysError(err, "send " + where);
    }

    // If the server never answers (it stopped, or it dropped our request), nothing will ever
    // wake us: hence the timeout.
    char buf[uds::kMaxLine];
    for (;;) {
        auto w = uds::wait_readable(sock, timeout_ms);
        if (w == uds::Wait::Stop) throw uds::Stopped{};
        if (w == uds::Wait::Timeout)
            throw uds::Failure(
                "recv " + where + ": no reply within " + std::to_string(timeout_ms / 1000) + " s",
                "is the server still running? raise --timeout if it is slow");
        //@C5 recv: take one whole reply datagram, and notice a reply longer than the 4096-byte buffer instead of printing it cut | recv(2) MSG_TRUNC; README "C5. recv"
        //@hint recv() on the connected socket, into buf; MSG_DONTWAIT, because poll already said readable.
        //@hint With the flag MSG_TRUNC, recv returns the datagram's real length even when it did not fit: compare it with sizeof buf.
        // C5. recv: one whole datagram, the reply. With MSG_TRUNC the result is its real length,
        //     so a reply too long for buf is noticed, never printed cut.
        ssize_t n = recv(sock, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC);
        const bool too_long = n > static_cast<ssize_t>(sizeof buf);
        //@stub ssize_t n = -1;
        //@stub const bool too_long = false;
        //@end
        if (n == -1 && (errno == EINTR || errno == EAGAIN)) continue;
        uds::check(n, "recv " + where);
        if (too_long)
            throw uds::Failure("recv " + where + ": a reply of " + std::to_string(n) +
                               " bytes is longer than any reply this service sends");
        return {buf, static_cast<std::size_t>(n)};  // 0 bytes is a valid (empty) reply, not EOF
    }
}

}  // namespace

int main(int argc, char** argv) {
    int status = uds::run_main("client", argc, argv, run);
    // Stopped by a signal: our file is gone by now; die of that same signal, so that the shell
    // (or whoever started us) sees "killed by SIGTERM" and not an ordinary failure.
    if (uds::stop_requested()) {
        std::signal(uds::stop_signal(), SIG_DFL);
        std::raise(uds::stop_signal());
    }
    return status;
}
