# crowd.py SOCKET N: N clients connect and each sends a line; prints, after a deadline of 2 s,
# how many got the upper-cased reply, how many 'ERROR server busy', how many nothing yet. Then
# it keeps all N connections open until stdin closes.
import select, socket, sys, time

path, n = sys.argv[1], int(sys.argv[2])
socks = []
for i in range(n):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    s.connect(path)  # queued by the kernel (the backlog is SOMAXCONN), accepted or not
    s.sendall(b"hello\n")
    s.setblocking(False)
    socks.append(s)
got = {}
end = time.monotonic() + 2
while time.monotonic() < end and len(got) < n:
    ready, _, _ = select.select([s for s in socks if s not in got], [], [], end - time.monotonic())
    for s in ready:
        try:
            got[s] = s.recv(100)
        except OSError as e:
            got[s] = str(e).encode()
served = sum(1 for v in got.values() if v == b"HELLO\n")
busy = sum(1 for v in got.values() if v.startswith(b"ERROR server busy"))
print(served, busy, n - len(got), flush=True)
sys.stdin.read()
