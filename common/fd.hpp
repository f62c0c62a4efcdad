// fd.hpp - the one owner of a file descriptor.
//
// Every descriptor in this project is held by exactly one uds::Fd. It closes the descriptor
// once, in its destructor, and never converts to int behind your back: you ask for get()
// when a system call needs the number, and release() when you hand ownership elsewhere.
#pragma once

#include <unistd.h>

#include <utility>

namespace uds {

class Fd {
  public:
    Fd() noexcept = default;
    // Takes ownership of fd (which may be -1, meaning "nothing": handy for `Fd{socket(...)}`).
    explicit Fd(int fd) noexcept : fd_(fd) {}

    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    Fd(Fd&& other) noexcept : fd_(other.release()) {}
    Fd& operator=(Fd&& other) noexcept {
        if (this != &other) reset(other.release());
        return *this;
    }
    ~Fd() { reset(); }

    [[nodiscard]] int get() const noexcept { return fd_; }
    [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }
    explicit operator bool() const noexcept { return valid(); }

    // Gives the descriptor away; this object no longer closes it.
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }

    // Closes what we hold (if anything) and takes fd instead.
    // close() is never retried: on Linux the descriptor is gone even when close reports EINTR,
    // and a retry could close a descriptor another thread has just been given.
    void reset(int fd = -1) noexcept {
        int old = std::exchange(fd_, fd);
        if (old >= 0) ::close(old);
    }

  private:
    int fd_ = -1;
};

}  // namespace uds
