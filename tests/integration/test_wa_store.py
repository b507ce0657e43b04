"""The wa_store action (SPEC §9) against the fake bayar.gg's WA Store
endpoints and rules (SPEC §1): it finds the invoice's order, completes it
(or cancels it on expiry) with or without the buyer's WhatsApp message,
succeeds without a call when the order is already so, and makes the job
dead at once when the store's rules forbid the change.
"""

import bh

OK = {"success": True}


def jobs(db, invoice):
    return db.query("SELECT * FROM bayarhook.jobs WHERE invoice_id = %s ORDER BY id", [invoice])


def done_job(db, invoice, state):
    return bh.wait_for(lambda: (lambda js: js[0] if js and js[0]["state"] in
                                ("succeeded", "dead") else None)(jobs(db, invoice)),
                       30 * bh.SLOW, what=f"the job {state}")


def daemon(make_daemon, gateway, action):
    return make_daemon(gateway_url=gateway.base_url, config={
        "reconciler": {"enabled": "false"},
        "fulfillment": {"max_attempts": "3", "backoff_initial": "1"},
        "action.store": {"type": "wa_store", **action}})


def test_complete_a_paid_order(make_daemon, gateway, db):
    inv = bh.new_invoice("wa")
    gateway.add_wa_order("WA260329-A1B2", inv, status="paid")
    gateway.add_wa_order("WA260329-OTHER", "PAY-someone-else", status="paid")
    d = daemon(make_daemon, gateway, {"on": "paid"})
    assert d.callback(inv).json == OK
    job = done_job(db, inv, "succeeded")
    assert job["state"] == "succeeded", job["last_error"]
    assert gateway.wa_status("WA260329-A1B2") == "completed"
    assert gateway.wa_status("WA260329-OTHER") == "paid"
    assert gateway.wa_notified == ["WA260329-A1B2"]
    (search,) = gateway.requests_to("wa-store-orders")
    assert search["query"]["search"] == inv and search["headers"]["X-API-Key"]
    (post,) = gateway.requests_to("wa-store-complete")
    assert post["method"] == "POST"


def test_already_completed_is_success_without_a_call(make_daemon, gateway, db):
    inv = bh.new_invoice("wadone")
    gateway.add_wa_order("WA-DONE", inv, status="completed")
    d = daemon(make_daemon, gateway, {})
    assert d.callback(inv).json == OK
    assert done_job(db, inv, "succeeded")["state"] == "succeeded"
    assert gateway.requests_to("wa-store-complete") == []
    assert gateway.wa_notified == []


def test_completing_a_cancelled_order_is_dead_at_once(make_daemon, gateway, db):
    inv = bh.new_invoice("wacanc")
    gateway.add_wa_order("WA-CANC", inv, status="cancelled")
    d = daemon(make_daemon, gateway, {})
    assert d.callback(inv).json == OK
    job = done_job(db, inv, "dead")
    assert job["state"] == "dead" and job["attempts"] == 1
    assert "WA Store order WA-CANC is cancelled: cannot complete it" in job["last_error"]
    assert gateway.wa_status("WA-CANC") == "cancelled"


def test_cancel_on_expiry_without_a_message(make_daemon, gateway, db):
    inv = bh.new_invoice("waexp")
    gateway.add_wa_order("WA-EXP", inv, status="waiting_payment")
    d = daemon(make_daemon, gateway, {"on": "expired", "operation": "cancel",
                                      "notify": "false"})
    assert d.callback(inv, status="expired").json == OK
    assert done_job(db, inv, "succeeded")["state"] == "succeeded"
    assert gateway.wa_status("WA-EXP") == "cancelled"
    assert gateway.wa_notified == []


def test_cancelling_a_completed_order_is_dead(make_daemon, gateway, db):
    inv = bh.new_invoice("wacc")
    gateway.add_wa_order("WA-CC", inv, status="completed")
    d = daemon(make_daemon, gateway, {"on": "expired", "operation": "cancel"})
    assert d.callback(inv, status="expired").json == OK
    job = done_job(db, inv, "dead")
    assert job["state"] == "dead" and job["attempts"] == 1
    assert gateway.wa_status("WA-CC") == "completed"


def test_store_refusal_is_permanent_and_5xx_is_retried(make_daemon, gateway, db):
    inv = bh.new_invoice("waref")
    gateway.add_wa_order("WA-REF", inv, status="paid")
    # 5xx answers are the gateway's passing trouble: retried inside the call.
    gateway.fail_next(1, status=503)
    d = daemon(make_daemon, gateway, {})
    assert d.callback(inv).json == OK
    assert done_job(db, inv, "succeeded")["state"] == "succeeded"
    inv2 = bh.new_invoice("waref2")
    gateway.add_wa_order("WA-REF2", inv2, status="paid")
    gateway.fail_next(1, status=200, body={"success": False, "error": "order locked"})
    assert d.callback(inv2).json == OK
    job = done_job(db, inv2, "dead")
    assert job["state"] == "dead" and job["attempts"] == 1
    assert "order locked" in job["last_error"]


def test_no_order_yet_is_retried(make_daemon, gateway, db):
    inv = bh.new_invoice("wanone")
    d = daemon(make_daemon, gateway, {})
    assert d.callback(inv).json == OK
    bh.wait_for(lambda: (jobs(db, inv) or [{}])[0].get("attempts", 0) >= 1 and
                jobs(db, inv)[0]["state"] == "pending", 30 * bh.SLOW, what="a retry pending")
    assert "no WA Store order for invoice" in jobs(db, inv)[0]["last_error"]
    gateway.add_wa_order("WA-LATE", inv, status="paid")
    assert done_job(db, inv, "succeeded")["state"] == "succeeded"
    assert gateway.wa_status("WA-LATE") == "completed"
