// ch07_helpers.hpp - what chapter 07's tests share: handing a server descriptor 3 the way
// systemd does, peers running as other users and groups, a connect loop, a squatter.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fd.hpp"
#include "harness.hpp"

namespace ch07 {

inline const std::string kChapter = "07-socket-activation";
std::string server_bin();
std::string client_bin();

// The absolute path of a program on PATH, or "" when it is not installed.
std::string find_program(const std::string& name);
// The canonical path (symlinks resolved), or "" if it does not exist.
std::string real_path(const std::string& path);
// bash, run under the name "server": every server of these tests starts through it (bash execs
// the server, keeping the pid), so that the harness reports "the server ..." and remembers a
// server that never gets ready under one name, and a later start waits only briefly.
std::string launcher();
// Starts the server with args through the launcher and waits for its ready line.
std::unique_ptr<th::Process> start_plain(const std::vector<std::string>& args,
                                         th::Process::Options opts = {});
// Our own executable, as /proc/PID/exe names it.
std::string self_exe();

// A stream socket bound to path and listening, as systemd would hold it.
uds::Fd listening_socket(const std::string& path);
// Connects to ADDR ("@name" or a path), sends one line, returns the reply line ("" if none).
std::string ask(const std::string& addr, const std::string& line);
// connect() to a path: 0 or the errno it failed with.
int try_connect(const std::string& path);

// Starts the server with `fd` as its descriptor 3 and LISTEN_PID/LISTEN_FDS set, as systemd
// does: bash puts fd at 3, exports LISTEN_PID=$$ (or listen_pid) and LISTEN_FDS=1 (or
// listen_fds), and execs the server, keeping the pid.
std::unique_ptr<th::Process> spawn_with_fd3(int fd, const std::vector<std::string>& args,
                                            const std::string& listen_pid = "",
                                            const std::string& listen_fds_env = "");
// The same, waiting for the ready line (th::start_server).
std::unique_ptr<th::Process> start_with_fd3(int fd, const std::vector<std::string>& args,
                                            std::string_view ready = "listening on",
                                            const std::string& listen_pid = "");

// A field of /proc/PID/fdinfo/FD ("flags:"), without the key; "" if missing.
std::string fdinfo_field(pid_t pid, int fd, const std::string& key);

// A group that exists here and is neither root's nor nobody's (for --group tests).
struct Group {
    std::string name;
    gid_t gid;
};
Group some_group();

// Runs fn in a forked child as uid/gid with exactly these supplementary groups; returns fn's
// result (0..254), or -1 if the child could not switch or crashed. Needs root.
int run_as(uid_t uid, gid_t gid, const std::vector<gid_t>& groups, const std::function<int()>& fn);

// No ".uds-*" temporary directory left in dir.
bool no_temporary_left(const std::string& dir);

// Does this kernel have SO_PEERPIDFD (Linux 6.5)?
bool kernel_has_peerpidfd();

// A child process (as uid/gid/groups, when uid is not ours) that calls connect() on path in a
// tight loop, counting what happens, until stop(). Counters live in shared memory. With `asked`,
// it also lstat()s the file before each connect and counts the connections made while the
// file's mode had a bit beyond `asked` (connected_wide).
class ConnectLoop {
  public:
    struct Counts {
        long attempts = 0, connected = 0, enoent = 0, refused = 0, eacces = 0, other = 0,
             connected_wide = 0;
    };
    ConnectLoop(const std::string& path, uid_t uid, gid_t gid, const std::vector<gid_t>& groups,
                mode_t asked = 0);
    ~ConnectLoop();
    ConnectLoop(const ConnectLoop&) = delete;
    ConnectLoop& operator=(const ConnectLoop&) = delete;
    [[nodiscard]] long attempts() const;
    // Waits (with the usual patience) until connect has failed with EACCES n times.
    bool wait_for_refusals(long n);
    // Waits until n connections have been made.
    bool wait_for_connections(long n);
    Counts stop();

  private:
    struct Shared;
    Shared* shared_ = nullptr;
    pid_t pid_ = -1;
};

// A process of another uid that takes an abstract name first and listens there: it accepts
// one connection, answers "SQUATTED\n" to each line and keeps what it received.
class Squatter {
  public:
    Squatter(const std::string& at_name, uid_t uid);
    ~Squatter();
    Squatter(const Squatter&) = delete;
    Squatter& operator=(const Squatter&) = delete;
    // Everything the client sent, once it closed (or the deadline passed).
    std::string received();

  private:
    pid_t pid_ = -1;
    uds::Fd result_;
};

}  // namespace ch07
