"""A TCP proxy in threads, to cut every connection between a client and a server, to
lose one server reply, or to hold the replies back."""
import socket
import threading
from typing import List, Optional, Tuple


class _Link:
    """One proxied connection: its two sockets and whether the server's next reply is lost."""

    __slots__ = ("client", "server", "drop_reply", "tail")

    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client, self.server = client, server
        self.drop_reply = False
        self.tail = b""  # the client's last bytes, for a pattern split across reads


class Proxy:
    """Forwards 127.0.0.1:<port> to upstream. ``cut()`` closes every connection and
    refuses new ones (accepts and closes them at once) until ``restore()``.
    ``drop_reply_to(pattern)``: the first connection whose client sends ``pattern``
    afterwards loses the server's answer to it: the proxy closes that connection instead
    of forwarding the answer (the request reached the server). ``hold()`` keeps every
    reply from the clients (a server that does not answer) until ``release()``."""

    def __init__(self, upstream: Tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.accepted = 0  # connections forwarded, all told
        self.dropped = 0  # replies lost by drop_reply_to
        self._lock = threading.Lock()
        self._open: List[socket.socket] = []
        self._cut = False
        self._pattern: Optional[bytes] = None
        self._replying = threading.Event()
        self._replying.set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            with self._lock:
                if self._cut:
                    client.close()
                    continue
                try:
                    server = socket.create_connection(self.upstream, timeout=5)
                except OSError:
                    client.close()
                    continue
                server.settimeout(None)
                self._open += [client, server]
                self.accepted += 1
            link = _Link(client, server)
            threading.Thread(target=self._pipe, args=(link, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(link, False), daemon=True).start()

    def _pipe(self, link: _Link, upstream: bool) -> None:
        src, dst = (link.client, link.server) if upstream else (link.server, link.client)
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if upstream:
                    self._watch(link, data)
                elif link.drop_reply:
                    with self._lock:
                        self.dropped += 1
                    break  # the reply is lost with the connection
                else:
                    self._replying.wait()
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _watch(self, link: _Link, data: bytes) -> None:
        """Arm link to lose its next reply if the client sent the pattern."""
        with self._lock:
            pattern = self._pattern
            if pattern is None:
                return
            seen = link.tail + data
            if pattern in seen:
                self._pattern = None
                link.drop_reply = True
            link.tail = seen[-(len(pattern) - 1):] if len(pattern) > 1 else b""

    def drop_reply_to(self, pattern: bytes) -> None:
        with self._lock:
            self._pattern = pattern

    def hold(self) -> None:
        self._replying.clear()

    def release(self) -> None:
        self._replying.set()

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            sockets, self._open = self._open, []
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def close(self) -> None:
        self.release()
        self.cut()
        self.listener.close()
