-- 015: the status page (SPEC §8) lists and counts flagged payments on every
-- summary; without an index that is a scan of every payment ever recorded.
-- Flagged payments are rare, so the partial index is small and costs an
-- ingest nothing but the predicate.
CREATE INDEX IF NOT EXISTS payments_flagged_idx ON bayarhook.payments (updated_at)
    WHERE flagged;
