# queue.py SERVER-PATH [--connect]: send 100 requests from one autobound socket without reading
# a reply, then count the replies that were kept for us. A second socket's request, sent last,
# tells when the server has handled all 100 (it serves in order). Prints: replies, and the
# server's send queue in bytes as `ss -x` shows it (Send-Q) before we read them.
import socket, subprocess, sys

path, connected = sys.argv[1], "--connect" in sys.argv
hoarder = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
hoarder.bind("")  # autobind: @xxxxx
if connected:
    hoarder.connect(path)
for i in range(100):
    msg = b"request %d" % i
    if connected:
        hoarder.send(msg)
    else:
        hoarder.sendto(msg, path)
probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
probe.bind("")
probe.settimeout(10)
probe.sendto(b"are you done?", path)
assert probe.recv(100) == b"ARE YOU DONE?"
ss = subprocess.run(["ss", "-xanH"], capture_output=True, text=True).stdout
send_q = [line.split()[3] for line in ss.splitlines() if line.split()[4:5] == [path]]
hoarder.setblocking(False)
replies = 0
while True:
    try:
        hoarder.recv(100)
        replies += 1
    except BlockingIOError:
        break
print(replies, send_q[0] if send_q else "?")
