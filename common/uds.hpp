// uds.hpp - the whole helper library in one include.
#pragma once

#include "address.hpp"
#include "cli.hpp"
#include "error.hpp"
#include "fd.hpp"
#include "io.hpp"
#include "runtime_dir.hpp"
#include "service.hpp"
#include "signals.hpp"
#include "socket_file.hpp"
