// todo.hpp - a placeholder for a step you have not written yet.
//
// todo<T>("step 6: ...") compiles wherever a T is needed, and throws when it runs: the server
// stops at once with "server: TODO(step 6: ...) is not written yet" on stderr and exit status 1.
// So a missing step makes the tests fail fast with its name, instead of waiting for a reply
// that never comes. Replace each todo(...) call with the real system call.
#pragma once

#include <string>

#include "uds.hpp"

namespace ch04 {

template <class T = void>
T todo(const char* step) {
    throw uds::Failure(std::string("TODO(") + step + ") is not written yet",
                       "see 04-multi-client/README.md, Exercises");
}

}  // namespace ch04
