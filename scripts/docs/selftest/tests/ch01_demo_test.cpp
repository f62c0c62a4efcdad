// Part of the docs-check self-test fixture (never built): the shapes of test macros it reads.
#include <gtest/gtest.h>

TEST(Ch01Demo, S1_Socket_IsCloseOnExec) {}

TEST_F(Ch01DemoFixture,
       S2_Bind_NamesTheSocket) {}

class Ch01DemoModels : public testing::TestWithParam<const char*> {};
TEST_P( Ch01DemoModels , ServesEveryModel ) {}
INSTANTIATE_TEST_SUITE_P(Ch01, Ch01DemoModels, testing::Values("fork"));

// TEST(Ch01Demo, CommentedOut) {}
/* TEST(Ch01Demo, AlsoCommentedOut) {} */
const char* text = "TEST(Ch01Demo, InAString)";
