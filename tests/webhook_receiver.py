"""A real HTTP receiver on loopback for the webhook tests: it records each POST and answers
the status codes it is told to, in turn (then 200)."""

import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    def __init__(self, answers=()):
        self.answers = list(answers)
        self.received = []  # (headers dict, body str)
        self.server = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self, port=0):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                receiver.received.append(({name.lower(): value for name, value in self.headers.items()}, body))
                code = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"ok" if code < 300 else b"receiver says no")

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
def receiving(answers=()):
    receiver = Receiver(answers).start()
    try:
        yield receiver
    finally:
        receiver.stop()
