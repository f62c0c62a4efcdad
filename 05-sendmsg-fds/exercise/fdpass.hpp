// YOUR fdpass.hpp for 05-sendmsg-fds: the exercise starter, generated from the
// reference 05-sendmsg-fds/fdpass.hpp by scripts/make-starter.
// Every TODO is one step of the lesson: write it, then run `make grade-05`;
// the first FAIL names the step to look at. Stuck? One hint at a time:
// 05-sendmsg-fds/exercise/HINTS.md.
//
// 05-sendmsg-fds/fdpass.hpp - sending and receiving open descriptors: sendmsg/recvmsg with
// SCM_RIGHTS. Both programs use it; it is the heart of the chapter, so every step is spelled out:
// tx1-tx3 send, rx1-rx4 receive.
//
// A descriptor is only a number in one process's table. To hand one over, the sender puts the
// number in a control message ("ancillary data") next to ordinary bytes; the kernel looks up the
// open file behind it, takes a reference, and when the receiver calls recvmsg it installs a NEW
// descriptor in the receiver's table pointing at the SAME open file (same offset, same flags).
//
//   struct msghdr                            the control buffer (msg_control, msg_controllen)
//   +----------------+                       +-----------+------------+-------+---------+---+
//   | msg_name       |  unused (connected)   | cmsg_len  | cmsg_level | _type | fd, fd, | p |
//   | msg_iov    ----+--> iovec{base, len}   | CMSG_LEN  | SOL_SOCKET | RIGHTS| ... ints| a |
//   | msg_control ---+--------------------->  +-----------+------------+-------+---------+ d |
//   | msg_controllen |  = CMSG_SPACE(n*4)    |<----- CMSG_LEN(n*sizeof(int)) ---------->|   |
//   | msg_flags      |  out: MSG_CTRUNC...   |<------------ CMSG_SPACE(n*sizeof(int)) ------>|
//   +----------------+                       CMSG_DATA(cmsg) points at the first int
//
// A receiver that asked for credentials (SO_PASSCRED, as the broker does) gets TWO control
// messages, one after the other: each takes CMSG_SPACE bytes of the buffer, so the buffer is the
// SUM of their CMSG_SPACEs. Sized with CMSG_LEN, the credentials eat the room the descriptor
// needed: the kernel closes the descriptor and sets MSG_CTRUNC.
//
//   [ cmsghdr SCM_CREDENTIALS | pid uid gid | pad ][ cmsghdr SCM_RIGHTS | fd | pad ]
//   |<------ CMSG_SPACE(sizeof(ucred)) ---------->|<-- CMSG_SPACE(sizeof(int)) -->|
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "uds.hpp"

namespace fdpass {

// How many descriptors a receiver makes room for in one recvmsg. No message of this protocol
// carries more than one; a receiver that gets more (or a cut-off list, MSG_CTRUNC) refuses the
// message and closes all of them. (The kernel's own limit is SCM_MAX_FD = 253 per message.)
inline constexpr std::size_t kMaxFds = 1;

// Sends `data` on a connected socket with descriptor `fd` attached (fd < 0: none).
// The caller still owns fd and closes its own copy afterwards: the message holds a reference of
// its own. Throws uds::SysError (EPIPE, ETOOMANYREFS, ...) or uds::Stopped (SIGINT/SIGTERM).
inline void send_with_fd(int sock, std::string_view data, int fd) {
    // TODO tx1. data: put the bytes to send in a message header, refusing to send zero bytes.
    //      Read: sendmsg(2), README "tx1-tx3: sending".
    uds::unwritten("tx1", "data");

    // TODO tx2. control message: attach fd as one SCM_RIGHTS control message in a properly sized
    //      and aligned buffer.
    //      Read: cmsg(3), unix(7) SCM_RIGHTS, README "The message, byte by byte".
    uds::unwritten("tx2", "control message");
    static_cast<void>(fd);  // (only so that the starter compiles without warnings)

    // TODO tx3. sendmsg: send the message without ever being killed by SIGPIPE, waiting (not
    //      spinning) while the peer's buffer is full.
    //      Read: sendmsg(2) MSG_NOSIGNAL, README "tx1-tx3: sending".
    uds::unwritten("tx3", "sendmsg");
    // A short send: the descriptor travelled with the first byte; the rest are plain bytes.
    uds::write_all(sock, data);
}

// What one recvmsg delivered.
struct Received {
    std::size_t bytes = 0;        // 0: end of file (the peer closed its end)
    std::vector<uds::Fd> fds;     // every descriptor that arrived, each with an owner
    bool truncated = false;       // MSG_CTRUNC: some were lost; fds is then empty
    std::optional<ucred> sender;  // SCM_CREDENTIALS: who sent these bytes (only if SO_PASSCRED)
};

// Receives up to len bytes into data and every descriptor (and the sender's credentials) that
// came with them. Waits (poll) until something arrives; throws uds::Stopped on SIGINT/SIGTERM,
// uds::SysError on failure.
inline Received recv_with_fds(int sock, char* data, std::size_t len) {
    // TODO rx1. buffers: prepare a message header with room for the bytes and for everything the
    //      control data may hold: the sender's credentials and kMaxFds descriptors.
    //      Read: recvmsg(2), cmsg(3), README "The message, byte by byte".
    uds::unwritten("rx1", "buffers");
    static_cast<void>(data), static_cast<void>(len);  // (only so that the starter compiles)

    ssize_t n = -1;
    // TODO rx2. recvmsg: receive bytes and control data; every descriptor that arrives must be
    //      close-on-exec from its first moment.
    //      Read: recvmsg(2) MSG_CMSG_CLOEXEC, README "rx1-rx4: receiving".
    uds::unwritten("rx2", "recvmsg");
    static_cast<void>(sock);  // (only so that the starter compiles)

    Received r;
    r.bytes = static_cast<std::size_t>(n);
    // TODO rx3. control messages: walk every control message; give each received descriptor an
    //      owner at once, and keep the credentials.
    //      Read: cmsg(3), unix(7) SCM_RIGHTS and SCM_CREDENTIALS, README "rx1-rx4: receiving".
    uds::unwritten("rx3", "control messages");

    // TODO rx4. truncation: when the kernel says the control data was cut off, close every
    //      descriptor that did arrive and say so.
    //      Read: recvmsg(2) MSG_CTRUNC, README "rx1-rx4: receiving".
    uds::unwritten("rx4", "truncation");
    return r;
}

}  // namespace fdpass
