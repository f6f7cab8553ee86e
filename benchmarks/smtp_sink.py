"""A minimal asyncio SMTP sink for benchmarks: accepts everything, stores nothing, counts messages.

    python benchmarks/smtp_sink.py [--delay SECONDS]

Prints its port on the first line; on SIGTERM prints the number of messages it accepted.
It offers PIPELINING and answers commands in order, waiting --delay before each reply.
The other benchmarks start it in a process of its own through Sink.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys

accepted = 0


async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    global accepted

    async def reply(text: bytes) -> None:
        if delay:
            await asyncio.sleep(delay)
        writer.write(text)

    writer.write(b"220 sink ready\r\n")
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                await reply(b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
            elif verb == b"DATA":
                await reply(b"354 go on\r\n")
                await writer.drain()
                await reader.readuntil(b"\r\n.\r\n")
                accepted += 1
                await reply(b"250 2.0.0 accepted\r\n")
            elif verb == b"QUIT":
                await reply(b"221 bye\r\n")
                break
            else:
                await reply(b"250 OK\r\n")
            if reader._buffer:  # type: ignore[attr-defined]  # more pipelined commands waiting
                continue
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main(delay: float) -> None:
    server = await asyncio.start_server(lambda r, w: session(r, w, delay), "127.0.0.1", 0, limit=1 << 20)
    print(server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()
    print(accepted, flush=True)


class Sink:
    """This sink in a process of its own, as the sending benchmarks run it beside the sender."""

    def __init__(self, delay: float = 0.0) -> None:
        self.process = subprocess.Popen([sys.executable, __file__, "--delay", str(delay)], stdout=subprocess.PIPE,
                                        text=True)
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())
        self.url = f"smtp://127.0.0.1:{self.port}"

    def stop(self) -> int:
        """Stop it; the number of messages it accepted."""
        self.process.terminate()
        out, _ = self.process.communicate(timeout=30)
        return int(out.split()[-1])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delay", type=float, default=0.0)
    asyncio.run(main(parser.parse_args().delay))
    sys.exit(0)
