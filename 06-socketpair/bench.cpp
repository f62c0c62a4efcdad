// 06-socketpair/bench.cpp - a large result, from the monitor to its worker (make bench-06):
//
//   copy   the monitor sends the bytes through the socket pair (SOCK_SEQPACKET, 64 KiB messages);
//          the worker receives them into a buffer of its own
//   map    the monitor writes the bytes into a memfd, seals it and sends the descriptor; the
//          worker checks the seals and maps it
//
// Each round starts a fresh worker as the chapter does (fork, the pair's end on descriptor 3,
// exec: this program again, with --worker), which reads every byte of the result (a checksum,
// so that nothing is skipped) and reports back. Measured, per round:
//   time      from the monitor starting to send until the worker's report arrives
//   peak RSS  the worker's VmHWM: every page it touched, its own or shared
//   private   the worker's RssAnon while it holds the result: memory that is its alone (a copy);
//             the mapped pages are not in it: they are the memfd's, shared with the monitor
// Printed: the median of each, and copy/map as ratios of the same run (machines differ; the
// ratio is what carries over).
//
//   bench [--size MIB] [--rounds N]     (default 64 MiB, 5 rounds)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "seqpacket.hpp"
#include "uds.hpp"

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kChunk = 64 * 1024;

struct Report {  // what the worker sends back (as text: "sum hwm_kib anon_kib")
    std::uint64_t sum = 0;
    long hwm_kib = 0, anon_kib = 0;  // anon: while it still holds the result
};

long status_kib(const char* key) {
    std::ifstream in("/proc/self/status");
    std::string k;
    long v = 0;
    while (in >> k) {
        if (k == key) {
            in >> v;
            return v;
        }
    }
    return -1;
}

std::uint64_t checksum(const char* p, std::size_t n) {
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i + 8 <= n; i += 8) {
        std::uint64_t w;
        std::memcpy(&w, p + i, 8);
        sum += w;
    }
    return sum;
}

// The worker's side of one round (bench --worker copy|map SIZE, on descriptor 3).
[[noreturn]] void worker(int sock, bool map, std::size_t size) {
    std::uint64_t sum = 0;
    long anon = 0;
    try {
        if (map) {
            seqpacket::Message m = seqpacket::receive(sock, 64);
            if (m.fds.size() != 1) throw uds::Failure("no memfd");
            const int need = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
            if ((fcntl(m.fds[0].get(), F_GET_SEALS) & need) != need) throw uds::Failure("unsealed");
            void* p = mmap(nullptr, size, PROT_READ, MAP_SHARED, m.fds[0].get(), 0);
            if (p == MAP_FAILED) uds::check(-1, "mmap");
            sum = checksum(static_cast<const char*>(p), size);
            anon = status_kib("RssAnon:");
            munmap(p, size);
        } else {
            std::vector<char> buf(size);  // the worker's own copy of the result
            std::size_t got = 0;
            while (got < size) {
                ssize_t n = recv(sock, buf.data() + got, std::min(kChunk, size - got), 0);
                uds::check(n, "recv");
                if (n == 0) throw uds::Failure("short");
                got += static_cast<std::size_t>(n);
            }
            sum = checksum(buf.data(), size);
            anon = status_kib("RssAnon:");
        }
        std::string report = std::to_string(sum) + " " + std::to_string(status_kib("VmHWM:")) +
                             " " + std::to_string(anon);
        seqpacket::send(sock, report);
        _exit(0);
    } catch (const std::exception& e) {
        uds::log(std::string("bench worker: ") + uds::describe(e));
        _exit(1);
    }
}

struct Round {
    double ms;
    Report r;
};

Round round(const std::string& data, bool map) {
    int sv[2];
    uds::check(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), "socketpair");
    uds::Fd mine{sv[0]}, theirs{sv[1]};
    const std::string exe = std::filesystem::read_symlink("/proc/self/exe").string();
    const std::string mode = map ? "map" : "copy", bytes = std::to_string(data.size());
    pid_t pid = uds::check(fork(), "fork");
    if (pid == 0) {  // the chapter's S3 and S5, without the drop
        if (dup2(theirs.get(), 3) == -1) _exit(1);
        execl(exe.c_str(), "bench", "--worker", mode.c_str(), bytes.c_str(), nullptr);
        _exit(1);
    }
    theirs.reset();
    auto start = Clock::now();
    if (map) {
        uds::Fd m{uds::check(memfd_create("bench", MFD_CLOEXEC | MFD_ALLOW_SEALING), "memfd")};
        for (std::size_t done = 0; done < data.size();)
            done += static_cast<std::size_t>(
                uds::check(write(m.get(), data.data() + done, data.size() - done), "write"));
        uds::check(
            fcntl(m.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL),
            "F_ADD_SEALS");
        seqpacket::send(mine.get(), "OK " + std::to_string(data.size()), m.get());
    } else {
        for (std::size_t off = 0; off < data.size(); off += kChunk)
            seqpacket::send(mine.get(), std::string_view(data).substr(
                                            off, std::min(kChunk, data.size() - off)));
    }
    seqpacket::Message reply = seqpacket::receive(mine.get(), 256);
    Round out{std::chrono::duration<double, std::milli>(Clock::now() - start).count(), {}};
    int st = 0;
    waitpid(pid, &st, 0);
    if (reply.eof || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        throw uds::Failure("the bench worker failed");
    std::sscanf(reply.text.c_str(), "%lu %ld %ld", &out.r.sum, &out.r.hwm_kib, &out.r.anon_kib);
    return out;
}

template <typename T>
T median(std::vector<T> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

int run(int argc, char** argv) {
    if (argc == 4 && std::string(argv[1]) == "--worker")
        worker(3, std::string(argv[2]) == "map", std::stoul(argv[3]));
    std::size_t mib = 64, rounds = 5;
    uds::Cli cli("bench", "[--size MIB] [--rounds N]",
                 "A large result from a monitor to its worker: copied through the socket pair,\n"
                 "or passed as a sealed memfd and mapped. Prints medians and copy/map ratios.");
    cli.option('s', "size", "MIB", "size of the result (default 64)",
               [&](const std::string& v) { mib = uds::parse_number(v, "--size", 1, 4096); });
    cli.option('r', "rounds", "N", "rounds of each (default 5)",
               [&](const std::string& v) { rounds = uds::parse_number(v, "--rounds", 1, 1000); });
    if (!cli.parse(argc, argv).empty()) throw uds::UsageError("no arguments expected");

    std::string data(mib << 20, '\0');
    for (std::size_t i = 0; i < data.size(); ++i)
        data[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
    const std::uint64_t want = checksum(data.data(), data.size());

    std::vector<double> ms[2];
    std::vector<long> hwm[2], anon[2];
    for (std::size_t i = 0; i < rounds; ++i) {
        for (int map = 0; map < 2; ++map) {  // interleaved: both see the same machine
            Round r = round(data, map == 1);
            if (r.r.sum != want) throw uds::Failure("the worker saw different bytes");
            ms[map].push_back(r.ms);
            hwm[map].push_back(r.r.hwm_kib);
            anon[map].push_back(r.r.anon_kib);
        }
    }
    std::printf(
        "bench-06: a %zu MiB result from the monitor to its worker, %zu rounds each "
        "(medians)\n",
        mib, rounds);
    std::printf("  %-34s %10s %16s %18s\n", "how", "time", "worker peak RSS", "worker private");
    const char* name[2] = {"copy through the socket pair", "sealed memfd, mapped"};
    for (int m = 0; m < 2; ++m)
        std::printf("  %-34s %7.1f ms %12.1f MiB %14.1f MiB\n", name[m], median(ms[m]),
                    static_cast<double>(median(hwm[m])) / 1024.0,
                    static_cast<double>(median(anon[m])) / 1024.0);
    std::printf(
        "  %-34s %9.1fx %15.1fx %17.1fx\n", "copy / map (same run)", median(ms[0]) / median(ms[1]),
        static_cast<double>(median(hwm[0])) / static_cast<double>(median(hwm[1])),
        static_cast<double>(median(anon[0])) / static_cast<double>(std::max(median(anon[1]), 1L)));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("bench", argc, argv, run);
}
