#!/usr/bin/python3
"""The SMTP server of the benchmark's outbox scenario (10): Debian's aiosmtpd on a
loopback port, accepting every mail. It prints "ready" once it listens, then one line
per accepted message, "<size in bytes> <recipients>", which the harness times and
counts. Usage: smtp-sink.py HOST PORT."""

import asyncio
import sys

from aiosmtpd.smtp import SMTP


class Sink:
    async def handle_DATA(self, server, session, envelope):
        sys.stdout.write(f"{len(envelope.content)} {' '.join(envelope.rcpt_tos)}\n")
        sys.stdout.flush()
        return "250 OK"


async def main(host, port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Sink(), hostname="sink.bench.test", ident="bench sink"), host, port
    )
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
