"""A loopback TCP proxy that can go silent, for the database-stall tests.

    p = TcpProxy(upstream_port).start()   # listens on 127.0.0.1:p.port
    p.hold()      # stop moving bytes: sockets stay open, nothing is read or
                  # sent, new connections are accepted and left waiting (what
                  # a black-holed route looks like to both ends while TCP
                  # retransmits; nothing is lost, it arrives once released)
    p.release()   # move bytes again, the held ones first
    p.cut()       # close every connection at once (a reset route)
    p.stop()

One thread runs a select() loop over every socket; only the standard library.
"""

import select
import socket
import threading


class TcpProxy:
    def __init__(self, upstream_port, upstream_host="127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.peer = {}  # socket -> the socket at the other end
        self.lock = threading.Lock()
        self.held = False
        self.cut_pending = False
        self.running = False
        self.thread = None
        self.accepted = 0

    def start(self):
        self.running = True
        self.thread = threading.Thread(target=self._loop, name="tcp-proxy", daemon=True)
        self.thread.start()
        return self

    def hold(self):
        with self.lock:
            self.held = True

    def release(self):
        with self.lock:
            self.held = False

    def cut(self):
        """Closes every connection (the loop does it, at its next turn); returns at once."""
        with self.lock:
            self.cut_pending = True

    def waiting_bytes(self):
        """Connections with bytes waiting to be read (while held: what is stuck)."""
        with self.lock:
            socks = list(self.peer)
        if not socks:
            return 0
        try:
            readable, _, _ = select.select(socks, [], [], 0)
        except (OSError, ValueError):
            return 0
        return len(readable)

    def stop(self):
        self.running = False
        if self.thread:
            self.thread.join(10)
        self._close_all()
        self.listener.close()

    # ---------------------------------------------------------------
    def _close_all(self):
        with self.lock:
            socks = list(self.peer)
            self.peer.clear()
        for s in socks:
            try:
                s.close()
            except OSError:
                pass

    def _close_pair(self, s):
        with self.lock:
            other = self.peer.pop(s, None)
            if other is not None:
                self.peer.pop(other, None)
        for x in (s, other):
            if x is not None:
                try:
                    x.close()
                except OSError:
                    pass

    def _accept(self):
        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            client.close()
            return
        server.settimeout(None)
        with self.lock:
            self.peer[client] = server
            self.peer[server] = client
            self.accepted += 1

    def _loop(self):
        while self.running:
            with self.lock:
                held = self.held
                cut = self.cut_pending
                self.cut_pending = False
                socks = [] if held else list(self.peer)
            if cut:
                self._close_all()
                continue
            try:
                readable, _, _ = select.select([self.listener] + socks, [], [], 0.05)
            except (OSError, ValueError):
                continue  # a socket closed meanwhile
            for s in readable:
                if s is self.listener:
                    self._accept()
                    continue
                with self.lock:
                    other = self.peer.get(s)
                if other is None:
                    continue
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self._close_pair(s)
                    continue
                try:
                    other.sendall(data)
                except OSError:
                    self._close_pair(s)
