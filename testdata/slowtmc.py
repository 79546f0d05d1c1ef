# slowtmc.py: a tmc.py that types: it sends its string to tms one byte at
# a time, a pause between bytes (as a person at a terminal, or a program
# that writes in pieces), and, like tmc.py, neither ends it nor
# half-closes. Then it reads the answer to the end and prints its length
# and SHA-256, so that a checker can judge it. A clean close of the
# connection is its success (exit 0); a reset is a traceback (exit 1).
#
# usage: python3 slowtmc.py host port string pause_seconds

import hashlib
import socket
import sys
import time

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect((sys.argv[1], int(sys.argv[2])))
pause = float(sys.argv[4])
for b in sys.argv[3].encode():
    s.sendall(bytes([b]))
    time.sleep(pause)

h = hashlib.sha256()
n = 0
while True:
    data = s.recv(1000000)
    if not data:
        break
    h.update(data)
    n += len(data)
s.close()
print(n, h.hexdigest())
