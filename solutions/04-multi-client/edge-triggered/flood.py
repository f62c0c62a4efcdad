# flood.py SOCKET SECONDS: one client floods the server with lines (and reads every reply, so
# it is never paused for backpressure) while a second client sends one line at a time and times
# each round trip. Prints the flood's rate and the probe's median and worst round trip in ms.
import socket, sys, threading, time

path, seconds = sys.argv[1], float(sys.argv[2])
stop = time.monotonic() + seconds
flood = socket.socket(socket.AF_UNIX)
flood.connect(path)
chunk = (b"x" * 999 + b"\n") * 1024  # 1 MiB of 1000-byte lines
received = [0]

def sender():
    while time.monotonic() < stop:
        flood.sendall(chunk)

def reader():
    flood.settimeout(2)
    try:
        while True:
            b = flood.recv(1 << 20)
            if not b:
                break
            received[0] += len(b)
    except OSError:
        pass

threads = [threading.Thread(target=sender), threading.Thread(target=reader)]
for t in threads:
    t.start()
time.sleep(0.2)  # let the flood get going before we measure
probe = socket.socket(socket.AF_UNIX)
probe.connect(path)
probe.settimeout(10)
rtts = []
while time.monotonic() < stop:
    t0 = time.monotonic()
    probe.sendall(b"ping\n")
    got = b""
    while not got.endswith(b"\n"):
        got += probe.recv(100)
    rtts.append(1000 * (time.monotonic() - t0))
for t in threads:
    t.join()
rtts.sort()
print(f"{received[0] / seconds / 1e6:.0f} {rtts[len(rtts) // 2]:.2f} {rtts[-1]:.2f} {len(rtts)}")
