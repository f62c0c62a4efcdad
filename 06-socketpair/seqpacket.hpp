// 06-socketpair/seqpacket.hpp - one message, with at most one descriptor, over SOCK_SEQPACKET.
//
// Chapter 05 sent descriptors over a byte stream, so it needed a line framer and a rule for which
// line a descriptor belongs to. A SOCK_SEQPACKET socket keeps message boundaries: one sendmsg is
// one message, one recvmsg returns exactly one message, and descriptors travel with the message
// they were sent with. So there is no framing code here at all - only three things a stream
// never had to care about:
//   - a message longer than the buffer is cut, and the rest is gone: recvmsg says MSG_TRUNC;
//   - a message is sent whole or not at all (never a short send);
//   - recvmsg returns 0 both for an empty message and at end of file: poll tells them apart.
//
//   struct msghdr                    control buffer (chapter 05's picture, one descriptor)
//   msg_iov ----> the message bytes  +----------+------------+------------+-----+-----+
//   msg_control ------------------>  | cmsg_len | SOL_SOCKET | SCM_RIGHTS | int | pad |
//   msg_flags <-- MSG_TRUNC, ...     +----------+------------+------------+-----+-----+
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "uds.hpp"

namespace seqpacket {

// The most descriptors taken from one message. Replies carry one; room for a few more lets a
// receiver see (and close) extra ones instead of having the kernel drop them (MSG_CTRUNC).
inline constexpr std::size_t kMaxFds = 4;

// Sends `text` as one message, with descriptor `fd` attached when fd >= 0 (the caller keeps its
// own copy and closes it). MSG_NOSIGNAL: a peer that is gone gives EPIPE, not SIGPIPE.
// A signal (SIGTERM) while we wait for room in a full socket: uds::Stopped.
inline void send(int sock, std::string_view text, int fd = -1) {
    iovec iov{const_cast<char*>(text.data()), text.size()};  // sendmsg only reads it
    union {  // aligned for cmsghdr; CMSG_SPACE counts the padding (chapter 05, tx2)
        char buf[CMSG_SPACE(sizeof(int))];
        cmsghdr align;
    } control;
    std::memset(control.buf, 0, sizeof control.buf);
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (fd >= 0) {
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof control.buf;
        cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(cmsg), &fd, sizeof fd);
    }
    for (;;) {
        // All or nothing: on SEQPACKET a message is never sent in part.
        if (sendmsg(sock, &msg, MSG_NOSIGNAL) >= 0) return;
        if (errno != EINTR) throw uds::SysError(errno, "sendmsg");
        if (uds::stop_requested()) throw uds::Stopped{};
    }
}

// What one recvmsg delivered.
struct Message {
    std::string text;
    std::vector<uds::Fd> fds;  // every descriptor that came with it, each with an owner
    bool eof = false;          // end of file: the peer closed, or shut down its sending side
    bool reset = false;        // ECONNRESET: the peer closed with our messages still unread
    bool truncated = false;    // MSG_TRUNC: longer than max; the rest of it is gone
    bool fds_lost = false;     // MSG_CTRUNC: more descriptors than room; the kernel closed the rest
};

// Receives one message of at most `max` bytes. Blocks until one arrives (poll first when you must
// not block). Throws uds::SysError for anything but end of file and ECONNRESET.
inline Message receive(int sock, std::size_t max) {
    Message m;
    m.text.resize(max + 1);  // one byte more than allowed: a longer message shows as truncated
    iovec iov{m.text.data(), m.text.size()};
    union {
        char buf[CMSG_SPACE(kMaxFds * sizeof(int))];
        cmsghdr align;
    } control;
    std::memset(control.buf, 0, sizeof control.buf);
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    m.fds.reserve(kMaxFds);  // no allocation while we hold raw descriptor numbers

    ssize_t n;
    for (;;) {
        // MSG_CMSG_CLOEXEC: a received descriptor is never inherited by a program we exec.
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
        if (n >= 0) break;
        if (errno == EINTR) continue;
        if (errno == ECONNRESET) {
            m.text.clear();
            m.eof = m.reset = true;
            return m;
        }
        throw uds::SysError(errno, "recvmsg");
    }
    // Every descriptor that arrived gets an owner before anything else can go wrong.
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        for (std::size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++i) {
            int fd = -1;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            m.fds.emplace_back(fd);
        }
    }
    m.fds_lost = (msg.msg_flags & MSG_CTRUNC) != 0;
    m.truncated = (msg.msg_flags & MSG_TRUNC) != 0 || static_cast<std::size_t>(n) > max;
    m.text.resize(std::min(static_cast<std::size_t>(n), max));
    if (n == 0 && m.fds.empty()) {
        // 0 bytes: an empty message, or end of file? At end of file poll reports POLLRDHUP.
        pollfd p{sock, POLLRDHUP, 0};
        m.eof = poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP)) != 0;
    }
    return m;
}

}  // namespace seqpacket
