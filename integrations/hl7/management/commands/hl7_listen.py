import asyncio
import signal
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from integrations.hl7.listener import serve


def host_and_port(bind):
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit():
        raise CommandError(f"HL7_BIND must be host:port, e.g. 127.0.0.1:2575, not {bind!r}.")
    return host.strip("[]"), int(port)


class Command(BaseCommand):
    help = "Serve the HL7 v2 interface over MLLP on HL7_BIND (docs/hl7.md) until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="", help="host:port; default HL7_BIND.")

    def handle(self, *args, bind="", **options):
        bind = bind or settings.HL7_BIND
        if not bind:
            raise CommandError("Set HL7_BIND (e.g. 127.0.0.1:2575) or pass --bind.")
        asyncio.run(self.listen(*host_and_port(bind)))

    async def listen(self, host, port):
        # Messages are applied in at most HL7_WORKERS threads at once, each with its own
        # database connection: no more than the process's pool holds (DB_POOL_MAX_SIZE).
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=settings.HL7_WORKERS, thread_name_prefix="hl7")
        )
        server = await serve(host, port)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        address = server.sockets[0].getsockname()
        self.stdout.write(f"Listening for HL7 (MLLP) on {address[0]}:{address[1]}")
        self.stdout.flush()
        await stopping.wait()
        server.close()
        await server.wait_closed()
        self.stdout.write("Stopped listening for HL7.")
