// bench/ipc.cpp - six ways for two processes on one machine to talk, measured side by side.
//
//   ipc [--quick] [--plot PREFIX]
//
// Transports: AF_UNIX SOCK_STREAM (socket/bind/listen/connect/accept), SOCK_DGRAM (two bound,
// connected sockets), SOCK_SEQPACKET, a socketpair(AF_UNIX, SOCK_STREAM), a pair of pipes, and
// TCP over 127.0.0.1 with TCP_NODELAY. All are created before fork(); the parent measures, the
// child answers. A command pipe tells the child what comes next, so every transport and size can
// be interleaved in one pair of processes.
//
// For each placement (both processes pinned to the same CPU; pinned to different CPUs) it
// measures, for every message size:
//   latency     the parent sends one message, the child echoes it; each round trip is timed.
//   throughput  the parent sends a fixed amount in messages of that size; the child reads with
//               a buffer of the same size and says "done" on the command pipe.
// Warm-up first, then repetitions in a shuffled order; latency percentiles pool all round trips
// of all repetitions, throughput is the median of the repetitions. Every figure is also shown as
// a ratio to AF_UNIX stream at the same size, measured in the same run.
//
// The harness must not be the bottleneck: a bare read/write ping-pong over an AF_UNIX stream
// connection (the clock read once per 10 round trips, no helpers) runs next to the 64 B stream
// cell in every repetition; the harness's round trip (median of 10-round-trip batch means, the
// same statistic) must be within 10% of it.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <csignal>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "bench.hpp"

namespace {

constexpr std::array<std::uint64_t, 6> kSizes = {64, 512, 4096, 32768, 262144, 1048576};
constexpr std::uint64_t kFloorSize = 64;

struct Params {
    int reps;                        // repetitions (after one warm-up pass)
    std::uint64_t lat_bytes;         // bytes per latency cell per repetition: count = this / size
    std::uint64_t lat_min, lat_max;  // ... clamped to [min, max] round trips
    std::uint64_t tp_bytes_min, tp_bytes_max, tp_msgs;  // throughput: msgs * size, clamped
    std::uint64_t floor_count;   // bare ping-pongs per repetition (a multiple of kBatch)
    std::uint64_t memcpy_bytes;  // copied per size per repetition
};
constexpr Params kQuick{3, 1 << 20, 8, 400, 256 << 10, 8 << 20, 2000, 400, 64 << 20};
constexpr Params kFull{5, 4 << 20, 20, 2000, 1 << 20, 32 << 20, 10000, 2000, 256 << 20};

std::uint64_t lat_count(const Params& p, std::uint64_t size) {
    return std::clamp(p.lat_bytes / size, p.lat_min, p.lat_max);
}
std::uint64_t tp_count(const Params& p, std::uint64_t size) {
    return std::clamp(p.tp_msgs * size, p.tp_bytes_min, p.tp_bytes_max) / size;
}

// One side's descriptors: a socket reads and writes on one fd; a pipe pair needs two.
struct End {
    uds::Fd rd, wr;
    [[nodiscard]] int r() const { return rd.get(); }
    [[nodiscard]] int w() const { return wr ? wr.get() : rd.get(); }
};

struct Transport {
    std::string name;
    bool messages = false;  // keeps message boundaries: one send = one recv
    End parent, child;
    std::uint64_t max_message = kSizes.back();  // largest size that the probe got through
    std::string buffer_note;                    // how SO_SNDBUF was raised, and to what
    std::string refused_note;                   // sizes the kernel refused, and why
};

std::string unique_name(const char* what) {
    static int n = 0;
    return "uds-bench-" + std::to_string(getpid()) + "-" + what + "-" + std::to_string(n++);
}

// A connected AF_UNIX pair made the long way: socket, bind, listen, connect, accept
// (SOCK_STREAM, SOCK_SEQPACKET) or two bound datagram sockets connected to each other.
void make_unix(Transport& t, int type) {
    uds::Address a = uds::Address::abstract(unique_name("a"));
    if (type == SOCK_DGRAM) {
        uds::Address b = uds::Address::abstract(unique_name("b"));
        uds::Fd x{uds::check(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), "socket")};
        uds::Fd y{uds::check(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), "socket")};
        uds::check(bind(x.get(), a.sockaddr_ptr(), a.length()), "bind " + a.str());
        uds::check(bind(y.get(), b.sockaddr_ptr(), b.length()), "bind " + b.str());
        uds::check(connect(x.get(), b.sockaddr_ptr(), b.length()), "connect " + b.str());
        uds::check(connect(y.get(), a.sockaddr_ptr(), a.length()), "connect " + a.str());
        t.parent.rd = std::move(x);
        t.child.rd = std::move(y);
        return;
    }
    uds::Fd listener{uds::check(socket(AF_UNIX, type | SOCK_CLOEXEC, 0), "socket")};
    uds::check(bind(listener.get(), a.sockaddr_ptr(), a.length()), "bind " + a.str());
    uds::check(listen(listener.get(), 1), "listen");
    t.parent.rd = uds::Fd{uds::check(socket(AF_UNIX, type | SOCK_CLOEXEC, 0), "socket")};
    uds::check(connect(t.parent.r(), a.sockaddr_ptr(), a.length()), "connect " + a.str());
    t.child.rd =
        uds::Fd{uds::check(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC), "accept4")};
}

void make_tcp(Transport& t) {
    uds::Fd listener{uds::check(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket AF_INET")};
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);  // loopback only: nothing leaves the machine
    sin.sin_port = 0;                              // any free port
    socklen_t len = sizeof sin;
    auto* sa = reinterpret_cast<sockaddr*>(&sin);
    uds::check(bind(listener.get(), sa, len), "bind 127.0.0.1");
    uds::check(listen(listener.get(), 1), "listen 127.0.0.1");
    uds::check(getsockname(listener.get(), sa, &len), "getsockname");
    t.parent.rd = uds::Fd{uds::check(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")};
    uds::check(connect(t.parent.r(), sa, len), "connect 127.0.0.1");
    t.child.rd =
        uds::Fd{uds::check(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC), "accept4")};
    int one = 1;  // send small messages at once instead of waiting to coalesce them (Nagle)
    for (int fd : {t.parent.r(), t.child.r()})
        uds::check(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), "TCP_NODELAY");
}

// A datagram or seqpacket message must fit the sender's buffer in one piece (the kernel refuses
// larger ones with EMSGSIZE). Raise SO_SNDBUF: SO_SNDBUFFORCE ignores net.core.wmem_max but needs
// CAP_NET_ADMIN; plain SO_SNDBUF is capped at wmem_max. Returns what the kernel then reports.
std::string raise_sndbuf(int fd) {
    int want = 2 << 20;  // the kernel doubles it (bookkeeping overhead): room for a 1 MiB message
    const char* how = "SO_SNDBUFFORCE";
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof want) == -1) {
        how = "SO_SNDBUF (capped by net.core.wmem_max; SO_SNDBUFFORCE needs CAP_NET_ADMIN)";
        uds::check(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof want), "SO_SNDBUF");
    }
    int got = 0;
    socklen_t len = sizeof got;
    uds::check(getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &got, &len), "getsockopt SO_SNDBUF");
    return std::string(how) + " -> " + std::to_string(got) + " bytes";
}

// Sends one message of every size through a message transport, in both directions, before the
// fork (a datagram is queued whole, so one process can do both ends). Sizes that fail are left
// out of the tables, with the reason.
void probe(Transport& t, bench::Buffer& buf) {
    t.max_message = 0;
    for (std::uint64_t size : kSizes) {
        for (auto [from, to] : {std::pair{&t.parent, &t.child}, std::pair{&t.child, &t.parent}}) {
            ssize_t s = send(from->w(), buf.data(), size, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (s != static_cast<ssize_t>(size)) {
                t.refused_note = "; " + bench::size_name(size) + " and up refused (" +
                                 (s < 0 ? std::strerror(errno) : "short") + ")";
                return;
            }
            ssize_t r = recv(to->r(), buf.data(), buf.size(), MSG_DONTWAIT);
            if (r != s) throw uds::Failure("probe of " + t.name + ": message came back changed");
        }
        t.max_message = size;
    }
}

std::vector<Transport> make_transports(bench::Buffer& buf, Transport& floor) {
    std::vector<Transport> ts(6);
    ts[0].name = "AF_UNIX stream";
    make_unix(ts[0], SOCK_STREAM);
    ts[1].name = "socketpair (stream)";
    int sv[2];
    uds::check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), "socketpair");
    ts[1].parent.rd = uds::Fd{sv[0]};
    ts[1].child.rd = uds::Fd{sv[1]};
    ts[2].name = "AF_UNIX seqpacket";
    ts[2].messages = true;
    make_unix(ts[2], SOCK_SEQPACKET);
    ts[3].name = "AF_UNIX dgram";
    ts[3].messages = true;
    make_unix(ts[3], SOCK_DGRAM);
    ts[4].name = "pipe pair";
    int p2c[2], c2p[2];
    uds::check(pipe2(p2c, O_CLOEXEC), "pipe2");
    uds::check(pipe2(c2p, O_CLOEXEC), "pipe2");
    ts[4].parent.wr = uds::Fd{p2c[1]};
    ts[4].child.rd = uds::Fd{p2c[0]};
    ts[4].child.wr = uds::Fd{c2p[1]};
    ts[4].parent.rd = uds::Fd{c2p[0]};
    ts[5].name = "TCP 127.0.0.1 (NODELAY)";
    make_tcp(ts[5]);
    for (auto& t : ts) {
        if (!t.messages) continue;
        t.buffer_note = raise_sndbuf(t.parent.w());
        raise_sndbuf(t.child.w());
        probe(t, buf);
    }
    floor.name = "bare read/write ping-pong (floor)";
    make_unix(floor, SOCK_STREAM);
    return ts;
}

// ---- the two processes' protocol over the command pipe ----

enum class Mode : std::uint32_t { Echo, Sink, Floor, Quit };
struct Cmd {
    Mode mode;
    std::uint32_t transport;
    std::uint64_t size, count;
};

void send_msg(const Transport& t, const End& e, const char* buf, std::uint64_t size) {
    if (!t.messages) return bench::write_full(e.w(), buf, size, t.name.c_str());
    ssize_t s = send(e.w(), buf, size, MSG_NOSIGNAL);
    if (s != static_cast<ssize_t>(size)) throw uds::SysError(errno, "send " + t.name);
}
void recv_msg(const Transport& t, const End& e, char* buf, std::uint64_t size) {
    if (!t.messages) return bench::read_full(e.r(), buf, size, t.name.c_str());
    ssize_t r = recv(e.r(), buf, size, MSG_TRUNC);  // MSG_TRUNC: returns the real length
    if (r != static_cast<ssize_t>(size)) throw uds::SysError(errno, "recv " + t.name);
}

// The minimal ping-pong both sides run for the floor: read 64 bytes (short reads handled,
// nothing else), write them back. The parent reads the clock once per batch of kBatch round
// trips, not per round trip; the harness's own per-round-trip samples are grouped the same way.
constexpr std::uint64_t kBatch = 10;
void floor_loop(int fd, char* buf, std::uint64_t count, bool parent,
                std::vector<double>* batch_us) {
    std::uint64_t t0 = bench::now_ns();
    for (std::uint64_t i = 0; i < count; ++i) {
        if (parent && write(fd, buf, kFloorSize) != kFloorSize)
            throw uds::SysError(errno, "floor write");
        for (std::size_t got = 0; got < kFloorSize;) {
            ssize_t r = read(fd, buf + got, kFloorSize - got);
            if (r <= 0) throw uds::SysError(r == 0 ? EPIPE : errno, "floor read");
            got += static_cast<std::size_t>(r);
        }
        if (!parent && write(fd, buf, kFloorSize) != kFloorSize)
            throw uds::SysError(errno, "floor write");
        if (batch_us && (i + 1) % kBatch == 0) {
            std::uint64_t t1 = bench::now_ns();
            batch_us->push_back(static_cast<double>(t1 - t0) / 1000.0 / kBatch);
            t0 = t1;
        }
    }
}

[[noreturn]] void child_main(std::vector<Transport>& ts, Transport& floor, int cmd_fd, int ack_fd,
                             bench::Buffer& buf) {
    try {
        for (;;) {
            Cmd c{};
            bench::read_full(cmd_fd, &c, sizeof c, "command pipe");
            if (c.mode == Mode::Quit) _exit(0);
            char ready = 1;
            bench::write_full(ack_fd, &ready, 1, "ack pipe");
            if (c.mode == Mode::Floor) {
                floor_loop(floor.child.r(), buf.data(), c.count, false, nullptr);
            } else if (c.mode == Mode::Echo) {
                const Transport& t = ts[c.transport];
                for (std::uint64_t i = 0; i < c.count; ++i) {
                    recv_msg(t, t.child, buf.data(), c.size);
                    send_msg(t, t.child, buf.data(), c.size);
                }
            } else {  // Sink: read count * size bytes with a buffer of `size`
                const Transport& t = ts[c.transport];
                if (t.messages) {
                    for (std::uint64_t i = 0; i < c.count; ++i)
                        recv_msg(t, t.child, buf.data(), c.size);
                } else {
                    for (std::uint64_t left = c.size * c.count; left > 0;) {
                        ssize_t r = read(t.child.r(), buf.data(), std::min(left, c.size));
                        if (r <= 0) throw uds::SysError(r == 0 ? EPIPE : errno, "read " + t.name);
                        left -= static_cast<std::uint64_t>(r);
                    }
                }
            }
            char done = 1;
            bench::write_full(ack_fd, &done, 1, "ack pipe");
        }
    } catch (const std::exception& e) {
        uds::log("child: " + uds::describe(e));
        _exit(1);
    }
}

// ---- the measuring side ----

struct Cell {                      // results of one (transport, size) in one placement
    std::vector<double> rtt_us;    // every round trip of every repetition
    std::vector<double> batch_us;  // mean round trip of each batch of kBatch, pooled
    std::vector<double> mib_s;     // per repetition
};

class Runner {
  public:
    Runner(std::vector<Transport>& ts, Transport& floor, int cmd_fd, int ack_fd, bench::Buffer& buf)
        : ts_(ts), floor_(floor), cmd_(cmd_fd), ack_(ack_fd), buf_(buf) {}

    void start(Mode m, std::uint32_t t, std::uint64_t size, std::uint64_t count) {
        Cmd c{m, t, size, count};
        bench::write_full(cmd_, &c, sizeof c, "command pipe");
        wait_ack();  // the child is now in its loop
    }
    void wait_ack() {
        char a = 0;
        bench::read_full(ack_, &a, 1, "ack pipe (did the child fail?)");
    }

    void echo(std::uint32_t ti, std::uint64_t size, std::uint64_t count, Cell* out) {
        const Transport& t = ts_[ti];
        std::vector<double> samples(count);
        start(Mode::Echo, ti, size, count);
        for (std::uint64_t i = 0; i < count; ++i) {
            std::uint64_t t0 = bench::now_ns();
            send_msg(t, t.parent, buf_.data(), size);
            recv_msg(t, t.parent, buf_.data(), size);
            samples[i] = static_cast<double>(bench::now_ns() - t0) / 1000.0;
        }
        wait_ack();
        if (!out) return;
        for (std::uint64_t b = 0; b + kBatch <= count; b += kBatch) {  // as the floor measures
            double sum = 0;
            for (std::uint64_t i = b; i < b + kBatch; ++i)
                sum += samples[i];
            out->batch_us.push_back(sum / kBatch);
        }
        out->rtt_us.insert(out->rtt_us.end(), samples.begin(), samples.end());
    }
    void sink(std::uint32_t ti, std::uint64_t size, std::uint64_t count, Cell* out) {
        const Transport& t = ts_[ti];
        start(Mode::Sink, ti, size, count);
        std::uint64_t t0 = bench::now_ns();
        for (std::uint64_t i = 0; i < count; ++i)
            send_msg(t, t.parent, buf_.data(), size);
        wait_ack();
        double secs = static_cast<double>(bench::now_ns() - t0) / 1e9;
        if (out) out->mib_s.push_back(static_cast<double>(size * count) / secs / (1 << 20));
    }
    void floor(std::uint64_t count, Cell* out) {
        start(Mode::Floor, 0, kFloorSize, count);
        floor_loop(floor_.parent.r(), buf_.data(), count, true, out ? &out->batch_us : nullptr);
        wait_ack();
    }
    void quit() {
        Cmd c{Mode::Quit, 0, 0, 0};
        bench::write_full(cmd_, &c, sizeof c, "command pipe");
    }

  private:
    std::vector<Transport>& ts_;
    Transport& floor_;
    int cmd_, ack_;
    bench::Buffer& buf_;
};

struct Placement {
    std::string name;
    int parent_cpu, child_cpu;
    std::map<std::pair<std::uint32_t, std::uint64_t>, Cell> cells;
    Cell floor, floor_partner;    // floor and the harness's 64 B stream mean next to it
    std::vector<Transport> info;  // names, limits (descriptors closed)
};

void measure(Placement& pl, const Params& p, bench::Buffer& buf) {
    Transport floor;
    std::vector<Transport> ts = make_transports(buf, floor);
    int cmd[2], ack[2];
    uds::check(pipe2(cmd, O_CLOEXEC), "pipe2");
    uds::check(pipe2(ack, O_CLOEXEC), "pipe2");
    uds::Fd cmd_r{cmd[0]}, cmd_w{cmd[1]}, ack_r{ack[0]}, ack_w{ack[1]};

    bench::pin_to_cpu(pl.parent_cpu);
    pid_t pid = uds::check(fork(), "fork");
    if (pid == 0) {
        bench::pin_to_cpu(pl.child_cpu);
        cmd_w.reset();
        ack_r.reset();
        for (auto& t : ts)
            t.parent = End{};
        floor.parent = End{};
        child_main(ts, floor, cmd_r.get(), ack_w.get(), buf);
    }
    cmd_r.reset();
    ack_w.reset();
    for (auto& t : ts)
        t.child = End{};
    floor.child = End{};

    Runner run(ts, floor, cmd_w.get(), ack_r.get(), buf);
    std::vector<std::pair<std::uint32_t, std::uint64_t>> order;
    for (std::uint32_t i = 0; i < ts.size(); ++i)
        for (std::uint64_t s : kSizes)
            if (s <= ts[i].max_message) order.emplace_back(i, s);

    // Warm-up: every cell once, results dropped (page faults, caches, CPU frequency).
    for (auto [ti, s] : order) {
        run.echo(ti, s, std::max<std::uint64_t>(lat_count(p, s) / 4, 2), nullptr);
        run.sink(ti, s, std::max<std::uint64_t>(tp_count(p, s) / 4, 2), nullptr);
    }
    run.floor(p.floor_count / 4, nullptr);

    std::mt19937 rng(42);
    for (int rep = 0; rep < p.reps; ++rep) {
        std::shuffle(order.begin(), order.end(), rng);
        for (auto [ti, s] : order) {
            Cell& c = pl.cells[{ti, s}];
            if (ti == 0 && s == kFloorSize) {
                // The floor runs right next to the harness's own 64 B stream cell, in turns.
                if (rep % 2 == 0) run.floor(p.floor_count, &pl.floor);
                run.echo(ti, s, p.floor_count, &pl.floor_partner);
                if (rep % 2 == 1) run.floor(p.floor_count, &pl.floor);
            }
            run.echo(ti, s, lat_count(p, s), &c);
            run.sink(ti, s, tp_count(p, s), &c);
        }
    }
    run.quit();
    int status = 0;
    uds::check(waitpid(pid, &status, 0), "waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw uds::Failure("the echo child failed");
    for (auto& t : ts) {
        t.parent = End{};
        pl.info.push_back(std::move(t));
    }
}

// memcpy between two buffers of `size`, the same amount as a throughput cell: the ceiling for
// anything that copies bytes. An AF_UNIX stream copies each byte twice (sender's buffer into a
// kernel buffer, kernel buffer into the receiver's), a pipe too.
double memcpy_mib_s(std::uint64_t size, std::uint64_t count) {
    bench::Buffer a(size, 'x'), b(size, 'y');
    std::uint64_t t0 = bench::now_ns();
    for (std::uint64_t i = 0; i < count; ++i) {
        std::memcpy(b.data(), a.data(), size);
        asm volatile("" : : "r"(b.data()) : "memory");  // keep the copy
    }
    double secs = static_cast<double>(bench::now_ns() - t0) / 1e9;
    return static_cast<double>(size * count) / secs / (1 << 20);
}

std::vector<std::string> size_header(const char* first) {
    std::vector<std::string> h{first};
    for (auto s : kSizes)
        h.push_back(bench::size_name(s));
    return h;
}

void print_placement(const Placement& pl, const std::vector<std::vector<double>>& memcpy_reps) {
    auto stat = [&](std::uint32_t ti, std::uint64_t s, int what) -> double {
        auto it = pl.cells.find({ti, s});
        if (it == pl.cells.end()) return NAN;
        if (what == 0) return bench::percentile(it->second.rtt_us, 0.50);
        if (what == 1) return bench::percentile(it->second.rtt_us, 0.99);
        return bench::median(it->second.mib_s);
    };
    const char* titles[] = {"Round-trip latency p50 (µs)", "Round-trip latency p99 (µs)",
                            "One-way throughput (MiB/s)"};
    for (int what = 0; what < 3; ++what) {
        bench::heading(std::string(titles[what]) + ", " + pl.name);
        bench::Table t(size_header("transport"));
        for (std::uint32_t ti = 0; ti < pl.info.size(); ++ti) {
            std::vector<std::string> r{pl.info[ti].name};
            for (auto s : kSizes) {
                double v = stat(ti, s, what), base = stat(0, s, what);
                r.push_back(std::isnan(v) ? "—" : bench::num(v) + bench::ratio(v / base));
            }
            t.row(r);
        }
        if (what == 2) {
            std::vector<std::string> r{"memcpy (one copy, in-process)"};
            for (std::size_t i = 0; i < kSizes.size(); ++i) {
                double v = bench::median(memcpy_reps[i]);
                r.push_back(bench::num(v) + bench::ratio(v / stat(0, kSizes[i], 2)));
            }
            t.row(r);
        }
        t.print();
    }
}

int run(int argc, char** argv) {
    bool quick = false;
    std::string plot;
    uds::Cli cli("ipc", "[--quick] [--plot PREFIX]",
                 "Round-trip latency and one-way throughput of AF_UNIX stream/dgram/seqpacket,\n"
                 "a socketpair, a pipe pair and TCP over 127.0.0.1, between two processes.");
    cli.option('q', "quick", "", "fewer repetitions and round trips (same tables)",
               [&](const std::string&) { quick = true; });
    cli.option('p', "plot", "PREFIX", "also write PREFIX-<placement>.dat for gnuplot",
               [&](const std::string& v) { plot = v; });
    if (!cli.parse(argc, argv).empty()) throw uds::UsageError("no arguments expected");
    const Params& p = quick ? kQuick : kFull;

    // A child that dies must show up as EPIPE in the parent's write, not kill it silently.
    std::signal(SIGPIPE, SIG_IGN);

    bench::Buffer buf(kSizes.back() + 1, 'm');
    std::vector<int> cpus = bench::allowed_cpus();
    std::vector<Placement> pls;
    pls.push_back(
        {"both processes on CPU " + std::to_string(cpus[0]), cpus[0], cpus[0], {}, {}, {}, {}});
    if (cpus.size() >= 2)
        pls.push_back({"parent on CPU " + std::to_string(cpus[0]) + ", child on CPU " +
                           std::to_string(cpus[1]),
                       cpus[0],
                       cpus[1],
                       {},
                       {},
                       {},
                       {}});
    for (auto& pl : pls)
        measure(pl, p, buf);
    bench::unpin(cpus);

    // memcpy at every size, median of the same number of repetitions, on the first CPU.
    bench::pin_to_cpu(cpus[0]);
    std::vector<std::vector<double>> mc(kSizes.size());
    for (int rep = 0; rep <= p.reps; ++rep)
        for (std::size_t i = 0; i < kSizes.size(); ++i) {
            double v = memcpy_mib_s(kSizes[i], p.memcpy_bytes / kSizes[i]);
            if (rep > 0) mc[i].push_back(v);  // repetition 0 is the warm-up
        }
    bench::unpin(cpus);

    for (const auto& pl : pls)
        print_placement(pl, mc);

    // The kind of figure ipc-bench publishes ("msg/s" of a ping-pong): round trips per second at
    // the smallest size. From the median round trip: on a shared machine a few preempted round
    // trips of several milliseconds would dominate a mean.
    bench::heading("64 B ping-pong rate (round trips per second)");
    std::vector<std::string> rate_header{"transport"};
    for (const auto& pl : pls)
        rate_header.push_back(pl.name);
    bench::Table rates(rate_header);
    auto rate = [&](const Placement& pl, std::uint32_t ti) -> double {
        auto it = pl.cells.find({ti, kSizes.front()});
        if (it == pl.cells.end() || it->second.rtt_us.empty()) return NAN;
        return 1e6 / bench::percentile(it->second.rtt_us, 0.5);
    };
    for (std::uint32_t ti = 0; ti < pls[0].info.size(); ++ti) {
        std::vector<std::string> r{pls[0].info[ti].name};
        for (const auto& pl : pls) {
            double v = rate(pl, ti);
            r.push_back(bench::num(v) + bench::ratio(v / rate(pl, 0)));
        }
        rates.row(r);
    }
    rates.print();
    std::printf(
        "1 / median (p50) round trip at 64 B, all repetitions pooled; (×) = this / AF_UNIX stream "
        "(above 1 is faster). ipc-bench's README reports the same kind of figure for "
        "100-byte messages.\n\n");

    bench::heading("Harness check: AF_UNIX stream 64 B round trip vs a bare ping-pong");
    bench::Table chk({"placement", "bare read/write loop (µs)", "harness, same statistic (µs)",
                      "harness, p50 (µs)", "harness / bare", "within 10%"});
    for (const auto& pl : pls) {
        double bare = bench::median(pl.floor.batch_us),
               mine = bench::median(pl.floor_partner.batch_us);
        double p50 = bench::percentile(pl.floor_partner.rtt_us, 0.5);
        chk.row({pl.name, bench::num(bare), bench::num(mine), bench::num(p50),
                 bench::fmt("%.3f", mine / bare),
                 std::fabs(mine / bare - 1) <= 0.10 ? "yes" : "**no** (busy machine? run again)"});
    }
    chk.print();
    std::printf(
        "Both columns: the median, over every batch of %llu consecutive round trips, of the "
        "batch's mean round trip (%llu round trips per repetition each, run next to each "
        "other in every repetition). The bare loop reads the clock once per batch; the "
        "harness once per round trip.\n\n",
        static_cast<unsigned long long>(kBatch), static_cast<unsigned long long>(p.floor_count));

    std::printf("Notes:\n\n");
    std::printf("- Placements measured: %s.", pls[0].name.c_str());
    if (pls.size() > 1)
        std::printf(" And %s.", pls[1].name.c_str());
    else
        std::printf(" Only one CPU is allowed here (sched_getaffinity), so no different-CPU run.");
    std::printf(" Other processes were not stopped; figures on a busy machine are noisy.\n");
    std::printf(
        "- Ratios (×) are this transport / AF_UNIX stream at the same size, same run, same "
        "placement. (1/N) is a ratio below 0.1. Latency: above 1 is slower. Throughput: below 1 is "
        "slower.\n");
    std::printf(
        "- %d repetitions in shuffled order after one warm-up pass. Latency: p50/p99 of all "
        "round trips pooled (%llu..%llu per size per repetition). Throughput: median of the "
        "repetitions, %s..%s per size per repetition, the receiver reading with a buffer of "
        "the message size.\n",
        p.reps, static_cast<unsigned long long>(lat_count(p, kSizes.back())),
        static_cast<unsigned long long>(lat_count(p, kSizes.front())),
        bench::size_name(tp_count(p, kSizes.front()) * kSizes.front()).c_str(),
        bench::size_name(tp_count(p, kSizes.back()) * kSizes.back()).c_str());
    for (const auto& t : pls[0].info)
        if (t.messages)
            std::printf(
                "- %s: a message must fit the sender's buffer in one piece; SO_SNDBUF raised "
                "with %s; largest size that went through: %s%s.\n",
                t.name.c_str(), t.buffer_note.c_str(), bench::size_name(t.max_message).c_str(),
                t.refused_note.c_str());
    std::printf(
        "- Stream transports use the kernel's default buffer sizes. The memcpy line copies "
        "once in one process; an AF_UNIX stream or a pipe copies every byte twice (into "
        "the kernel, out of it).\n\n");

    if (!plot.empty()) {
        for (std::size_t k = 0; k < pls.size(); ++k) {
            std::string path = plot + (k == 0 ? "-same-cpu.dat" : "-different-cpus.dat");
            std::FILE* f = std::fopen(path.c_str(), "w");
            if (!f) throw uds::SysError(errno, "open " + path);
            std::fprintf(f, "# %s: round-trip p50 (us) by message size\nsize", pls[k].name.c_str());
            for (const auto& t : pls[k].info)
                std::fprintf(f, "\t\"%s\"", t.name.c_str());
            std::fprintf(f, "\n");
            for (auto s : kSizes) {
                std::fprintf(f, "%llu", static_cast<unsigned long long>(s));
                for (std::uint32_t ti = 0; ti < pls[k].info.size(); ++ti) {
                    auto it = pls[k].cells.find({ti, s});
                    std::fprintf(f, "\t%s",
                                 it == pls[k].cells.end()
                                     ? "NaN"
                                     : bench::fmt("%.3f", bench::percentile(it->second.rtt_us, 0.5))
                                           .c_str());
                }
                std::fprintf(f, "\n");
            }
            std::fclose(f);
        }
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("ipc", argc, argv, run);
}
