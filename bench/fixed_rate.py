#!/usr/bin/python3
"""Open-loop load at a fixed rate, for latency at a given throughput (wrk2's
job; wrk2 is not in Debian).

usage: fixed_rate.py URL CALLBACKS_FILE RATE SECONDS [MAX_CONNS]

Request i is due at start + i/RATE whatever happened to the ones before it
(no coordinated omission): it goes out on an idle keep-alive connection, or
on a new one when all are busy (at most MAX_CONNS, default 256; past that it
waits, and the wait counts). Latency is measured from the moment the request
was due to the end of its response. CALLBACKS_FILE is gen_callbacks.py's
output; each line is sent once.

Prints one line of key=value pairs: sent ok errors rate p50 p90 p99 p999 max
(latencies in ms), conns (the most open at once) and retried (requests sent
again because an idle keep-alive connection had been closed by the server).
"""
import asyncio
import sys
import time
from urllib.parse import urlsplit


def load_requests(path, host, port, url_path, n):
    reqs = []
    with open(path) as f:
        for line in f:
            if len(reqs) >= n:
                break
            inv, ts, sig, body = line.rstrip("\n").split("\t", 3)
            body = body.encode()
            head = (f"POST {url_path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                    f"Content-Type: application/json\r\nX-Webhook-Event: payment.paid\r\n"
                    f"X-Webhook-Signature: {sig}\r\nX-Webhook-Timestamp: {ts}\r\n"
                    f"X-Invoice-ID: {inv}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
            reqs.append(head + body)
    return reqs


class Load:
    def __init__(self, host, port, max_conns):
        self.host, self.port, self.max_conns = host, port, max_conns
        self.idle = []
        self.opened = 0
        self.peak = 0
        self.slot = asyncio.Condition()
        self.lat = []
        self.ok = 0
        self.errors = 0
        self.retries = 0

    async def conn(self, fresh=False):
        """(reader, writer), reused: an idle keep-alive connection unless fresh."""
        async with self.slot:
            while not (self.idle and not fresh) and self.opened >= self.max_conns:
                await self.slot.wait()
            if self.idle and not fresh:
                return self.idle.pop(), True
            self.opened += 1
            self.peak = max(self.peak, self.opened)
        try:
            return await asyncio.open_connection(self.host, self.port), False
        except OSError:
            async with self.slot:
                self.opened -= 1
                self.slot.notify()
            raise

    async def release(self, c, reusable):
        async with self.slot:
            if reusable:
                self.idle.append(c)
            else:
                self.opened -= 1
                c[1].close()
            self.slot.notify()

    async def one(self, req, due):
        # A keep-alive connection the server closed while it sat idle
        # (request_timeout) fails before any byte of an answer: like any HTTP
        # client, send again on a new connection; the latency still counts
        # from the moment the request was due.
        for attempt in (1, 2):
            try:
                c, reused = await self.conn(fresh=attempt > 1)
            except OSError:
                self.errors += 1
                return
            reader, writer = c
            reusable = False
            got_bytes = False
            try:
                writer.write(req)
                head = await reader.readuntil(b"\r\n\r\n")
                got_bytes = True
                status = int(head.split(b" ", 2)[1])
                length = 0
                close = False
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    k = k.strip().lower()
                    if k == b"content-length":
                        length = int(v)
                    elif k == b"connection" and v.strip().lower() == b"close":
                        close = True
                if length:
                    await reader.readexactly(length)
                self.lat.append(time.monotonic() - due)
                if 200 <= status < 300:
                    self.ok += 1
                else:
                    self.errors += 1
                reusable = not close
                return
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
                stale = reused and not got_bytes and (
                    isinstance(e, (ConnectionError, asyncio.IncompleteReadError)))
                if not stale or attempt == 2:
                    self.errors += 1
                    return
                self.retries += 1
            finally:
                await self.release(c, reusable)


def pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


async def main():
    if len(sys.argv) < 5:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    url, path, rate, secs = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    max_conns = int(sys.argv[5]) if len(sys.argv) > 5 else 256
    u = urlsplit(url)
    n = int(rate * secs)
    reqs = load_requests(path, u.hostname, u.port, u.path or "/", n)
    if len(reqs) < n:
        print(f"fixed_rate: only {len(reqs)} callbacks in {path}, need {n}", file=sys.stderr)
        sys.exit(2)
    load = Load(u.hostname, u.port, max_conns)
    tasks = []
    start = time.monotonic() + 0.2
    for i, req in enumerate(reqs):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(load.one(req, due)))
        if len(tasks) >= 4096:
            tasks = [t for t in tasks if not t.done()]
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    elapsed = time.monotonic() - start
    lat = sorted(load.lat)
    ms = lambda v: f"{v * 1000:.3f}"  # noqa: E731
    print(f"sent={n} ok={load.ok} errors={load.errors} rate={n / elapsed:.1f} "
          f"p50={ms(pct(lat, 50))} p90={ms(pct(lat, 90))} p99={ms(pct(lat, 99))} "
          f"p999={ms(pct(lat, 99.9))} max={ms(lat[-1] if lat else float('nan'))} "
          f"conns={load.peak} retried={load.retries}")


if __name__ == "__main__":
    asyncio.run(main())
