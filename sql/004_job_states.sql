-- 004: held and cancelled are states of their own (SPEC §6). Until now a
-- held job (confirm_with_api) was a pending one with next_attempt_at =
-- 'infinity', a fact every reader had to know; cancelled did not exist.
-- The functions that move jobs between states are in sql/functions/, which
-- bayarhook migrate applies after this, in the same transaction.
ALTER TABLE bayarhook.jobs
    DROP CONSTRAINT jobs_state_check,
    ADD CONSTRAINT jobs_state_check
        CHECK (state IN ('pending', 'running', 'succeeded', 'dead', 'held', 'cancelled'));

-- A held job was never due: its creation is the honest next_attempt_at.
UPDATE bayarhook.jobs SET state = 'held', next_attempt_at = created_at
 WHERE state = 'pending' AND next_attempt_at = 'infinity';

-- The confirmer looks for held jobs by invoice every few seconds.
CREATE INDEX jobs_held_idx ON bayarhook.jobs (invoice_id) WHERE state = 'held';
