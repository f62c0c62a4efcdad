// The test runner: GoogleTest, plus the summary line make test promises:
//   tests: N passed, M failed
#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>

int main(int argc, char** argv) {
    testing::InitGoogleTest(&argc, argv);
    // Writing to a child's stdin after it exited must fail with EPIPE, not kill the runner.
    std::signal(SIGPIPE, SIG_IGN);
    int rc = RUN_ALL_TESTS();
    const testing::UnitTest& u = *testing::UnitTest::GetInstance();
    std::printf("tests: %d passed, %d failed", u.successful_test_count(), u.failed_test_count());
    if (u.skipped_test_count() > 0) std::printf(", %d skipped", u.skipped_test_count());
    std::printf("\n");
    return rc;
}
