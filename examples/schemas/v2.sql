-- Tiny blog schema, v2: posts.slug added, posts.view_count TEXT -> INTEGER,
-- index posts_title dropped, view published_posts added.

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
    view_count   INTEGER NOT NULL DEFAULT 0,
    slug         TEXT
);

CREATE TABLE comments (
    id         INTEGER PRIMARY KEY,
    post_id    INTEGER NOT NULL REFERENCES posts(id) ON DELETE CASCADE,
    author     TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    created_at TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX posts_author ON posts(author_id);
CREATE INDEX comments_post ON comments(post_id);

CREATE VIEW published_posts AS
SELECT p.id, p.title, p.slug, a.name AS author, p.published_at
FROM posts p
JOIN authors a ON a.id = p.author_id
WHERE p.published_at IS NOT NULL;
