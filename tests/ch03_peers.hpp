// Chapter 03 tests: raw datagram peers and what /proc says about a process's sockets, shared by
// tests/ch03_*.cpp. Every wait has a deadline (th::patience()); nothing sleeps to synchronise.
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "harness.hpp"
#include "uds.hpp"

namespace ch03 {

inline const std::string kChapter = "03-datagram";
inline const std::string kTooLong = "ERROR datagram too long (max 4096 bytes)";

inline std::string server_bin() {
    return th::bin(kChapter, "server");
}
inline std::string client_bin() {
    return th::bin(kChapter, "client");
}

inline int patience_ms() {
    return static_cast<int>(th::patience().count());
}

// The chapter's server on addr, ready ("bound to ADDR" and the end of that line).
inline std::unique_ptr<th::Process> start_server(const uds::Address& addr,
                                                 th::Process::Options opts = {}) {
    return th::start_server(server_bin(), {"-s", addr.str()}, "bound to " + addr.str(),
                            std::move(opts));
}

inline uds::Fd make_socket(int type = SOCK_DGRAM) {
    return uds::Fd{uds::check(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0), "socket")};
}
inline uds::Fd bound(const uds::Address& addr, int type = SOCK_DGRAM) {
    uds::Fd fd = make_socket(type);
    uds::check(::bind(fd.get(), addr.sockaddr_ptr(), addr.length()), "bind " + addr.str());
    return fd;
}
// addrlen == sizeof(sa_family_t): the kernel picks a name (@ + 5 hex digits).
inline uds::Fd autobound() {
    return bound(uds::Address{});
}

// sendto with a bounded wait should a queue be full; "" on success, else why it failed.
inline std::string send_to(int fd, std::string_view data, const uds::Address& to) {
    timeval tv{th::patience().count() / 1000, 0};
    if (tv.tv_sec == 0) tv.tv_usec = 500000;
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (::sendto(fd, data.data(), data.size(), MSG_NOSIGNAL, to.sockaddr_ptr(), to.length()) != -1)
        return "";
    const int err = errno;
    if (err == EAGAIN) th::strike();  // a wait ran out: the receiver never took it
    return "sendto " + to.str() + ": " + std::strerror(err);
}

// One datagram and who sent it; "<timeout>" if none came in time (timeout_ms -1: patience).
inline std::string recv_from(int fd, uds::Address* from = nullptr, int timeout_ms = -1) {
    if (!th::readable(fd, timeout_ms < 0 ? patience_ms() : timeout_ms)) {
        if (timeout_ms != 0) th::strike();  // a wait ran out (it counts, as the harness's do)
        return "<timeout>";
    }
    std::string buf(1 << 18, '\0');
    sockaddr_un sa{};
    socklen_t len = sizeof sa;
    ssize_t n = ::recvfrom(fd, buf.data(), buf.size(), MSG_DONTWAIT,
                           reinterpret_cast<sockaddr*>(&sa), &len);
    if (n < 0) return "<error " + std::string(std::strerror(errno)) + ">";
    if (from != nullptr) *from = uds::Address::from_kernel(sa, len);
    buf.resize(static_cast<std::size_t>(n));
    return buf;
}

// Like recv_from, but gives up as soon as `program` (the other side) has ended with nothing
// queued: a dead program costs no deadline.
inline std::string recv_while(int fd, th::Process& program, uds::Address* from = nullptr) {
    th::Deadline d;
    while (!th::readable(fd, 50)) {
        if (!program.running() && !th::readable(fd, 0)) return "<nothing>";
        if (d.expired()) {
            th::strike();
            return "<nothing>";
        }
    }
    return recv_from(fd, from, 0);
}

inline std::string ask(int fd, std::string_view request, const uds::Address& server) {
    std::string err = send_to(fd, request, server);
    return err.empty() ? recv_from(fd) : "<" + err + ">";
}

inline std::size_t count(const std::string& hay, std::string_view needle) {
    std::size_t n = 0;
    for (auto pos = hay.find(needle); pos != std::string::npos; pos = hay.find(needle, pos + 1))
        ++n;
    return n;
}

inline bool is_socket_file(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

// An AF_UNIX socket a process holds, as /proc shows it.
struct UnixSocket {
    int fd = -1;
    int type = 0;          // SOCK_DGRAM, SOCK_STREAM, SOCK_SEQPACKET (from /proc/net/unix)
    std::string name;      // its address as /proc/net/unix shows it ("@name", a path, or "")
    bool cloexec = false;  // O_CLOEXEC in /proc/PID/fdinfo/FD
};

// Every AF_UNIX socket descriptor of pid.
inline std::vector<UnixSocket> unix_sockets_of(pid_t pid) {
    struct Entry {
        int type;
        std::string name;
    };
    std::vector<std::pair<unsigned long, Entry>> table;
    std::ifstream net("/proc/net/unix");
    std::string line;
    std::getline(net, line);  // the header
    while (std::getline(net, line)) {
        // A path holding '\n' splits its entry over two lines (other tests make such paths):
        // keep only lines that have the shape of an entry.
        std::istringstream in(line);
        std::string num, refs, proto, flags, type, state;
        unsigned long inode = 0;
        if (!(in >> num >> refs >> proto >> flags >> type >> state >> inode)) continue;
        if (num.empty() || num.back() != ':' || type.size() != 4 ||
            type.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
            continue;
        std::string name;
        in >> std::ws;
        std::getline(in, name);
        table.push_back({inode, Entry{static_cast<int>(std::stoul(type, nullptr, 16)), name}});
    }
    std::vector<UnixSocket> out;
    const std::string dir = "/proc/" + std::to_string(pid);
    for (int fd = 0; fd < 1024; ++fd) {
        char target[64] = {};
        std::string link = dir + "/fd/" + std::to_string(fd);
        ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
        if (n <= 0) continue;
        unsigned long inode = 0;
        if (std::sscanf(target, "socket:[%lu]", &inode) != 1) continue;
        for (const auto& [ino, e] : table) {
            if (ino != inode) continue;
            UnixSocket s;
            s.fd = fd;
            s.type = e.type;
            s.name = e.name;
            std::ifstream info(dir + "/fdinfo/" + std::to_string(fd));
            std::string key;
            unsigned long fl = 0;
            while (info >> key)
                if (key == "flags:" && (info >> std::oct >> fl)) break;
            s.cloexec = (fl & O_CLOEXEC) != 0;
            out.push_back(s);
        }
    }
    return out;
}

// CPU time (user + system) a process has used, in seconds.
inline double cpu_seconds(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    auto close = all.rfind(')');
    if (close == std::string::npos) return 0;
    std::istringstream in(all.substr(close + 2));
    std::string field;
    unsigned long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && in >> field; ++i) {
        if (i == 14) utime = std::stoul(field);
        if (i == 15) stime = std::stoul(field);
    }
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

}  // namespace ch03
