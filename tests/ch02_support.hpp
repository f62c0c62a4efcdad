// ch02_support.hpp - what both chapter 02 test files need: addresses built by hand, what the
// kernel shows about a process's sockets (/proc/net/unix, /proc/PID/fd, fdinfo), peers that
// run as another uid, and a stand-in for another uid when the tests do not run as root.
#pragma once

#include <fcntl.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "harness.hpp"
#include "uds.hpp"

namespace ch02 {

inline const std::string kChapter = "02-stream-abstract";
inline constexpr socklen_t kOffset = offsetof(sockaddr_un, sun_path);

inline std::string server_bin() {
    return th::bin(kChapter, "server");
}
inline std::string client_bin() {
    return th::bin(kChapter, "client");
}

inline bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}
inline std::size_t count_of(const std::string& text, const std::string& part) {
    std::size_t n = 0;
    for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1))
        ++n;
    return n;
}

// ------------------------------------------------------------------ addresses by hand
// An AF_UNIX address built the way any C program would, with whatever length we choose.
struct RawAddress {
    sockaddr_un sa{};
    socklen_t len = 0;
    [[nodiscard]] const sockaddr* ptr() const { return reinterpret_cast<const sockaddr*>(&sa); }
};
// sun_path = '\0' + bytes; the exact length offsetof(sun_path) + 1 + bytes, unless len is given.
inline RawAddress raw_abstract(const std::string& bytes, socklen_t len = 0) {
    RawAddress a;
    a.sa.sun_family = AF_UNIX;
    std::memcpy(a.sa.sun_path + 1, bytes.data(), std::min(bytes.size(), sizeof a.sa.sun_path - 1));
    a.len = len != 0 ? len : static_cast<socklen_t>(kOffset + 1 + bytes.size());
    return a;
}
inline RawAddress raw_path(const std::string& path) {
    RawAddress a;
    a.sa.sun_family = AF_UNIX;
    std::memcpy(a.sa.sun_path, path.data(), std::min(path.size(), sizeof a.sa.sun_path - 1));
    a.len = static_cast<socklen_t>(kOffset + path.size() + 1);
    return a;
}
// A name as /proc/net/unix prints it ("@name@@@" for NULs, or a path) as an address.
inline RawAddress raw_from_proc(const std::string& shown) {
    if (shown.empty() || shown[0] != '@') return raw_path(shown);
    std::string bytes = shown.substr(1);
    for (char& c : bytes)
        if (c == '@') c = '\0';  // our test names never contain '@'
    return raw_abstract(bytes);
}

// connect() to a raw address: 0, or the errno it failed with.
inline int try_connect(const RawAddress& a, uds::Fd* out = nullptr) {
    uds::Fd fd{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    if (!fd) return errno;
    if (::connect(fd.get(), a.ptr(), a.len) == -1) return errno;
    if (out != nullptr) *out = std::move(fd);
    return 0;
}

// A listening socket of our own on a raw address (for the client's tests).
inline uds::Fd listen_on(const RawAddress& a) {
    uds::Fd fd{uds::check(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")};
    uds::check(::bind(fd.get(), a.ptr(), a.len), "bind");
    uds::check(::listen(fd.get(), 8), "listen");
    return fd;
}

// ------------------------------------------------------------------ what the kernel shows
// One line of /proc/net/unix. Abstract names have each NUL printed as '@'.
struct UnixEntry {
    std::string flags, type, state, path;
    [[nodiscard]] bool listening() const { return flags == "00010000"; }  // __SO_ACCEPTCON
    [[nodiscard]] bool stream() const { return type == "0001"; }
};

// Every AF_UNIX socket of this network namespace. (A connection still waiting in a listen
// queue has inode 0.)
struct UnixEntryAt {
    unsigned long inode;
    UnixEntry entry;
};
inline std::vector<UnixEntryAt> proc_net_unix() {
    std::ifstream in("/proc/net/unix");
    std::vector<UnixEntryAt> all;
    std::string line;
    std::getline(in, line);  // Num RefCount Protocol Flags Type St Inode Path
    while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string num, refs, proto;
        unsigned long inode = 0;
        UnixEntry e;
        if (!(f >> num >> refs >> proto >> e.flags >> e.type >> e.state >> inode)) continue;
        f >> e.path;
        all.push_back({inode, e});
    }
    return all;
}

// Lines whose name is exactly `shown`, and lines whose name starts with it.
inline std::size_t proc_exactly(const std::string& shown) {
    std::size_t n = 0;
    for (const auto& s : proc_net_unix())
        n += s.entry.path == shown;
    return n;
}
inline std::size_t proc_starting_with(const std::string& shown) {
    std::size_t n = 0;
    for (const auto& s : proc_net_unix())
        n += s.entry.path.rfind(shown, 0) == 0;
    return n;
}

// The AF_UNIX sockets a process holds: (descriptor number, its /proc/net/unix line).
struct HeldSocket {
    int fd;
    UnixEntry entry;
};
inline std::vector<HeldSocket> unix_sockets_of(pid_t pid) {
    std::vector<HeldSocket> held;
    std::map<unsigned long, UnixEntry> all;
    for (const auto& s : proc_net_unix())
        all[s.inode] = s.entry;
    const std::string dir = "/proc/" + std::to_string(pid) + "/fd/";
    for (int fd = 0; fd < 1024; ++fd) {
        char target[64];
        ssize_t n = ::readlink((dir + std::to_string(fd)).c_str(), target, sizeof target - 1);
        if (n <= 0) continue;
        target[n] = '\0';
        unsigned long inode = 0;
        if (std::sscanf(target, "socket:[%lu]", &inode) != 1) continue;
        if (auto it = all.find(inode); it != all.end()) held.push_back({fd, it->second});
    }
    return held;
}

// Is descriptor fd of process pid close-on-exec? (the "flags:" line of /proc/PID/fdinfo/FD,
// octal; O_CLOEXEC is 02000000). nullopt when it cannot be read.
inline std::optional<bool> cloexec(pid_t pid, int fd) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/fdinfo/" + std::to_string(fd));
    std::string key;
    while (in >> key) {
        if (key == "flags:") {
            std::string octal;
            in >> octal;
            return (std::strtoul(octal.c_str(), nullptr, 8) & O_CLOEXEC) != 0;
        }
    }
    return std::nullopt;
}

// A long name as a student can read it in one line: "@uds-test-1-2-x@@@@...(95 more '@')".
inline std::string short_name(const std::string& shown) {
    if (shown.size() <= 60) return shown;
    std::size_t tail = shown.find_last_not_of('@');
    if (tail != std::string::npos && tail + 1 < shown.size() && tail < 56)
        return shown.substr(0, tail + 4) + "...(" + std::to_string(shown.size() - tail - 4) +
               " more '@')";
    return shown.substr(0, 56) + "...";
}

// What is wrong with the name the server's socket got (as /proc/net/unix shows it) when it
// should be "@" + name: "" when it is exactly that, else a short reason naming the step (S2a
// builds the address, S2b binds it). The name itself is long: show it with short_name apart.
inline std::string name_problem(const std::string& got, const std::string& name) {
    const std::string exact = "offsetof(sockaddr_un, sun_path) + 1 + name length (step S2a)";
    if (got == "@" + name) return "";
    if (got.empty()) return "the socket has no name: bind it (step S2b)";
    if (got[0] != '@')
        return "the kernel got a path (a file), not an abstract name: sun_path[0] must be '\\0' "
               "(step S2a)";
    const std::string bytes = got.substr(1);
    if (bytes.rfind(name, 0) == 0 &&
        bytes.find_first_not_of('@', name.size()) == std::string::npos) {
        const std::string extra = std::to_string(bytes.size() - name.size());
        if (bytes.size() == sizeof(sockaddr_un{}.sun_path) - 1)
            return "the length was sizeof(sockaddr_un), so the name got " + extra +
                   " NULs at its end; pass " + exact;
        return "the length counts " + extra + " byte(s) too many (NULs at the end); pass " + exact;
    }
    if (name.rfind(bytes, 0) == 0)
        return "the length is " + std::to_string(name.size() - bytes.size()) +
               " byte(s) short, so the name lost its end; pass " + exact;
    if (bytes == name.substr(1))
        return "the name lost its first letter to the leading NUL: copy the name to sun_path + 1 "
               "(step S2a)";
    if (bytes.size() == 5 && bytes.find_first_not_of("0123456789abcdef") == std::string::npos)
        return "the kernel picked a name itself (autobind): bind was not called (step S2b), or its "
               "length was sizeof(sa_family_t), as from strlen(sun_path) (step S2a)";
    return "the kernel got another name: sun_path[0] = '\\0', the name after it, and the length " +
           exact;
}

// ------------------------------------------------------------------ other uids
// Forks a child that becomes uid/gid 65534 (nobody) and runs fn; returns its pid at once
// (th::run_as_nobody waits for the child instead). Needs root.
inline pid_t fork_as_nobody(const std::function<int()>& fn) {
    pid_t pid = ::fork();
    if (pid != 0) return pid;
    if (::setgroups(0, nullptr) != 0 || ::setgid(th::kNobody) != 0 || ::setuid(th::kNobody) != 0)
        ::_exit(255);
    int rc = 255;
    try {
        rc = fn();
    } catch (...) {
    }
    ::_exit(rc & 0xff);
}
// Waits for such a child (SIGKILL after the deadline); its exit status, or -1.
inline int wait_child(pid_t pid, th::Deadline d = th::Deadline{}) {
    for (;;) {
        int st = 0;
        pid_t r = ::waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        if (r == -1 && errno != EINTR) return -1;
        if (d.expired()) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &st, 0);
            return -1;
        }
        th::readable(-1, 10);  // poll() on nothing: a 10 ms pause between looks
    }
}

// Without root the tests cannot run a peer as another uid: every process they start has their
// own uid, and a server always serves its own uid. So the server's own answer from the kernel
// is replaced instead: a small library preloaded into the server under test (LD_PRELOAD) makes
// getsockopt(SO_PEERCRED) report uid kFakeUid for every peer except the test process itself.
// That checks the server's decision (step S4b) with the real server and real sockets; what the
// kernel does is checked for real, as root, by the tests that run peers as nobody.
inline constexpr uid_t kFakeUid = 4242;

// The path of the compiled stand-in (built once per test process with the system's C
// compiler), or "" when there is no compiler.
inline std::string fake_peercred_library() {
    static std::string built = [] {
        static th::TempDir dir;  // lives until the test program exits
        const std::string src = dir.file("fakecred.c");
        const std::string lib = dir.file("fakecred.so");
        std::ofstream(src) << R"(#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
/* Proof that it was loaded, for a program too short-lived to look at: UDS_FAKE_MARK names a
   file to create. */
__attribute__((constructor)) static void mark_loaded(void) {
    const char* mark = getenv("UDS_FAKE_MARK");
    if (mark != NULL) close(open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
}
typedef int (*getsockopt_fn)(int, int, int, void*, socklen_t*);
int getsockopt(int fd, int level, int name, void* value, socklen_t* len) {
    getsockopt_fn real = (getsockopt_fn)dlsym(RTLD_NEXT, "getsockopt");
    int rc = real(fd, level, name, value, len);
    const char* uid = getenv("UDS_FAKE_PEER_UID");
    const char* except = getenv("UDS_FAKE_EXCEPT_PID");
    if (rc == 0 && level == SOL_SOCKET && name == SO_PEERCRED && uid != NULL && value != NULL &&
        *len >= sizeof(struct ucred)) {
        struct ucred* cred = (struct ucred*)value;
        if (except == NULL || cred->pid != (pid_t)atol(except))
            cred->uid = (uid_t)strtoul(uid, NULL, 10);
    }
    return rc;
}
)";
        for (const char* cc : {static_cast<const char*>(std::getenv("CC")), "cc", "gcc", "clang"}) {
            if (cc == nullptr || *cc == '\0' || !th::have_program(cc)) continue;
            auto r = th::run("/bin/sh",
                             {"-c", std::string(cc) + " -shared -fPIC -O1 -o \"$1\" \"$2\" -ldl",
                              "sh", lib, src},
                             {}, {}, th::Deadline{std::chrono::seconds{30}});
            if (r.status == 0) return lib;
        }
        return std::string();
    }();
    return built;
}

// Options for a server whose peers (all but this test process) look like uid kFakeUid.
inline th::Process::Options fake_peer_uid_options(const std::string& lib) {
    th::Process::Options o;
    o.env = {"LD_PRELOAD=" + lib, "UDS_FAKE_PEER_UID=" + std::to_string(kFakeUid),
             "UDS_FAKE_EXCEPT_PID=" + std::to_string(::getpid()),
             // A sanitized server wants its runtime first in the library list.
             "ASAN_OPTIONS=verify_asan_link_order=0"};
    return o;
}

// Did the stand-in really get loaded into process pid? (a static binary ignores LD_PRELOAD)
inline bool has_loaded(pid_t pid, const std::string& lib) {
    std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
    std::string line;
    while (std::getline(maps, line))
        if (contains(line, lib)) return true;
    return false;
}

// ------------------------------------------------------------------ for the tests
// " (the server exited with status 1: server: step S4b (peer check) is not written yet)" when
// the program has ended, so that a reason never blames a step for what a later one did.
inline std::string ended(th::Process& p) {
    if (p.running()) return "";
    p.wait_exit(th::Deadline{th::milliseconds{200}});  // collect what it wrote before it ended
    std::string last = p.err();
    while (!last.empty() && last.back() == '\n')
        last.pop_back();
    last = last.substr(last.rfind('\n') == std::string::npos ? 0 : last.rfind('\n') + 1);
    if (last.size() > 100) last = last.substr(0, 100) + "...";
    return " (the " + p.name() + " " + p.ending() + (last.empty() ? "" : ": " + last) + ")";
}

// Sends what it can; a peer that has gone already is no error here.
inline void send_quietly(int fd, std::string_view data) {
    try {
        th::send_all(fd, data);
    } catch (const uds::SysError&) {
    }
}

// A peer of another uid for the peer-check tests: as root a real one, else the stand-in.
struct OtherUid {
    uid_t uid;
    th::Process::Options server_options;  // what the server under test must be started with
    std::string library;                  // the stand-in ("" when real)
};
// (UDS_CH02_STAND_IN=1 uses the stand-in even as root, to test it.)
inline std::optional<OtherUid> other_uid() {
    const char* force = std::getenv("UDS_CH02_STAND_IN");
    if (::geteuid() == 0 && (force == nullptr || std::string(force) != "1"))
        return OtherUid{th::kNobody, {}, ""};
    std::string lib = fake_peercred_library();
    if (lib.empty()) return std::nullopt;
    return OtherUid{kFakeUid, fake_peer_uid_options(lib), lib};
}
inline constexpr const char* kNeedOtherUid =
    "need root (or a C compiler for the SO_PEERCRED stand-in)";
// False when the stand-in should be in the server but is not (a static binary): skip then.
inline bool stand_in_works(const OtherUid& other, th::Process& server) {
    return other.library.empty() || has_loaded(server.pid(), other.library);
}
inline constexpr const char* kStandInNotLoaded =
    "need root: the SO_PEERCRED stand-in did not load into the server";

// Forks a child that is a peer of that other uid and runs fn in it; returns its pid at once.
inline pid_t fork_as(const OtherUid& other, const std::function<int()>& fn) {
    if (other.library.empty()) return fork_as_nobody(fn);
    pid_t pid = ::fork();
    if (pid == 0) {
        int rc = 255;
        try {
            rc = fn();
        } catch (...) {
        }
        ::_exit(rc & 0xff);
    }
    return pid;
}
// The same, waiting for the child: its status (or -1).
inline int as_other_peer(const OtherUid& other, const std::function<int()>& fn) {
    const pid_t pid = fork_as(other, fn);
    return pid < 0 ? -1 : wait_child(pid);
}

}  // namespace ch02
