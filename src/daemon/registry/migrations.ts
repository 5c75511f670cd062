/**
 * @module daemon/registry/migrations
 * Numbered schema migrations; migration N sets `PRAGMA user_version = N`.
 * Never edit a released migration: append a new one.
 */

/** Migration SQL, index 0 is version 1. */
export const migrations: string[] = [
  // 1: secrets, apps, releases.
  `
  CREATE TABLE workspace_secrets (
    name TEXT PRIMARY KEY,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
  );
  CREATE TABLE apps (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    image TEXT NOT NULL,
    command TEXT NOT NULL,
    expose TEXT NOT NULL,
    created_at TEXT NOT NULL
  );
  CREATE TABLE app_secrets (
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (app_id, name)
  );
  CREATE TABLE releases (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    label TEXT,
    image_digest TEXT,
    created_at TEXT NOT NULL,
    seq INTEGER NOT NULL
  );
  CREATE INDEX releases_by_app ON releases(app_id, seq);
  `,
  // 2: tasks (one command in a fresh VM).
  `
  CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    command TEXT NOT NULL,
    image TEXT,
    exit_code INTEGER,
    signal TEXT,
    error TEXT,
    vmm_pid INTEGER,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT
  );
  `,
  // 3: instances (long-lived VMs). `spec` holds the immutable launch spec as JSON.
  `
  CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    handle TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    spec TEXT NOT NULL,
    exit_code INTEGER,
    error TEXT,
    vmm_pid INTEGER,
    created_at TEXT NOT NULL,
    started_at TEXT,
    last_active_at TEXT
  );
  `,
  // 4: tether frames, both directions, one sequence per instance that never
  // goes back (tether_seq survives pruning), msg_id indexed for idempotent ingress.
  `
  CREATE TABLE tether_frames (
    instance_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('ingress', 'egress')),
    msg_id TEXT,
    frame TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (instance_id, seq)
  );
  CREATE INDEX tether_frames_age ON tether_frames(created_at);
  CREATE INDEX tether_frames_msg ON tether_frames(instance_id, direction, msg_id);
  CREATE TABLE tether_seq (
    instance_id TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
  );
  `,
  // 5: VM processes, recorded the moment they are spawned (live restore): a
  // starting aegisd re-adopts the VMs whose process is still the one recorded
  // (pid + /proc start time) and kills the rest. `spec` is the VmSpec as JSON.
  `
  CREATE TABLE vms (
    id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    start_time TEXT NOT NULL,
    virtiofsd_pid INTEGER,
    virtiofsd_start_time TEXT,
    template INTEGER NOT NULL,
    ready INTEGER NOT NULL DEFAULT 0,
    spec TEXT NOT NULL,
    created_at TEXT NOT NULL
  );
  `,
  // 6: the network namespace slot of a VM process (live restore rebuilds its
  // host side: DNS resolver, relays); NULL for a VM without one (reduced mode).
  `
  ALTER TABLE vms ADD COLUMN net_slot INTEGER;
  `,
  // 7: an app's egress policy as JSON (api/network-policy.ts); NULL for apps
  // created before policies existed, which get the default.
  `
  ALTER TABLE apps ADD COLUMN network TEXT;
  `,
  // 8: secrets kept out of the guest (api/egress-secrets.ts): how a secret
  // reaches a guest (JSON SecretEgress; 'auto' binds the LLM keys to their
  // provider's host) and the random id of its placeholder AEGIS_SECRET_<id>.
  `
  ALTER TABLE workspace_secrets ADD COLUMN egress TEXT NOT NULL DEFAULT '{"mode":"auto"}';
  ALTER TABLE workspace_secrets ADD COLUMN placeholder TEXT;
  UPDATE workspace_secrets SET placeholder = lower(hex(randomblob(16)));
  ALTER TABLE app_secrets ADD COLUMN egress TEXT NOT NULL DEFAULT '{"mode":"auto"}';
  ALTER TABLE app_secrets ADD COLUMN placeholder TEXT;
  UPDATE app_secrets SET placeholder = lower(hex(randomblob(16)));
  `,
  // 9: live restore of the rest of an instance's runtime state: its keepalive
  // lease (ms since the epoch, NULL when none), and whether a task is an
  // interactive session (-i/-t), which ends with its connection; and the last
  // ingress tether frame handed to the guest (frames after it are delivered
  // again by the next daemon; every frame stored before this was delivered or given up).
  `
  ALTER TABLE instances ADD COLUMN keepalive_until INTEGER;
  ALTER TABLE tasks ADD COLUMN interactive INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE tether_seq ADD COLUMN delivered_seq INTEGER NOT NULL DEFAULT 0;
  UPDATE tether_seq SET delivered_seq = last_seq;
  `,
];
