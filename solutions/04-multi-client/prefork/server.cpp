// solutions/04-multi-client/prefork/server.cpp - chapter 04's server with a fourth model:
//
//   prefork  N processes forked once, all accepting on one listener   model_prefork.hpp
//            (--workers N, default 4; --wake accept|epoll|epoll-exclusive: how they wait)
//
// Exercise 5 of chapter 04. The chapter's three models, unchanged:
//
//   fork     a process per client       model_fork.hpp    (fork, signalfd + waitpid, PDEATHSIG)
//   thread   a thread per client        model_thread.hpp  (pthread_create, pthread_join)
//   epoll    one thread, an event loop  model_epoll.hpp   (non-blocking sockets, epoll_wait)
//
// One step vocabulary for all three (the README's walkthrough and the tests use it too):
//   S1 socket  S2 bind  S3 listen             here, as in chapter 01
//   S4 wait    for the next thing to do       the model's own way (poll, epoll_wait)
//   S5 accept4 one connection                 serve.hpp, shared
//   S6 hand it over                           fork / pthread_create / epoll_ctl ADD
//   S7 serve   S7a read  S7b write  S7c (epoll only) epoll_ctl MOD: what to wait for next
//   S8 clean up after a client                waitpid / close + pthread_join / close
//   S9 unlink, close                          here, as in chapter 01
//
// Why chapter 01 is not enough: its server is iterative. While it serves one client, the next
// one's connect() succeeds (the kernel queues it, see listen) but nobody reads its request
// until the first client leaves.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <optional>
#include <string>

#include "model_epoll.hpp"
#include "model_fork.hpp"
#include "model_prefork.hpp"
#include "model_thread.hpp"
#include "uds.hpp"

namespace {

// A process or a thread per client is cheap until one peer opens thousands of connections:
// without a cap, one local user could make the fork model create processes up to pid_max.
// The epoll model's clients cost a few KiB each and are bounded by the descriptor limit.
constexpr std::size_t kDefaultMaxFork = 128;
constexpr std::size_t kDefaultMaxThread = 256;
constexpr int kDefaultIdleSeconds = 30;

int run(int argc, char** argv) {
    std::optional<std::string> socket_arg;
    std::optional<std::size_t> max_clients;
    std::string model = "epoll";
    int idle_seconds = kDefaultIdleSeconds;
    int workers = 4;
    ch04::Wake wake = ch04::Wake::Accept;
    uds::Cli cli("server",
                 "[-s ADDR] [--model fork|thread|epoll|prefork] [--max-clients N] "
                 "[--idle-timeout SECONDS] [--workers N] [--wake accept|epoll|epoll-exclusive]",
                 "Upper-cases each line its clients send, serving many clients at once.\n"
                 "Default ADDR: $XDG_RUNTIME_DIR/uds-tutorial/04-multi-client.sock "
                 "(or /tmp/uds-tutorial-UID/...).");
    cli.option('s', "socket", "ADDR", "socket path, or @name for an abstract name",
               [&](const std::string& v) { socket_arg = v; });
    cli.option('m', "model", "MODEL", "fork, thread, epoll or prefork (default: epoll)",
               [&](const std::string& v) {
                   if (v != "fork" && v != "thread" && v != "epoll" && v != "prefork")
                       throw uds::UsageError(
                           "--model must be fork, thread, epoll or prefork, not '" + v + "'");
                   model = v;
               });
    cli.option('w', "workers", "N", "prefork: how many worker processes (default 4)",
               [&](const std::string& v) {
                   workers = static_cast<int>(uds::parse_number(v, "--workers", 1, 64));
               });
    cli.option(0, "wake", "HOW",
               "prefork: workers wait in accept (default), epoll or epoll-exclusive",
               [&](const std::string& v) {
                   if (v == "accept")
                       wake = ch04::Wake::Accept;
                   else if (v == "epoll")
                       wake = ch04::Wake::Epoll;
                   else if (v == "epoll-exclusive")
                       wake = ch04::Wake::EpollExclusive;
                   else
                       throw uds::UsageError("--wake must be accept, epoll or epoll-exclusive");
               });
    cli.option('c', "max-clients", "N",
               "serve at most N clients at once; others get 'ERROR server busy' (default: " +
                   std::to_string(kDefaultMaxFork) + " for fork, " +
                   std::to_string(kDefaultMaxThread) + " for thread, no limit for epoll)",
               [&](const std::string& v) {
                   max_clients = uds::parse_number(v, "--max-clients", 1, 1000000);
               });
    cli.option('i', "idle-timeout", "SECONDS",
               "close a client that sends nothing and takes no reply for this long (default " +
                   std::to_string(kDefaultIdleSeconds) + "; 0: never)",
               [&](const std::string& v) {
                   idle_seconds =
                       static_cast<int>(uds::parse_number(v, "--idle-timeout", 0, 86400));
               });
    auto rest = cli.parse(argc, argv);
    if (!rest.empty()) throw uds::UsageError("unexpected argument '" + rest.front() + "'");
    // An empty -s '' is a usage error (address_argument says so), never "the default".
    const uds::Address addr = socket_arg ? uds::address_argument(*socket_arg)
                                         : uds::default_path_address("04-multi-client.sock");
    ch04::Options opt;
    opt.max_clients = max_clients.value_or(model == "fork"     ? kDefaultMaxFork
                                           : model == "thread" ? kDefaultMaxThread
                                                               : 0);
    opt.idle_timeout_ms = idle_seconds * 1000;
    uds::install_shutdown_handlers();

    // S1. socket: the listening endpoint, as in chapter 01. The epoll model's loop must never
    //     wait inside accept4, so its listener is non-blocking.
    //     Prefork workers that wait in epoll take turns with accept4 on it: non-blocking too.
    const bool nonblocking = model == "epoll" || (model == "prefork" && wake != ch04::Wake::Accept);
    int type = SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0);
    uds::Fd listener{uds::check(socket(AF_UNIX, type, 0), "socket")};

    // S2. bind: the name; a stale file is removed, a live server's file is left alone.
    if (bind(listener.get(), addr.sockaddr_ptr(), addr.length()) == -1) {
        if (errno != EADDRINUSE || addr.kind() != uds::Address::Kind::Path)
            throw uds::SysError(errno, "bind " + addr.str());
        uds::remove_stale_socket_file(addr, SOCK_STREAM);
        uds::log("removed stale socket file " + addr.str() + " (nobody was listening)");
        uds::check(bind(listener.get(), addr.sockaddr_ptr(), addr.length()), "bind " + addr.str());
    }
    uds::SocketFile socket_file{addr};

    // S3. listen: a long queue this time (SOMAXCONN; Linux caps it at net.core.somaxconn), so
    //     that a burst of thousands of connect() calls waits in the queue instead of failing.
    uds::check(listen(listener.get(), SOMAXCONN), "listen " + addr.str());
    // The model says "listening on" itself (through opt.ready), once its own descriptors (epoll
    // set, signalfd, spare) exist: from that line on, the server's descriptor count only moves
    // with clients, and a model step that is not written yet stops it before that line.
    opt.ready = [&] {
        uds::log("model " + model +
                 (model == "prefork" ? ", " + std::to_string(workers) + " workers" : "") +
                 (opt.max_clients ? ", at most " + std::to_string(opt.max_clients) + " clients"
                                  : std::string(", as many clients as descriptors allow")) +
                 (idle_seconds ? ", idle timeout " + std::to_string(idle_seconds) + " s"
                               : std::string(", no idle timeout")));
        uds::log("listening on " + addr.str());
    };

    // S4-S8: wait, accept, hand over, serve, clean up: the model's way (see its header).
    if (model == "fork") ch04::run_fork_model(listener.get(), opt);
    if (model == "thread") ch04::run_thread_model(listener.get(), opt);
    if (model == "epoll") ch04::run_epoll_model(listener.get(), opt);
    if (model == "prefork") ch04::run_prefork_model(listener.get(), opt, workers, wake);

    // S9. unlink, then close, as in chapter 01. Every client is closed by now.
    uds::log(std::string("stopping on ") + strsignal(uds::stop_signal()));
    socket_file.unlink_if_ours();
    listener.reset();
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    return uds::run_main("server", argc, argv, run);
}
