// solutions/03-datagram/no-starving/server.cpp - chapter 03's server, which a client that
// connect()s to it and never reads can no longer starve.
//
// Exercise 5 of chapter 03. Why it could: a reply waits in its receiver's queue, charged to OUR
// send buffer (SO_SNDBUF), which all replies share. For an unconnected receiver the kernel caps
// the queue (max_dgram_qlen: sendto gets EAGAIN for that one receiver), but a receiver that is
// connect()ed to us is exempt: its queue grows until our whole send buffer is full, and from then
// on every sendto, to anybody, fails with EAGAIN ("no room").
//
// What this server adds (the Fairness class, used at step S7): once our send buffer is a
// quarter full (SIOCOUTQ), it asks the kernel which sockets are connected to ours and which of
// them have unread datagrams (sock_diag, the netlink interface `ss` uses). A connected peer whose
// queue has not been seen empty for kMaxHeld replies gets no more replies until it reads. Peers
// that are not connected to us are left to the kernel's cap.
//
// The kernel reports only the length of the FIRST queued datagram (unix_inq_len), so "0" means
// "empty" only if we sent that peer no empty reply: while the buffer is filling, a connected peer's
// empty request gets no reply, and a peer we sent an empty reply to is not trusted to be empty.
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
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/sockios.h>
#include <linux/unix_diag.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
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

// Who may be sent another reply: per connected peer, the replies sent since its queue was last
// seen empty.
class Fairness {
  public:
    static constexpr int kMaxHeld = 32;  // replies a connected peer may leave unread

    explicit Fairness(int sock);
    // Before a reply of `size` bytes to `to`: empty if it may be sent, else why not.
    std::string check(const uds::Address& to, std::size_t size);
    // After it was sent.
    void sent(const uds::Address& to, std::size_t size);

  private:
    struct Peer {
        int held = 0;          // replies sent since its queue was last seen empty
        bool empties = false;  // an empty reply among them: a "0" from the kernel proves nothing
    };
    int sock_;
    ino_t ino_ = 0;       // our socket's inode: what sock_diag names as a connected peer's peer
    int high_water_ = 0;  // bytes in our send buffer from which we look closer
    std::map<std::string, Peer> peers_;
};

void serve_one(int sock, const Self& self, uds::LogLimit& log, Fairness& fairness);

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

    // S1. socket: SOCK_DGRAM keeps message boundaries: one send() is one recv(), whole. On
    //     Linux, AF_UNIX datagrams are also reliable and ordered (unlike UDP): a full queue
    //     makes the *sender* wait instead of losing anything.
    uds::Fd sock{uds::check(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), "socket")};

    // S2. setsockopt SO_PASSCRED, before bind: from now on every datagram queued for us carries
    //     the sender's pid, uid and gid (S5 reads them). Set after bind, the first datagrams
    //     could arrive without.
    const int on = 1;
    uds::check(setsockopt(sock.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on),
               "setsockopt SO_PASSCRED");

    // S3. bind: the name, exactly as in chapter 01. No listen(): a datagram socket receives as
    //     soon as it has a name.
    int bound = bind(sock.get(), addr.sockaddr_ptr(), addr.length());
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
    Fairness fairness{sock.get()};
    // poll() on the socket and the shutdown pipe, so a SIGTERM at any moment ends the loop.
    while (uds::wait_readable(sock.get()) == uds::Wait::Ready) {
        try {
            serve_one(sock.get(), self, datagram_log, fairness);
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
    if (n == -1 && (errno == EINTR || errno == EAGAIN)) return std::nullopt;
    uds::check(n, "recvmsg");

    std::optional<ucred> cred;
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

    return Datagram{static_cast<std::size_t>(n), too_long,
                    uds::Address::from_kernel(from, msg.msg_namelen), cred};
}

// S6. check the return address: a datagram's "from" is only a name. For a path, sendto looks
// the name up again, follows symlinks and checks permissions as US. So a sender can bind(P),
// unlink(P), symlink(TARGET, P) and send: the reply would land in TARGET, a socket it may not
// write to itself (even our own: we would answer ourselves forever). We reply only where the
// sender could have sent itself.
ReturnAddress check_return_address(const uds::Address& from, const ucred* cred, const Self& self) {
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
void serve_one(int sock, const Self& self, uds::LogLimit& log, Fairness& fairness) {
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

    // Exercise 5: a connected peer that leaves its replies unread gets no more of them.
    if (std::string why = fairness.check(d->sender, reply.size()); !why.empty()) {
        log.log(event + ": no reply: " + why);
        return;
    }

    // S7. sendto: one reply datagram. MSG_DONTWAIT: if that client does not read its replies,
    //     its queue fills up and a blocking sendto would stall everybody; we drop the reply
    //     instead (EAGAIN). MSG_NOSIGNAL: never SIGPIPE.
    ssize_t sent = sendto(sock, reply.data(), reply.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
                          to.to.sockaddr_ptr(), to.to.length());
    if (sent == -1) {
        log.log(event + ": sendto failed: " + sendto_failure(errno));
        return;
    }
    fairness.sent(d->sender, reply.size());
    log.log(event + ": replied " + std::to_string(reply.size()) + " bytes");
}

// The sockets connected to the socket with inode `ino`, by name (the bytes of sun_path: an
// abstract name starts with NUL), each with "it has unread datagrams". One sock_diag dump: the
// kernel lists every AF_UNIX socket with its name, its peer's inode and its receive queue.
std::map<std::string, bool> connected_to(ino_t ino) {
    uds::Fd nl{uds::check(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG),
                          "socket NETLINK_SOCK_DIAG")};
    struct {
        nlmsghdr nlh;
        unix_diag_req req;
    } request{};
    request.nlh.nlmsg_len = sizeof request;
    request.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    request.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    request.req.sdiag_family = AF_UNIX;
    request.req.udiag_states = ~0U;  // sockets in every state
    request.req.udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN;
    uds::check(send(nl.get(), &request, sizeof request, 0), "send sock_diag request");

    std::map<std::string, bool> found;
    alignas(nlmsghdr) char buf[65536];
    for (;;) {
        const ssize_t got = recv(nl.get(), buf, sizeof buf, 0);
        if (got == -1 && errno == EINTR) continue;
        uds::check(got, "recv sock_diag");
        int left = static_cast<int>(got);
        for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, left);
             h = NLMSG_NEXT(h, left)) {
            if (h->nlmsg_type == NLMSG_DONE) return found;
            if (h->nlmsg_type == NLMSG_ERROR) throw uds::Failure("sock_diag refused the dump");
            const auto* msg = static_cast<const unix_diag_msg*>(NLMSG_DATA(h));
            int attr_left = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof *msg));
            std::optional<std::string> name;
            std::uint32_t peer = 0;
            bool unread = false;
            for (auto* a = reinterpret_cast<rtattr*>(const_cast<unix_diag_msg*>(msg) + 1);
                 RTA_OK(a, attr_left); a = RTA_NEXT(a, attr_left)) {
                if (a->rta_type == UNIX_DIAG_NAME) {
                    name.emplace(static_cast<const char*>(RTA_DATA(a)), RTA_PAYLOAD(a));
                } else if (a->rta_type == UNIX_DIAG_PEER) {
                    std::memcpy(&peer, RTA_DATA(a), sizeof peer);
                } else if (a->rta_type == UNIX_DIAG_RQLEN) {
                    unix_diag_rqlen q{};
                    std::memcpy(&q, RTA_DATA(a), sizeof q);
                    unread = q.udiag_rqueue > 0;  // the length of the FIRST queued datagram
                }
            }
            if (name && peer == ino) found[*name] = unread;
        }
    }
}

// A sender's address as sock_diag names it: the bytes of sun_path.
std::string raw_name(const uds::Address& a) {
    return a.kind() == uds::Address::Kind::Abstract ? std::string(1, '\0') + a.name() : a.name();
}

Fairness::Fairness(int sock) : sock_(sock) {
    struct stat st {};
    uds::check(fstat(sock, &st), "fstat our socket");
    ino_ = st.st_ino;
    int sndbuf = 0;
    socklen_t len = sizeof sndbuf;
    uds::check(getsockopt(sock, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len), "getsockopt SO_SNDBUF");
    high_water_ = sndbuf / 4;
}

std::string Fairness::check(const uds::Address& to, std::size_t size) {
    int held_bytes = 0;  // SIOCOUTQ: bytes of our replies that nobody has read yet
    uds::check(ioctl(sock_, SIOCOUTQ, &held_bytes), "ioctl SIOCOUTQ");
    if (held_bytes == 0) peers_.clear();  // nobody holds anything: every count starts again
    if (held_bytes < high_water_) return {};
    // Our send buffer is filling up: somebody is not reading. Look closer.
    const std::map<std::string, bool> connected = connected_to(ino_);
    for (auto it = peers_.begin(); it != peers_.end();) {  // the ones seen empty start again
        auto c = connected.find(it->first);
        if (c == connected.end() || (!c->second && !it->second.empties))
            it = peers_.erase(it);
        else
            ++it;
    }
    const std::string name = raw_name(to);
    if (connected.count(name) == 0) return {};  // not connected: the kernel caps its queue
    if (size == 0) return "an empty reply to a connected peer while our send buffer fills";
    const auto it = peers_.find(name);
    if (it != peers_.end() && it->second.held >= kMaxHeld)
        return "it is connected to us and holds " + std::to_string(it->second.held) +
               " unread replies (our send buffer holds " + std::to_string(held_bytes) +
               " bytes): none until it reads";
    return {};
}

void Fairness::sent(const uds::Address& to, std::size_t size) {
    Peer& p = peers_[raw_name(to)];
    ++p.held;
    p.empties = p.empties || size == 0;
    if (peers_.size() > 4096) peers_.clear();  // bounded memory; the next check counts again
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("server", argc, argv, run);
}
