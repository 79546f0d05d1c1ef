# svr.py

# server for remote versions of the w and ps commands

# user can check load on machine without logging in (or even without
# having an account on the remote machine)

# usage:

# python svr.py port_num

# (The tutorial's program, section 5.2, ported to Python 3: the two bytes
# received are decoded before os.popen, print() is a function, and the
# socket's file-like object is a binary one, as Python 3 allows unbuffered
# files only in binary mode, so the lines are encoded on the way out.
# Like the original it hands what the client sends to a shell: it is a peer
# for tests and benchmarks only, never to be exposed.)

import socket,sys,os

def main():

   ls = socket.socket(socket.AF_INET,socket.SOCK_STREAM);
   port = int(sys.argv[1])
   ls.bind(('', port))

   while (1):
      ls.listen(1)
      (conn, addr) = ls.accept()
      print('client is at', addr)
      # get w or ps command from client
      rc = conn.recv(2)
      # run the command in a Unix-style pipe
      ppn = os.popen(rc.decode()) # do ppn.close() to close
      # ppn is a "file-like object," so can apply readlines()
      rl = ppn.readlines()
      # create a file-like object from the connection socket
      flo = conn.makefile('wb',0) # write-only, unbuffered
      # write the lines to the network
      flo.writelines([l.encode() for l in rl[:-1]])
      # clean up
      # must close both the socket and the wrapper
      flo.close()
      conn.close()

if __name__ == '__main__':
   main()
