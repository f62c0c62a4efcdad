# reuse.py [--reuse-pid] SERVER [ARGS...]: the peer that connects is gone before the server
# accepts it; with --reuse-pid (root, inside a new PID namespace) its pid is first given to a
# new process, `sleep`. Prints the server's log line about that peer.
#
#   unshare --pid --fork --mount-proc python3 reuse.py --reuse-pid SERVER --exe-by-pid
import os, select, socket, subprocess, sys, time

reuse = sys.argv[1] == "--reuse-pid"
server = sys.argv[2:] if reuse else sys.argv[1:]
name = f"uds-reuse-{os.getpid()}-{time.monotonic_ns()}"
srv = subprocess.Popen(server + ["-s", "@" + name], stderr=subprocess.PIPE)
log = b""  # everything the server said so far, read unbuffered (select sees only the pipe)

def wait_line(text, timeout=10):
    """Waits until a line of the server's log contains text; returns that line (taken out)."""
    global log
    deadline = time.monotonic() + timeout
    while True:
        lines = log.decode(errors="replace").split("\n")
        for i, line in enumerate(lines[:-1]):
            if text in line:
                log = "\n".join(lines[:i] + lines[i + 1:]).encode()
                return line
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([srv.stderr], [], [], left)[0]:
            sys.exit(f"the server never logged {text!r}; it said: {log.decode(errors='replace')}")
        chunk = os.read(srv.stderr.fileno(), 65536)
        if not chunk:
            sys.exit(f"the server ended; it said: {log.decode(errors='replace')}")
        log += chunk

def line_of(s):
    got = b""
    while not got.endswith(b"\n"):
        chunk = s.recv(100)
        assert chunk, "end of file"
        got += chunk
    return got

wait_line("listening on")
addr = "\0" + name
# 1. A client the server is busy with: the next connection waits in the listen queue.
blocker = socket.socket(socket.AF_UNIX)
blocker.connect(addr)
blocker.sendall(b"busy\n")
assert line_of(blocker) == b"BUSY\n"
wait_line("accepted a connection")
# 2. X connects, hands its socket to its child Y and exits: the connection outlives its maker.
go_r, go_w = os.pipe()  # "go" for Y
done_r, done_w = os.pipe()  # Y's verdict
x = os.fork()
if x == 0:
    blocker.close()  # or the server would never see the blocker leave
    s = socket.socket(socket.AF_UNIX)
    s.connect(addr)
    if os.fork() == 0:
        os.read(go_r, 1)
        s.sendall(b"still here\n")
        os.write(done_w, b"ok" if line_of(s) == b"STILL HERE\n" else b"wrong reply")
        os._exit(0)
    os._exit(0)
os.waitpid(x, 0)  # X is gone and reaped: its pid is free
impostor = None
if reuse:  # 3. The next process gets X's pid (we choose it: ns_last_pid, in our PID namespace)
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(x - 1))
    impostor = subprocess.Popen(["sleep", "60"])
    assert impostor.pid == x, f"the new process got pid {impostor.pid}, not {x}"
# 4. The server accepts X's connection now, and looks up the pid SO_PEERCRED recorded.
blocker.close()
print(wait_line(f"accepted a connection: peer pid={x} "))
os.write(go_w, b"g")
os.close(done_w)
ready = select.select([done_r], [], [], 10)[0]
verdict = os.read(done_r, 100) if ready else b"no reply within 10 s"
if impostor:
    impostor.kill()
    impostor.wait()
srv.terminate()
srv.wait(10)
sys.exit(0 if verdict == b"ok" else f"the peer's child: {verdict.decode()}")
