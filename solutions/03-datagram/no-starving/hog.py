# hog.py SERVER-PATH N: a client that connect()s its datagram socket to the server and sends N
# requests of 1000 bytes without reading a reply; prints "sent N", then waits for a line on
# stdin. On "drain" it reads every reply queued for it, prints how many, sends one more request
# and prints "served again" when its reply arrives (within 5 s).
import socket, sys

path, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("")
s.connect(path)
for _ in range(n):
    s.send(b"h" * 1000)
print("sent", n, flush=True)
if sys.stdin.readline().strip() == "drain":
    s.setblocking(False)
    held = 0
    try:
        while True:
            s.recv(5000)
            held += 1
    except BlockingIOError:
        pass
    s.settimeout(5)
    s.send(b"one more")
    while s.recv(5000) != b"ONE MORE":
        pass
    print("read", held, "replies; served again", flush=True)
