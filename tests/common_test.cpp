// Unit tests of the helper library (common/).
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <thread>

#include <gtest/gtest.h>

#include "harness.hpp"
#include "uds.hpp"

namespace {

bool is_open(int fd) {
    return ::fcntl(fd, F_GETFD) != -1;
}

// ---------------------------------------------------------------- Fd
TEST(Fd, ClosesOnceWhenDestroyed) {
    int raw = ::dup(0);
    ASSERT_GE(raw, 0);
    {
        uds::Fd fd{raw};
        EXPECT_TRUE(is_open(raw));
    }
    EXPECT_FALSE(is_open(raw));
}

TEST(Fd, MoveTransfersOwnership) {
    int raw = ::dup(0);
    uds::Fd a{raw};
    uds::Fd b{std::move(a)};
    EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): checking the moved-from state
    EXPECT_EQ(b.get(), raw);
    uds::Fd c;
    c = std::move(b);
    EXPECT_EQ(c.get(), raw);
    EXPECT_TRUE(is_open(raw));
}

TEST(Fd, ReleaseGivesUpOwnershipAndResetCloses) {
    int raw = ::dup(0);
    int kept;
    {
        uds::Fd fd{raw};
        kept = fd.release();
        EXPECT_FALSE(fd);
    }
    EXPECT_TRUE(is_open(kept));
    uds::Fd fd{kept};
    fd.reset(::dup(0));
    EXPECT_FALSE(is_open(kept));
    EXPECT_TRUE(fd.valid());
}

TEST(Fd, DescriptorCountReturnsToBaseline) {
    int before = th::count_fds();
    {
        int sv[2];
        ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        uds::Fd a{sv[0]}, b{sv[1]};
        EXPECT_EQ(th::count_fds(), before + 2);
    }
    EXPECT_EQ(th::count_fds(), before);
}

// ---------------------------------------------------------------- error
TEST(Error, CheckPassesResultsThroughAndThrowsWithErrnoAndContext) {
    EXPECT_EQ(uds::check(5, "x"), 5);
    errno = 0;
    try {
        uds::check(::close(-1), "close -1", "a hint");
        FAIL() << "no exception";
    } catch (const uds::SysError& e) {
        EXPECT_EQ(e.code_value(), EBADF);
        EXPECT_EQ(uds::describe(e), std::string("close -1: ") + std::strerror(EBADF) + " (a hint)");
    }
}

TEST(Error, RunMainMapsUsageErrorsTo2AndRuntimeErrorsTo1) {
    char prog[] = "prog";
    char* argv[] = {prog, nullptr};
    EXPECT_EQ(uds::run_main("t", 1, argv, [](int, char**) -> int { throw uds::UsageError("u"); }),
              2);
    EXPECT_EQ(uds::run_main("t", 1, argv, [](int, char**) -> int { throw uds::Failure("f"); }), 1);
    EXPECT_EQ(
        uds::run_main("t", 1, argv, [](int, char**) -> int { throw uds::SysError(EPIPE, "send"); }),
        1);
    EXPECT_EQ(uds::run_main("t", 1, argv, [](int, char**) -> int { throw uds::Exit{0}; }), 0);
    EXPECT_EQ(uds::run_main("t", 1, argv, [](int, char**) { return 7; }), 7);
}

// ---------------------------------------------------------------- address
constexpr socklen_t kOffset = offsetof(sockaddr_un, sun_path);

TEST(Address, PathLengthIsOffsetPlusStrlenPlusOne) {
    auto a = uds::Address::path("/tmp/x.sock");
    EXPECT_EQ(a.length(), kOffset + 11 + 1);
    EXPECT_EQ(a.kind(), uds::Address::Kind::Path);
    EXPECT_EQ(a.str(), "/tmp/x.sock");
}

TEST(Address, Path107BytesAcceptedAnd108Rejected) {
    std::string p107(107, 'p'), p108(108, 'p');
    auto a = uds::Address::path(p107);
    EXPECT_EQ(a.length(), kOffset + 108);
    EXPECT_EQ(a.length(), sizeof(sockaddr_un));
    EXPECT_THROW(uds::Address::path(p108), uds::AddressError);
    try {
        uds::Address::path(p108);
    } catch (const uds::AddressError& e) {
        EXPECT_NE(std::string(e.what()).find("108 bytes; the limit is 107"), std::string::npos)
            << e.what();
    }
}

TEST(Address, AbstractLengthIsOffsetPlusOnePlusNameWithNoTrailingNul) {
    auto a = uds::Address::abstract("demo");
    EXPECT_EQ(a.length(), kOffset + 1 + 4);
    EXPECT_EQ(a.kind(), uds::Address::Kind::Abstract);
    EXPECT_EQ(a.name(), "demo");
    EXPECT_EQ(a.str(), "@demo");
    EXPECT_NE(a.length(), sizeof(sockaddr_un));
}

TEST(Address, Abstract107BytesAcceptedAnd108Rejected) {
    EXPECT_EQ(uds::Address::abstract(std::string(107, 'a')).length(), sizeof(sockaddr_un));
    EXPECT_THROW(uds::Address::abstract(std::string(108, 'a')), uds::AddressError);
}

TEST(Address, EmptyAndEmbeddedNulAreRejected) {
    EXPECT_THROW(uds::Address::path(""), uds::AddressError);
    EXPECT_THROW(uds::Address::abstract(""), uds::AddressError);
    EXPECT_THROW(uds::Address::parse("@"), uds::AddressError);
    EXPECT_THROW(uds::Address::path(std::string("a\0b", 3)), uds::AddressError);
    EXPECT_THROW(uds::Address::abstract(std::string("a\0b", 3)), uds::AddressError);
}

TEST(Address, ParseTreatsAtSignAsAbstract) {
    EXPECT_EQ(uds::Address::parse("@name"), uds::Address::abstract("name"));
    EXPECT_EQ(uds::Address::parse("rel/path.sock"), uds::Address::path("rel/path.sock"));
    EXPECT_THROW(uds::address_argument(std::string(200, 'x')), uds::UsageError);
}

TEST(Address, FormatsUnnamedAutoboundAndPaddedNamesFromTheKernel) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    EXPECT_EQ(uds::Address::from_kernel(sa, sizeof(sa_family_t)).str(), "(unnamed)");
    EXPECT_EQ(uds::Address::from_kernel(sa, sizeof(sa_family_t)).kind(),
              uds::Address::Kind::Unnamed);
    // A name bound with sizeof(sockaddr_un): the NUL padding is part of it; ss prints '@'.
    std::memcpy(sa.sun_path + 1, "ab", 2);
    auto padded = uds::Address::from_kernel(sa, kOffset + 6);
    EXPECT_EQ(padded.str(), "@ab@@@");
    // Non-printable bytes are escaped.
    sa.sun_path[1] = '\x01';
    EXPECT_EQ(uds::Address::from_kernel(sa, kOffset + 3).str(), "@\\x01b");
}

TEST(Address, PathOf108BytesWithoutNulFromTheKernelIsReadSafely) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memset(sa.sun_path, 'z', sizeof sa.sun_path);  // no terminating NUL at all
    auto a = uds::Address::from_kernel(sa, sizeof sa);
    EXPECT_EQ(a.name(), std::string(108, 'z'));
}

TEST(Address, AutobindGivesNulPlusFiveHexDigits) {
    uds::Fd s{::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    ASSERT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa_family_t)), 0);
    auto a = uds::local_address(s.get());
    ASSERT_EQ(a.kind(), uds::Address::Kind::Abstract);
    EXPECT_EQ(a.length(), kOffset + 1 + 5);
    EXPECT_EQ(a.name().find_first_not_of("0123456789abcdef"), std::string::npos) << a.str();
    EXPECT_EQ(a.name().size(), 5u);
}

// ---------------------------------------------------------------- LineFramer
std::vector<std::string> drain(uds::LineFramer& f, bool* too_long = nullptr) {
    std::vector<std::string> lines;
    std::string line;
    for (;;) {
        auto s = f.next(line);
        if (s == uds::LineFramer::Status::Line) lines.push_back(line);
        if (s == uds::LineFramer::Status::TooLong && too_long) *too_long = true;
        if (s != uds::LineFramer::Status::Line) return lines;
    }
}

TEST(LineFramer, EverythingAtOnce) {
    uds::LineFramer f{4096};
    f.feed("one\ntwo\n\nthree");
    EXPECT_EQ(drain(f), (std::vector<std::string>{"one", "two", ""}));
    std::string rest;
    ASSERT_TRUE(f.take_rest(rest));
    EXPECT_EQ(rest, "three");
    EXPECT_FALSE(f.take_rest(rest));
}

TEST(LineFramer, OneByteAtATime) {
    uds::LineFramer f{4096};
    std::string input = "alpha\nbeta\n你好\r\n";
    std::vector<std::string> got;
    for (char c : input) {
        f.feed(std::string_view(&c, 1));
        for (auto& l : drain(f))
            got.push_back(l);
    }
    EXPECT_EQ(got, (std::vector<std::string>{"alpha", "beta", "你好\r"}));
    EXPECT_EQ(f.buffered(), 0u);
}

TEST(LineFramer, ExactlyMaxBytesIsALineAndOneMoreIsTooLong) {
    uds::LineFramer ok{4096};
    ok.feed(std::string(4096, 'x') + "\n");
    EXPECT_EQ(drain(ok), std::vector<std::string>{std::string(4096, 'x')});

    uds::LineFramer bad{4096};
    bad.feed(std::string(4097, 'x') + "\n");
    bool too_long = false;
    EXPECT_TRUE(drain(bad, &too_long).empty());
    EXPECT_TRUE(too_long);
}

TEST(LineFramer, TooLongIsReportedBeforeTheNewlineArrives) {
    uds::LineFramer f{10};
    f.feed("0123456789");  // 10 bytes: may still become a legal line
    EXPECT_TRUE(drain(f).empty());
    bool too_long = false;
    f.feed("A");  // 11 bytes without a newline: certain now
    drain(f, &too_long);
    EXPECT_TRUE(too_long);
}

TEST(LineFramer, BufferStaysBoundedWhenFedInChunks) {
    uds::LineFramer f{4096};
    std::string chunk(1000, 'a');
    chunk += '\n';
    for (int i = 0; i < 10000; ++i) {
        f.feed(chunk);
        ASSERT_EQ(drain(f).size(), 1u);
        ASSERT_LE(f.buffered(), 4097u);
    }
}

// ---------------------------------------------------------------- write_all
TEST(WriteAll, SendsEverythingThroughAFullSocketBuffer) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    uds::Fd a{sv[0]}, b{sv[1]};
    std::string big(4 << 20, 'q');  // far more than the socket buffers hold
    std::string got;
    std::thread reader([&] { got = th::read_to_eof(b.get()); });
    uds::write_all(a.get(), big);
    a.reset();
    reader.join();
    EXPECT_EQ(got.size(), big.size());
    EXPECT_EQ(got, big);
}

TEST(WriteAll, ClosedPeerGivesEpipeNotSigpipe) {
    // In a child with SIGPIPE at its default (fatal) disposition.
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        std::signal(SIGPIPE, SIG_DFL);
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) ::_exit(3);
        ::close(sv[1]);
        try {
            uds::write_all(sv[0], "hello");
        } catch (const uds::SysError& e) {
            ::_exit(e.code_value() == EPIPE ? 0 : 4);
        }
        ::_exit(5);
    }
    int st = 0;
    ASSERT_EQ(::waitpid(pid, &st, 0), pid);
    ASSERT_TRUE(WIFEXITED(st)) << "killed by signal " << WTERMSIG(st);
    EXPECT_EQ(WEXITSTATUS(st), 0);
}

TEST(WriteAll, WorksOnPipesToo) {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    uds::Fd r{p[0]}, w{p[1]};
    uds::write_all(w.get(), "via a pipe");
    w.reset();
    char buf[32] = {};
    EXPECT_EQ(::read(r.get(), buf, sizeof buf), 10);
    EXPECT_STREQ(buf, "via a pipe");
}

TEST(Service, UpcaseTouchesOnlyAsciiLetters) {
    EXPECT_EQ(uds::upcase("你好 abc\r\x01z"), "你好 ABC\r\x01Z");
    EXPECT_EQ(uds::upcase(std::string("a\0b", 3)), std::string("A\0B", 3));
}

// ---------------------------------------------------------------- runtime_dir
TEST(RuntimeDir, UsesXdgRuntimeDirElseTmpWithUid) {
    EXPECT_EQ(uds::runtime_dir_path("/run/user/1000", 1000), "/run/user/1000/uds-tutorial");
    EXPECT_EQ(uds::runtime_dir_path(nullptr, 1000), "/tmp/uds-tutorial-1000");
    EXPECT_EQ(uds::runtime_dir_path("", 7), "/tmp/uds-tutorial-7");
    EXPECT_EQ(uds::runtime_dir_path("relative", 7), "/tmp/uds-tutorial-7");
}

TEST(RuntimeDir, CreatesItWithMode0700) {
    th::TempDir tmp;
    std::string dir = tmp.file("rt");
    uds::ensure_private_dir(dir, ::geteuid());
    struct stat st {};
    ASSERT_EQ(::lstat(dir.c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0700u);
}

TEST(RuntimeDir, TightensALooserModeOfItsOwnDirectory) {
    th::TempDir tmp;
    std::string dir = tmp.file("rt");
    ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
    ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);
    uds::ensure_private_dir(dir, ::geteuid());
    struct stat st {};
    ASSERT_EQ(::lstat(dir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0700u);
}

TEST(RuntimeDir, RefusesASymlink) {
    th::TempDir tmp;
    std::string target = tmp.file("elsewhere"), dir = tmp.file("rt");
    ASSERT_EQ(::mkdir(target.c_str(), 0700), 0);
    ASSERT_EQ(::symlink(target.c_str(), dir.c_str()), 0);
    try {
        uds::ensure_private_dir(dir, ::geteuid());
        FAIL() << "a symlink was accepted";
    } catch (const uds::Failure& e) {
        EXPECT_NE(std::string(e.what()).find("symbolic link"), std::string::npos) << e.what();
    }
}

TEST(RuntimeDir, RefusesSomethingThatIsNotADirectory) {
    th::TempDir tmp;
    std::string dir = tmp.file("rt");
    uds::Fd f{::open(dir.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600)};
    ASSERT_TRUE(f.valid());
    EXPECT_THROW(uds::ensure_private_dir(dir, ::geteuid()), uds::Failure);
}

TEST(RuntimeDir, RefusesADirectoryOwnedByAnotherUser) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to chown";
    th::TempDir tmp;
    std::string dir = tmp.file("rt");
    ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
    ASSERT_EQ(::chown(dir.c_str(), th::kNobody, th::kNobody), 0);
    try {
        uds::ensure_private_dir(dir, ::geteuid());
        FAIL() << "another user's directory was accepted";
    } catch (const uds::Failure& e) {
        EXPECT_NE(std::string(e.what()).find("owned by uid 65534"), std::string::npos) << e.what();
    }
}

// ---------------------------------------------------------------- cli
struct Argv {
    std::vector<std::string> words;
    std::vector<char*> ptrs;
    explicit Argv(std::vector<std::string> w) : words(std::move(w)) {
        for (auto& s : words)
            ptrs.push_back(s.data());
        ptrs.push_back(nullptr);
    }
    int argc() const { return static_cast<int>(words.size()); }
    char** argv() { return ptrs.data(); }
};

TEST(Cli, ParsesShortLongAndPositionalArguments) {
    std::string sock;
    bool flag = false;
    uds::Cli cli("p", "[-s ADDR]", "");
    cli.option('s', "socket", "ADDR", "where", [&](const std::string& v) { sock = v; });
    cli.option(0, "flag", "", "a flag", [&](const std::string&) { flag = true; });
    Argv a({"p", "--socket=/x", "--flag", "one", "two"});
    auto rest = cli.parse(a.argc(), a.argv());
    EXPECT_EQ(sock, "/x");
    EXPECT_TRUE(flag);
    EXPECT_EQ(rest, (std::vector<std::string>{"one", "two"}));
    Argv b({"p", "-s", "@n"});
    cli.parse(b.argc(), b.argv());
    EXPECT_EQ(sock, "@n");
}

TEST(Cli, UnknownOptionsAndMissingValuesAreUsageErrors) {
    uds::Cli cli("p", "", "");
    cli.option('s', "socket", "ADDR", "where", [](const std::string&) {});
    Argv a({"p", "--nope"});
    EXPECT_THROW(cli.parse(a.argc(), a.argv()), uds::UsageError);
    Argv b({"p", "-s"});
    EXPECT_THROW(cli.parse(b.argc(), b.argv()), uds::UsageError);
    Argv c({"p", "-x"});
    EXPECT_THROW(cli.parse(c.argc(), c.argv()), uds::UsageError);
}

TEST(Cli, ParseNumberChecksRangeAndDigits) {
    EXPECT_EQ(uds::parse_number("42", "n", 1, 100), 42u);
    EXPECT_THROW(uds::parse_number("0", "n", 1, 100), uds::UsageError);
    EXPECT_THROW(uds::parse_number("101", "n", 1, 100), uds::UsageError);
    EXPECT_THROW(uds::parse_number("-1", "n", 0, 100), uds::UsageError);
    EXPECT_THROW(uds::parse_number("12x", "n", 0, 100), uds::UsageError);
    EXPECT_THROW(uds::parse_number("99999999999999999999999", "n", 0, 100), uds::UsageError);
}

// ---------------------------------------------------------------- signals
// In a child process, so the test runner's own signal handling is untouched.
int in_child(const std::function<int()>& fn) {
    pid_t pid = ::fork();
    if (pid == 0) ::_exit(fn());
    int st = 0;
    ::waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

TEST(Signals, StopArrivingBeforeTheWaitIsNotLost) {
    EXPECT_EQ(in_child([] {
                  uds::install_shutdown_handlers();
                  int sv[2];
                  ::socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
                  ::raise(SIGTERM);  // arrives *before* we start waiting: the classic race
                  if (!uds::stop_requested()) return 1;
                  if (uds::wait_readable(sv[0], 5000) != uds::Wait::Stop) return 2;
                  return uds::stop_signal() == SIGTERM ? 0 : 3;
              }),
              0);
}

TEST(Signals, WaitReportsReadinessAndTimeout) {
    EXPECT_EQ(in_child([] {
                  uds::install_shutdown_handlers();
                  int sv[2];
                  ::socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
                  if (uds::wait_readable(sv[0], 10) != uds::Wait::Timeout) return 1;
                  if (::write(sv[1], "x", 1) != 1) return 2;
                  if (uds::wait_readable(sv[0], 5000) != uds::Wait::Ready) return 3;
                  ::raise(SIGINT);
                  return uds::wait_readable(sv[0], 5000) == uds::Wait::Stop ? 0 : 4;
              }),
              0);
}

TEST(Signals, WriteAllGivesUpOnStopWhenThePeerNeverReads) {
    EXPECT_EQ(in_child([] {
                  uds::install_shutdown_handlers();
                  int sv[2];
                  ::socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
                  ::raise(SIGTERM);
                  try {
                      uds::write_all(sv[0], std::string(8 << 20, 'x'));  // never read
                  } catch (const uds::Stopped&) {
                      return 0;
                  }
                  return 1;
              }),
              0);
}

// ---------------------------------------------------------------- socket files
TEST(SocketFile, StaleSocketFileIsRemovedAndLiveOneIsRefused) {
    th::TempDir tmp;
    auto addr = uds::Address::path(tmp.file("s.sock"));
    {
        uds::Fd s{::socket(AF_UNIX, SOCK_STREAM, 0)};
        ASSERT_EQ(::bind(s.get(), addr.sockaddr_ptr(), addr.length()), 0);
        ASSERT_EQ(::listen(s.get(), 1), 0);
        EXPECT_THROW(uds::remove_stale_socket_file(addr, SOCK_STREAM), uds::Failure);
        EXPECT_EQ(::access(addr.name().c_str(), F_OK), 0) << "a live server's file was removed";
    }  // closed without unlink: now the file is stale
    uds::remove_stale_socket_file(addr, SOCK_STREAM);
    EXPECT_NE(::access(addr.name().c_str(), F_OK), 0);
}

TEST(SocketFile, RegularFileIsNeverRemoved) {
    th::TempDir tmp;
    std::string path = tmp.file("data.txt");
    uds::Fd f{::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600)};
    EXPECT_THROW(uds::remove_stale_socket_file(uds::Address::path(path), SOCK_STREAM),
                 uds::Failure);
    EXPECT_EQ(::access(path.c_str(), F_OK), 0);
}

TEST(SocketFile, UnlinksOnlyTheFileItsBindCreated) {
    th::TempDir tmp;
    auto addr = uds::Address::path(tmp.file("s.sock"));
    uds::Fd s{::socket(AF_UNIX, SOCK_STREAM, 0)};
    ASSERT_EQ(::bind(s.get(), addr.sockaddr_ptr(), addr.length()), 0);
    uds::SocketFile mine{addr};
    // Someone replaces the file (another server after removing ours as stale, say).
    ASSERT_EQ(::unlink(addr.name().c_str()), 0);
    uds::Fd other{::socket(AF_UNIX, SOCK_STREAM, 0)};
    ASSERT_EQ(::bind(other.get(), addr.sockaddr_ptr(), addr.length()), 0);
    EXPECT_FALSE(mine.unlink_if_ours());
    EXPECT_EQ(::access(addr.name().c_str(), F_OK), 0);
    uds::SocketFile theirs{addr};
    EXPECT_TRUE(theirs.unlink_if_ours());
    EXPECT_NE(::access(addr.name().c_str(), F_OK), 0);
}

// ------------------------------------------------------------------ logs a peer cannot forge
TEST(Log, ControlBytesAreEscapedSoAPeerCannotForgeALine) {
    EXPECT_EQ(uds::escape_for_log("/tmp/x\nserver: listening on /tmp/fake.sock"),
              "/tmp/x\\x0aserver: listening on /tmp/fake.sock");
    EXPECT_EQ(uds::escape_for_log("a\x1b[2Jb\rc\td"), "a\\x1b[2Jb\\x0dc\\x09d");
    EXPECT_EQ(uds::escape_for_log(std::string("nul\0del\x7f", 8)), "nul\\x00del\\x7f");
}

TEST(Log, Utf8TextIsKeptButC1ControlsAndBrokenUtf8AreEscaped) {
    EXPECT_EQ(uds::escape_for_log("你好 abc é"), "你好 abc é");
    EXPECT_EQ(uds::escape_for_log("\xc2\x9b"
                                  "31m"),
              "\\xc2\\x9b31m");                                         // C1 CSI
    EXPECT_EQ(uds::escape_for_log("\x9b"), "\\x9b");                    // a lone C1 byte
    EXPECT_EQ(uds::escape_for_log("\xe4\xbd"), "\\xe4\\xbd");           // cut in the middle
    EXPECT_EQ(uds::escape_for_log("\xc0\xaf"), "\\xc0\\xaf");           // overlong '/'
    EXPECT_EQ(uds::escape_for_log("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // a surrogate
}

// A server whose log reader went away (server 2>&1 | head -1) must not be killed by SIGPIPE at
// its next log line.
TEST(Log, WritingToAClosedLogPipeDoesNotKill) {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    ::close(p[0]);  // nobody reads
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        ::signal(SIGPIPE, SIG_DFL);
        ::dup2(p[1], STDERR_FILENO);
        uds::log("first line nobody reads");
        uds::log("second line nobody reads");
        // The signal was taken back, not just delayed: unblocking must not deliver it.
        sigset_t pending;
        sigpending(&pending);
        ::_exit(sigismember(&pending, SIGPIPE) ? 3 : 0);
    }
    ::close(p[1]);
    int st = 0;
    ASSERT_EQ(::waitpid(pid, &st, 0), pid);
    EXPECT_TRUE(WIFEXITED(st)) << "killed by signal " << (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    EXPECT_EQ(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0);
}

TEST(Log, LimitLetsABurstThroughThenCountsWhatItSuppressed) {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    uds::Fd r{p[0]}, w{p[1]};
    int saved = ::dup(STDERR_FILENO);
    ::dup2(w.get(), STDERR_FILENO);
    uds::LogLimit limit{3};
    for (int i = 0; i < 1000; ++i)
        limit.log("empty datagram");
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    char buf[4096];
    ssize_t n = ::read(r.get(), buf, sizeof buf);
    std::string got(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
    // A second boundary may fall inside the loop: at most two windows' worth of lines.
    std::size_t lines = static_cast<std::size_t>(std::count(got.begin(), got.end(), '\n'));
    EXPECT_GE(lines, 3u);
    EXPECT_LE(lines, 6u) << got;
}

TEST(Log, UnwrittenStepNamesTheStepAndExits1) {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        ::dup2(p[1], STDERR_FILENO);
        uds::set_program_name("server");
        uds::unwritten("S2", "bind");
    }
    ::close(p[1]);
    uds::Fd r{p[0]};
    std::string got;
    char buf[256];
    for (ssize_t n; (n = ::read(r.get(), buf, sizeof buf)) > 0;)
        got.append(buf, static_cast<std::size_t>(n));
    int st = 0;
    ASSERT_EQ(::waitpid(pid, &st, 0), pid);
    EXPECT_EQ(got, "server: step S2 (bind) is not written yet\n");
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1);
}

}  // namespace
