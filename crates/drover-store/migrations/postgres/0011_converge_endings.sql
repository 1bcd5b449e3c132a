-- The converge job that gave up (refused, or out of retries) while the account was still at the
-- generation it had read. River merges a change into a running job of the same account, and a
-- job that gives up is not completed in the change's transaction: a change made after this is
-- set enqueues a job of its own (keyed by the job that gave up) instead of joining it.
ALTER TABLE accounts ADD COLUMN converge_ended_by BIGINT;
