// 05-sendmsg-fds/bench.cpp - passing a descriptor versus streaming the bytes (make bench-05).
//
// For files of 1 KiB, 1 MiB, 64 MiB and 1 GiB, over a socketpair between two threads:
//   pass    the sender opens the file and sends its descriptor (SCM_RIGHTS); the receiver gets
//           it, fstat()s it and closes it.  Cost: a few system calls, whatever the size.
//   stream  the sender read()s the file and write()s every byte into the socket; the receiver
//           reads them all. Cost: two copies of every byte through the kernel.
// The files are sparse (ftruncate), so no disk space is used and no disk speed is measured.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "fdpass.hpp"
#include "uds.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct Result {
    double seconds_per_op;
};

Result bench_pass(const std::string& path, int iterations) {
    int sv[2];
    uds::check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), "socketpair");
    uds::Fd a{sv[0]}, b{sv[1]};
    auto start = Clock::now();
    std::thread sender([&] {
        for (int i = 0; i < iterations; ++i) {
            uds::Fd f{uds::check(open(path.c_str(), O_RDONLY | O_CLOEXEC), "open")};
            fdpass::send_with_fd(a.get(), "F", f.get());
        }
    });
    char byte;
    for (int i = 0; i < iterations; ++i) {
        fdpass::Received r = fdpass::recv_with_fds(b.get(), &byte, 1);
        struct stat st {};
        if (r.fds.size() != 1 || fstat(r.fds[0].get(), &st) != 0) throw uds::Failure("bad pass");
    }
    sender.join();
    std::chrono::duration<double> d = Clock::now() - start;
    return {d.count() / iterations};
}

Result bench_stream(const std::string& path, off_t size, int iterations) {
    int sv[2];
    uds::check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), "socketpair");
    uds::Fd a{sv[0]}, b{sv[1]};
    auto start = Clock::now();
    std::thread sender([&] {
        std::vector<char> buf(1 << 16);
        for (int i = 0; i < iterations; ++i) {
            uds::Fd f{uds::check(open(path.c_str(), O_RDONLY | O_CLOEXEC), "open")};
            for (;;) {
                ssize_t n = uds::check(read(f.get(), buf.data(), buf.size()), "read");
                if (n == 0) break;
                uds::write_all(a.get(), {buf.data(), static_cast<std::size_t>(n)});
            }
        }
    });
    std::vector<char> buf(1 << 16);
    const auto total = static_cast<long long>(size) * iterations;
    for (long long got = 0; got < total;) {
        ssize_t n = uds::check(read(b.get(), buf.data(), buf.size()), "read");
        if (n == 0) throw uds::Failure("stream ended early");
        got += n;
    }
    sender.join();
    std::chrono::duration<double> d = Clock::now() - start;
    return {d.count() / iterations};
}

std::string human(double seconds) {
    char out[32];
    if (seconds < 1e-3)
        std::snprintf(out, sizeof out, "%8.1f us", seconds * 1e6);
    else if (seconds < 1)
        std::snprintf(out, sizeof out, "%8.2f ms", seconds * 1e3);
    else
        std::snprintf(out, sizeof out, "%8.2f s ", seconds);
    return out;
}

int run(int argc, char** argv) {
    bool quick = false;
    uds::Cli cli("bench", "[--quick]",
                 "Compares passing a file's descriptor with streaming its bytes, for files of\n"
                 "1 KiB, 1 MiB, 64 MiB and 1 GiB (sparse, in a temporary directory).");
    cli.option('q', "quick", "", "stop at 64 MiB", [&](const std::string&) { quick = true; });
    if (!cli.parse(argc, argv).empty()) throw uds::UsageError("no arguments expected");

    char tmpl[] = "/tmp/uds-bench-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) uds::check(-1, "mkdtemp");
    const std::string dir = tmpl;
    const std::string path = dir + "/file";

    struct Size {
        const char* name;
        off_t bytes;
    };
    // 1 KiB .. 1 GiB are the sizes to compare; 64 B and 16 KiB show where the lines cross.
    std::vector<Size> sizes{{"64 B", 64},
                            {"1 KiB", 1 << 10},
                            {"16 KiB", 16 << 10},
                            {"1 MiB", 1 << 20},
                            {"64 MiB", off_t{64} << 20}};
    if (!quick) sizes.push_back({"1 GiB", off_t{1} << 30});

    std::printf("%-8s %14s %14s %10s\n", "size", "pass fd/op", "stream/op", "stream/pass");
    std::string crossover;
    double first_pass = 0, last_pass = 0;
    for (const Size& s : sizes) {
        {
            uds::Fd f{uds::check(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600),
                                 "create " + path)};
            uds::check(ftruncate(f.get(), s.bytes), "ftruncate");
        }
        // About the same total work per row: many small operations, few big ones.
        const int stream_iters =
            static_cast<int>(std::max<off_t>(1, (off_t{256} << 20) / s.bytes / 8));
        Result pass = bench_pass(path, 2000);
        Result stream = bench_stream(path, s.bytes, std::min(stream_iters, 2000));
        if (s.bytes == 1 << 10) first_pass = pass.seconds_per_op;
        last_pass = pass.seconds_per_op;
        double ratio = stream.seconds_per_op / pass.seconds_per_op;
        if (crossover.empty() && ratio > 1) crossover = s.name;
        std::printf("%-8s %14s %14s %9.1fx\n", s.name, human(pass.seconds_per_op).c_str(),
                    human(stream.seconds_per_op).c_str(), ratio);
        std::fflush(stdout);
    }
    unlink(path.c_str());
    rmdir(dir.c_str());
    std::printf("passing a descriptor: %.2fx the time from %s to %s (target: within 2x)\n",
                last_pass / first_pass, "1 KiB", sizes.back().name);
    std::printf("crossover: streaming is slower than passing from %s on\n",
                crossover.empty() ? "(never, in these sizes)" : crossover.c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("bench", argc, argv, run);
}
