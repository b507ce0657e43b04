"""A small imitation of the bayar.gg API (SPEC §1), for reconciler tests.

    g = FakeGateway(api_key="k"); g.start()
    g.base_url                      -> "http://127.0.0.1:PORT/api" ([gateway] base_url)
    g.add_payment("PAY-1", status="paid", final_amount=50123)
    g.fail_next(2, status=429, retry_after=1)   # next 2 API requests answer 429
    g.requests                      -> [{"method","path","endpoint","query","headers","status","time"}]
    g.send_callback(url, "PAY-1", secret="whsec_...")   # the gateway's own callback
    g.stop()

Endpoints (under /api):
    GET /check-payment.php?invoice=ID   (the API docs' name; the gateway's own examples
        say invoice_id=ID, and either is answered; invoice wins when both are given)
        200 {"success":true,"invoice_id",...}; 404 {"success":false,...} when unknown
    GET /list-payments.php?status=&start_date=YYYY-MM-DD&end_date=&page=&limit=
        200 {"success":true,"data":[...],"pagination":{"page","limit","total","total_pages"}}
        limit > 100 (or not a number) -> 400; newest first; dates are WIB (UTC+7)
    GET /get-account-status.php   200 {"success":true,...}: what `bayarhook doctor` asks
Every request needs X-API-Key equal to api_key, else 401.
g.list_delay = 0.5 delays every list-payments answer (a slow gateway, for crash tests).
"""

import copy
import datetime
import json
import math
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import bh

WIB = datetime.timezone(datetime.timedelta(hours=7))


def wib_now():
    return datetime.datetime.now(WIB).replace(microsecond=0)


def wib_text(dt):
    """'YYYY-MM-DD HH:MM:SS' in WIB, as the gateway writes times."""
    if dt is None:
        return None
    if isinstance(dt, (int, float)):
        dt = datetime.datetime.fromtimestamp(dt, WIB)
    if isinstance(dt, str):
        return dt
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=WIB)
    return dt.astimezone(WIB).strftime("%Y-%m-%d %H:%M:%S")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-bayar.gg/1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _send(self, status, obj, extra_headers=None):
        data = json.dumps(obj).encode()
        # Logged even when the client hangs up before the answer is written.
        self.answered = status
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra_headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(data)
        return status

    def do_GET(self):  # noqa: N802
        self.server.gateway._handle(self)

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        self.server.gateway._handle(self)


class FakeGateway:
    def __init__(self, api_key=bh.DEFAULT_API_KEY, prefix="/api", host="127.0.0.1", port=0):
        self.api_key = api_key
        self.prefix = prefix.rstrip("/")
        self.payments = {}          # invoice_id -> dict of check-payment fields (+created_at)
        self.requests = []          # request log
        self.unknown_status = 404   # check-payment answer for an unknown invoice
        self.list_delay = 0         # seconds before each list-payments answer
        self._forced = []           # [(status, body, headers)] for the next requests
        self.wa_orders = {}         # order_number -> {"order_number", "invoice_id", "status", ...}
        self.wa_notified = []       # order numbers a WhatsApp message went out for
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._server = ThreadingHTTPServer((host, port), _Handler)
        self._server.daemon_threads = True
        self._server.gateway = self
        self._thread = None

    # --- lifecycle -------------------------------------------------------
    @property
    def port(self):
        return self._server.server_address[1]

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- scripting -------------------------------------------------------
    def add_payment(self, invoice_id, status="paid", amount=50000, final_amount=50123,
                    payment_method="QRIS", created_at=None, paid_at=None, paid_reff_num=None,
                    expires_at=None, **extra):
        """Adds or replaces a payment. Times: datetime, unix seconds or WIB text."""
        created = created_at if created_at is not None else wib_now() - datetime.timedelta(minutes=10)
        if status == "paid":
            paid_at = paid_at if paid_at is not None else wib_now() - datetime.timedelta(minutes=5)
            paid_reff_num = paid_reff_num or f"TRX{abs(hash(invoice_id)) % 10**9:09d}"
        if expires_at is None:
            base = created if isinstance(created, datetime.datetime) else wib_now()
            expires_at = base + datetime.timedelta(hours=1)
        p = {
            "invoice_id": invoice_id,
            "status": status,
            "amount": amount,
            "final_amount": final_amount,
            "payment_method": payment_method,
            "paid_at": wib_text(paid_at),
            "paid_reff_num": paid_reff_num,
            "expires_at": wib_text(expires_at),
            "created_at": wib_text(created),
        }
        p.update(extra)
        with self._lock:
            self.payments[invoice_id] = p
        return p

    def set_status(self, invoice_id, status, **fields):
        with self._lock:
            p = self.payments[invoice_id]
            p["status"] = status
            if status == "paid" and not p.get("paid_at"):
                p["paid_at"] = wib_text(wib_now())
                p["paid_reff_num"] = p.get("paid_reff_num") or f"TRX{int(time.time())}"
            p.update(fields)
            return dict(p)

    def add_wa_order(self, order_number, invoice_id, status="paid", customer_name="Budi",
                     total=75000):
        """A WA Store order; search matches its number, customer name or invoice id."""
        with self._lock:
            self.wa_orders[order_number] = {"order_number": order_number,
                                            "invoice_id": invoice_id,
                                            "customer_name": customer_name,
                                            "status": status, "total": total}

    def wa_status(self, order_number):
        with self._lock:
            return self.wa_orders[order_number]["status"]

    def fail_next(self, n=1, status=429, retry_after=None, body=None):
        """The next n API requests (any endpoint) get this answer instead."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        if body is None:
            body = {"success": False,
                    "error": "rate limit exceeded" if status == 429 else "internal error"}
        with self._lock:
            self._forced.extend([(status, body, headers)] * n)

    def clear_requests(self):
        with self._lock:
            self.requests.clear()

    def requests_to(self, endpoint):
        """Logged requests to 'check-payment' or 'list-payments'."""
        with self._lock:
            return [r for r in self.requests if r["endpoint"] == endpoint]

    def wait_requests(self, n, endpoint=None, timeout=30):
        """Blocks until at least n (matching) requests were logged; returns them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [r for r in self.requests if endpoint is None or r["endpoint"] == endpoint]
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"fake gateway: {len(got)} of {n} requests"
                                       f" to {endpoint or 'any endpoint'} after {timeout}s")
                self._cond.wait(left)

    # --- the gateway's own role: send a signed callback -------------------
    def callback_for(self, invoice_id, secret, ts=None, headers=True, **overrides):
        """(body, headers) of the callback bayar.gg would send for a stored payment."""
        with self._lock:
            p = dict(self.payments[invoice_id])
        kw = dict(status=p["status"], amount=p["amount"], final_amount=p["final_amount"],
                  ts=ts, secret=secret, headers=headers,
                  extra={"paid_at": p.get("paid_at"), "paid_reff_num": p.get("paid_reff_num")})
        kw.update(overrides)
        return bh.make_callback(invoice_id, **kw)

    def send_callback(self, url, invoice_id, secret, ts=None, headers=True, **overrides):
        """POSTs that callback to url; returns bh.Response."""
        body, hdrs = self.callback_for(invoice_id, secret, ts=ts, headers=headers, **overrides)
        return bh.post(url, body, hdrs)

    # --- request handling ------------------------------------------------
    def _handle(self, h):
        parsed = urllib.parse.urlsplit(h.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query,
                                                            keep_blank_values=True).items()}
        path = parsed.path
        endpoint = None
        if path.startswith(self.prefix + "/"):
            endpoint = path[len(self.prefix) + 1:]
            endpoint = endpoint[:-4] if endpoint.endswith(".php") else endpoint
        entry = {"method": h.command, "path": h.path, "endpoint": endpoint, "query": query,
                 "headers": {k: v for k, v in h.headers.items()}, "time": time.time(),
                 "status": None}
        try:
            entry["status"] = self._answer(h, endpoint, query)
        except (BrokenPipeError, ConnectionResetError):
            entry["status"] = getattr(h, "answered", None)
            entry["client_gone"] = True
        finally:
            with self._cond:
                # Logged after the answer, so a client's next request (another
                # thread) may log first: keep the log in the order received.
                i = len(self.requests)
                while i > 0 and self.requests[i - 1]["time"] > entry["time"]:
                    i -= 1
                self.requests.insert(i, entry)
                self._cond.notify_all()

    def _answer(self, h, endpoint, query):
        if endpoint not in ("check-payment", "list-payments", "get-account-status",
                            "wa-store-orders", "wa-store-complete"):
            return h._send(404, {"success": False, "error": "not found"})
        want = "POST" if endpoint == "wa-store-complete" else "GET"
        if h.command != want:
            return h._send(405, {"success": False, "error": "method not allowed"},
                           {"Allow": want})
        if h.headers.get("X-API-Key") != self.api_key:
            return h._send(401, {"success": False, "error": "Invalid or missing API key"})
        with self._lock:
            forced = self._forced.pop(0) if self._forced else None
        if forced:
            return h._send(*forced)
        if endpoint == "check-payment":
            return self._check_payment(h, query)
        if endpoint == "get-account-status":
            # What `bayarhook doctor` asks: is this key accepted.
            return h._send(200, {"success": True, "data": {"status": "active"}})
        if endpoint == "wa-store-orders":
            return self._wa_orders(h, query)
        if endpoint == "wa-store-complete":
            return self._wa_complete(h)
        return self._list_payments(h, query)

    def _wa_orders(self, h, query):
        """SPEC §1: search by number, name, phone or invoice id; limit <= 100."""
        search = query.get("search", "")
        try:
            limit = int(query.get("limit") or 20)
            offset = int(query.get("offset") or 0)
        except ValueError:
            return h._send(400, {"success": False, "error": "bad limit or offset"})
        if not 1 <= limit <= 100:
            return h._send(400, {"success": False, "error": "limit must be 1 to 100"})
        with self._lock:
            found = [dict(o) for o in self.wa_orders.values()
                     if not search or search in (o["order_number"], o["customer_name"],
                                                 o["invoice_id"])]
        if query.get("status"):
            found = [o for o in found if o["status"] == query["status"]]
        if query.get("order_number"):
            found = [o for o in found if o["order_number"] == query["order_number"]]
        return h._send(200, {"success": True, "data": found[offset:offset + limit],
                             "total": len(found)})

    def _wa_complete(self, h):
        """completed only from paid or processing; a completed order is never cancelled."""
        try:
            req = json.loads(h.body or b"{}")
        except ValueError:
            return h._send(400, {"success": False, "error": "invalid JSON"})
        number, status = req.get("order_number"), req.get("status")
        if status not in ("completed", "cancelled") or not isinstance(req.get("notify", True),
                                                                        bool):
            return h._send(400, {"success": False, "error": "status must be completed or cancelled"})
        with self._lock:
            o = self.wa_orders.get(number)
            if o is None:
                return h._send(404, {"success": False, "error": "Order not found"})
            if status == "completed" and o["status"] not in ("paid", "processing"):
                return h._send(200, {"success": False,
                                     "error": f"cannot complete an order that is {o['status']}"})
            if status == "cancelled" and o["status"] == "completed":
                return h._send(200, {"success": False,
                                     "error": "a completed order cannot be cancelled"})
            o["status"] = status
            if req.get("notify", True):
                self.wa_notified.append(number)
            order = dict(o)
        return h._send(200, {"success": True, "message": f"order {status}",
                             "order": {"order_number": number, "status": order["status"]}})

    def _check_payment(self, h, query):
        inv = query.get("invoice") or query.get("invoice_id") or ""
        if not inv:
            return h._send(400, {"success": False, "error": "invoice is required"})
        with self._lock:
            p = copy.deepcopy(self.payments.get(inv))
        if p is None:
            return h._send(self.unknown_status, {"success": False, "error": "Payment not found"})
        p.pop("created_at", None)
        return h._send(200, {"success": True, **p})

    def _list_payments(self, h, query):
        def bad(msg):
            return h._send(400, {"success": False, "error": msg})

        try:
            page = int(query.get("page") or 1)
            limit = int(query.get("limit") or 10)
        except ValueError:
            return bad("page and limit must be integers")
        if page < 1 or limit < 1 or limit > 100:
            return bad("limit must be between 1 and 100, page >= 1")
        dates = {}
        for k in ("start_date", "end_date"):
            v = query.get(k) or ""
            if v:
                try:
                    dates[k] = datetime.date.fromisoformat(v)
                except ValueError:
                    return bad(f"{k} must be YYYY-MM-DD")
        status = query.get("status") or ""
        if self.list_delay:
            time.sleep(self.list_delay)
        with self._lock:
            items = copy.deepcopy(list(self.payments.values()))
        out = []
        for p in items:
            if status and p["status"] != status:
                continue
            day = datetime.date.fromisoformat(p["created_at"][:10])
            if "start_date" in dates and day < dates["start_date"]:
                continue
            if "end_date" in dates and day > dates["end_date"]:
                continue
            out.append(p)
        out.sort(key=lambda p: (p["created_at"], p["invoice_id"]), reverse=True)
        total = len(out)
        pages = math.ceil(total / limit) if total else 0
        data = out[(page - 1) * limit:page * limit]
        return h._send(200, {"success": True, "data": data,
                             "pagination": {"page": page, "limit": limit, "total": total,
                                            "total_pages": pages}})
