// YOUR server.cpp for 03-datagram: the exercise starter, generated from the
// reference 03-datagram/server.cpp by scripts/make-starter.
// Every TODO is one step of the lesson: write it, then run `make grade-03`;
// the first FAIL names the step to look at. Stuck? One hint at a time:
// 03-datagram/exercise/HINTS.md.
//
// 03-datagram/server.cpp - the upper-casing service over datagrams: one datagram in, one out.
//
// The lesson, in the order the calls happen:
//   S1. socket       AF_UNIX + SOCK_DGRAM: separate messages, no connections
//   S2. setsockopt   SO_PASSCRED: every datagram will bring its sender's uid
//   S3. bind         give the socket its name; no listen(), no accept()
//   S4. recvmsg      ONE whole datagram, its real size (MSG_TRUNC), the sender's address
//   S5. credentials  the sender's uid, from the control message (SCM_CREDENTIALS)
//   S6. check        the return address: reply only where the sender could send itself
//   S7. sendto       one reply, to that checked address
//   S8. unlink + close   on SIGINT/SIGTERM
//
// No connections: one socket serves every client, and the only thing that tells the clients
// apart is the address each datagram comes from. A client that never bound has none and cannot
// be answered. A client's path is looked up again when we send, with OUR permissions: that is
// why step S6 checks it (README "Pitfalls": a reply must not become a weapon).
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>

#include "uds.hpp"

namespace {

// Our own name (and socket file), so that we never answer ourselves.
struct Self {
    uds::Address address;
    dev_t dev = 0;  // the socket file's device and inode, for a path address
    ino_t ino = 0;
};

// Where the reply to one datagram goes, or why it gets none.
struct ReturnAddress {
    uds::Address to;      // what sendto gets
    uds::Fd pinned;       // a path sender's socket file, held open while we check and send
    std::string refused;  // non-empty: no reply, and this is why
};

ReturnAddress refuse(std::string why) {
    ReturnAddress r;
    r.refused = std::move(why);
    return r;
}

void serve_one(int sock, const Self& self, uds::LogLimit& log);

int run(int argc, char** argv) {
    std::optional<std::string> socket_arg;
    uds::Cli cli("server", "[-s ADDR]",
                 "Answers each datagram with the datagram upper-cased, sent back to its sender.\n"
                 "Default ADDR: $XDG_RUNTIME_DIR/uds-tutorial/03-datagram.sock "
                 "(or /tmp/uds-tutorial-UID/...).");
    cli.option('s', "socket", "ADDR", "socket path, or @name for an abstract name",
               [&](const std::string& v) { socket_arg = v; });
    auto rest = cli.parse(argc, argv);
    if (!rest.empty()) throw uds::UsageError("unexpected argument '" + rest.front() + "'");
    // Given but empty (-s "$UNSET") is a usage error, never "the default".
    const uds::Address addr = socket_arg ? uds::address_argument(*socket_arg)
                                         : uds::default_path_address("03-datagram.sock");
    uds::install_shutdown_handlers();

    // TODO S1. socket: create the server's socket: AF_UNIX, datagrams, not inherited across exec.
    //      Read: socket(2), unix(7); README "S1. socket".
    uds::unwritten("S1", "socket");
    uds::Fd sock;

    // TODO S2. setsockopt: ask the kernel to attach each sender's credentials to the datagrams it
    //      delivers to this socket, before anyone can send.
    //      Read: socket(7) SO_PASSCRED, unix(7); README "S2. setsockopt".
    uds::unwritten("S2", "setsockopt");

    // TODO S3. bind: give the socket its name (the address addr, with its exact length).
    //      Read: bind(2), unix(7); README "S3. bind".
    uds::unwritten("S3", "bind");
    int bound = -1;
    // EADDRINUSE: something is at the path already. A stale socket file (nobody is bound to
    // it) is removed; a live server or a file that is not a socket makes us refuse.
    if (bound == -1) {
        if (errno != EADDRINUSE || addr.kind() != uds::Address::Kind::Path)
            throw uds::SysError(errno, "bind " + addr.str());
        uds::remove_stale_socket_file(addr, SOCK_DGRAM);
        uds::log("removed stale socket file " + addr.str() + " (its socket was closed)");
        uds::check(bind(sock.get(), addr.sockaddr_ptr(), addr.length()), "bind " + addr.str());
    }
    uds::SocketFile socket_file{addr};  // remembers which file is ours, for step S8
    Self self{addr};
    struct stat st {};
    if (addr.kind() == uds::Address::Kind::Path && lstat(addr.name().c_str(), &st) == 0) {
        self.dev = st.st_dev;
        self.ino = st.st_ino;
    }
    uds::log("bound to " + addr.str());

    // One log line per datagram, but a peer must not be able to multiply our log without
    // limit (an empty datagram costs it nothing): at most 100 such lines a second.
    uds::LogLimit datagram_log{100};
    // poll() on the socket and the shutdown pipe, so a SIGTERM at any moment ends the loop.
    while (uds::wait_readable(sock.get()) == uds::Wait::Ready) {
        try {
            serve_one(sock.get(), self, datagram_log);
        } catch (const uds::SysError& e) {  // about one datagram; never a reason to stop
            datagram_log.log(uds::describe(e));
        }
    }

    // S8. unlink, then close: remove the name first (if the file is still ours), then the
    //     socket. Datagrams still queued for us are discarded by close().
    uds::log(std::string("stopping on ") + strsignal(uds::stop_signal()));
    socket_file.unlink_if_ours();
    sock.reset();
    return 0;
}

// One datagram as recvmsg delivered it. buf holds its first (at most 4096) bytes.
struct Datagram {
    std::size_t size = 0;  // its real length, even when it did not fit
    bool too_long = false;
    uds::Address sender;
    std::optional<ucred> cred;
};

// Takes the next datagram off the queue; nothing when there was none after all (EAGAIN) or a
// signal came first.
std::optional<Datagram> receive(int sock, char (&buf)[uds::kMaxLine]) {
    sockaddr_un from{};
    msghdr msg{};
    // TODO S4. recvmsg: take one whole datagram off the queue with the sender's address and its
    //      control message, and know its real size even when it does not fit the 4096-byte buffer.
    //      Read: recvmsg(2) MSG_TRUNC, unix(7); README "S4. recvmsg".
    uds::unwritten("S4", "recvmsg");
    static_cast<void>(sock), static_cast<void>(buf);
    ssize_t n = -1;
    const bool too_long = false;
    if (n == -1 && (errno == EINTR || errno == EAGAIN)) return std::nullopt;
    uds::check(n, "recvmsg");

    std::optional<ucred> cred;
    // TODO S5. credentials: find the sender's credentials in the control messages, and close any
    //      descriptor a sender attached.
    //      Read: cmsg(3), unix(7) SCM_CREDENTIALS; README "S5. credentials".
    uds::unwritten("S5", "credentials");

    return Datagram{static_cast<std::size_t>(n), too_long,
                    uds::Address::from_kernel(from, msg.msg_namelen), cred};
}

// S6. check the return address: a datagram's "from" is only a name. For a path, sendto looks
// the name up again, follows symlinks and checks permissions as US. So a sender can bind(P),
// unlink(P), symlink(TARGET, P) and send: the reply would land in TARGET, a socket it may not
// write to itself (even our own: we would answer ourselves forever). We reply only where the
// sender could have sent itself.
ReturnAddress check_return_address(const uds::Address& from, const ucred* cred, const Self& self) {
    // TODO S6. check: decide whether the sender can be answered and where; refuse (with a reason)
    //      unnamed senders, our own address, and any path that is not, right now, a socket file
    //      owned by the sender's uid.
    //      Read: open(2) O_PATH and O_NOFOLLOW, fstat(2), inode(7); README "S6. check".
    uds::unwritten("S6", "check");
    static_cast<void>(from), static_cast<void>(cred), static_cast<void>(self);
    return refuse("step S6 is not written");
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
        case EACCES:  // a path sender whose socket file we may not write to
            return "we may not write to the sender's socket file; reply dropped";
        default:
            return std::string(strerror(err)) + "; reply dropped";
    }
}

// Serves one datagram: receive it, check where the reply may go, answer it. Any failure is
// about this one datagram only: it is logged (within the log budget) and the server goes on.
void serve_one(int sock, const Self& self, uds::LogLimit& log) {
    char buf[uds::kMaxLine];
    const std::optional<Datagram> d = receive(sock, buf);
    if (!d) return;
    std::string event = std::to_string(d->size) + " bytes from " + d->sender.str();
    if (d->cred) event += " (uid " + std::to_string(d->cred->uid) + ")";
    const ReturnAddress to = check_return_address(d->sender, d->cred ? &*d->cred : nullptr, self);
    if (!to.refused.empty()) {
        log.log(event + ": no reply: " + to.refused);
        return;
    }

    // The reply: the datagram upper-cased, or the error if it did not fit. An empty datagram
    // gets an empty reply; no '\n' is added: a datagram is its own boundary.
    const std::string reply =
        d->too_long ? std::string(uds::kDatagramTooLong) : uds::upcase({buf, d->size});
    if (d->too_long) event += " (longer than 4096: cut by the kernel, detected by MSG_TRUNC)";

    // TODO S7. sendto: send the reply as one datagram to the checked return address, without ever
    //      blocking the service for one slow client and without SIGPIPE.
    //      Read: sendto(2) MSG_DONTWAIT, MSG_NOSIGNAL; README "S7. sendto".
    uds::unwritten("S7", "sendto");
    ssize_t sent = -1;
    if (sent == -1) {
        log.log(event + ": sendto failed: " + sendto_failure(errno));
        return;
    }
    log.log(event + ": replied " + std::to_string(reply.size()) + " bytes");
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("server", argc, argv, run);
}
