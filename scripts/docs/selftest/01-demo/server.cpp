// server.cpp: part of the docs-check self-test fixture (never built).
#include <sys/socket.h>

int main() {
    // S1. socket: an AF_UNIX stream
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    // S2. bind: give it a name
    bind(fd, nullptr, 0);
    return fd;
}
