// 05-sendmsg-fds/exercise/fdpass.hpp - YOUR descriptor passing: fill in the steps marked TODO.
//
// It compiles as it is, and every sendmsg/recvmsg fails with ENOSYS ("Function not implemented"),
// so the starter fails fast: make grade-05 STUDENT=05-sendmsg-fds/exercise names the steps
// (Ch05Steps.ServerStep6_R1toR3_Recvmsg_..., Ch05ClientSteps.ClientStep2_S1toS6_Sendmsg_...).
// The reference is ../fdpass.hpp; try without it first. man 3 cmsg and man 7 unix help.
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
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "uds.hpp"

namespace fdpass {

// The most descriptors we accept in one recvmsg. Requests need at most one; a little room more
// lets the server see (and close) a few extra ones instead of losing them to MSG_CTRUNC.
// The kernel's own limit is SCM_MAX_FD = 253 per message (Ch05Semantics.MoreThan253FdsIsEinval).
inline constexpr std::size_t kMaxFds = 4;

// Sends `data` on a connected socket with descriptor `fd` attached (fd < 0: none).
// The caller still owns fd and should close its copy afterwards (step S7).
inline void send_with_fd(int sock, std::string_view data, int fd) {
    // S1. The data. There must be at least one real byte: on a stream socket a sendmsg with no
    //     data transfers nothing at all, descriptors included
    //     (Ch05Semantics.ZeroDataBytesSendNothingOnAStream).
    // TODO(S1): if data is empty, throw std::invalid_argument; then an iovec iov{} whose
    //           iov_base is const_cast<char*>(data.data()) and iov_len is data.size().

    // S2. The control buffer, sized with CMSG_SPACE (header + data + trailing padding), not
    //     CMSG_LEN (header + data only). Give it cmsghdr's alignment: a plain char array may sit
    //     at any address, and CMSG_* would then read unaligned.
    // TODO(S2): union { char buf[CMSG_SPACE(sizeof(int))]; cmsghdr align; } control;
    //           and memset control.buf to zero.

    // S3. The message header: no address (the socket is connected), one iovec, the control buffer.
    msghdr msg{};
    // TODO(S3): msg.msg_iov = &iov; msg.msg_iovlen = 1;
    if (fd >= 0) {
        // TODO(S3): msg.msg_control = control.buf; msg.msg_controllen = sizeof control.buf;

        // S4. The one control message: SOL_SOCKET / SCM_RIGHTS, its length CMSG_LEN(one int).
        // TODO(S4): cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); then set its cmsg_level, cmsg_type
        //           and cmsg_len.

        // S5. The descriptor number goes into CMSG_DATA with memcpy: CMSG_DATA is an unsigned
        //     char*, and casting it to int* is undefined behaviour if it happens to be unaligned.
        // TODO(S5): std::memcpy(CMSG_DATA(cmsg), &fd, sizeof fd);
    }

    // S6. sendmsg. The kernel takes its own reference to the open file right here, so the file
    //     stays alive while the message is in flight even if we close our copy at once.
    //     MSG_NOSIGNAL: a vanished peer gives EPIPE, not SIGPIPE. MSG_DONTWAIT + poll: a client
    //     that does not read cannot pin us forever (we still notice SIGTERM).
    for (;;) {
        // TODO(S6): ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        ssize_t n = -1;
        errno = ENOSYS;
        (void)msg;
        if (n >= 0) {
            data.remove_prefix(static_cast<std::size_t>(n));
            break;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            throw uds::SysError(errno, "sendmsg", "fdpass.hpp steps S1-S6 are still TODO");
        if (uds::wait_writable(sock) == uds::Wait::Stop) throw uds::Stopped{};
    }
    // S7. A short send: the descriptor travelled with the first byte; the rest are plain bytes.
    //     (Then the caller closes its own copy: the receiver has a reference of its own.)
    uds::write_all(sock, data);
}

// What one recvmsg delivered.
struct Received {
    std::size_t bytes = 0;     // 0: end of file (the peer closed its end)
    std::vector<uds::Fd> fds;  // every descriptor that arrived, each with an owner
    bool truncated = false;    // MSG_CTRUNC/MSG_TRUNC: some were lost; fds is then empty
};

// Receives up to len bytes into buf and every descriptor that came with them. Waits (poll) until
// something arrives; throws uds::Stopped on SIGINT/SIGTERM, uds::SysError on failure.
inline Received recv_with_fds(int sock, char* buf, std::size_t len) {
    // R1. Where the bytes go: one iovec. (Descriptors arrive together with real bytes only.)
    // TODO(R1): iovec iov{}; pointing at buf, len bytes.
    (void)buf;
    (void)len;

    // R2. Room for up to kMaxFds descriptors: CMSG_SPACE, aligned by a union (as in S2).
    // TODO(R2): union { char buf[CMSG_SPACE(kMaxFds * sizeof(int))]; cmsghdr align; } control;
    //           zeroed; then msg_iov/msg_iovlen and msg_control/msg_controllen below.
    msghdr msg{};

    // R3. recvmsg with MSG_CMSG_CLOEXEC: the new descriptors get FD_CLOEXEC atomically, so a
    //     fork+exec elsewhere in the process can never leak them into another program.
    ssize_t n;
    for (;;) {
        // TODO(R3): n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        n = -1;
        errno = ENOSYS;
        if (n >= 0) break;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            throw uds::SysError(errno, "recvmsg", "fdpass.hpp steps R1-R3 are still TODO");
        if (uds::wait_readable(sock) == uds::Wait::Stop) throw uds::Stopped{};
    }

    Received r;
    r.bytes = static_cast<std::size_t>(n);
    r.fds.reserve(kMaxFds);  // no allocation (and so no exception) while we hold raw numbers

    // R4. Walk EVERY control message, not just the first: each SCM_RIGHTS descriptor is now
    //     open in our process, and one we do not look at is one we leak.
    // TODO(R4): for (cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); cmsg != nullptr;
    //                cmsg = CMSG_NXTHDR(&msg, cmsg)), skipping any that is not
    //           SOL_SOCKET/SCM_RIGHTS or whose cmsg_len is less than CMSG_LEN(0).
    //   R5. How many ints: the payload length (cmsg_len minus the header, CMSG_LEN(0)).
    //   TODO(R5): std::size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    //   R6. memcpy each number out of CMSG_DATA (no cast), and give it an owner at once.
    //   TODO(R6): for each i: int fd; std::memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int),
    //             sizeof fd); r.fds.emplace_back(fd);

    // R7. Only now look at truncation. MSG_CTRUNC: the control buffer was too small; the kernel
    //     installed what fit and dropped (closed) the rest. We cannot know what was meant, so
    //     we close what we got too: clearing the vector closes every Fd
    //     (Ch05Semantics.CtruncDropsTheRestAndWeCloseWhatArrived). Checking it BEFORE R4 and
    //     returning early would leak every descriptor that did arrive.
    // TODO(R7): if msg.msg_flags has MSG_CTRUNC or MSG_TRUNC: r.fds.clear(); r.truncated = true;
    (void)msg;
    return r;
}

}  // namespace fdpass
