// bench/bench.hpp - the small pieces every benchmark program shares: the machine line that
// heads each table, clocks, percentiles, CPU pinning, blocking full reads/writes, and a
// Markdown table printer.
//
// Header-only on purpose: every bench/*.cpp is one program (like the chapters), and this is the
// one place they share code.
#pragma once

#include <sched.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "uds.hpp"

namespace bench {

// Monotonic nanoseconds (clock_gettime through the vDSO: ~20 ns, no system call).
inline std::uint64_t now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull +
           static_cast<std::uint64_t>(ts.tv_nsec);
}

// "AMD EPYC, 2 CPUs, Linux 6.1.0, 2026-11-25 19:40 UTC": printed under every table heading, so a
// table copied anywhere still says where and when it was measured.
inline std::string machine_line() {
    std::string cpu = "unknown CPU";
    std::ifstream info("/proc/cpuinfo");
    for (std::string line; std::getline(info, line);) {
        if (line.rfind("model name", 0) == 0) {
            auto colon = line.find(':');
            if (colon != std::string::npos)
                cpu = line.substr(line.find_first_not_of(" \t", colon + 1));
            break;
        }
    }
    utsname u{};
    std::string kernel =
        uname(&u) == 0 ? std::string(u.sysname) + " " + u.release : "unknown kernel";
    char date[64];
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", &tm);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return "_" + cpu + ", " + std::to_string(cpus) + " CPUs, " + kernel + ", " + date + "_";
}

// A page-aligned buffer, touched once so that no page fault lands inside a measurement.
// Alignment matters more than it should: on this project's test machine (AMD EPYC, Zen 3) a copy
// whose source and destination differ in alignment by 16 bytes ran at ~1 GiB/s instead of
// ~15-40 GiB/s, so malloc's 16-byte alignment would measure the allocator, not the transport.
class Buffer {
  public:
    explicit Buffer(std::size_t n, char fill = 'x')
        : n_(n), p_(static_cast<char*>(std::aligned_alloc(4096, (n + 4095) / 4096 * 4096))) {
        if (!p_) throw std::bad_alloc();
        std::memset(p_.get(), fill, n);
    }
    [[nodiscard]] char* data() const noexcept { return p_.get(); }
    [[nodiscard]] std::size_t size() const noexcept { return n_; }

  private:
    struct Free {
        void operator()(char* p) const noexcept { std::free(p); }
    };
    std::size_t n_;
    std::unique_ptr<char, Free> p_;
};

// Nearest-rank percentile of samples (p in [0,1]); sorts a copy.
inline double percentile(std::vector<double> v, double p) {
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    auto k = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
    return v[std::clamp<std::size_t>(k, 1, v.size()) - 1];
}
inline double median(std::vector<double> v) {
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// The CPUs this process may run on (a container or taskset may allow fewer than exist).
inline std::vector<int> allowed_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    uds::check(sched_getaffinity(0, sizeof set, &set), "sched_getaffinity");
    std::vector<int> cpus;
    for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &set)) cpus.push_back(c);
    return cpus;
}
// Pins the calling process (thread) to one CPU; a forked child inherits the mask.
inline void pin_to_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    uds::check(sched_setaffinity(0, sizeof set, &set),
               "sched_setaffinity CPU " + std::to_string(cpu));
}
inline void unpin(const std::vector<int>& cpus) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c : cpus)
        CPU_SET(c, &set);
    uds::check(sched_setaffinity(0, sizeof set, &set), "sched_setaffinity");
}

// Blocking full read / write for any descriptor (socket or pipe), looping over short transfers.
// EOF in the middle is an error here: every benchmark knows how many bytes must come.
inline void read_full(int fd, void* buf, std::size_t n, const char* what) {
    auto* p = static_cast<char*>(buf);
    while (n > 0) {
        ssize_t r = ::read(fd, p, n);
        if (r == 0) throw uds::Failure(std::string(what) + ": unexpected end of file");
        if (r < 0) {
            if (errno == EINTR) continue;
            throw uds::SysError(errno, std::string("read ") + what);
        }
        p += r;
        n -= static_cast<std::size_t>(r);
    }
}
inline void write_full(int fd, const void* buf, std::size_t n, const char* what) {
    const auto* p = static_cast<const char*>(buf);
    while (n > 0) {
        ssize_t r = ::write(fd, p, n);
        if (r < 0) {
            if (errno == EINTR) continue;
            throw uds::SysError(errno, std::string("write ") + what);
        }
        p += r;
        n -= static_cast<std::size_t>(r);
    }
}

// "64 B", "4 KiB", "1 MiB", "1 GiB".
inline std::string size_name(std::uint64_t n) {
    const char* units[] = {"B", "KiB", "MiB", "GiB"};
    int u = 0;
    while (u < 3 && n >= 1024 && n % 1024 == 0) {
        n /= 1024;
        ++u;
    }
    return std::to_string(n) + " " + units[u];
}

// printf into a std::string.
template <typename... Args>
std::string fmt(const char* format, Args... args) {
    char buf[256];
    std::snprintf(buf, sizeof buf, format, args...);
    return buf;
}
// A number with about three significant digits: 0.123, 12.3, 1234.
inline std::string num(double v) {
    if (std::isnan(v)) return "n/a";
    double a = std::fabs(v);
    if (a >= 100) return fmt("%.0f", v);
    if (a >= 10) return fmt("%.1f", v);
    if (a >= 1) return fmt("%.2f", v);
    return fmt("%.3f", v);
}
// " (1.23×)"; below 0.1 as a fraction, " (1/250)", so that tiny ratios keep their digits.
inline std::string ratio(double v) {
    if (std::isnan(v) || std::isinf(v)) return "";
    if (v > 0 && v < 0.1) return fmt(" (1/%.0f)", 1 / v);
    return fmt(" (%.2f×)", v);
}

// A Markdown table: columns, then rows of cells.
class Table {
  public:
    explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
    void row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
    void print() const {
        line(header_);
        std::string sep = "|";
        for (std::size_t i = 0; i < header_.size(); ++i)
            sep += i == 0 ? " --- |" : " ---: |";
        std::printf("%s\n", sep.c_str());
        for (const auto& r : rows_)
            line(r);
        std::printf("\n");
    }

  private:
    static void line(const std::vector<std::string>& cells) {
        std::string s = "|";
        for (const auto& c : cells)
            s += " " + c + " |";
        std::printf("%s\n", s.c_str());
    }
    std::vector<std::string> header_;
    std::vector<std::vector<std::string>> rows_;
};

// A section heading followed by the machine line.
inline void heading(const std::string& title) {
    std::printf("### %s\n\n%s\n\n", title.c_str(), machine_line().c_str());
}

}  // namespace bench
