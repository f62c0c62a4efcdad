# Chapter 06 demo: a monitor and its worker, joined by a socket pair. (make run-06)
# The monitor (server) runs in the foreground and starts the worker (client) itself, so both
# write into the demo at once: "server |" is the monitor's log, "worker !" the worker's,
# "worker |" what the worker copies to its stdout.
# valgrind-options: --child-silent-after-fork=yes
# (make valgrind: the monitor's forked child execs the worker; valgrind cannot follow it there.)
src_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root="$DEMO_DIR/root"
cp -R "$src_dir/files" "$root"
printf 'only root may read this file\n' >"$root/secret.txt"
chmod 600 "$root/secret.txt"
ln -s /etc/passwd "$root/escape" # a symlink leading out of the root

# make trace-06: also the calls that make a worker (fork, dup2, the drop, exec), the policy's
# opens, the sealed memory and the wait. Hidden: the dynamic loader's and glibc's own calls
# (mappings of libraries, getpwnam asking nscd, fdopendir's fcntl, opendir of /proc/self/fd).
UDS_TRACE_CALLS="$UDS_TRACE_CALLS,clone,clone3,dup2,close_range,setgroups,setgid,setuid,prctl"
UDS_TRACE_CALLS="$UDS_TRACE_CALLS,execve,openat,openat2,memfd_create,fcntl,mmap,wait4"
UDS_TRACE_HIDE='^mmap\((?!.*memfd)|^prctl\(PR_SET_(VMA|NAME)|nscd|SOCK_NONBLOCK'
UDS_TRACE_HIDE+='|^close\(\d+<UNIX-STREAM:|^fcntl\(\d+<[^>]*>(\(deleted\))?, F_(GETFL|SETFD)'
UDS_TRACE_HIDE+='|^openat\(AT_FDCWD(<[^>]*>)?, "(/etc/|/lib|/usr/|/proc/self/fd")|^close\(\d+</proc/\d+/fd>'

# monitor ARG...: run the monitor in the foreground (under strace for make trace-06).
monitor() {
    trace_command
    ctl server server
    ctl run worker client
    "${TRACE_CMD[@]}" "$CHAPTER_DIR/server" "$@" </dev/null
    local status=$?
    ctl stopped
    ctl plain
    printf '  (the monitor exited with status %s, the worker'"'"'s)\n' "$status"
}

say "the root the monitor serves: secret.txt is its owner's alone (mode 0600; root's when we are root), escape leads out"
show ls -l "$root"

say "the monitor starts the worker (uid 65534 when we are root); it asks for a listing and files"
monitor --root "$root" -- --list hello.txt secret.txt ../../etc/passwd escape

say "started by hand, the worker finds no monitor on descriptor 3 and refuses (exit 2)"
ctl run worker client
"$CHAPTER_DIR/client" hello.txt
status=$?
ctl plain
printf '  (exit status %s)\n' "$status"
