// YOUR server.cpp for 06-socketpair: the exercise starter, generated from the
// reference 06-socketpair/server.cpp by scripts/make-starter.
// Every TODO is one step of the lesson: write it, then run `make grade-06`;
// the first FAIL names the step to look at. Stuck? One hint at a time:
// 06-socketpair/exercise/HINTS.md.
//
// 06-socketpair/server.cpp - the monitor: a privileged parent that starts an unprivileged worker
// and opens files for it, joined by a socket pair (OpenSSH's privilege separation, in small).
//
//   server [--root DIR] [--user NAME] [-- WORKER-ARGS...]
//
// The worker (06-socketpair/client) runs as NAME (default nobody) and cannot open the files it
// wants; it asks the monitor over descriptor 3, one SOCK_SEQPACKET message per request:
//   OPEN <relative path>  ->  "OK <size>" + one read-only descriptor, or "ERROR <reason>"
//   LIST                  ->  "OK <bytes>" + a sealed memfd holding the listing of DIR
// The monitor keeps its privileges, decides (files beneath DIR only), and exits with the
// worker's exit status once the worker is done.
//
// The lesson, in order:
//   S1  socketpair   two connected sockets, no name, no file: nobody else can reach them
//   S2  fork         the child will become the worker
//   S3  dup2         (child) its end onto descriptor 3; nothing else crosses exec
//   S4  drop         (child) setgroups, setgid, setuid - in that order - and check it stuck
//   S5  exec         (child) the worker program
//   S6  close        (parent) the worker's end, or we would never see end of file
//   S7  recvmsg      one message is one request: no framing
//   S8  OPEN         open beneath the root, sendmsg the descriptor, close our copy
//   S9  LIST         the listing in a memfd, sealed, passed like any descriptor
//   S10 waitpid      end of file: the worker is done; exit with its status
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "beneath.hpp"
#include "seqpacket.hpp"
#include "uds.hpp"

namespace {

constexpr int kWorkerFd = 3;               // where the worker finds its end of the pair
constexpr std::size_t kMaxRequest = 4096;  // bytes in one request message
constexpr std::size_t kMaxListed = 10000;  // entries in one listing
constexpr int kMaxDepth = 16;              // directory levels in one listing

// Everything the child needs, prepared before fork.
struct WorkerPlan {
    std::string program;            // the worker's executable
    std::vector<std::string> args;  // its argv, program first
    bool drop = false;              // switch users (we are root)
    uid_t uid = 0;
    gid_t gid = 0;
    std::string user;
};

// The directory next to our own executable holding `name` (06-socketpair/files, .../client).
// A sanitizer build lives elsewhere (build/.../bin/06-socketpair/server): for files/ we then
// look further up for 06-socketpair/files.
std::string next_to_me(const std::string& name, bool search_up) {
    std::string exe(4096, '\0');
    ssize_t n = uds::check(readlink("/proc/self/exe", exe.data(), exe.size()), "readlink");
    exe.resize(static_cast<std::size_t>(n));
    const std::string dir = exe.substr(0, exe.rfind('/'));
    const std::string chapter = dir.substr(dir.rfind('/') + 1);
    if (search_up) {
        for (std::string up = dir; !up.empty(); up.resize(up.rfind('/'))) {
            std::string candidate = up == dir ? dir + "/" + name : up + "/" + chapter + "/" + name;
            struct stat st {};
            if (stat(candidate.c_str(), &st) == 0) return candidate;
        }
    }
    return dir + "/" + name;
}

// The listing of the root: one line per regular file beneath it, "SIZE  PATH", sorted. Symlinks
// are not followed, so the walk never leaves the root.
void list_dir(int dir, const std::string& prefix, int depth,
              std::vector<std::pair<std::string, std::string>>& out) {
    DIR* d = fdopendir(openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));  // not dup(dir):
    if (d == nullptr) return;  // a dup shares the read position, and the next LIST is empty
    std::vector<std::string> subdirs;
    while (dirent* e = readdir(d)) {
        std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        struct stat st {};
        if (fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        if (S_ISDIR(st.st_mode)) subdirs.push_back(name);
        if (S_ISREG(st.st_mode) && out.size() < kMaxListed)
            out.emplace_back(prefix + name, std::to_string(st.st_size));
    }
    closedir(d);
    for (const std::string& name : subdirs) {
        if (depth >= kMaxDepth || out.size() >= kMaxListed) break;
        uds::Fd sub{openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)};
        if (sub) list_dir(sub.get(), prefix + name + "/", depth + 1, out);
    }
}

std::string listing(int root) {
    std::vector<std::pair<std::string, std::string>> files;  // path, size
    list_dir(root, "", 0, files);
    std::sort(files.begin(), files.end());
    std::string text;
    for (const auto& [path, size] : files)  // "     1234  docs/notes.txt"
        text += std::string(size.size() < 10 ? 10 - size.size() : 0, ' ') + size + "  " +
                uds::escape_for_log(path) + "\n";
    if (files.size() >= kMaxListed) text += "(listing cut at 10000 files)\n";
    return text;
}

// How a process ended, for the log, and the status we exit with (128 + signal, as a shell).
int describe_end(int status, std::string& how) {
    if (WIFEXITED(status)) {
        how = "exited with status " + std::to_string(WEXITSTATUS(status));
        return WEXITSTATUS(status);
    }
    const char* abbrev = sigabbrev_np(WTERMSIG(status));
    how = "was killed by SIG" + std::string(abbrev != nullptr ? abbrev : "?") + " (" +
          std::to_string(WTERMSIG(status)) + ")";
    return 128 + WTERMSIG(status);
}

void handle_open(int sock, int root, std::string_view path);
void handle_list(int sock, int root);
int finish(pid_t worker, uds::Fd monitor_end, bool stopped, int served);

int run(int argc, char** argv) {
    std::optional<std::string> root_arg, user_arg, worker_arg;
    auto not_empty = [](const char* what, const std::string& v) {
        if (v.empty()) throw uds::UsageError(std::string(what) + " must not be empty");
        return v;
    };
    uds::Cli cli("server", "[--root DIR] [--user NAME] [--worker PROGRAM] [-- WORKER-ARGS...]",
                 "The monitor: starts the worker (06-socketpair/client) as an unprivileged user,\n"
                 "joined to it by a socket pair on its descriptor 3, and opens files beneath DIR\n"
                 "for it. Exits with the worker's exit status.\n"
                 "Default DIR: the files/ directory next to this program. Default NAME: nobody\n"
                 "(only root can switch users; otherwise the worker keeps our uid).");
    cli.option('r', "root", "DIR", "serve files beneath DIR only",
               [&](const std::string& v) { root_arg = not_empty("--root", v); });
    cli.option('u', "user", "NAME", "run the worker as user NAME (root only; default nobody)",
               [&](const std::string& v) { user_arg = not_empty("--user", v); });
    cli.option('w', "worker", "PROGRAM", "run PROGRAM as the worker (default: client next to us)",
               [&](const std::string& v) { worker_arg = not_empty("--worker", v); });
    cli.option(0, "no-openat2", "", "use the portable component-by-component walk instead",
               [&](const std::string&) { beneath::g_use_fallback = true; });
    const std::vector<std::string> worker_args = cli.parse(argc, argv);

    // Who the worker will be, decided before anything starts.
    WorkerPlan plan;
    plan.program = worker_arg.value_or(next_to_me("client", false));
    plan.args.push_back(plan.program);
    plan.args.insert(plan.args.end(), worker_args.begin(), worker_args.end());
    plan.user = user_arg.value_or("nobody");
    const passwd* pw = getpwnam(plan.user.c_str());
    if (pw == nullptr && (user_arg || geteuid() == 0))
        throw uds::UsageError("--user " + plan.user + ": no such user");
    if (geteuid() == 0) {
        if (pw->pw_uid == 0)
            throw uds::UsageError("--user " + plan.user + ": the worker must not be root");
        plan.drop = true;
        plan.uid = pw->pw_uid;
        plan.gid = pw->pw_gid;
    } else if (user_arg && pw->pw_uid != getuid()) {
        throw uds::Failure("--user " + plan.user +
                           ": only root can run the worker as another user"
                           " (we are uid " +
                           std::to_string(getuid()) + ")");
    }
    struct stat prog {};
    if (stat(plan.program.c_str(), &prog) != 0)
        uds::check(-1, "worker program " + plan.program, "build it with: make build-06");

    // The policy's root, opened once: every file is opened relative to this descriptor.
    const std::string root_path = root_arg.value_or(next_to_me("files", true));
    uds::Fd root{open(root_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    if (!root) uds::check(-1, "open root " + root_path, "give an existing directory with --root");
    uds::install_shutdown_handlers();

    // TODO S1. socketpair: create two connected sockets, of the type that keeps message boundaries,
    //      that no exec inherits.
    //      Read: socketpair(2), unix(7); README "S1. socketpair".
    uds::unwritten("S1", "socketpair");
    int sv[2] = {-1, -1};
    uds::Fd monitor_end{sv[0]}, worker_end{sv[1]};

    uds::log("starting the worker: " + plan.program +
             (plan.drop ? " as " + plan.user + " (uid " + std::to_string(plan.uid) + ")"
                        : " as ourselves (uid " + std::to_string(getuid()) +
                              "): not root, so there are no privileges to drop"));
    uds::log("serving files beneath " + root_path);

    // TODO S2. fork: start the child that becomes the worker.
    //      Read: fork(2); README "S2. fork".
    uds::unwritten("S2", "fork");
    const pid_t worker = -1;
    if (worker == 0) {  // the child: S3-S5 turn it into the worker, or it dies trying
        try {
            // TODO S3. dup2: give the worker its end of the pair as descriptor 3, and no other
            //      descriptor of ours.
            //      Read: dup2(2), close_range(2), fcntl(2) F_SETFD; README "S3. dup2".
            uds::unwritten("S3", "dup2");
            static_cast<void>(kWorkerFd);

            // TODO S4. drop: as root, switch the child to the worker's user for good, and prove
            //      there is no way back.
            //      Read: setgroups(2), setgid(2), setuid(2), getresuid(2); README "S4. drop".
            uds::unwritten("S4", "drop");

            // TODO S5. exec: replace the child with the worker program, its arguments passed on.
            //      Read: execv(3), execve(2); README "S5. exec".
            uds::unwritten("S5", "exec");
        } catch (const std::exception& e) {
            uds::log("cannot start the worker: " + uds::describe(e));
        }
        _exit(1);  // never return into the monitor's code in the child
    }

    // TODO S6. close: in the monitor, close the worker's end of the pair.
    //      Read: close(2); README "S6. close".
    uds::unwritten("S6", "close");
    int served = 0;
    bool stopped = false;
    for (;;) {
        if (uds::wait_readable(monitor_end.get()) == uds::Wait::Stop) {
            stopped = true;
            break;
        }
        // TODO S7. recvmsg: receive one request - one message - with any descriptors that came
        //      along, and notice end of file.
        //      Read: recvmsg(2), unix(7) SOCK_SEQPACKET; README "S7. recvmsg".
        uds::unwritten("S7", "recvmsg");
        static_cast<void>(kMaxRequest);
        seqpacket::Message req;
        break;
        ++served;
        std::string_view text = req.text;
        if (!text.empty() && text.back() == '\n') text.remove_suffix(1);  // tolerate one
        try {
            if (req.truncated) {
                uds::log("a request longer than 4096 bytes: refused");
                seqpacket::send(monitor_end.get(), "ERROR request too long (max 4096 bytes)");
            } else if (text.rfind("OPEN ", 0) == 0) {
                handle_open(monitor_end.get(), root.get(), text.substr(5));
            } else if (text == "LIST") {
                handle_list(monitor_end.get(), root.get());
            } else {
                uds::log("unknown request: " + std::string(text.substr(0, 200)));
                seqpacket::send(monitor_end.get(),
                                "ERROR unknown request (expected OPEN <path> or LIST)");
            }
        } catch (const uds::SysError& e) {
            if (e.code_value() != EPIPE && e.code_value() != ECONNRESET) throw;
            uds::log("the worker is gone: " + uds::describe(e));  // its replies go nowhere
            break;
        } catch (const uds::Stopped&) {
            stopped = true;
            break;
        }
    }
    return finish(worker, std::move(monitor_end), stopped, served);
}

// Step S8, OPEN: open the file beneath the root (or say why not), pass the descriptor.
void handle_open(int sock, int root, std::string_view path) {
    // TODO S8. OPEN: open the file beneath the root for the worker, pass it the descriptor with "OK
    //      <size>", then close our copy; or answer "ERROR <reason>".
    //      Read: openat2(2), sendmsg(2), unix(7) SCM_RIGHTS; README "S8. OPEN".
    uds::unwritten("S8", "OPEN");
    static_cast<void>(sock);
    static_cast<void>(root);
    static_cast<void>(path);
}

// Step S9, LIST: the listing in sealed memory, passed as a descriptor.
void handle_list(int sock, int root) {
    const std::string text = listing(root);
    // TODO S9. LIST: put the listing in a memfd, seal it against every change, and pass it with "OK
    //      <bytes>".
    //      Read: memfd_create(2), fcntl(2) F_ADD_SEALS; README "S9. LIST".
    uds::unwritten("S9", "LIST");
    static_cast<void>(sock);
    static_cast<void>(text);
}

// Step S10: the session is over (end of file, the worker gone, or SIGINT/SIGTERM): reap the
// worker and take over its exit status.
int finish(pid_t worker, uds::Fd monitor_end, bool stopped, int served) {
    if (stopped) {  // SIGINT/SIGTERM: pass it on; the monitor never leaves its worker running
        uds::log(std::string("stopping on ") + strsignal(uds::stop_signal()) +
                 ": passing it on to the worker");
        kill(worker, uds::stop_signal());
    }
    monitor_end.reset();  // the worker, if still reading, sees end of file

    // TODO S10. waitpid: wait until the worker has ended, and collect its status.
    //      Read: waitpid(2), wait(2); README "S10. waitpid".
    uds::unwritten("S10", "waitpid");
    int status = 0;
    std::string how;
    const int code = describe_end(status, how);
    uds::log("the worker " + how + " after " + std::to_string(served) + " request(s)");
    return code;
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("server", argc, argv, run);
}
