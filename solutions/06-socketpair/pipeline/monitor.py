# monitor.py WORKER FILE...: a monitor that answers one request at a time, on its own schedule,
# to see how many requests the worker (06-socketpair/client, or this solution's) has in flight.
# The worker gets its end of a SOCK_SEQPACKET pair on descriptor 3, as from 06-socketpair/server.
# Every request gets "ERROR ...". Prints what it sees; exits 0 when the worker had 4 requests in
# flight and never more, half-closed right after its last request, and matched each reply to
# its request, in order.
import os, select, socket, subprocess, sys

worker, files = sys.argv[1], sys.argv[2:]
mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
proc = subprocess.Popen([worker] + files, pass_fds=[3],
                        preexec_fn=lambda: os.dup2(theirs.fileno(), 3),
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
theirs.close()
requests, eof_after, eof_due = [], None, None
answered = 0

def pump(wait):
    """Takes what the worker sends within `wait` s (0.3 s more after each message)."""
    global eof_after, eof_due
    new = []
    while eof_after is None and select.select([mine], [], [], wait)[0]:
        msg = mine.recv(4096)
        if not msg:  # this worker never sends an empty request: end of file
            eof_after, eof_due = len(requests), len(requests) - answered
            new.append("end of file")
            break
        requests.append(msg.decode())
        new.append(msg.decode())
        wait = 0.3
    return new

first = pump(5)
print(f"  before any reply: {len(requests)} requests in flight ({', '.join(first)})")
assert len(requests) == 4, "expected exactly 4 requests in flight before the first reply"
while answered < len(requests) or eof_after is None:
    if answered == len(requests):
        assert pump(5), "the worker stopped sending without closing"
        continue
    mine.send(b"ERROR the test monitor refuses everything")
    answered += 1
    new = pump(0.3 if eof_after is None else 0)
    if new:
        print(f"  reply {answered} -> {', '.join(new)}")
    assert len(requests) - answered <= 4, f"{len(requests) - answered} requests in flight"
print(f"  end of file right after its last request (request {eof_after}), {eof_due} replies still due")
assert eof_after == len(files) and eof_due == 4
mine.close()
err = proc.stderr.read().decode()
proc.wait(10)
order = [line.split(": ")[1] for line in err.splitlines() if "refused by the monitor" in line]
assert order == [f"OPEN {f}" for f in files], order
print(f"  the worker matched the {len(order)} replies to its requests in order, and exited {proc.returncode}")
