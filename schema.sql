-- videoforge database schema, as ordered migration steps.
--
-- Each step starts at a marker line `-- migration: <version> <name>` and runs in its own
-- transaction (videoforge.db.migrations). Versions count up from 1 without gaps. A step that has
-- been applied anywhere is frozen: its checksum is recorded, so change the schema by appending a
-- new step, never by editing an old one.
--
-- User ids are plain text with no foreign key to `users`: with JWKS/OIDC auth the users live in the
-- identity provider and `users` only holds local accounts.


-- migration: 1 initial schema

-- Trigram indexes make `ILIKE '%term%'` searches indexable. The embedded server connects as a
-- superuser; on a managed PostgreSQL, creating an extension may need a superuser (or the provider's
-- admin role), in which case run this statement once by hand before the first start.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TABLE users (
    id            text PRIMARY KEY,
    username      text NOT NULL,
    password_hash text NOT NULL,
    is_admin      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Usernames are unique regardless of case: "Alice" and "alice" are one account.
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));

CREATE TABLE gallery_videos (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       text NOT NULL,
    title         text NOT NULL,
    description   text NOT NULL DEFAULT '',
    s3_key        text NOT NULL UNIQUE,
    content_type  text,
    file_size     bigint CHECK (file_size >= 0),
    status        text NOT NULL DEFAULT 'uploaded'
                  CHECK (status IN ('uploaded', 'processing', 'ready', 'failed')),
    visibility    text NOT NULL DEFAULT 'public'
                  CHECK (visibility IN ('public', 'unlisted', 'private')),
    views         bigint NOT NULL DEFAULT 0 CHECK (views >= 0),
    duration      double precision,
    resolution    text,
    width         integer,
    height        integer,
    video_codec   text,
    audio_codec   text,
    thumbnail_key text,
    preview_key   text,
    job_id        bigint,  -- foreign key added below, once jobs exists
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Keyset pagination, newest first: a user's own library, and the public gallery.
CREATE INDEX gallery_videos_user_created_idx
    ON gallery_videos (user_id, created_at DESC, id DESC);
CREATE INDEX gallery_videos_visibility_created_idx
    ON gallery_videos (visibility, created_at DESC, id DESC);

-- Case-insensitive substring search (`title ILIKE '%tutorial%'`).
CREATE INDEX gallery_videos_title_trgm_idx
    ON gallery_videos USING gin (title gin_trgm_ops);
CREATE INDEX gallery_videos_description_trgm_idx
    ON gallery_videos USING gin (description gin_trgm_ops);

CREATE TRIGGER gallery_videos_set_updated_at
    BEFORE UPDATE ON gallery_videos
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION set_updated_at();

CREATE TABLE jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id          text NOT NULL,
    input_source     text NOT NULL,
    output_format    text NOT NULL DEFAULT 'high,medium,low',
    status           text NOT NULL DEFAULT 'PENDING'
                     CHECK (status IN ('PENDING', 'DOWNLOADING', 'PROCESSING', 'UPLOADING',
                                       'COMPLETED', 'FAILED', 'CANCELLED')),
    progress         smallint NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    duration         double precision,
    resolution       text,
    video_codec      text,
    audio_codec      text,
    error_text       text,
    attempts         integer NOT NULL DEFAULT 0,
    lease_owner      text,
    lease_expires_at timestamptz,
    cancel_requested boolean NOT NULL DEFAULT false,
    gallery_video_id bigint REFERENCES gallery_videos (id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    completed_at     timestamptz
);

CREATE INDEX jobs_user_created_idx ON jobs (user_id, created_at DESC);
CREATE INDEX jobs_status_created_idx ON jobs (status, created_at);

-- Finding jobs whose worker vanished: only running jobs hold a lease, so the index stays small.
CREATE INDEX jobs_running_lease_idx ON jobs (lease_expires_at)
    WHERE status IN ('DOWNLOADING', 'PROCESSING', 'UPLOADING');

-- Deleting a gallery video must find its jobs without scanning them all.
CREATE INDEX jobs_gallery_video_idx ON jobs (gallery_video_id)
    WHERE gallery_video_id IS NOT NULL;

CREATE TRIGGER jobs_set_updated_at
    BEFORE UPDATE ON jobs
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION set_updated_at();

-- The two tables point at each other, so this side of the link waits until jobs exists.
ALTER TABLE gallery_videos
    ADD CONSTRAINT gallery_videos_job_id_fkey
    FOREIGN KEY (job_id) REFERENCES jobs (id) ON DELETE SET NULL;

-- Deleting old jobs (admin cleanup) must find the videos that point at them without a scan.
CREATE INDEX gallery_videos_job_idx ON gallery_videos (job_id)
    WHERE job_id IS NOT NULL;

CREATE TABLE media_assets (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id     bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    asset_type text NOT NULL CHECK (asset_type IN ('thumbnail', 'gif', 'video', 'hls')),
    format     text NOT NULL,
    quality    text,
    s3_key     text NOT NULL,
    file_size  bigint CHECK (file_size >= 0),
    width      integer,
    height     integer,
    bitrate    integer,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX media_assets_job_idx ON media_assets (job_id);

-- The PostgreSQL queue backend: messages are claimed with FOR UPDATE SKIP LOCKED.
CREATE TABLE queue_messages (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue            text NOT NULL,
    body             text NOT NULL,
    visible_at       timestamptz NOT NULL DEFAULT now(),
    receive_count    integer NOT NULL DEFAULT 0,
    receipt_token    uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    dead_lettered_at timestamptz
);

-- Claiming scans only live messages, oldest visible first.
CREATE INDEX queue_messages_claim_idx ON queue_messages (queue, visible_at)
    WHERE dead_lettered_at IS NULL;


-- migration: 2 gallery counts

-- Exact gallery totals without a count(*) over every row: triggers keep one row per
-- (owner, visibility), plus a row per visibility with owner '' for everybody's videos.
CREATE TABLE gallery_video_counts (
    user_id    text NOT NULL,
    visibility text NOT NULL,
    n          bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, visibility)
);

CREATE FUNCTION gallery_videos_count() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Rows are locked in key order so that concurrent visibility changes cannot deadlock.
    INSERT INTO gallery_video_counts AS c (user_id, visibility, n)
    SELECT owner, vis, sum(delta)::bigint
    FROM (
        SELECT NEW.user_id, NEW.visibility, 1 WHERE TG_OP <> 'DELETE'
        UNION ALL SELECT '', NEW.visibility, 1 WHERE TG_OP <> 'DELETE'
        UNION ALL SELECT OLD.user_id, OLD.visibility, -1 WHERE TG_OP <> 'INSERT'
        UNION ALL SELECT '', OLD.visibility, -1 WHERE TG_OP <> 'INSERT'
    ) AS delta (owner, vis, delta)
    GROUP BY owner, vis
    HAVING sum(delta) <> 0
    ORDER BY owner, vis
    ON CONFLICT (user_id, visibility) DO UPDATE SET n = c.n + EXCLUDED.n;
    RETURN NULL;
END
$$;

CREATE TRIGGER gallery_videos_count
    AFTER INSERT OR DELETE OR UPDATE OF user_id, visibility ON gallery_videos
    FOR EACH ROW EXECUTE FUNCTION gallery_videos_count();

INSERT INTO gallery_video_counts (user_id, visibility, n)
SELECT user_id, visibility, count(*) FROM gallery_videos GROUP BY user_id, visibility
UNION ALL
SELECT '', visibility, count(*) FROM gallery_videos GROUP BY visibility;

-- A view is counted on every details request: leave updated_at to real edits.
DROP TRIGGER gallery_videos_set_updated_at ON gallery_videos;
CREATE TRIGGER gallery_videos_set_updated_at
    BEFORE UPDATE ON gallery_videos
    FOR EACH ROW WHEN ((OLD.*) IS DISTINCT FROM (NEW.*) AND OLD.views = NEW.views)
    EXECUTE FUNCTION set_updated_at();


-- migration: 3 job change notifications

-- Every status or progress change is announced as `jobId:status:progress`, in commit order, so
-- event streams can report each one without polling.
CREATE FUNCTION jobs_notify_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('videoforge_jobs', NEW.id || ':' || NEW.status || ':' || NEW.progress);
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_notify_change
    AFTER UPDATE OF status, progress ON jobs
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.progress IS DISTINCT FROM NEW.progress)
    EXECUTE FUNCTION jobs_notify_change();


-- migration: 4 storage sweep, admin cleanup and limits

-- Every upload URL handed out, until its video is confirmed. An object with no row referring to
-- it is reclaimed by the storage sweep; this row spares an upload in flight for a day.
CREATE TABLE uploads (
    s3_key     text PRIMARY KEY,
    user_id    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Sweeps tell pending uploads from abandoned ones, and prune the abandoned rows.
CREATE INDEX uploads_created_idx ON uploads (created_at);

-- A job may be restarted, so its original is needed for as long as the job row exists: the sweep
-- looks up a batch of keys at a time.
CREATE INDEX jobs_input_source_idx ON jobs (input_source);

-- A video keeps showing its thumbnail and preview after an admin deleted the job that made them:
-- the sweep must find those keys before it treats the job's outputs as orphans.
CREATE INDEX gallery_videos_thumbnail_idx ON gallery_videos (thumbnail_key)
    WHERE thumbnail_key IS NOT NULL;
CREATE INDEX gallery_videos_preview_idx ON gallery_videos (preview_key)
    WHERE preview_key IS NOT NULL;

-- The cap on a user's unfinished jobs counts them for every new job: index only those.
CREATE INDEX jobs_user_active_idx ON jobs (user_id)
    WHERE status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED');

-- Admin cleanup looks for jobs that ended before a cutoff.
CREATE INDEX jobs_completed_idx ON jobs (completed_at)
    WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED');


-- migration: 5 queue claim order

-- Claims take visible messages in the order they were first sent: a message back from a dead
-- worker, or handed back, keeps its place ahead of newer ones (visible_at would put it last).
CREATE INDEX queue_messages_order_idx ON queue_messages (queue, id)
    WHERE dead_lettered_at IS NULL;


-- migration: 6 upload size and version

-- The size a client declared for its upload (its upload URL is signed for that size): confirm
-- refuses an object of another size. NULL: none was declared.
ALTER TABLE uploads ADD COLUMN declared_size bigint;

-- The original's ETag when it was confirmed (with file_size, its size then). A presigned S3 PUT
-- cannot be revoked, so every later read of the original checks both. NULL: confirmed before
-- this column existed; only the size is checked.
ALTER TABLE gallery_videos ADD COLUMN etag text;


-- migration: 7 multipart uploads

-- A multipart upload's id (NULL for a single PUT): each request of the upload names it, and the
-- row says whose upload it is and which key it builds. completed_at: its parts were assembled
-- into the object, which confirm takes from then on (and refuses before).
ALTER TABLE uploads ADD COLUMN multipart_upload_id text UNIQUE;
ALTER TABLE uploads ADD COLUMN completed_at timestamptz;


-- migration: 8 chunk tasks

-- A long source is encoded in chunks, each a task of its own on the queue: any worker may run
-- any chunk, under a lease fenced like a job's. The job's worker plans the chunks (a retry or
-- a restart keeps those already COMPLETED, whose video is in storage), runs chunks itself while
-- any is waiting, and stitches once all are done. A failed attempt waits until retry_at.
CREATE TABLE job_chunks (
    job_id           bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    index            integer NOT NULL CHECK (index >= 0),
    start_seconds    double precision NOT NULL CHECK (start_seconds >= 0),
    duration_seconds double precision NOT NULL CHECK (duration_seconds > 0),
    to_end           boolean NOT NULL,
    status           text NOT NULL DEFAULT 'PENDING'
                     CHECK (status IN ('PENDING', 'RUNNING', 'COMPLETED', 'FAILED')),
    progress         real NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
    attempts         integer NOT NULL DEFAULT 0,
    lease_owner      text,
    lease_expires_at timestamptz,
    retry_at         timestamptz,
    error_text       text,
    completed_at     timestamptz,
    -- What the chunk's HLS holds, per rung (init segment, segments, durations, sizes): the
    -- job's worker writes the playlists from it, while chunks encode and at the end.
    hls              jsonb,
    PRIMARY KEY (job_id, index)
);

-- How far a chunked job's chunks are (NULL: the job is not chunked), for its JSON and events;
-- and the probe of its source, which every chunk is encoded with (whichever worker runs it).
ALTER TABLE jobs ADD COLUMN chunks_total integer;
ALTER TABLE jobs ADD COLUMN chunks_completed integer NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN media_info jsonb;

-- A finished chunk is news for event streams too: `jobId:status:progress:chunksCompleted`.
CREATE OR REPLACE FUNCTION jobs_notify_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(
        'videoforge_jobs',
        NEW.id || ':' || NEW.status || ':' || NEW.progress || ':' || NEW.chunks_completed);
    RETURN NULL;
END
$$;

DROP TRIGGER jobs_notify_change ON jobs;
CREATE TRIGGER jobs_notify_change
    AFTER UPDATE OF status, progress, chunks_completed ON jobs
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.progress IS DISTINCT FROM NEW.progress
          OR OLD.chunks_completed IS DISTINCT FROM NEW.chunks_completed)
    EXECUTE FUNCTION jobs_notify_change();


-- migration: 9 webhooks

-- URLs users register to be told of changes to their videos and jobs (Standard Webhooks). The
-- secret signs every delivery; after a rotation the previous one signs too, until it expires.
-- failing_since: the first failed attempt since the last success (an endpoint failing for days
-- is disabled).
CREATE TABLE webhook_endpoints (
    id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id                text NOT NULL,
    url                    text NOT NULL,
    events                 text[] NOT NULL,
    description            text NOT NULL DEFAULT '',
    enabled                boolean NOT NULL DEFAULT true,
    disabled_reason        text,
    secret                 text NOT NULL,
    previous_secret        text,
    previous_secret_until  timestamptz,
    failing_since          timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhook_endpoints_user_idx ON webhook_endpoints (user_id, id);

CREATE TRIGGER webhook_endpoints_set_updated_at
    BEFORE UPDATE ON webhook_endpoints
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION set_updated_at();

-- The outbox. An event is written by a trigger on the change it reports, in that change's own
-- transaction: no committed change goes unreported, no rolled-back one is reported. `subject`
-- is the job's or video's row as the change left it; deliveries present it as the API does.
-- message_id is the receivers' idempotency key (the `webhook-id` header), the same on retries.
CREATE TABLE webhook_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id  text NOT NULL UNIQUE
                DEFAULT 'msg_' || replace(gen_random_uuid()::text, '-', ''),
    type        text NOT NULL,
    user_id     text NOT NULL,
    subject     jsonb NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now()
);

-- One per event and endpoint subscribed to it when it happened. A PENDING delivery is due at
-- next_attempt_at; a delivery loop claims it with FOR UPDATE SKIP LOCKED and holds it until
-- lease_expires_at while it posts.
CREATE TABLE webhook_deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         bigint NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    endpoint_id      bigint NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    status           text NOT NULL DEFAULT 'PENDING'
                     CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz DEFAULT now(),
    lease_expires_at timestamptz,
    last_attempt_at  timestamptz,
    last_status_code integer,
    last_error       text,
    last_response    text,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- Claims walk the pending deliveries in event order, skipping endpoints with one in flight.
CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (event_id, id)
    WHERE status = 'PENDING';
CREATE INDEX webhook_deliveries_in_flight_idx ON webhook_deliveries (endpoint_id)
    WHERE status = 'PENDING' AND lease_expires_at IS NOT NULL;
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id DESC);
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id);

-- Writes an event and its deliveries, when any enabled endpoint of the owner subscribes to it.
CREATE FUNCTION webhook_record_event(kind text, owner text, subject jsonb) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    event_id bigint;
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM webhook_endpoints
        WHERE user_id = owner AND enabled AND kind = ANY (events)
    ) THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_events (type, user_id, subject)
    VALUES (kind, owner, subject) RETURNING id INTO event_id;
    INSERT INTO webhook_deliveries (event_id, endpoint_id)
    SELECT event_id, e.id FROM webhook_endpoints e
    WHERE e.user_id = owner AND e.enabled AND kind = ANY (e.events)
    ORDER BY e.id;
    RETURN event_id;
END
$$;

-- A job's start (its first step after PENDING) and its end.
CREATE FUNCTION jobs_webhook_event() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    kind text := CASE
        WHEN NEW.status = 'COMPLETED' THEN 'job.completed'
        WHEN NEW.status = 'FAILED' THEN 'job.failed'
        WHEN NEW.status = 'CANCELLED' THEN 'job.cancelled'
        WHEN OLD.status = 'PENDING' AND NEW.status <> 'PENDING' THEN 'job.started'
    END;
BEGIN
    IF kind IS NOT NULL THEN
        PERFORM webhook_record_event(kind, NEW.user_id, to_jsonb(NEW));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_webhook_event
    AFTER UPDATE OF status ON jobs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION jobs_webhook_event();

-- When a video could first be watched: while its job still encodes (the first chunks are
-- published), or else when it became ready. Set once, so video.playable is sent once.
ALTER TABLE gallery_videos ADD COLUMN playable_at timestamptz;

CREATE FUNCTION gallery_videos_mark_playable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'ready' AND NEW.playable_at IS NULL THEN
        NEW.playable_at := now();
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER gallery_videos_mark_playable
    BEFORE INSERT OR UPDATE OF status ON gallery_videos
    FOR EACH ROW EXECUTE FUNCTION gallery_videos_mark_playable();

-- A video's arrival (confirm), first playability, readiness and deletion, in that order.
CREATE FUNCTION gallery_videos_webhook_event() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM webhook_record_event('video.deleted', OLD.user_id, to_jsonb(OLD));
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM webhook_record_event('video.uploaded', NEW.user_id, to_jsonb(NEW));
    END IF;
    IF NEW.playable_at IS NOT NULL
       AND (TG_OP = 'INSERT' OR OLD.playable_at IS NULL) THEN
        PERFORM webhook_record_event('video.playable', NEW.user_id, to_jsonb(NEW));
    END IF;
    IF NEW.status = 'ready' AND (TG_OP = 'INSERT' OR OLD.status <> 'ready') THEN
        PERFORM webhook_record_event('video.ready', NEW.user_id, to_jsonb(NEW));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER gallery_videos_webhook_event
    AFTER INSERT OR DELETE OR UPDATE OF status, playable_at ON gallery_videos
    FOR EACH ROW EXECUTE FUNCTION gallery_videos_webhook_event();


-- migration: 10 storyboards, captions and animated previews

-- A job's outputs gain its storyboard (the WebVTT index, `storyboard`, and its JPEG sprites,
-- `sprite`) and an animated WebP preview (`webp`, named by its format as the `gif` is), kept
-- only where it is smaller than the GIF.
ALTER TABLE media_assets DROP CONSTRAINT media_assets_asset_type_check;
ALTER TABLE media_assets ADD CONSTRAINT media_assets_asset_type_check
    CHECK (asset_type IN ('thumbnail', 'gif', 'webp', 'video', 'hls', 'storyboard', 'sprite'));

-- Caption tracks, one per language of a video, already converted to sanitised WebVTT. They are
-- small (1 MiB at most) and change with the video's record, so they live beside it rather than
-- in storage: replacing one is one statement, and deleting the video deletes them.
CREATE TABLE video_captions (
    video_id   bigint NOT NULL REFERENCES gallery_videos (id) ON DELETE CASCADE,
    language   text NOT NULL CHECK (length(language) BETWEEN 2 AND 64),
    label      text NOT NULL CHECK (length(label) BETWEEN 1 AND 100),
    content    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (video_id, language)
);
