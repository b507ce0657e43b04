#!/usr/bin/python3
"""Fills bayarhook.callbacks with N chained audit rows, for timing
`bayarhook audit verify` (README "Audit chain"; issue 15: verify on 1
million rows).

usage: bench/audit_rows.py CONNINFO KEYFILE N [BATCH]

Rows go in through bayarhook.ingest() exactly as the daemon writes them:
batches of BATCH (default 1000) refusal items (bad_signature, a body of the
gateway's shape), one lane, the chain parameter built here like
src/audit_chain.c does (be64 lane, be64 next lane_seq, head mac, then each
row position's subkey pads). ingest() returns each row's mac, which becomes
the next batch's head. The key is KEYFILE's first line, as [audit] key_file.
"""
import hashlib
import hmac
import json
import secrets
import struct
import sys
import time

import psycopg


def pads(key, lane, seq):
    sub = hmac.new(key, b"bayarhook-audit-row" + struct.pack(">qq", lane, seq),
                   hashlib.sha256).digest() + bytes(32)
    return bytes(b ^ 0x36 for b in sub) + bytes(b ^ 0x5c for b in sub)


def main():
    conninfo, keyfile, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    batch = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    key = open(keyfile).readline().strip().encode()
    lane = secrets.randbits(63) or 1
    seq, head = 1, bytes(32)
    body = json.dumps({"event": "payment.paid", "invoice_id": "PAY-bench", "status": "paid",
                       "amount": 50000, "final_amount": 50123, "customer_name": "John Doe",
                       "customer_email": "john@example.com", "customer_phone": "08123456789",
                       "description": "Pembayaran Produk A", "timestamp": 1705312530,
                       "signature": "0" * 64}, separators=(",", ":"))
    t0 = time.monotonic()
    with psycopg.connect(conninfo, autocommit=True) as c:
        done = 0
        while done < n:
            k = min(batch, n - done)
            items = [{"idx": i, "verdict": "bad_signature", "http_status": 401,
                      "error": "invalid signature", "invoice_id": f"PAY-bench-{done + i}",
                      "remote_addr": "127.0.0.1", "peer_addr": "127.0.0.1", "method": "POST",
                      "headers": {"Content-Type": "application/json"}, "body": body}
                     for i in range(k)]
            chain = struct.pack(">qq", lane, seq) + head + \
                b"".join(pads(key, lane, seq + i) for i in range(k))
            rows = c.execute("SELECT lane_seq, mac FROM bayarhook.ingest(%s::jsonb, NULL::text[], "
                             "'{}'::jsonb, %s::bytea)", (json.dumps(items), chain)).fetchall()
            last = max(rows)
            seq, head = last[0] + 1, bytes(last[1])
            done += k
    print(f"{n} rows in lane {lane} in {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    main()
