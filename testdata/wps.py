# wps.py

# client for the server for remote versions of the w and ps commands

# user can check load on machine without logging in (or even without
# having an account on the remote machine)

# usage:

# python wps.py remotehostname port_num {w,ps}

# e.g. python wps.py nimbus.org 8888 w would cause the server at
# nimbus.org on port 8888 to run the UNIX w command there, and send the
# output of the command back to the client here

# (The tutorial's program, section 5.2, ported to Python 3: the command is
# sent as bytes, and the file-like object is a text one, since Python 3
# allows no unbuffered text files.)

import socket,sys

def main():

   s = socket.socket(socket.AF_INET,socket.SOCK_STREAM)
   host = sys.argv[1]
   port = int(sys.argv[2])
   s.connect((host,port))

   # send w or ps command to server
   s.send(sys.argv[3].encode())

   # create "file-like object" flo
   flo = s.makefile('r') # read-only (Python 3: text files are buffered)
   # now can call readlines() on flo, and also use the fact that
   # that stdout is a file-like object too
   sys.stdout.writelines(flo.readlines())

if __name__ == '__main__':
   main()
