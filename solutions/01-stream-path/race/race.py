# race.py SERVER PATH ROUNDS: start two SERVERs on one stale socket file at the same instant,
# ROUNDS times; print how many rounds ended with both saying "listening on".
import os, selectors, socket, subprocess, sys, time

server, path, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
both = 0
for _ in range(rounds):
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)  # a socket file whose socket is closed at once: a stale file
    s.close()
    procs = [subprocess.Popen([server, "-s", path], stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
             for _ in range(2)]
    listening = 0
    for p in procs:  # each one either says "listening on" or exits
        deadline = time.monotonic() + 10
        sel = selectors.DefaultSelector()
        sel.register(p.stderr, selectors.EVENT_READ)
        out = b""
        while b"listening on" not in out and time.monotonic() < deadline:
            if sel.select(deadline - time.monotonic()):
                chunk = os.read(p.stderr.fileno(), 4096)
                if not chunk:
                    break
                out += chunk
        listening += b"listening on" in out
    both += listening == 2
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(10)
    for f in (path, path + ".lock"):
        try:
            os.unlink(f)
        except FileNotFoundError:
            pass
print(both)
