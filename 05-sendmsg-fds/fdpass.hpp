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
    //@tx1 data: put the bytes to send in a message header, refusing to send zero bytes | sendmsg(2), README "tx1-tx3: sending"
    //@hint A struct iovec points at bytes (iov_base, iov_len); the msghdr points at an array of them (msg_iov, msg_iovlen). Connected sockets need no msg_name.
    //@hint On a stream socket a sendmsg with no data byte sends nothing at all, the descriptor neither: throw std::invalid_argument for empty data.
    // tx1. The data, in one iovec. There must be at least one real byte: on a stream socket a
    //      sendmsg with no data transfers nothing at all, descriptors included
    //      (Ch05Semantics.ZeroDataBytesSendNothingOnAStream).
    if (data.empty()) throw std::invalid_argument("send_with_fd: needs at least one data byte");
    iovec iov{};
    iov.iov_base = const_cast<char*>(data.data());  // sendmsg only reads it
    iov.iov_len = data.size();
    // The message header: no address (the socket is connected), one iovec.
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    //@end

    //@tx2 control message: attach fd as one SCM_RIGHTS control message in a properly sized and aligned buffer | cmsg(3), unix(7) SCM_RIGHTS, README "The message, byte by byte"
    //@hint The buffer must hold a whole control message with one int: CMSG_SPACE gives that size (CMSG_LEN is what goes into cmsg_len). A union with a cmsghdr member gives it the alignment the CMSG_ macros assume.
    //@hint CMSG_FIRSTHDR(&msg) after setting msg_control/msg_controllen; then cmsg_level SOL_SOCKET, cmsg_type SCM_RIGHTS, cmsg_len CMSG_LEN(sizeof(int)); memcpy the int into CMSG_DATA (never cast it to int*).
    // tx2. The control buffer, sized with CMSG_SPACE (header + data + trailing padding), not
    //      CMSG_LEN (header + data only). The union with cmsghdr gives it cmsghdr's alignment:
    //      a plain char array may sit at any address, and CMSG_* would then read unaligned
    //      (Ch05Semantics.CmsgFirsthdrDoesNotAlignTheBuffer). It lives until sendmsg is done.
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        cmsghdr align;
    } control{};
    if (fd >= 0) {
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof control.buf;
        // The one control message: SOL_SOCKET / SCM_RIGHTS, its length CMSG_LEN(one int).
        cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
        // The descriptor number goes into CMSG_DATA with memcpy: CMSG_DATA is an unsigned
        // char*, and casting it to int* is undefined behaviour if it happens to be unaligned.
        std::memcpy(CMSG_DATA(cmsg), &fd, sizeof fd);
    }
    //@stub static_cast<void>(fd);  // (only so that the starter compiles without warnings)
    //@end

    //@tx3 sendmsg: send the message without ever being killed by SIGPIPE, waiting (not spinning) while the peer's buffer is full | sendmsg(2) MSG_NOSIGNAL, README "tx1-tx3: sending"
    //@hint sendmsg(sock, &msg, flags): MSG_NOSIGNAL turns a vanished peer into EPIPE instead of the SIGPIPE signal that kills the process. MSG_DONTWAIT plus uds::wait_writable lets a shutdown request interrupt the wait.
    //@hint Retry on EINTR; on EAGAIN wait with uds::wait_writable(sock) (throw uds::Stopped{} when it says Stop); throw uds::SysError(errno, "sendmsg") otherwise. A short send: remove what was sent from data; the code after this step sends the rest.
    // tx3. sendmsg. The kernel takes its own reference to the open file right here, so the file
    //      stays alive while the message is in flight even if we close our copy at once
    //      (Ch05Semantics.SenderMayCloseItsCopyRightAfterSendmsg). MSG_NOSIGNAL: a vanished
    //      peer gives EPIPE, not SIGPIPE. MSG_DONTWAIT + poll: a peer that does not read cannot
    //      pin us where SIGTERM would go unnoticed.
    for (;;) {
        ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
            data.remove_prefix(static_cast<std::size_t>(n));
            break;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) throw uds::SysError(errno, "sendmsg");
        if (uds::wait_writable(sock) == uds::Wait::Stop) throw uds::Stopped{};
    }
    //@end
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
    //@rx1 buffers: prepare a message header with room for the bytes and for everything the control data may hold: the sender's credentials and kMaxFds descriptors | recvmsg(2), cmsg(3), README "The message, byte by byte"
    //@hint An iovec for the bytes, as in tx1. The control buffer must hold the SCM_CREDENTIALS message (a struct ucred) AND the SCM_RIGHTS message, one after the other: each takes CMSG_SPACE of its data, so add them up. Align it with a union, as in tx2.
    //@hint CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(kMaxFds * sizeof(int)). With CMSG_LEN the kernel places the second message after the padded first one, finds no room left, and closes the descriptor (MSG_CTRUNC).
    // rx1. Where the bytes go: one iovec. (Descriptors arrive together with real bytes only.)
    iovec iov{};
    iov.iov_base = data;
    iov.iov_len = len;
    // Room for what may come: the sender's credentials (when the socket asked for them with
    // SO_PASSCRED) and kMaxFds descriptors. Each control message takes CMSG_SPACE bytes, so the
    // buffer is the SUM of the CMSG_SPACEs
    // (Ch05Semantics.BufferSizedWithCmsgLenLosesTheSecondMessage). Aligned by the union, as in tx2.
    union {
        char buf[CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(kMaxFds * sizeof(int))];
        cmsghdr align;
    } control{};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    //@stub static_cast<void>(data), static_cast<void>(len);  // (only so that the starter compiles)
    //@end

    ssize_t n = -1;
    //@rx2 recvmsg: receive bytes and control data; every descriptor that arrives must be close-on-exec from its first moment | recvmsg(2) MSG_CMSG_CLOEXEC, README "rx1-rx4: receiving"
    //@hint recvmsg(sock, &msg, flags) with MSG_CMSG_CLOEXEC: the kernel sets FD_CLOEXEC on each new descriptor as it installs it (a later fcntl would leave a window in which a fork+exec elsewhere inherits it).
    //@hint Add MSG_DONTWAIT and wait with uds::wait_readable(sock) on EAGAIN (throw uds::Stopped{} on Stop); retry on EINTR; throw uds::SysError(errno, "recvmsg") on anything else. Keep the result in n.
    // rx2. recvmsg with MSG_CMSG_CLOEXEC: the new descriptors get FD_CLOEXEC atomically, so a
    //      fork+exec elsewhere in the process can never leak them into another program
    //      (Ch05Semantics.WithoutMsgCmsgCloexecTheReceivedFdIsInheritedByExec).
    for (;;) {
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n >= 0) break;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) throw uds::SysError(errno, "recvmsg");
        if (uds::wait_readable(sock) == uds::Wait::Stop) throw uds::Stopped{};
    }
    //@stub static_cast<void>(sock);  // (only so that the starter compiles)
    //@end

    Received r;
    r.bytes = static_cast<std::size_t>(n);
    //@rx3 control messages: walk every control message; give each received descriptor an owner at once, and keep the credentials | cmsg(3), unix(7) SCM_RIGHTS and SCM_CREDENTIALS, README "rx1-rx4: receiving"
    //@hint for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)): every message, not just the first (with SO_PASSCRED the credentials come first). Check cmsg_level SOL_SOCKET and cmsg_type before reading CMSG_DATA.
    //@hint SCM_RIGHTS: (cmsg_len - CMSG_LEN(0)) / sizeof(int) descriptors; memcpy each int out of CMSG_DATA and push it into r.fds as a uds::Fd at once. SCM_CREDENTIALS: memcpy a ucred into r.sender.
    // rx3. Walk EVERY control message, not just the first: each SCM_RIGHTS descriptor is now
    //      open in our process, and one we do not look at is one we leak.
    // (Room first: no allocation, so no exception, while we hold raw numbers.)
    r.fds.reserve(sizeof control.buf / sizeof(int));
    for (cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); cmsg != nullptr; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_len < CMSG_LEN(0)) continue;
        const std::size_t payload = cmsg->cmsg_len - CMSG_LEN(0);  // the bytes after the header
        if (cmsg->cmsg_type == SCM_RIGHTS) {
            // As many ints as the payload holds; memcpy each one out of CMSG_DATA (no cast)
            // and give it an owner at once: from here on every path closes it.
            for (std::size_t i = 0; i < payload / sizeof(int); ++i) {
                int fd = -1;
                std::memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof fd);
                r.fds.emplace_back(fd);
            }
        } else if (cmsg->cmsg_type == SCM_CREDENTIALS && payload >= sizeof(ucred)) {
            // Who sent these bytes: filled in by the kernel, not by the sender
            // (Ch05Semantics.ScmCredentialsAreFilledInByTheKernel).
            ucred cred{};
            std::memcpy(&cred, CMSG_DATA(cmsg), sizeof cred);
            r.sender = cred;
        }
    }
    //@end

    //@rx4 truncation: when the kernel says the control data was cut off, close every descriptor that did arrive and say so | recvmsg(2) MSG_CTRUNC, README "rx1-rx4: receiving"
    //@hint After recvmsg, msg.msg_flags tells what happened: MSG_CTRUNC means the control buffer was too small and the kernel dropped (closed) what did not fit.
    //@hint Check it only AFTER rx3 gave every descriptor an owner; then r.fds.clear() closes them all, and r.truncated = true tells the caller.
    // rx4. Only now look at truncation. MSG_CTRUNC: the control buffer was too small; the kernel
    //      installed what fit and dropped (closed) the rest. We cannot know what was meant, so
    //      we close what we got too: clearing the vector closes every Fd
    //      (Ch05Semantics.CtruncDropsTheRestAndWeCloseWhatArrived).
    if ((msg.msg_flags & MSG_CTRUNC) != 0) {
        r.fds.clear();
        r.truncated = true;
    }
    //@end
    return r;
}

}  // namespace fdpass
