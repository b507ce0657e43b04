-- pgbench script: bayarhook's own per-callback SQL, one callback per
-- transaction, exactly the statement and the one-item batch that the daemon
-- sends for a callback of bench/gen_callbacks.py (captured from the daemon
-- with log_statement = all; src/store.c, sql/003_ingest_sets.sql). The
-- daemon sends the bodies as a binary text[]; here it is an array literal.
-- Only the invoice differs per transaction. The actions map is what a config without
-- [action.*] sections sends, as in bench/run.py's bayarhook config.
--
-- Run in simple query mode (pgbench -M simple), so :inv is replaced inside
-- the literal and the JSON's own colons are left alone:
--   pgbench -n -M simple -c 8 -j 2 -T 30 -f bench/pgbench_callback.sql DB
\set inv random(1, 1000000000000000)
SELECT idx, verdict, callback_id, flag, lane_seq, mac FROM bayarhook.ingest('[{"invoice_id":"PGB-:inv","status":"paid","event_name":"payment.paid","final_amount":"50001","amount":"50000","paid_at":"2024-01-15 12:25:30","paid_reff_num":"TRX00000000","source":"callback","remote_addr":"127.0.0.1","peer_addr":"127.0.0.1","method":"POST","headers":{"Host":"127.0.0.1:37181","Content-Type":"application/json","X-Webhook-Event":"payment.paid","X-Webhook-Signature":"411146d2bacfaca97f8ef9d6c1df9b48f679a84c07396fa0e449c500fe2423cc","X-Webhook-Timestamp":"1795608501","X-Invoice-ID":"PGB-:inv","Content-Length":"522"},"idx":0}]'::jsonb, ARRAY['{"event":"payment.paid","invoice_id":"PGB-:inv","status":"paid","amount":50000,"final_amount":50001,"unique_code":1,"paid_at":"2024-01-15 12:25:30","paid_amount":50001,"paid_reff_num":"TRX00000000","customer_name":"John Doe","customer_email":"john@example.com","customer_phone":"08123456789","description":"Pembayaran Produk A","redirect_url":"https://yoursite.com/thank-you","has_file":true,"has_content":false,"timestamp":1795608501,"signature":"411146d2bacfaca97f8ef9d6c1df9b48f679a84c07396fa0e449c500fe2423cc"}']::text[], '{"pending":[],"paid":[],"expired":[],"cancelled":[]}'::jsonb, NULL::bytea);
