-- Keys, devices, batches and currencies use the "C" collation: ordered by bytes, as
-- the bbolt ledger orders them, and independent of the server's locale.

-- The ledger: every sale and refund, keyed by its idempotency key. The primary key is
-- what decides a key once: a transaction that inserts a key another one stored first
-- fails (unique_violation) and is run again, and then answers the stored decision.
CREATE TABLE entries (
	key            text COLLATE "C" PRIMARY KEY,
	type           text NOT NULL CHECK (type IN ('sale', 'refund')),
	device         text COLLATE "C" NOT NULL,
	amount_minor   bigint NOT NULL,
	currency       text COLLATE "C" NOT NULL,
	scheme         text NOT NULL DEFAULT '',
	masked_code    text NOT NULL DEFAULT '',
	status         text NOT NULL,
	reason         text NOT NULL DEFAULT '',
	created_at     timestamptz,          -- device clock; NULL when the device sent none
	batch          text COLLATE "C" NOT NULL DEFAULT '', -- the device's batch from the first request; '' from older devices
	decided_at     timestamptz NOT NULL,
	requests       integer NOT NULL DEFAULT 0,
	original_key   text COLLATE "C" NOT NULL DEFAULT '', -- refund: the sale it refunds
	refunded_minor bigint NOT NULL DEFAULT 0, -- sale: approved refunds so far
	reversed_at    timestamptz
);
-- Per-device and per-batch indexes: a batch close reads its batch, and for entries
-- without a batch the device's created_at window, not the whole ledger.
CREATE INDEX entries_by_device  ON entries (device, key);
CREATE INDEX entries_by_batch   ON entries (device, batch, key) WHERE batch <> '';
CREATE INDEX entries_by_created ON entries (device, created_at, key) WHERE batch = '';

-- Audit records of attempts (declined on the device, offline, …).
CREATE TABLE attempts (
	key          text COLLATE "C" PRIMARY KEY,
	device       text COLLATE "C" NOT NULL,
	amount_minor bigint NOT NULL,
	currency     text COLLATE "C" NOT NULL,
	kind         text NOT NULL DEFAULT '',
	scheme       text NOT NULL DEFAULT '',
	masked_code  text NOT NULL DEFAULT '',
	outcome      text NOT NULL,
	reason       text NOT NULL DEFAULT '',
	created_at   timestamptz,
	recorded_at  timestamptz NOT NULL
);
CREATE INDEX attempts_by_device ON attempts (device, key);

-- Settlement batch closes with the outcome of reconciliation; totals is the device's
-- list of per-scheme, per-currency lines as it sent them (integers, minor units).
CREATE TABLE batches (
	key         text COLLATE "C" PRIMARY KEY,
	device      text COLLATE "C" NOT NULL,
	opened_at   timestamptz,
	closed_at   timestamptz,
	totals      jsonb NOT NULL,
	status      text NOT NULL,
	reason      text NOT NULL DEFAULT '',
	recorded_at timestamptz NOT NULL
);
CREATE INDEX batches_by_device ON batches (device, key);
