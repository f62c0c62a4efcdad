// runtime_dir.hpp - where sockets live by default: a private directory per user.
//
//   $XDG_RUNTIME_DIR/uds-tutorial/   when XDG_RUNTIME_DIR is set (systemd sets it per login)
//   /tmp/uds-tutorial-<uid>/         otherwise
//
// Students sharing a lab machine never collide, and nobody else can reach (or replace) the
// sockets: the directory is created with mode 0700, and refused if it is a symlink, not a
// directory, or owned by someone else (in /tmp another user could have created it first).
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "address.hpp"

namespace uds {

// The directory that would be used, without touching the filesystem.
std::string runtime_dir_path(const char* xdg_runtime_dir, uid_t uid);

// Creates dir with mode 0700 if missing; then checks it (lstat: not a symlink, a directory,
// owned by uid) and tightens its mode to 0700 if it is ours but looser.
// Throws uds::Failure / uds::SysError with a hint when it must refuse.
void ensure_private_dir(const std::string& dir, uid_t uid);

// $XDG_RUNTIME_DIR/uds-tutorial or /tmp/uds-tutorial-<uid>, ensured as above.
std::string runtime_dir();

// runtime_dir() + "/" + file, as a path address ("01-stream.sock").
Address default_path_address(std::string_view file);

}  // namespace uds
