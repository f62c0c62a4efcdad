// bench/framer.cpp - in-process micro-benchmarks of the helper library (Google Benchmark):
// how fast uds::LineFramer cuts a byte stream into lines, and uds::upcase, so that the server
// tables can be read knowing what the per-line work costs without any socket.
//
//   framer [--quick]          (other --benchmark_* flags are passed to Google Benchmark)
//
// Output: one Markdown table (a custom reporter), medians of the repetitions.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "bench.hpp"

namespace {

// Many lines of `len` bytes each (plus '\n'), about 1 MiB in total.
std::string make_lines(std::size_t len) {
    std::string line(len, 'a');
    for (std::size_t i = 0; i < len; ++i)
        line[i] = static_cast<char>('a' + i % 26);
    line += '\n';
    std::string all;
    while (all.size() < (1 << 20))
        all += line;
    return all;
}

// Feeds the stream in pieces of `chunk` bytes (what read() might return) and takes every line.
void BM_LineFramer(benchmark::State& state) {
    const auto len = static_cast<std::size_t>(state.range(0));
    const auto chunk = static_cast<std::size_t>(state.range(1));
    const std::string input = make_lines(len);
    std::string line;
    std::size_t lines = 0;
    for (auto _ : state) {
        uds::LineFramer framer(uds::kMaxLine);
        for (std::size_t off = 0; off < input.size(); off += chunk) {
            framer.feed(std::string_view(input).substr(off, chunk));
            while (framer.next(line) == uds::LineFramer::Status::Line) {
                benchmark::DoNotOptimize(line.data());
                ++lines;
            }
        }
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(input.size()));
    state.SetItemsProcessed(static_cast<std::int64_t>(lines));
    state.SetLabel("lines of " + std::to_string(len) + " B, fed " + bench::size_name(chunk) +
                   " at a time");
}
BENCHMARK(BM_LineFramer)->ArgsProduct({{16, 256, 4096}, {64, 65536}});

void BM_Upcase(benchmark::State& state) {
    const std::string text = make_lines(static_cast<std::size_t>(state.range(0)))
                                 .substr(0, static_cast<std::size_t>(state.range(0)));
    for (auto _ : state)
        benchmark::DoNotOptimize(uds::upcase(text));
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
    state.SetLabel("one line of " + std::to_string(state.range(0)) + " B");
}
BENCHMARK(BM_Upcase)->Arg(16)->Arg(4096);

// Prints one Markdown table instead of Google Benchmark's console format.
class MarkdownReporter : public benchmark::BenchmarkReporter {
  public:
    explicit MarkdownReporter(bool repeated) : repeated_(repeated) {}
    bool ReportContext(const Context&) override { return true; }
    void ReportRuns(const std::vector<Run>& runs) override {
        for (const Run& r : runs) {
            // With repetitions, only the median aggregate; without, the single run.
            if (repeated_ ? (r.run_type != Run::RT_Aggregate || r.aggregate_name != "median")
                          : r.run_type != Run::RT_Iteration)
                continue;
            if (r.error_occurred) {
                table_.row({r.run_name.function_name, "error: " + r.error_message, "", ""});
                continue;
            }
            auto counter = [&](const char* name) {
                auto it = r.counters.find(name);
                return it == r.counters.end() ? 0.0 : static_cast<double>(it->second);
            };
            std::string what =
                r.run_name.function_name == "BM_LineFramer" ? "uds::LineFramer" : "uds::upcase";
            table_.row({what + ": " + r.report_label,
                        bench::num(counter("bytes_per_second") / (1 << 20)),
                        bench::num(counter("items_per_second") / 1e6),
                        bench::num(1e9 / counter("items_per_second"))});
        }
    }
    void Finalize() override { table_.print(); }

  private:
    bool repeated_;
    bench::Table table_{{"benchmark", "MiB/s", "million lines/s", "ns per line"}};
};

}  // namespace

int main(int argc, char** argv) {
    bool quick = false;
    std::vector<char*> args{argv[0]};
    std::string min_time = "--benchmark_min_time=0.3", reps = "--benchmark_repetitions=3",
                unit = "--benchmark_time_unit=ns";
    for (int i = 1; i < argc; ++i) {
        if (std::string(argv[i]) == "--quick")
            quick = true;
        else
            args.push_back(argv[i]);
    }
    if (quick) {
        min_time = "--benchmark_min_time=0.05";
        reps = "--benchmark_repetitions=1";
    }
    args.insert(args.begin() + 1, {min_time.data(), reps.data(), unit.data()});
    int n = static_cast<int>(args.size());
    benchmark::Initialize(&n, args.data());
    if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 2;
    bench::heading("In-process: the line framer and upcase (Google Benchmark)");
    MarkdownReporter reporter(!quick);
    benchmark::RunSpecifiedBenchmarks(&reporter);
    benchmark::Shutdown();
    std::printf(
        "%s; median of the repetitions. A line's trip through a socket costs microseconds "
        "(the tables above); framing it costs nanoseconds.\n\n",
        quick ? "Quick mode: 1 repetition of at least 0.05 s each"
              : "3 repetitions of at least 0.3 s each");
    return 0;
}
