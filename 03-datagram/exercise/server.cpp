// 03-datagram/exercise/server.cpp - YOUR server: fill in the steps marked TODO.
//
// It compiles as it is, and fails the chapter's tests (make grade-03 STUDENT=03-datagram/exercise)
// with test names that say which step is missing: Ch03Steps.ServerStep1and2_..., ServerStep3_...
// Each todo(N, "call") stands where the reference calls `call`: replace it with the real call.
// The reference solution is ../server.cpp; try without it first.
//
// (original header:) the upper-casing service over datagrams: one datagram in, one out.
//
// The lesson, in the order the calls happen (each step is numbered below):
//   1. socket   AF_UNIX + SOCK_DGRAM: separate messages, no connections
//   2. bind     give it a name: a path (or @name); bind creates the socket file there
//   3. recvmsg  take ONE whole datagram off the queue, and the sender's address with it
//   4. sendto   the reply, addressed to that sender (no connection to answer on)
//   5. unlink + close   on SIGINT/SIGTERM
//
// No listen(), no accept(): there are no connections, so one socket serves every client, and
// the only thing that tells the clients apart is the address each datagram arrives from.
// That is why a datagram client must bind() too: a sender without an address cannot be
// answered (see 03-datagram/README.md, "Why the client needs an address").
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "uds.hpp"

namespace {

// Stands in for a system call you have not written yet: instead of returning, it stops the
// program with a message naming the step ("server: step 3 (recvmsg) is not written yet").
[[noreturn]] int todo(int step, const char* call) {
    throw uds::Failure("step " + std::to_string(step) + " (" + call + ") is not written yet",
                       "see TODO(step " + std::to_string(step) + ") in server.cpp");
}

// Why a reply could not be sent, in words a student can act on.
std::string sendto_failure(int err) {
    switch (err) {
        case ECONNREFUSED:  // its socket is closed (an autobound name, or a path left behind)
        case ENOENT:        // its socket file is gone
            return "the sender has gone away; reply dropped";
        case EAGAIN:  // MSG_DONTWAIT, and its receive queue (or our send buffer) is full
            return "no room (a client is not reading its replies, so its queue or our send "
                   "buffer is full); reply dropped rather than blocking every other client";
        case EPERM:  // it is connect()ed to some other socket and accepts datagrams only from it
            return "the sender's socket is connected to another address and refuses ours";
        default:
            return std::string(strerror(err)) + "; reply dropped";
    }
}

// Serves one datagram: receive it, check it, answer it. Any failure is about this one
// datagram only: it is logged and the server goes on.
void serve_one(int sock) {
    // 3. recvmsg: exactly one datagram, however many bytes were sent in it (boundaries are
    //    kept: never half a datagram, never two). The kernel also fills in msg_name with the
    //    sender's address and sets msg_namelen to its real length.
    char buf[uds::kMaxLine];
    iovec iov{buf, sizeof buf};
    sockaddr_un from{};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    // No msg_control: if a peer attaches descriptors (SCM_RIGHTS), the kernel closes them for
    // us and sets MSG_CTRUNC; none can leak into this process.
    //
    // MSG_TRUNC as an *input* flag makes recvmsg return the datagram's real length even when
    // it did not fit in buf. A datagram is delivered whole or not at all: the bytes past
    // sizeof buf are discarded, so this is our only chance to notice them.
    // TODO(step 3): ssize_t n = recvmsg(sock, &msg, MSG_TRUNC | MSG_DONTWAIT);
    //               (recvfrom works too, with &from and &msg.msg_namelen; but then only the
    //               MSG_TRUNC flag tells you the real size: there is no msg_flags to look at)
    (void)sock;
    ssize_t n = todo(3, "recvmsg");
    if (n == -1 && (errno == EINTR || errno == EAGAIN)) return;
    uds::check(n, "recvmsg");
    const auto size = static_cast<std::size_t>(n);

    // The sender's address. An unbound sender has none: msg_namelen comes back as 0.
    const uds::Address sender = uds::Address::from_kernel(from, msg.msg_namelen);
    std::string event = std::to_string(size) + " bytes from " + sender.str();
    if (sender.kind() == uds::Address::Kind::Unnamed) {
        uds::log(event + " (msg_namelen " + std::to_string(msg.msg_namelen) +
                 "): cannot reply, the sender has no address. Fix the client: bind() its socket "
                 "before sending, to a path or with autobind (bind with addrlen = "
                 "sizeof(sa_family_t))");
        return;
    }

    // The reply: the datagram upper-cased, or the error if it did not fit. msg_flags has
    // MSG_TRUNC whenever the datagram was longer than buf (size > sizeof buf says the same).
    std::string reply;
    if ((msg.msg_flags & MSG_TRUNC) != 0 || size > sizeof buf) {
        event += " (longer than 4096: cut by the kernel, detected by MSG_TRUNC)";
        reply = uds::kDatagramTooLong;  // no '\n': a datagram is its own boundary
    } else {
        reply = uds::upcase({buf, size});  // an empty datagram gets an empty reply
    }

    // 4. sendto: one reply datagram to the address it came from. MSG_DONTWAIT: if that client
    //    does not read its replies, its queue fills up and a blocking sendto would stall the
    //    service for everybody; we drop the reply instead (EAGAIN). MSG_NOSIGNAL: never SIGPIPE.
    // TODO(step 4): sendto(sock, reply.data(), reply.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
    //                      sender.sockaddr_ptr(), sender.length())   instead of todo(...)
    if (todo(4, "sendto") == -1) {
        uds::log(event + ": sendto failed: " + sendto_failure(errno));
        return;
    }
    uds::log(event + ": replied " + std::to_string(reply.size()) + " bytes");
}

int run(int argc, char** argv) {
    std::string socket_arg;
    uds::Cli cli("server", "[-s ADDR]",
                 "Answers each datagram with the datagram upper-cased, sent back to its sender.\n"
                 "Default ADDR: $XDG_RUNTIME_DIR/uds-tutorial/03-datagram.sock "
                 "(or /tmp/uds-tutorial-UID/...).");
    cli.option('s', "socket", "ADDR", "socket path, or @name for an abstract name",
               [&](const std::string& v) { socket_arg = v; });
    auto rest = cli.parse(argc, argv);
    if (!rest.empty()) throw uds::UsageError("unexpected argument '" + rest.front() + "'");
    const uds::Address addr = socket_arg.empty() ? uds::default_path_address("03-datagram.sock")
                                                 : uds::address_argument(socket_arg);
    uds::install_shutdown_handlers();

    // 1. socket: SOCK_DGRAM keeps message boundaries: one send() is one recv(), whole.
    //    On Linux, AF_UNIX datagrams are also reliable and ordered (unlike UDP): nothing is lost
    //    or reordered; a full queue makes the *sender* wait instead.
    // TODO(step 1): socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)   instead of todo(...)
    uds::Fd sock{uds::check(todo(1, "socket"), "socket")};

    // 2. bind: give the socket its name, exactly as in chapter 01. EADDRINUSE: something is at
    //    the path already. A stale socket file (connect() is refused: nobody is bound to it) is
    //    removed; a live server or a file that is not a socket makes us refuse.
    // TODO(step 2): bind(sock.get(), addr.sockaddr_ptr(), addr.length())   instead of todo(...)
    if (todo(2, "bind") == -1) {
        if (errno != EADDRINUSE || addr.kind() != uds::Address::Kind::Path)
            throw uds::SysError(errno, "bind " + addr.str());
        // TODO(step 2): the path is taken. uds::remove_stale_socket_file(addr, SOCK_DGRAM) removes
        //               it if it is a stale socket file (and throws if it is not: a live server,
        //               or not a socket); log "removed stale socket file ...", then bind again,
        //               checked with uds::check, instead of this throw.
        throw uds::SysError(EADDRINUSE, "bind " + addr.str(), "step 2 is not finished");
    }
    // TODO(step 5): remember which file is ours, right after bind:
    //                   uds::SocketFile socket_file{addr};
    uds::SocketFile socket_file;
    // No listen(): a datagram socket receives as soon as it has a name.
    uds::log("bound to " + addr.str());

    // Wait with poll() on the socket and the shutdown pipe, so a SIGTERM that arrives at any
    // moment ends the loop (a plain blocking recvmsg could miss it).
    while (uds::wait_readable(sock.get()) == uds::Wait::Ready) {
        try {
            serve_one(sock.get());
        } catch (const uds::SysError& e) {  // never seen in practice; still not a reason to stop
            uds::log(uds::describe(e));
        }
    }

    // 5. unlink, then close: remove the name first (if the file is still ours), then the socket.
    //    Datagrams still queued for us are discarded by close().
    uds::log(std::string("stopping on ") + strsignal(uds::stop_signal()));
    // TODO(step 5): socket_file.unlink_if_ours();   (it calls unlink(path) if the file is still
    //               the one our bind() created; a new server's file is left alone)
    sock.reset();
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("server", argc, argv, run);
}
