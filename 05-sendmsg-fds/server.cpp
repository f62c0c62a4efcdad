// 05-sendmsg-fds/server.cpp - a file broker: it opens files for its clients and hands them the
// open descriptor itself (SCM_RIGHTS), instead of copying the bytes through the socket.
//
//   OPEN <relative path>\n   ->  "OK <size>\n" + one read-only descriptor, or "ERROR <reason>\n"
//   GREET\n + one descriptor ->  we write a greeting into it, close our copy, reply "OK\n"
//
// The lesson, in order (S1-S3 are chapter 01's; the descriptor passing is fdpass.hpp):
//   S1. socket     S1a. SO_PASSCRED: the kernel tells us who sent each message
//   S2. bind       S3. listen
//   S4. accept4    a connection; a thread of its own serves it (at most 64 at once)
//   S5. recvmsg    request bytes together with the descriptors and credentials that came along
//                  (fdpass.hpp rx1-rx4)
//   S6. OPEN       open the file beneath the root (common/beneath.hpp), sendmsg the reply with the
//                  descriptor attached (fdpass.hpp tx1-tx3), close our copy
//   S7. GREET      write into the descriptor the client lent us, close it, reply
//   S8. unlink + close   on SIGINT/SIGTERM
// What a hostile client must not achieve is handled around those steps: an idle deadline
// (--idle-timeout), one unread reply per connection at most, "ERROR server busy" that the client
// can read, and a log that cannot be flooded.
#include <fcntl.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "beneath.hpp"
#include "fdpass.hpp"
#include "uds.hpp"

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kMaxClients = 64;  // one thread each; more get "ERROR server busy"
constexpr std::string_view kBusy = "ERROR server busy\n";

struct Settings {
    int root = -1;                  // the directory descriptor every file is opened relative to
    int idle_ms = 30000;            // --idle-timeout: how long a client may keep its slot idle
    int max_clients = kMaxClients;  // --max-clients: at most this many at once (never more)
    bool allow_hardlinks = false;
};

// Descriptors that arrived together with (part of) one request line.
struct Attached {
    std::vector<uds::Fd> fds;
    bool truncated = false;  // the kernel dropped some (MSG_CTRUNC), or there were too many
    // Never more than kMaxFds per line: a client sending a line in many pieces, each with
    // descriptors, must not be able to fill our descriptor table. The rest are closed at once.
    void take(Attached&& other) {
        for (auto& fd : other.fds) {
            if (fds.size() < fdpass::kMaxFds)
                fds.push_back(std::move(fd));
            else
                truncated = true;
        }
        truncated = truncated || other.truncated;
        other.fds.clear();  // closes any we did not keep
    }
};

// Counts the client threads, so that main can wait for them before it exits.
struct Clients {
    std::mutex m;
    std::condition_variable cv;
    int active = 0;
};

void reply(int conn, std::string_view text) {
    uds::write_all(conn, text);
}

// "pid 4242, uid 1000": who sent a request, as the kernel told us (SCM_CREDENTIALS).
std::string sender_text(const std::optional<ucred>& sender) {
    if (!sender) return "an unknown sender";
    return "pid " + std::to_string(sender->pid) + ", uid " + std::to_string(sender->uid);
}

// files/ next to the executable (05-sendmsg-fds/files). A sanitizer build lives elsewhere
// (build/.../bin/05-sendmsg-fds/server): then look for 05-sendmsg-fds/files further up.
std::string default_root() {
    std::string exe(4096, '\0');
    ssize_t n = uds::check(readlink("/proc/self/exe", exe.data(), exe.size()), "readlink");
    exe.resize(static_cast<std::size_t>(n));
    std::string dir = exe.substr(0, exe.rfind('/'));             // .../05-sendmsg-fds
    const std::string chapter = dir.substr(dir.rfind('/') + 1);  // 05-sendmsg-fds
    for (std::string up = dir; !up.empty(); up.resize(up.rfind('/'))) {
        std::string candidate = up == dir ? dir + "/files" : up + "/" + chapter + "/files";
        struct stat st {};
        if (stat(candidate.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return candidate;
    }
    return dir + "/files";  // does not exist: opening the root reports it
}

// --idle-timeout: seconds, fractions allowed ("0.5"), from 1 ms to a day.
int parse_idle_ms(const std::string& text) {
    char* end = nullptr;
    errno = 0;
    const double seconds = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || errno != 0 || !std::isfinite(seconds) || seconds < 0.001 ||
        seconds > 86400)
        throw uds::UsageError("--idle-timeout wants seconds between 0.001 and 86400, not '" + text +
                              "'");
    return static_cast<int>(std::lround(seconds * 1000));
}

// "ERROR server busy", then close - in an order that lets the client read it. A socket closed
// with unread data makes the peer's next read fail with ECONNRESET (its reply unread), so: the
// reply, then our end half-closed (the client reads our line, then end of file), then whatever
// the client sends is read and dropped (with any descriptors attached) until it closes its end
// too - at most 50 ms, so a client that never closes cannot hold the accept loop.
void turn_away(uds::Fd conn) {
    [[maybe_unused]] ssize_t n =
        send(conn.get(), kBusy.data(), kBusy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    shutdown(conn.get(), SHUT_WR);
    char sink[4096];
    for (uds::Wait w = uds::wait_readable(conn.get(), 50); w == uds::Wait::Ready;
         w = uds::wait_readable(conn.get(), 50)) {
        if (recv(conn.get(), sink, sizeof sink, MSG_DONTWAIT) <= 0) break;  // its EOF (or error)
    }
}

// The idle deadline: waits until the client sends something, at most until `deadline`. A client
// gets idle_ms to send each complete request (from its connection or its previous reply on), so
// neither silence nor a line trickled in byte by byte keeps a slot forever: 64 such clients would
// otherwise lock everybody else out. False when the time is up.
bool request_arrives(int conn, Clock::time_point deadline, const Settings& s,
                     const std::string& who) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    switch (uds::wait_readable(conn, static_cast<int>(std::max<long long>(left.count(), 0)))) {
        case uds::Wait::Ready:
            return true;
        case uds::Wait::Stop:
            throw uds::Stopped{};
        case uds::Wait::Timeout:
            break;
    }
    uds::log(who + "no complete request for " + std::to_string(s.idle_ms) +
             " ms: closing the connection");
    return false;
}

// At most one unread reply per connection. A reply that carries a descriptor keeps the open file
// "in flight" until the client reads it, and the kernel charges every descriptor in flight to
// the user who SENT it - the broker's user - up to RLIMIT_NOFILE for all of that user's
// processes together (then sendmsg fails with ETOOMANYREFS; root is exempt). A client that sends
// thousands of OPENs and never reads would spend that budget for everybody. So before each
// request we wait until the client has taken the previous reply: SIOCOUTQ, the bytes we sent
// that the peer has not read yet, is back at 0. The kernel gives no wake-up for that moment, so
// we look again after 1, 2, 4 ... (at most 50) ms. A client that reads its replies never waits.
bool previous_reply_taken(int conn, const Settings& s, const std::string& who) {
    int delay_ms = 1;
    for (int waited_ms = 0;;) {
        int unread = 0;
        uds::check(ioctl(conn, SIOCOUTQ, &unread), "ioctl SIOCOUTQ");
        if (unread == 0) return true;
        if (waited_ms >= s.idle_ms) break;
        if (uds::wait_readable(uds::stop_fd(), delay_ms) == uds::Wait::Stop) throw uds::Stopped{};
        waited_ms += delay_ms;
        delay_ms = std::min(delay_ms * 2, 50);
    }
    uds::log(who + "did not read its reply for " + std::to_string(s.idle_ms) +
             " ms: closing the connection");
    return false;
}

// The steps below run() (declared here, so that the file reads in the order of the lesson).
void serve(uds::Fd conn, const Settings& s, const std::string& who);  // S5
void handle(int conn, const Settings& s, const std::string& line, Attached att,
            const std::optional<ucred>& sender, const std::string& who);
void handle_open(int conn, const Settings& s, std::string_view path, const std::string& who);
void handle_greet(int conn, Attached att, const std::optional<ucred>& sender,
                  const std::string& who);
void close_down(uds::SocketFile& socket_file, uds::Fd& listener);  // S8

int run(int argc, char** argv) {
    std::optional<std::string> socket_arg, root_arg;
    Settings settings;
    uds::Cli cli("server",
                 "[-s ADDR] [--root DIR] [--idle-timeout SECONDS] [--max-clients N]\n"
                 "       [--allow-hardlinks] [--no-openat2]",
                 "Opens files beneath DIR for its clients and passes them the open descriptor.\n"
                 "Default ADDR: $XDG_RUNTIME_DIR/uds-tutorial/05-fd-broker.sock "
                 "(or /tmp/uds-tutorial-UID/...).\n"
                 "Default DIR: the files/ directory next to this program.");
    cli.option('s', "socket", "ADDR", "socket path, or @name for an abstract name",
               [&](const std::string& v) { socket_arg = v; });
    cli.option('r', "root", "DIR", "serve files beneath DIR only",
               [&](const std::string& v) { root_arg = v; });
    cli.option(0, "idle-timeout", "SECONDS",
               "close a connection that sends nothing (or reads no reply) for this long "
               "(default 30)",
               [&](const std::string& v) { settings.idle_ms = parse_idle_ms(v); });
    cli.option(0, "max-clients", "N", "serve at most N clients at once, 1 to 64 (default 64)",
               [&](const std::string& v) {
                   settings.max_clients =
                       static_cast<int>(uds::parse_number(v, "--max-clients", 1, kMaxClients));
               });
    cli.option(0, "allow-hardlinks", "",
               "also serve files with several names (one may be outside DIR)",
               [&](const std::string&) { settings.allow_hardlinks = true; });
    cli.option(0, "no-openat2", "", "use the portable component-by-component walk instead",
               [&](const std::string&) { beneath::g_use_fallback = true; });
    auto rest = cli.parse(argc, argv);
    if (!rest.empty()) throw uds::UsageError("unexpected argument '" + rest.front() + "'");
    // An empty value is a mistake (an unset shell variable), never "the default".
    if (root_arg && root_arg->empty()) throw uds::UsageError("--root needs a directory");
    const uds::Address addr = socket_arg ? uds::address_argument(*socket_arg)
                                         : uds::default_path_address("05-fd-broker.sock");
    const std::string root_path = root_arg ? *root_arg : default_root();
    uds::install_shutdown_handlers();
    // GREET writes into descriptors clients give us, for example a pipe whose reader is gone.
    // write() on such a pipe raises SIGPIPE, which would kill the whole server: ignore it and
    // get EPIPE instead. (Sockets use MSG_NOSIGNAL; a pipe has no per-call flag.)
    std::signal(SIGPIPE, SIG_IGN);

    //@S1 socket: create the listening socket, an AF_UNIX stream that is not inherited across exec | socket(2), unix(7), README "S1-S4: the server as in chapter 01"
    //@hint As in chapter 01: the family AF_UNIX, the type SOCK_STREAM, protocol 0.
    //@hint SOCK_CLOEXEC or'ed into the type; uds::check(rc, "socket") turns -1 into an error; a uds::Fd named listener owns it.
    // S1. socket: an AF_UNIX stream, close-on-exec, exactly as in chapter 01.
    uds::Fd listener{uds::check(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")};
    //@stub uds::Fd listener;
    //@end
    //@S1a passcred: ask the kernel to attach the sender's credentials to every message on every connection this listener accepts | socket(7) SO_PASSCRED, unix(7) SCM_CREDENTIALS, README "S1a. SO_PASSCRED"
    //@hint setsockopt(listener, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) with int one = 1. Set it on the listener: every accepted connection inherits it from the start.
    // S1a. SO_PASSCRED on the listener (every accepted connection inherits it): the kernel
    //      attaches the sender's pid, uid and gid to each message as an SCM_CREDENTIALS
    //      control message. SO_PEERCRED only tells who CONNECTED; a connection is a descriptor
    //      too and may have been passed on since. So the receive buffer must hold two control
    //      messages (fdpass.hpp rx1).
    const int one = 1;
    uds::check(setsockopt(listener.get(), SOL_SOCKET, SO_PASSCRED, &one, sizeof one),
               "setsockopt SO_PASSCRED");
    //@end
    //@S2 bind: give the socket its address; a stale socket file left by a dead server is replaced, a live server's never | bind(2), README "S1-S4: the server as in chapter 01"
    //@hint bind(listener.get(), addr.sockaddr_ptr(), addr.length()). On EADDRINUSE with a path address, uds::remove_stale_socket_file(addr, SOCK_STREAM) removes a stale file (or throws), then bind again.
    //@hint Right after the successful bind: uds::SocketFile socket_file{addr}; it remembers the file so that S8 removes only our own.
    // S2. bind, with chapter 01's care for stale socket files (and its lock file beside).
    if (bind(listener.get(), addr.sockaddr_ptr(), addr.length()) == -1) {
        if (errno != EADDRINUSE || addr.kind() != uds::Address::Kind::Path)
            throw uds::SysError(errno, "bind " + addr.str());
        uds::remove_stale_socket_file(addr, SOCK_STREAM);
        uds::log("removed stale socket file " + addr.str() + " (nobody was listening)");
        uds::check(bind(listener.get(), addr.sockaddr_ptr(), addr.length()), "bind " + addr.str());
    }
    uds::SocketFile socket_file{addr};
    //@stub uds::SocketFile socket_file;
    //@end
    //@S3 listen: let clients connect, with a queue for those not accepted yet | listen(2), README "S1-S4: the server as in chapter 01"
    //@hint listen(listener.get(), backlog): 64 is plenty; uds::check its result.
    // S3. listen: connections now queue up until we accept them.
    uds::check(listen(listener.get(), 64), "listen " + addr.str());
    //@end
    // Before we accept anyone: the root, opened once as a directory handle (O_PATH: for
    // lookups, not for reading). Every file is opened relative to it, so renaming or replacing
    // the path DIR later changes nothing for us.
    uds::Fd root{open(root_path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)};
    if (!root) uds::check(-1, "open root " + root_path, "give an existing directory with --root");
    settings.root = root.get();
    uds::log("listening on " + addr.str());
    uds::log("serving files beneath " + root_path);

    Clients clients;
    unsigned long next_id = 1;
    uds::LogLimit out_of_descriptors{1};  // a peer can make this happen every 100 ms
    while (uds::wait_readable(listener.get()) == uds::Wait::Ready) {
        //@S4 accept4: take the next connection as a new descriptor that is not inherited across exec | accept4(2), README "S1-S4: the server as in chapter 01"
        //@hint accept4(listener.get(), nullptr, nullptr, flags) into a uds::Fd named conn; the code after this step handles its errors (look at errno there).
        //@hint SOCK_CLOEXEC as the flags: the new descriptor gets FD_CLOEXEC atomically.
        // S4. accept4, then (below) a thread per client. Each thread blocks only on its client.
        uds::Fd conn{accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC)};
        //@stub uds::Fd conn;
        //@end
        if (!conn && (errno == EINTR || errno == ECONNABORTED)) continue;
        if (!conn && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
            // Out of descriptors (or memory): the client stays queued. Say so (once a second at
            // most), and back off instead of spinning on a listener that stays readable.
            out_of_descriptors.log(std::string("accept4: ") + std::strerror(errno) +
                                   " (clients must wait)");
            uds::wait_readable(uds::stop_fd(), 100);
            continue;
        }
        if (!conn) uds::check(-1, "accept4 " + addr.str());
        ucred cred{};
        socklen_t len = sizeof cred;
        uds::check(getsockopt(conn.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len), "SO_PEERCRED");
        std::string who = "client " + std::to_string(next_id++) + ": ";
        {
            std::lock_guard lock(clients.m);
            if (clients.active >= settings.max_clients) {
                uds::log(who + "too many clients: answering ERROR server busy");
                turn_away(std::move(conn));
                continue;
            }
            ++clients.active;
        }
        uds::log(who + "connected (" + sender_text(cred) + ")");
        auto body = [&clients, &settings, c = std::move(conn), who]() mutable {
            try {
                serve(std::move(c), settings, who);
            } catch (const uds::Stopped&) {
            } catch (const std::exception& e) {  // this client failed (EPIPE, ...): others go on
                uds::log(who + "error: " + uds::describe(e));
            }
            uds::log(who + "connection closed");  // (serve's copy of the Fd closed it)
            std::lock_guard lock(clients.m);
            --clients.active;
            clients.cv.notify_all();
        };
        try {
            std::thread(std::move(body)).detach();
        } catch (const std::system_error& e) {  // no thread to be had: the client is closed
            uds::log(who + "cannot start a thread: " + uds::describe(e));
            std::lock_guard lock(clients.m);
            --clients.active;
        }
    }

    uds::log(std::string("stopping on ") + strsignal(uds::stop_signal()));
    close_down(socket_file, listener);  // S8
    // Every client thread has been woken by the same signal: wait for them, so that each closes
    // its connection and descriptors before we exit.
    std::unique_lock lock(clients.m);
    clients.cv.wait(lock, [&] { return clients.active == 0; });
    return 0;
}

// One client, in its own thread. Which descriptors belong to which request? recvmsg on a stream
// stops right after the bytes that carried descriptors, so they arrive with the LAST byte of
// that read (Ch05Semantics.FdsArriveWithTheLastBytesOfARead). Our rule: descriptors belong to
// the request line that holds the last byte of the recvmsg that brought them.
void serve(uds::Fd conn, const Settings& s, const std::string& who) {
    uds::LineFramer framer{uds::kMaxLine};
    Attached pending;  // descriptors for the line still being received
    char buf[4096];
    std::string line;
    std::optional<ucred> sender;  // who sent the bytes of the latest read (SCM_CREDENTIALS)
    auto deadline = Clock::now() + std::chrono::milliseconds(s.idle_ms);
    for (;;) {
        if (!request_arrives(conn.get(), deadline, s, who)) return;
        //@S5 recvmsg: receive the next request bytes together with the descriptors and credentials that came with them (never read(), which would drop them) | README "S5. recvmsg", fdpass.hpp
        //@hint fdpass::recv_with_fds(conn.get(), buf, sizeof buf): what you wrote in rx1-rx4.
        // S5. recvmsg, never read(): read() would silently drop (close) attached descriptors
        //     (Ch05Semantics.PlainReadDiscardsAttachedDescriptors).
        fdpass::Received r = fdpass::recv_with_fds(conn.get(), buf, sizeof buf);
        //@stub fdpass::Received r;
        //@end
        if (r.bytes == 0) {  // the client closed its end; answer an unterminated last line
            if (framer.take_rest(line) && previous_reply_taken(conn.get(), s, who))
                handle(conn.get(), s, line, std::move(pending), sender, who);
            return;
        }
        sender = r.sender;
        std::string_view chunk{buf, r.bytes};
        Attached now{std::move(r.fds), r.truncated};
        const bool ends_line = chunk.back() == '\n';
        const auto newlines =
            static_cast<std::size_t>(std::count(chunk.begin(), chunk.end(), '\n'));
        framer.feed(chunk);
        for (std::size_t seen = 0;;) {
            auto status = framer.next(line);
            if (status == uds::LineFramer::Status::NeedMore) break;
            if (status == uds::LineFramer::Status::TooLong) {
                uds::log(who + "line longer than 4096 bytes: answering ERROR and closing");
                reply(conn.get(), uds::kLineTooLong);
                return;  // every descriptor still held is closed by its owner
            }
            Attached att = std::exchange(pending, {});
            if (++seen == newlines && ends_line) att.take(std::move(now));
            if (!previous_reply_taken(conn.get(), s, who)) return;
            handle(conn.get(), s, line, std::move(att), sender, who);
            deadline = Clock::now() + std::chrono::milliseconds(s.idle_ms);  // a new request's time
        }
        if (!ends_line) pending.take(std::move(now));
    }
}

void handle(int conn, const Settings& s, const std::string& line, Attached att,
            const std::optional<ucred>& sender, const std::string& who) {
    if (line.rfind("OPEN ", 0) == 0) {
        if (!att.fds.empty() || att.truncated)  // not meant for OPEN: closed, never kept
            uds::log(who + "closing the descriptor(s) that came with OPEN");
        att.fds.clear();
        handle_open(conn, s, std::string_view(line).substr(5), who);
    } else if (line == "GREET") {
        handle_greet(conn, std::move(att), sender, who);
    } else {
        if (!att.fds.empty()) uds::log(who + "closing descriptor(s) sent with an unknown request");
        reply(conn, "ERROR unknown request (expected OPEN <path> or GREET)\n");
    }
}

// S6. OPEN: open the file beneath the root, and send "OK <size>" with the descriptor attached.
void handle_open(int conn, const Settings& s, std::string_view path, const std::string& who) {
    //@S6 open: open the file beneath the root and send "OK <size>" with its descriptor attached; keep no copy, and answer ERROR (never a silent close) when it cannot be opened or passed | README "S6. OPEN", beneath.hpp, fdpass.hpp
    //@hint beneath::open_regular_file(s.root, path, s.allow_hardlinks) gives a uds::Fd or the reason; the size comes from fstat. fdpass::send_with_fd sends the line with the descriptor attached.
    //@hint After the send, close our copy (f.fd.reset()): the message holds its own reference. If send_with_fd throws a uds::SysError whose code_value() is not EPIPE, ECONNRESET or ENOTCONN (the client left) - ETOOMANYREFS, say - reply "ERROR cannot pass the descriptor: <strerror>" and go on.
    // S6. The confined open (beneath.hpp): a reason instead of a descriptor is answered ERROR.
    beneath::Opened f = beneath::open_regular_file(s.root, path, s.allow_hardlinks);
    if (!f.fd) {
        uds::log(who + "OPEN " + std::string(path.substr(0, 100)) + " refused: " + f.error);
        reply(conn, "ERROR " + f.error + "\n");
        return;
    }
    struct stat st {};
    uds::check(fstat(f.fd.get(), &st), "fstat");
    const int number = f.fd.get();
    try {
        fdpass::send_with_fd(conn, "OK " + std::to_string(st.st_size) + "\n", f.fd.get());
    } catch (const uds::SysError& e) {
        const int err = e.code_value();
        if (err == EPIPE || err == ECONNRESET || err == ENOTCONN) throw;  // nobody to answer
        // The kernel would not put the descriptor in flight. ETOOMANYREFS: every descriptor
        // in flight (sent, not yet received) is charged to the user who sent it - us - and
        // this user has RLIMIT_NOFILE of them in flight already. Say so; f closes our copy.
        uds::log(who + "OPEN " + std::string(path) +
                 ": cannot pass the descriptor: " + std::strerror(err));
        reply(conn, std::string("ERROR cannot pass the descriptor: ") + std::strerror(err) + "\n");
        return;
    }
    // The message in flight holds its own reference to the open file: close ours now, or every
    // OPEN would leave one more descriptor open in the server.
    f.fd.reset();
    uds::log(who + "OPEN " + std::string(path) + ": sent descriptor " + std::to_string(number) +
             " (" + std::to_string(st.st_size) + " bytes)");
    //@stub static_cast<void>(conn), static_cast<void>(s);
    //@stub static_cast<void>(path), static_cast<void>(who);
    //@end
}

// S7. GREET: the client lent us one of its descriptors (typically its stdout). Write into it.
void handle_greet(int conn, Attached att, const std::optional<ucred>& sender,
                  const std::string& who) {
    //@S7 greet: with exactly one descriptor attached, write the line "hello from the file broker (pid OURS) to pid P, uid U: ..." into it, close our copy and reply OK; anything else is an ERROR reply, with every descriptor closed | README "S7. GREET", write(2)
    //@hint att.truncated or att.fds.size() != 1: reply "ERROR GREET needs exactly one descriptor" (att's destructor closes what came). Otherwise take att.fds.front().
    //@hint Our pid is getpid(); sender_text(sender) gives "pid P, uid U" from the credentials. Wait with uds::wait_writable(fd, 2000) so a full pipe cannot pin this thread, write() once, close our copy, then reply "OK" or "ERROR cannot write to your descriptor: <strerror>".
    // S7. Exactly one descriptor, or ERROR (att's destructor closes whatever came).
    if (att.truncated || att.fds.size() != 1) {
        std::string got = att.truncated ? "too many" : std::to_string(att.fds.size());
        uds::log(who + "GREET with " + got + " descriptors: refused (closing them)");
        reply(conn, "ERROR GREET needs exactly one descriptor (got " + got + ")\n");
        return;
    }
    uds::Fd out = std::move(att.fds.front());
    const std::string greeting = "hello from the file broker (pid " + std::to_string(getpid()) +
                                 ") to " + sender_text(sender) +
                                 ": this line was written into the descriptor you lent it\n";
    // Wait (briefly) until it takes data: a full pipe must not pin this thread. Setting
    // O_NONBLOCK instead would change the CLIENT's open file too: the flags are shared.
    ssize_t n = -1;
    int err = EAGAIN;
    if (uds::wait_writable(out.get(), 2000) == uds::Wait::Ready) {
        // One write of < PIPE_BUF bytes: atomic on a pipe. SIGPIPE is ignored (see main).
        n = write(out.get(), greeting.data(), greeting.size());
        err = errno;
    }
    const int number = out.get();
    out.reset();  // close our copy: the client's descriptor is untouched
    if (n != static_cast<ssize_t>(greeting.size())) {
        std::string why = n >= 0 ? "short write" : std::strerror(err);
        uds::log(who + "GREET: cannot write to descriptor " + std::to_string(number) + ": " + why);
        reply(conn, "ERROR cannot write to your descriptor: " + why + "\n");
        return;
    }
    uds::log(who + "GREET: wrote the greeting into received descriptor " + std::to_string(number) +
             " (lent by " + sender_text(sender) + ")");
    reply(conn, "OK\n");
    //@stub static_cast<void>(conn), static_cast<void>(att);
    //@stub static_cast<void>(sender), static_cast<void>(who);
    //@end
}

// S8. Shutting down: the socket file first, then the listener.
void close_down(uds::SocketFile& socket_file, uds::Fd& listener) {
    //@S8 shutdown: on SIGINT/SIGTERM remove our socket file (only if it is still ours), then close the listener | unlink(2), README "S8. shutdown"
    //@hint socket_file.unlink_if_ours() first, then listener.reset(): in this order the file never names a socket nobody listens on.
    // S8. unlink, then close: never a moment when the file is there and nobody listens (a
    //     client would get ECONNREFUSED, another server would take the file for stale).
    socket_file.unlink_if_ours();
    listener.reset();
    //@stub static_cast<void>(socket_file), static_cast<void>(listener);
    //@end
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("server", argc, argv, run);
}
