"""A real HTTP receiver on loopback for the webhook tests: it records each POST and answers
the status codes it is told to, in turn (then 200)."""

import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    def __init__(self, answers=(), keep_alive=False, on_post=None):
        self.answers = list(answers)
        self.on_post = on_post  # called while the sender waits for the answer
        self.keep_alive = keep_alive  # HTTP/1.1: one connection serves many POSTs
        self.received = []  # (headers dict, body str)
        self.connections = set()  # the clients' (address, port): one per connection
        self.server = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self, port=0):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if self.keep_alive else "HTTP/1.0"

            def do_POST(self):
                receiver.connections.add(self.client_address)
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                receiver.received.append(({name.lower(): value for name, value in self.headers.items()}, body))
                if receiver.on_post:
                    receiver.on_post()
                code = receiver.answers.pop(0) if receiver.answers else 200
                answer = b"ok" if code < 300 else b"receiver says no"
                self.send_response(code)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def receiving(answers=(), keep_alive=False, on_post=None):
    receiver = Receiver(answers, keep_alive, on_post).start()
    try:
        yield receiver
    finally:
        receiver.stop()
