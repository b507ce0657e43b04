-- The table bench/php/callback.php writes to: what a shop adds for callbacks.
CREATE TABLE shop_callbacks (
    invoice_id     text PRIMARY KEY,
    status         text NOT NULL,
    amount         numeric,
    final_amount   numeric,
    paid_at        text,
    paid_reff_num  text,
    payload        jsonb NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now()
);
