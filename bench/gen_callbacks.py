#!/usr/bin/python3
"""Pre-generates N unique, correctly signed bayar.gg callbacks for wrk.

usage: gen_callbacks.py SECRET N OUTFILE [PREFIX]
Each line: invoice \t timestamp \t signature \t body (one line of JSON).
Timestamps are "now", so run the benchmark within replay_window seconds
(or raise replay_window for the benchmark's config).
"""
import hashlib
import hmac
import json
import sys
import time

secret, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
prefix = sys.argv[4] if len(sys.argv) > 4 else "BENCH-%d" % int(time.time())
ts = str(int(time.time()))
with open(out, "w") as f:
    for i in range(n):
        inv = "%s-%08d" % (prefix, i)
        final = 50000 + (i % 999) + 1
        msg = "%s|paid|%d|%s" % (inv, final, ts)
        sig = hmac.new(secret.encode(), msg.encode(), hashlib.sha256).hexdigest()
        body = json.dumps({
            "event": "payment.paid", "invoice_id": inv, "status": "paid",
            "amount": 50000, "final_amount": final, "unique_code": final - 50000,
            "paid_at": "2024-01-15 12:25:30", "paid_amount": final,
            "paid_reff_num": "TRX%08d" % i, "customer_name": "John Doe",
            "customer_email": "john@example.com", "customer_phone": "08123456789",
            "description": "Pembayaran Produk A",
            "redirect_url": "https://yoursite.com/thank-you",
            "has_file": True, "has_content": False, "timestamp": int(ts),
            "signature": sig}, separators=(",", ":"))
        f.write("%s\t%s\t%s\t%s\n" % (inv, ts, sig, body))
