-- sqlmorph demo: "Session", a music-practice tracker (target schema, v4).
--
-- Changes from production (v3, examples/demo/production.sql):
--   users.timezone   added, TEXT NOT NULL DEFAULT 'UTC'
--   tunes.abc_url    added, nullable
--   practice.rating  removed (holds data: needs --allow-destructive)
--   practice.tempo   TEXT -> INTEGER (every stored value is an integer string)
--   goals            new table, FKs to users and tunes
--   goals_user, practice_tune_tempo   new indexes
--   tune_stats       view: avg_rating replaced by max_tempo
--
-- bench/run splits this file at the "-- INDEXES --" marker: everything above
-- it must be CREATE TABLE statements (and pragmas).

PRAGMA user_version = 4;

CREATE TABLE users (
    id           INTEGER PRIMARY KEY,
    email        TEXT    NOT NULL,
    display_name TEXT    NOT NULL,
    instrument   TEXT,
    created_at   TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    timezone     TEXT    NOT NULL DEFAULT 'UTC'
);

CREATE TABLE tunes (
    id             INTEGER PRIMARY KEY,
    title          TEXT    NOT NULL,
    composer       TEXT,
    genre          TEXT    NOT NULL CHECK (genre IN ('irish', 'jazz')),
    tune_type      TEXT    NOT NULL,   -- reel, jig, hornpipe, ... / standard, ballad, bebop, ...
    key_sig        TEXT,
    added_at       TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    last_practiced TEXT,               -- maintained by trigger practice_bump_tune
    abc_url        TEXT                -- link to the tune's ABC notation
);

CREATE TABLE playlists (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    created_at TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE playlist_tunes (
    playlist_id INTEGER NOT NULL REFERENCES playlists(id) ON DELETE CASCADE,
    tune_id     INTEGER NOT NULL REFERENCES tunes(id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    PRIMARY KEY (playlist_id, tune_id)
);

CREATE TABLE practice (
    id        INTEGER PRIMARY KEY,
    user_id   INTEGER NOT NULL REFERENCES users(id),
    tune_id   INTEGER NOT NULL REFERENCES tunes(id),
    practiced TEXT    NOT NULL,            -- 'YYYY-MM-DD HH:MM:SS'
    minutes   INTEGER NOT NULL CHECK (minutes > 0),
    tempo     INTEGER,                     -- beats per minute
    notes     TEXT
);

CREATE TABLE goals (
    id               INTEGER PRIMARY KEY,
    user_id          INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    tune_id          INTEGER REFERENCES tunes(id) ON DELETE SET NULL,
    minutes_per_week INTEGER NOT NULL CHECK (minutes_per_week > 0),
    target_tempo     INTEGER,
    starts_on        TEXT    NOT NULL,     -- 'YYYY-MM-DD'
    ends_on          TEXT,
    created_at       TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- INDEXES --

CREATE UNIQUE INDEX users_email ON users(email);
CREATE INDEX playlist_tunes_tune ON playlist_tunes(tune_id);
CREATE INDEX practice_user_time ON practice(user_id, practiced);
CREATE INDEX practice_tune ON practice(tune_id);
CREATE INDEX practice_long_sessions ON practice(user_id, minutes) WHERE minutes >= 45;
CREATE INDEX practice_tune_tempo ON practice(tune_id, tempo) WHERE tempo IS NOT NULL;
CREATE INDEX goals_user ON goals(user_id);

CREATE VIEW tune_stats AS
SELECT t.id                         AS tune_id,
       t.title                      AS title,
       COUNT(p.id)                  AS sessions,
       COALESCE(SUM(p.minutes), 0)  AS total_minutes,
       MAX(p.tempo)                 AS max_tempo
FROM tunes t
LEFT JOIN practice p ON p.tune_id = t.id
GROUP BY t.id;

CREATE TRIGGER practice_bump_tune AFTER INSERT ON practice
BEGIN
    UPDATE tunes SET last_practiced = NEW.practiced
    WHERE id = NEW.tune_id
      AND (last_practiced IS NULL OR last_practiced < NEW.practiced);
END;
