// 05-sendmsg-fds/exercise/server.cpp - YOUR server: fill in the steps marked TODO (here and in
// fdpass.hpp, steps S1-S7 and R1-R7).
//
// It compiles as it is, and fails the chapter's tests (make grade-05
// STUDENT=05-sendmsg-fds/exercise) with test names that say which step is missing:
// Ch05Steps.ServerStep6_R1toR3_Recvmsg_..., ServerStep7_S4S5_ScmRights_... The reference solution
// is ../server.cpp; try without it first. Steps 1-5 and 9 are given (chapter 01 taught them), and
// so is the confined open: beneath.hpp is included from the chapter directory, so keep your copy of
// exercise/ inside 05-sendmsg-fds/.
//
// (original header:) a file broker: it opens files for its clients and hands them the
// open descriptor itself (SCM_RIGHTS), instead of copying the bytes through the socket.
//
//   OPEN <relative path>\n   ->  "OK <size>\n" + one read-only descriptor, or "ERROR <reason>\n"
//   GREET\n + one descriptor ->  we write a greeting into it, close our copy, reply "OK\n"
//
// The lesson, in order (steps 2-4 are chapter 01's; the descriptor passing is fdpass.hpp):
//   1. open      the root directory, once: every file is later opened relative to this fd
//   2. socket    3. bind    4. listen
//   5. accept4   a connection; a thread of its own serves it, so a slow client delays nobody
//   6. recvmsg   request bytes together with any descriptors that came along (fdpass R1-R7)
//   7. OPEN:     openat2 beneath the root (beneath.hpp), then sendmsg the reply with the
//                descriptor attached (fdpass S1-S7), then close our copy
//   8. GREET:    write into the descriptor the client lent us, close it, reply
//   9. unlink + close   on SIGINT/SIGTERM
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include "../beneath.hpp"  // given: opening beneath the root is not this exercise
#include "fdpass.hpp"
#include "uds.hpp"

namespace {

constexpr int kMaxClients = 64;  // one thread each; more get "ERROR server busy"

// Descriptors that arrived together with (part of) one request line.
struct Attached {
    std::vector<uds::Fd> fds;
    bool truncated = false;  // the kernel dropped some (MSG_CTRUNC)
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

void reply(int conn, std::string_view text) {
    uds::write_all(conn, text);
}

// A client's bytes, safe for our log: control characters (escape sequences!) shown as '?'.
std::string printable(std::string_view text) {
    std::string out(text);
    for (char& c : out)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    return out;
}

// 7. OPEN: open the file beneath the root, and send "OK <size>" with the descriptor attached.
void handle_open(int conn, int root, std::string_view path, const std::string& who) {
    beneath::Opened f = beneath::open_regular_file(root, path);
    if (!f.fd) {
        uds::log(who + "OPEN " + printable(path.substr(0, 100)) + " refused: " + f.error);
        reply(conn, "ERROR " + f.error + "\n");
        return;
    }
    struct stat st {};
    uds::check(fstat(f.fd.get(), &st), "fstat");
    const int number = f.fd.get();
    // TODO(step 7): fdpass::send_with_fd(conn, "OK <size>\n", f.fd.get()): the reply line with the
    //               descriptor attached. (A plain reply() would send the line and no descriptor.)
    (void)conn;
    throw uds::Failure("server step 7 (send the reply with the descriptor) is not written yet");
    // The message in flight holds its own reference to the open file: close ours now, or every
    // OPEN would leave one more descriptor open in the server.
    f.fd.reset();
    uds::log(who + "OPEN " + printable(path) + ": sent descriptor " + std::to_string(number) +
             " (" + std::to_string(st.st_size) + " bytes)");
}

// 8. GREET: the client lent us one of its descriptors (typically its stdout). Write into it.
void handle_greet(int conn, Attached att, const std::string& who) {
    if (att.truncated || att.fds.size() != 1) {
        std::string got = att.truncated ? "more than " + std::to_string(fdpass::kMaxFds)
                                        : std::to_string(att.fds.size());
        uds::log(who + "GREET with " + got + " descriptors: refused (closing them)");
        reply(conn, "ERROR GREET needs exactly one descriptor (got " + got + ")\n");
        return;  // att's destructor closes whatever came
    }
    uds::Fd out = std::move(att.fds.front());
    const std::string greeting = "hello from the file broker (pid " + std::to_string(getpid()) +
                                 "), written straight into your descriptor\n";
    // Wait (briefly) until it takes data: a full pipe must not pin this thread. Setting
    // O_NONBLOCK instead would change the CLIENT's open file too: the flags are shared.
    ssize_t n = -1;
    int err = EAGAIN;
    if (uds::wait_writable(out.get(), 2000) == uds::Wait::Ready) {
        // One write of < PIPE_BUF bytes: atomic on a pipe. SIGPIPE is ignored (see main).
        // TODO(step 8): n = write(out.get(), greeting.data(), greeting.size()); err = errno;
        n = -1;
        err = ENOSYS;
    }
    const int number = out.get();
    out.reset();  // close our copy: the client's descriptor is untouched
    if (n != static_cast<ssize_t>(greeting.size())) {
        std::string why = n >= 0 ? "short write" : std::strerror(err);
        uds::log(who + "GREET: cannot write to descriptor " + std::to_string(number) + ": " + why);
        reply(conn, "ERROR cannot write to your descriptor: " + why + "\n");
        return;
    }
    uds::log(who + "GREET: wrote the greeting into received descriptor " + std::to_string(number));
    reply(conn, "OK\n");
}

void handle(int conn, int root, const std::string& line, Attached att, const std::string& who) {
    if (line.rfind("OPEN ", 0) == 0) {
        if (!att.fds.empty() || att.truncated)  // not meant for OPEN: closed, never kept
            uds::log(who + "closing " + std::to_string(att.fds.size()) +
                     " descriptor(s) that came with OPEN");
        att.fds.clear();
        handle_open(conn, root, std::string_view(line).substr(5), who);
    } else if (line == "GREET") {
        handle_greet(conn, std::move(att), who);
    } else {
        if (!att.fds.empty()) uds::log(who + "closing descriptor(s) sent with an unknown request");
        reply(conn, "ERROR unknown request (expected OPEN <path> or GREET)\n");
    }
}

// One client, in its own thread. Which descriptors belong to which request? recvmsg on a stream
// stops right after the bytes that carried descriptors, so they arrive with the LAST byte of
// that read (Ch05Semantics.FdsArriveWithTheLastBytesOfARead). Our rule: descriptors belong to
// the request line that holds the last byte of the recvmsg that brought them.
void serve(uds::Fd conn, int root, const std::string& who) {
    uds::LineFramer framer{uds::kMaxLine};
    Attached pending;  // descriptors for the line still being received
    char buf[4096];
    std::string line;
    for (;;) {
        // 6. recvmsg, never read(): read() would silently drop (close) attached descriptors.
        fdpass::Received r = fdpass::recv_with_fds(conn.get(), buf, sizeof buf);
        if (r.bytes == 0) {  // the client closed its end; answer an unterminated last line
            if (framer.take_rest(line)) handle(conn.get(), root, line, std::move(pending), who);
            return;
        }
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
            handle(conn.get(), root, line, std::move(att), who);
        }
        if (!ends_line) pending.take(std::move(now));
    }
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
    return dir + "/files";  // does not exist: step 1 reports it
}

// Counts the client threads, so that main can wait for them before it exits.
struct Clients {
    std::mutex m;
    std::condition_variable cv;
    int active = 0;
};

int run(int argc, char** argv) {
    std::string socket_arg, root_arg;
    uds::Cli cli("server", "[-s ADDR] [--root DIR] [--no-openat2]",
                 "Opens files beneath DIR for its clients and passes them the open descriptor.\n"
                 "Default ADDR: $XDG_RUNTIME_DIR/uds-tutorial/05-fd-broker.sock "
                 "(or /tmp/uds-tutorial-UID/...).\n"
                 "Default DIR: the files/ directory next to this program.");
    cli.option('s', "socket", "ADDR", "socket path, or @name for an abstract name",
               [&](const std::string& v) { socket_arg = v; });
    cli.option('r', "root", "DIR", "serve files beneath DIR only",
               [&](const std::string& v) { root_arg = v; });
    cli.option(0, "no-openat2", "", "use the portable component-by-component walk instead",
               [&](const std::string&) { beneath::g_use_fallback = true; });
    auto rest = cli.parse(argc, argv);
    if (!rest.empty()) throw uds::UsageError("unexpected argument '" + rest.front() + "'");
    const uds::Address addr = socket_arg.empty() ? uds::default_path_address("05-fd-broker.sock")
                                                 : uds::address_argument(socket_arg);
    if (root_arg.empty()) root_arg = default_root();
    uds::install_shutdown_handlers();
    // GREET writes into descriptors clients give us, for example a pipe whose reader is gone.
    // write() on such a pipe raises SIGPIPE, which would kill the whole server: ignore it and
    // get EPIPE instead. (Sockets use MSG_NOSIGNAL; a pipe has no per-call flag.)
    std::signal(SIGPIPE, SIG_IGN);

    // 1. open the root once, as a directory descriptor. Everything is opened relative to it,
    //    so renaming or replacing the path DIR later changes nothing for us.
    uds::Fd root{open(root_arg.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    if (!root) uds::check(-1, "open root " + root_arg, "give an existing directory with --root");

    // 2. socket, 3. bind, 4. listen: exactly as in chapter 01 (stale files included).
    uds::Fd listener{uds::check(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")};
    if (bind(listener.get(), addr.sockaddr_ptr(), addr.length()) == -1) {
        if (errno != EADDRINUSE || addr.kind() != uds::Address::Kind::Path)
            throw uds::SysError(errno, "bind " + addr.str());
        uds::remove_stale_socket_file(addr, SOCK_STREAM);
        uds::log("removed stale socket file " + addr.str() + " (nobody was listening)");
        uds::check(bind(listener.get(), addr.sockaddr_ptr(), addr.length()), "bind " + addr.str());
    }
    uds::SocketFile socket_file{addr};
    uds::check(listen(listener.get(), 64), "listen " + addr.str());
    uds::log("listening on " + addr.str());
    uds::log("serving files beneath " + root_arg);

    Clients clients;
    unsigned long next_id = 1;
    while (uds::wait_readable(listener.get()) == uds::Wait::Ready) {
        // 5. accept4, then a thread per client. Each thread blocks only on its own client.
        uds::Fd conn{accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC)};
        if (!conn && (errno == EINTR || errno == ECONNABORTED)) continue;
        if (!conn && (errno == EMFILE || errno == ENFILE)) {  // out of descriptors: say so, go on
            uds::log(std::string("accept4: ") + std::strerror(errno) + " (clients must wait)");
            uds::wait_readable(uds::stop_fd(), 100);  // back off instead of spinning on accept
            continue;
        }
        if (!conn) uds::check(-1, "accept4 " + addr.str());
        ucred cred{};
        socklen_t len = sizeof cred;
        uds::check(getsockopt(conn.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len), "SO_PEERCRED");
        std::string who = "client " + std::to_string(next_id++) + ": ";
        {
            std::lock_guard lock(clients.m);
            if (clients.active >= kMaxClients) {
                uds::log(who + "too many clients: answering ERROR server busy");
                try {
                    reply(conn.get(), "ERROR server busy\n");
                } catch (const uds::SysError&) {
                }
                continue;
            }
            ++clients.active;
        }
        uds::log(who + "connected (pid " + std::to_string(cred.pid) + ", uid " +
                 std::to_string(cred.uid) + ")");
        auto body = [&clients, c = std::move(conn), r = root.get(), who]() mutable {
            try {
                serve(std::move(c), r, who);
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

    // 9. unlink, then close. Every client thread has been woken by the same signal; wait for
    //    them, so that each closes its connection and descriptors before we exit.
    uds::log(std::string("stopping on ") + strsignal(uds::stop_signal()));
    socket_file.unlink_if_ours();
    listener.reset();
    std::unique_lock lock(clients.m);
    clients.cv.wait(lock, [&] { return clients.active == 0; });
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("server", argc, argv, run);
}
