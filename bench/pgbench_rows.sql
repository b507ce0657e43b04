-- pgbench script: the database-only ceiling for ingest (issue 16). Exactly
-- the rows an accepted callback leaves, written straight into the migrated
-- schema with no bayarhook.ingest(), no daemon and no HTTP: its payment row
-- (the event as jsonb) and its audit row (headers as jsonb, the raw body,
-- its length and SHA-256), 16 callbacks per commit, as a busy group commit
-- would batch them. No jobs (no actions configured). Every transaction
-- writes 16 new invoices.
--
-- Run in simple query mode, so :inv is replaced inside the literals:
--   pgbench -n -M simple -c 4 -j 2 -T 10 -f bench/pgbench_rows.sql DB
-- callbacks/s = 16 x pgbench's transactions/s.
\set inv random(1, 1000000000000000)
BEGIN;
WITH b AS (
    SELECT 'PGR-:inv-' || g AS inv,
           '{"event":"payment.paid","invoice_id":"PGR-:inv-' || g || '","status":"paid","amount":50000,"final_amount":50001,"unique_code":1,"paid_at":"2024-01-15 12:25:30","paid_amount":50001,"paid_reff_num":"TRX00000000","customer_name":"John Doe","customer_email":"john@example.com","customer_phone":"08123456789","description":"Pembayaran Produk A","redirect_url":"https://yoursite.com/thank-you","has_file":true,"has_content":false,"timestamp":1795608501,"signature":"411146d2bacfaca97f8ef9d6c1df9b48f679a84c07396fa0e449c500fe2423cc"}' AS body
      FROM generate_series(1, 16) g
), p AS (
    INSERT INTO bayarhook.payments
        (invoice_id, status, amount, final_amount, paid_at, paid_reff_num, source, event)
    SELECT inv, 'paid', 50000, 50001, '2024-01-15 12:25:30', 'TRX00000000', 'callback',
           body::jsonb
      FROM b ORDER BY inv
    ON CONFLICT (invoice_id) DO NOTHING
)
INSERT INTO bayarhook.callbacks
    (remote_addr, peer_addr, invoice_id, event, status, verdict, http_status, method,
     headers, body, secret_index, signature_valid, body_length, body_sha256)
SELECT '127.0.0.1', '127.0.0.1', inv, 'payment.paid', 'paid', 'accepted', 200, 'POST',
       jsonb_build_object('Host', '127.0.0.1:37181', 'Content-Type', 'application/json',
                          'X-Webhook-Event', 'payment.paid',
                          'X-Webhook-Signature',
                          '411146d2bacfaca97f8ef9d6c1df9b48f679a84c07396fa0e449c500fe2423cc',
                          'X-Webhook-Timestamp', '1795608501', 'X-Invoice-ID', inv,
                          'Content-Length', '522'),
       body, 0, true, octet_length(body), sha256(convert_to(body, 'UTF8'))
  FROM b;
COMMIT;
