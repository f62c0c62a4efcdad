// YOUR client.cpp for 06-socketpair: the exercise starter, generated from the
// reference 06-socketpair/client.cpp by scripts/make-starter.
// Every TODO is one step of the lesson: write it, then run `make grade-06`;
// the first FAIL names the step to look at. Stuck? One hint at a time:
// 06-socketpair/exercise/HINTS.md.
//
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
    // TODO C1. check: make sure descriptor 3 is a socket of type SOCK_SEQPACKET before trusting it.
    //      Read: fstat(2) S_ISSOCK, getsockopt(2) SO_TYPE, socket(7); README "C1. check".
    uds::unwritten("C1", "check");
    return false;
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
    // TODO C2. send: send one request to the monitor as one message.
    //      Read: send(2), sendmsg(2), unix(7) SOCK_SEQPACKET; README "C2. send".
    uds::unwritten("C2", "send");
    static_cast<void>(sock);
    static_cast<void>(request);
    // TODO C3. recvmsg: receive the monitor's one reply, with its descriptor, and stop clearly if
    //      the monitor is gone.
    //      Read: recvmsg(2), unix(7) SCM_RIGHTS; README "C3. recvmsg".
    uds::unwritten("C3", "recvmsg");
    return {};
}

// Step C4, OPEN: read the file through the descriptor the monitor opened for us.
void copy_to_stdout(const uds::Fd& file, std::size_t size, const std::string& name) {
    // TODO C4. read: copy the file to stdout by reading the received descriptor until end of file.
    //      Read: read(2); README "C4. read".
    uds::unwritten("C4", "read");
    static_cast<void>(file);
    static_cast<void>(size);
    static_cast<void>(name);
}

// Step C5, LIST: the listing arrives as a memfd. Map it - but only once it is sealed.
void show_listing(const uds::Fd& buffer, std::size_t bytes, const std::string& what) {
    // TODO C5. mmap: refuse a buffer that is not sealed against writing, shrinking and growing; map
    //      a sealed one read-only and write it out.
    //      Read: fcntl(2) F_GET_SEALS, memfd_create(2), mmap(2); README "C5. mmap".
    uds::unwritten("C5", "mmap");
    static_cast<void>(buffer);
    static_cast<void>(bytes);
    static_cast<void>(what);
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

    // TODO C6. shutdown: tell the monitor there are no more requests, then read until it closes.
    //      Read: shutdown(2) SHUT_WR; README "C6. shutdown".
    uds::unwritten("C6", "shutdown");
    return status;
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("client", argc, argv, run);
}
