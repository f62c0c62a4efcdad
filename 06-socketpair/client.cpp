// 06-socketpair/client.cpp - the worker: it runs without privileges and never opens a file
// itself. For each FILE it asks the monitor (06-socketpair/server, its parent) over descriptor 3,
// receives an open descriptor, and copies the file to stdout.
//
//   client [--list] [FILE...]      FILE "-" reads requests from stdin, one per line
//
// Started by the monitor only: descriptor 3 is its end of a SOCK_SEQPACKET socket pair.
//   OPEN <path>  ->  "OK <size>" + a descriptor, or "ERROR <reason>"
//   LIST         ->  "OK <bytes>" + a sealed memfd holding the listing (with no FILE, or --list)
//
// The lesson, in order:
//   C1  check      descriptor 3 is a SOCK_SEQPACKET socket, or we were not started by the monitor
//   C2  send       one request is one message: no newline, no framing
//   C3  recvmsg    one reply, and the descriptor that came with it
//   C4  read       the file through the received descriptor, then close it
//   C5  mmap       the listing: check the seals first, then map it instead of copying it
//   C6  shutdown   no more requests: half-close, read what is still coming, exit
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "seqpacket.hpp"
#include "uds.hpp"

namespace {

constexpr int kMonitorFd = 3;                   // where the monitor put our end of the pair
constexpr std::size_t kMaxReply = 4096;         // bytes in one reply message
constexpr std::size_t kMaxRequestLine = 65536;  // one line of stdin (the monitor judges it)
const std::string kGone = "end of file on descriptor 3: the monitor is gone";

// Step C1: is descriptor 3 the monitor's socket? Started by hand (from a shell), it is closed or
//     something else entirely.
bool descriptor_3_is_the_monitor() {
    //@C1 check: make sure descriptor 3 is a socket of type SOCK_SEQPACKET before trusting it | fstat(2) S_ISSOCK, getsockopt(2) SO_TYPE, socket(7); README "C1. check"
    //@hint fstat says what kind of file a descriptor is (S_ISSOCK); it fails with EBADF when nothing is open there.
    //@hint getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) tells a SOCK_SEQPACKET from a SOCK_STREAM.
    // C1. check: fstat - is anything open on 3, and is it a socket? getsockopt(SO_TYPE): of the
    // type the
    //     monitor creates? A terminal, a file or a stream socket on 3 means we were started by
    //     hand (or by something else), and nothing on it would answer our requests.
    struct stat st {};
    if (fstat(kMonitorFd, &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
    int type = 0;
    socklen_t len = sizeof type;
    if (getsockopt(kMonitorFd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) return false;
    return type == SOCK_SEQPACKET;
    //@stub return false;
    //@end
}

// Who we are, said once at the start: the uid, and every descriptor we hold.
void introduce_ourselves() {
    std::string fds;
    if (DIR* d = opendir("/proc/self/fd")) {
        std::vector<int> open;
        while (dirent* e = readdir(d))
            if (e->d_name[0] != '.' && std::atoi(e->d_name) != dirfd(d))
                open.push_back(std::atoi(e->d_name));
        closedir(d);
        std::sort(open.begin(), open.end());
        for (int fd : open)
            fds += " " + std::to_string(fd);
    }
    const int groups = getgroups(0, nullptr);
    uds::log("pid " + std::to_string(getpid()) + ", running as uid " + std::to_string(getuid()) +
             " (gid " + std::to_string(getgid()) + ", " +
             (groups == 0 ? std::string("no") : std::to_string(groups)) +
             " supplementary groups), holding descriptors" + fds);
    uds::log("I never open a file myself: I ask the monitor over descriptor 3");
}

// "OK" or "OK <size>": a grant. The size, when there is one, is what the monitor announces.
bool is_ok(std::string_view reply, std::optional<std::size_t>& size) {
    if (!reply.empty() && reply.back() == '\n') reply.remove_suffix(1);
    size.reset();
    if (reply == "OK") return true;
    if (reply.rfind("OK ", 0) != 0) return false;
    std::string_view digits = reply.substr(3);
    if (digits.empty() || digits.size() > 18 ||
        digits.find_first_not_of("0123456789") != std::string_view::npos)
        return true;  // a grant with a size we cannot read: fstat will tell
    std::size_t n = 0;
    for (char c : digits)
        n = n * 10 + static_cast<std::size_t>(c - '0');
    size = n;
    return true;
}

// A memfd is shared memory, whatever the request was: it is only ever mapped, and only sealed.
bool is_memfd(int fd) {
    char target[64] = {};
    const std::string link = "/proc/self/fd/" + std::to_string(fd);
    return readlink(link.c_str(), target, sizeof target - 1) > 0 &&
           std::string_view(target).rfind("/memfd:", 0) == 0;
}

std::size_t file_size(int fd) {
    struct stat st {};
    uds::check(fstat(fd, &st), "fstat received descriptor");
    return static_cast<std::size_t>(st.st_size);
}

// C2 + C3: one request out, one reply back.
seqpacket::Message ask(int sock, const std::string& request) {
    //@C2 send: send one request to the monitor as one message | send(2), sendmsg(2), unix(7) SOCK_SEQPACKET; README "C2. send"
    //@hint On SOCK_SEQPACKET one send is one message: no newline, no length prefix. seqpacket::send(sock, text) does it with MSG_NOSIGNAL.
    //@hint A monitor that is gone gives EPIPE (a uds::SysError): say so with kGone instead of a bare "Broken pipe".
    // C2. send: the request is the whole message. MSG_NOSIGNAL (inside seqpacket::send): a
    //     monitor that died gives EPIPE here, not a SIGPIPE that would kill us without a word.
    try {
        seqpacket::send(sock, request);
    } catch (const uds::SysError& e) {
        if (e.code_value() == EPIPE || e.code_value() == ECONNRESET) throw uds::Failure(kGone);
        throw;
    }
    //@stub static_cast<void>(sock);
    //@stub static_cast<void>(request);
    //@end
    //@C3 recvmsg: receive the monitor's one reply, with its descriptor, and stop clearly if the monitor is gone | recvmsg(2), unix(7) SCM_RIGHTS; README "C3. recvmsg"
    //@hint seqpacket::receive(sock, kMaxReply) returns one message and owns whatever descriptors came with it.
    //@hint End of file (eof) here means the monitor died or closed: throw uds::Failure(kGone), which exits 1 with one line.
    // C3. recvmsg: exactly one reply - SOCK_SEQPACKET keeps the boundary - and its descriptor,
    //     received with MSG_CMSG_CLOEXEC. End of file: the monitor died (or closed on us).
    seqpacket::Message reply = seqpacket::receive(sock, kMaxReply);
    if (reply.eof) throw uds::Failure(kGone);
    if (reply.truncated || reply.fds_lost) throw uds::Failure("the monitor sent a malformed reply");
    return reply;
    //@stub return {};
    //@end
}

// Step C4, OPEN: read the file through the descriptor the monitor opened for us.
void copy_to_stdout(const uds::Fd& file, std::size_t size, const std::string& name) {
    //@C4 read: copy the file to stdout by reading the received descriptor until end of file | read(2); README "C4. read"
    //@hint The number is ours, but the open file behind it is the one the monitor opened: read it like any file, in a loop, until read returns 0.
    //@hint uds::write_all(STDOUT_FILENO, ...) writes everything. Count the bytes: compare with the size the monitor announced.
    // C4. read: through the descriptor - we could never have opened this file ourselves.
    char buf[65536];
    std::size_t total = 0;
    for (;;) {
        ssize_t n = read(file.get(), buf, sizeof buf);
        if (n == -1 && errno == EINTR) continue;
        uds::check(n, "read " + name);
        if (n == 0) break;
        uds::write_all(STDOUT_FILENO, {buf, static_cast<std::size_t>(n)});
        total += static_cast<std::size_t>(n);
    }
    if (total != size)
        uds::log(name + ": read " + std::to_string(total) + " bytes, the monitor said " +
                 std::to_string(size) + " (the file changed?)");
    //@stub static_cast<void>(file);
    //@stub static_cast<void>(size);
    //@stub static_cast<void>(name);
    //@end
}

// Step C5, LIST: the listing arrives as a memfd. Map it - but only once it is sealed.
void show_listing(const uds::Fd& buffer, std::size_t bytes, const std::string& what) {
    //@C5 mmap: refuse a buffer that is not sealed against writing, shrinking and growing; map a sealed one read-only and write it out | fcntl(2) F_GET_SEALS, memfd_create(2), mmap(2); README "C5. mmap"
    //@hint fcntl(fd, F_GET_SEALS) returns the seals (or -1 for a descriptor that cannot have any). All of F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE must be set.
    //@hint The refusal is exactly: throw uds::Failure("the monitor sent an unsealed buffer: refusing to map it"). Then mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0), write_all, munmap. Never map 0 bytes.
    // C5. mmap: the seals first. Memory shared with another process can change under us
    //     while we use it - or shrink, and a read of a page past the new end kills us
    //     with SIGBUS - unless it is sealed. F_GET_SEALS tells us what the sender can no
    //     longer do.
    const int needed = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
    const int seals = fcntl(buffer.get(), F_GET_SEALS);
    if (seals == -1 || (seals & needed) != needed)
        throw uds::Failure("the monitor sent an unsealed buffer: refusing to map it");
    struct stat st {};
    uds::check(fstat(buffer.get(), &st), "fstat listing");
    if (static_cast<std::size_t>(st.st_size) < bytes)
        throw uds::Failure("the monitor's listing is shorter than it says");
    uds::log(what + ": a sealed memfd of " + std::to_string(bytes) +
             " bytes: mapping it read-only");
    if (bytes == 0) return;  // nothing to map (mmap refuses a length of 0)
    //     Sealed: map it. The pages are the monitor's own - nothing is copied to us.
    void* p = mmap(nullptr, bytes, PROT_READ, MAP_SHARED, buffer.get(), 0);
    if (p == MAP_FAILED) uds::check(-1, "mmap listing");
    try {
        uds::write_all(STDOUT_FILENO, {static_cast<const char*>(p), bytes});
    } catch (...) {
        munmap(p, bytes);
        throw;
    }
    munmap(p, bytes);
    //@stub static_cast<void>(buffer);
    //@stub static_cast<void>(bytes);
    //@stub static_cast<void>(what);
    //@end
}

// Where the requests come from: the command line, then (for "-") stdin, one per line.
class Requests {
  public:
    Requests(std::vector<std::string> args, bool list) {
        if (list || args.empty()) queue_.push_back("LIST");
        for (auto& a : args) {
            if (a == "-") {
                queue_.push_back({});  // the marker: read stdin here
                continue;
            }
            queue_.push_back("OPEN " + a);
        }
    }
    // The next request, or nothing when there are no more. While it waits for stdin, it also
    // watches the monitor's socket: a monitor that dies must not leave us waiting for input.
    std::optional<std::string> next(int sock) {
        for (;;) {
            if (queue_.empty()) return std::nullopt;
            if (!queue_.front().empty()) {
                std::string r = std::move(queue_.front());
                queue_.erase(queue_.begin());
                return r;
            }
            if (auto line = stdin_line(sock)) return request_of(*line);
            queue_.erase(queue_.begin());  // stdin is done
        }
    }

  private:
    // A line of stdin: "LIST", "OPEN path" as the protocol writes it, or a bare path.
    static std::string request_of(const std::string& line) {
        if (line == "LIST" || line.rfind("OPEN ", 0) == 0) return line;
        return "OPEN " + line;
    }
    std::optional<std::string> stdin_line(int sock) {
        std::string line;
        for (;;) {
            auto status = framer_.next(line);
            if (status == uds::LineFramer::Status::Line) return line;
            if (status == uds::LineFramer::Status::TooLong)
                throw uds::Failure("a line on stdin is longer than 65536 bytes");
            if (eof_) return framer_.take_rest(line) ? std::optional(line) : std::nullopt;
            pollfd p[2] = {{STDIN_FILENO, POLLIN, 0}, {sock, POLLIN | POLLRDHUP, 0}};
            if (poll(p, 2, -1) == -1) {
                if (errno == EINTR) continue;
                uds::check(-1, "poll");
            }
            if (p[1].revents != 0) {  // the monitor speaks first: it can only be end of file
                seqpacket::Message m = seqpacket::receive(sock, kMaxReply);
                throw uds::Failure(m.eof ? kGone : "the monitor sent a message nobody asked for");
            }
            if (p[0].revents == 0) continue;
            char buf[65536];
            ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
            if (n == -1 && errno == EINTR) continue;
            uds::check(n, "read stdin");
            if (n == 0) eof_ = true;
            framer_.feed({buf, static_cast<std::size_t>(n)});
        }
    }

    std::vector<std::string> queue_;  // "" = read stdin at this point
    uds::LineFramer framer_{kMaxRequestLine};
    bool eof_ = false;
};

int run(int argc, char** argv) {
    bool list = false;
    uds::Cli cli(
        "client", "[--list] [FILE...]",
        "The worker: asks the monitor on descriptor 3 to open each FILE (a path beneath\n"
        "its root) and copies it to stdout, reading through the descriptor it receives.\n"
        "FILE '-' reads requests from stdin, one per line: a path, 'OPEN path' or 'LIST'.\n"
        "With no FILE (or --list): the listing of the monitor's root, as sealed memory.\n"
        "Started by 06-socketpair/server, never by hand.");
    cli.option('l', "list", "", "ask for the listing of the monitor's root first",
               [&](const std::string&) { list = true; });
    std::vector<std::string> files = cli.parse(argc, argv);
    for (const auto& f : files)
        if (f.empty()) throw uds::UsageError("an empty FILE names nothing");

    if (!descriptor_3_is_the_monitor()) {
        uds::log("descriptor 3 is not the monitor's socket: start me through 06-socketpair/server");
        return 2;
    }
    uds::Fd monitor{kMonitorFd};  // ours now: closed when we are done
    introduce_ourselves();

    Requests requests(std::move(files), list);
    int status = 0;
    while (std::optional<std::string> request = requests.next(monitor.get())) {
        seqpacket::Message reply = ask(monitor.get(), *request);
        const std::string what = request->substr(0, 200);
        std::optional<std::size_t> announced;
        if (!is_ok(reply.text, announced)) {  // "ERROR <reason>": whatever came with it is closed
            uds::log(what + ": refused by the monitor: " + reply.text.substr(0, 300));
            status = 1;
            continue;
        }
        if (reply.fds.size() != 1)
            throw uds::Failure(what + ": the monitor said '" + reply.text.substr(0, 100) +
                               "' with " + std::to_string(reply.fds.size()) +
                               " descriptors instead of one");
        const uds::Fd& fd = reply.fds.front();
        if (*request == "LIST" || is_memfd(fd.get())) {
            show_listing(fd, announced ? *announced : file_size(fd.get()), what);
        } else {
            const std::size_t size = announced ? *announced : file_size(fd.get());
            uds::log(what + ": received descriptor " + std::to_string(fd.get()) + " (" +
                     std::to_string(size) + " bytes)");
            copy_to_stdout(fd, size, request->substr(5));
        }
        // reply goes out of scope: the received descriptor is closed, we are back to 0-3.
    }

    //@C6 shutdown: tell the monitor there are no more requests, then read until it closes | shutdown(2) SHUT_WR; README "C6. shutdown"
    //@hint shutdown(SHUT_WR) is a half-close: the monitor reads end of file, and we can still receive.
    //@hint Then receive until eof: whatever still arrives is read (and its descriptors closed) before we exit.
    // C6. shutdown: SHUT_WR, a half-close. The monitor reads end of file - "no more requests" -
    //     while our receiving side stays open for anything still coming. Then read until the
    //     monitor closes its end: the session is over when both sides have said so.
    uds::check(shutdown(monitor.get(), SHUT_WR), "shutdown");
    for (;;) {
        seqpacket::Message m = seqpacket::receive(monitor.get(), kMaxReply);
        if (m.eof) break;
        uds::log("after our last request the monitor still sent: " + m.text.substr(0, 200));
    }
    //@end
    return status;
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("client", argc, argv, run);
}
