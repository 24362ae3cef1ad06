-- Tiny blog schema, v1. Try: sqlmorph diff examples/schemas/v1.sql examples/schemas/v2.sql

CREATE TABLE authors (
    id    INTEGER PRIMARY KEY,
    name  TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE
);

CREATE TABLE posts (
    id           INTEGER PRIMARY KEY,
    author_id    INTEGER NOT NULL REFERENCES authors(id),
    title        TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    published_at TEXT,
    view_count   TEXT    NOT NULL DEFAULT '0'
);

CREATE TABLE comments (
    id         INTEGER PRIMARY KEY,
    post_id    INTEGER NOT NULL REFERENCES posts(id) ON DELETE CASCADE,
    author     TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    created_at TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX posts_author ON posts(author_id);
CREATE INDEX posts_title ON posts(title);
CREATE INDEX comments_post ON comments(post_id);
