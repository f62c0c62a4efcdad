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

    //@S1 socket: create the server's socket: AF_UNIX, datagrams, not inherited across exec | socket(2), unix(7); README "S1. socket"
    //@hint The type is SOCK_DGRAM; OR SOCK_CLOEXEC into it. uds::check(rc, "socket") turns -1 into an error that names the call.
    // S1. socket: SOCK_DGRAM keeps message boundaries: one send() is one recv(), whole. On
    //     Linux, AF_UNIX datagrams are also reliable and ordered (unlike UDP): a full queue
    //     makes the *sender* wait instead of losing anything.
    uds::Fd sock{uds::check(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), "socket")};
    //@stub uds::Fd sock;
    //@end

    //@S2 setsockopt: ask the kernel to attach each sender's credentials to the datagrams it delivers to this socket, before anyone can send | socket(7) SO_PASSCRED, unix(7); README "S2. setsockopt"
    //@hint setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) with int on = 1, before bind().
    // S2. setsockopt SO_PASSCRED, before bind: from now on every datagram queued for us carries
    //     the sender's pid, uid and gid (S5 reads them). Set after bind, the first datagrams
    //     could arrive without.
    const int on = 1;
    uds::check(setsockopt(sock.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on),
               "setsockopt SO_PASSCRED");
    //@end

    //@S3 bind: give the socket its name (the address addr, with its exact length) | bind(2), unix(7); README "S3. bind"
    //@hint addr.sockaddr_ptr() and addr.length() are what chapter 01 built by hand: the family, the path (or @name), and the exact length.
    // S3. bind: the name, exactly as in chapter 01. No listen(): a datagram socket receives as
    //     soon as it has a name.
    int bound = bind(sock.get(), addr.sockaddr_ptr(), addr.length());
    //@stub int bound = -1;
    //@end
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
    //@S4 recvmsg: take one whole datagram off the queue with the sender's address and its control message, and know its real size even when it does not fit the 4096-byte buffer | recvmsg(2) MSG_TRUNC, unix(7); README "S4. recvmsg"
    //@hint msg_name/msg_namelen get the sender's address, msg_iov the buffer, msg_control the credentials. The flag MSG_TRUNC makes recvmsg return the datagram's real length; msg_flags & MSG_TRUNC says it was cut.
    //@hint Also pass MSG_DONTWAIT (poll said readable; a signal must not leave us blocked) and MSG_CMSG_CLOEXEC.
    // S4. recvmsg: exactly one datagram, however long it was (boundaries are kept: never half
    //     a datagram, never two). The kernel fills in msg_name with the sender's address and
    //     sets msg_namelen to its real length, 0 for a sender that never bound.
    iovec iov{buf, sizeof buf};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;  // room for the credentials (S5), nothing more
    msg.msg_controllen = sizeof control;
    // MSG_TRUNC as an *input* flag: recvmsg returns the datagram's real length even when it
    // did not fit. The bytes past sizeof buf are gone; this is our only chance to notice.
    ssize_t n = recvmsg(sock, &msg, MSG_TRUNC | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    const bool too_long = (msg.msg_flags & MSG_TRUNC) != 0;  // set whenever it was cut
    //@stub static_cast<void>(sock), static_cast<void>(buf);
    //@stub ssize_t n = -1;
    //@stub const bool too_long = false;
    //@end
    if (n == -1 && (errno == EINTR || errno == EAGAIN)) return std::nullopt;
    uds::check(n, "recvmsg");

    std::optional<ucred> cred;
    //@S5 credentials: find the sender's credentials in the control messages, and close any descriptor a sender attached | cmsg(3), unix(7) SCM_CREDENTIALS; README "S5. credentials"
    //@hint Walk the control messages with CMSG_FIRSTHDR / CMSG_NXTHDR; the one with cmsg_level SOL_SOCKET and cmsg_type SCM_CREDENTIALS holds a struct ucred (memcpy it out of CMSG_DATA).
    //@hint A sender may attach descriptors (SCM_RIGHTS): close every one that reaches you.
    // S5. credentials: with SO_PASSCRED the kernel adds who sent the datagram (pid, uid, gid),
    //     as checked by the kernel: nobody can claim another uid without root.
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET) continue;
        if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len == CMSG_LEN(sizeof(ucred))) {
            ucred u{};
            std::memcpy(&u, CMSG_DATA(c), sizeof u);
            cred = u;
        } else if (c->cmsg_type == SCM_RIGHTS) {  // descriptors: never keep one
            const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (std::size_t i = 0; i < count; ++i) {
                int fd = -1;
                std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                close(fd);
            }
        }
    }
    //@end

    return Datagram{static_cast<std::size_t>(n), too_long,
                    uds::Address::from_kernel(from, msg.msg_namelen), cred};
}

// S6. check the return address: a datagram's "from" is only a name. For a path, sendto looks
// the name up again, follows symlinks and checks permissions as US. So a sender can bind(P),
// unlink(P), symlink(TARGET, P) and send: the reply would land in TARGET, a socket it may not
// write to itself (even our own: we would answer ourselves forever). We reply only where the
// sender could have sent itself.
ReturnAddress check_return_address(const uds::Address& from, const ucred* cred, const Self& self) {
    //@S6 check: decide whether the sender can be answered and where; refuse (with a reason) unnamed senders, our own address, and any path that is not, right now, a socket file owned by the sender's uid | open(2) O_PATH and O_NOFOLLOW, fstat(2), inode(7); README "S6. check"
    //@hint Abstract and autobound names have no file: nobody can redirect them. A path must be absolute, and the file behind it must be checked where it is, without following a symlink.
    //@hint open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC) gives you the file itself (a symlink stays a symlink); fstat it: S_ISSOCK, st_uid == cred->uid, st_nlink == 1, not our own st_dev/st_ino. Then send through "/proc/self/fd/N", the file you checked.
    if (from.kind() == uds::Address::Kind::Unnamed)
        return refuse(
            "the sender has no address (msg_namelen 0): it never bound its socket. "
            "Fix the client: bind() before sending (autobind: addrlen = "
            "sizeof(sa_family_t))");
    if (from == self.address) return refuse("it comes from our own address (a loop)");
    if (cred == nullptr) return refuse("no credentials came with it (SO_PASSCRED, step S2)");
    if (from.kind() == uds::Address::Kind::Abstract)
        return {from, uds::Fd{}, {}};  // no file: the name reaches the socket that holds it
    const std::string path = from.name();
    if (path.front() != '/') return refuse("a relative path means another file from here");
    // The file itself, not what it points to; the descriptor pins it: a file swapped in
    // after this open is not the one we send to.
    uds::Fd file{open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC)};
    if (!file) return refuse(std::string("the sender has gone away (") + strerror(errno) + ")");
    struct stat st {};
    uds::check(fstat(file.get(), &st), "fstat " + path);
    if (S_ISLNK(st.st_mode)) return refuse("its path is now a symlink");
    if (!S_ISSOCK(st.st_mode)) return refuse("its path is no longer a socket");
    if (st.st_uid != cred->uid)
        return refuse("its socket file belongs to uid " + std::to_string(st.st_uid) +
                      ", not to the sender");
    if (st.st_nlink != 1) return refuse("its socket file has another name (a hard link)");
    if (st.st_dev == self.dev && st.st_ino == self.ino)
        return refuse("its path leads to our own socket (a loop)");
    // "/proc/self/fd/N" names the very file we checked.
    uds::Address pinned = uds::Address::path("/proc/self/fd/" + std::to_string(file.get()));
    return {pinned, std::move(file), {}};
    //@stub static_cast<void>(from), static_cast<void>(cred), static_cast<void>(self);
    //@stub return refuse("step S6 is not written");
    //@end
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

    //@S7 sendto: send the reply as one datagram to the checked return address, without ever blocking the service for one slow client and without SIGPIPE | sendto(2) MSG_DONTWAIT, MSG_NOSIGNAL; README "S7. sendto"
    //@hint The destination is to.to (its sockaddr_ptr() and length()). A reply that cannot go at once is dropped (the code after this step logs why), never waited for.
    //@hint The flags are MSG_DONTWAIT | MSG_NOSIGNAL.
    // S7. sendto: one reply datagram. MSG_DONTWAIT: if that client does not read its replies,
    //     its queue fills up and a blocking sendto would stall everybody; we drop the reply
    //     instead (EAGAIN). MSG_NOSIGNAL: never SIGPIPE.
    ssize_t sent = sendto(sock, reply.data(), reply.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
                          to.to.sockaddr_ptr(), to.to.length());
    //@stub ssize_t sent = -1;
    //@end
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
