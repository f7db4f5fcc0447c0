//! The index's tables, versioned with SQLite's `user_version`: [`migrate`] brings any older index up to
//! [`SCHEMA_VERSION`] one step at a time. Each step is a list of statements run in one transaction.

use rusqlite::Connection;

/// The version this build writes. An index with a newer version was made by a newer Pigment: it is set aside and
/// rebuilt from the files rather than guessed at.
pub const SCHEMA_VERSION: i64 = 1;

/// Step `n` takes an index from version `n` to `n + 1`.
const STEPS: [&str; 1] = [r#"
CREATE TABLE images (
    id INTEGER PRIMARY KEY,
    -- The file's path relative to the gallery folder, '/'-separated.
    file_name TEXT NOT NULL UNIQUE,
    file_size INTEGER NOT NULL,
    modified_ms INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    source TEXT NOT NULL,
    prompt TEXT NOT NULL,
    negative_prompt TEXT NOT NULL,
    model TEXT,
    sampler TEXT,
    steps INTEGER,
    cfg_scale REAL,
    seed INTEGER,
    -- Every parameter as a JSON list of [key, value], and AUTOMATIC1111's text of them.
    params TEXT NOT NULL,
    infotext TEXT NOT NULL,
    thumbnail TEXT,
    favourite INTEGER NOT NULL DEFAULT 0,
    -- Set while the file sits in the OS trash and can still be restored (undo).
    trashed_ms INTEGER
);
CREATE INDEX images_by_time ON images (modified_ms, id);
CREATE INDEX images_by_model ON images (model);
CREATE INDEX images_by_sampler ON images (sampler);
CREATE INDEX images_by_size ON images (width, height);

CREATE VIRTUAL TABLE images_fts USING fts5(
    prompt, negative_prompt, model, sampler, content = 'images', content_rowid = 'id'
);
CREATE TRIGGER images_fts_insert AFTER INSERT ON images BEGIN
    INSERT INTO images_fts (rowid, prompt, negative_prompt, model, sampler)
    VALUES (new.id, new.prompt, new.negative_prompt, coalesce(new.model, ''), coalesce(new.sampler, ''));
END;
CREATE TRIGGER images_fts_delete AFTER DELETE ON images BEGIN
    INSERT INTO images_fts (images_fts, rowid, prompt, negative_prompt, model, sampler)
    VALUES ('delete', old.id, old.prompt, old.negative_prompt, coalesce(old.model, ''), coalesce(old.sampler, ''));
END;
CREATE TRIGGER images_fts_update AFTER UPDATE OF prompt, negative_prompt, model, sampler ON images BEGIN
    INSERT INTO images_fts (images_fts, rowid, prompt, negative_prompt, model, sampler)
    VALUES ('delete', old.id, old.prompt, old.negative_prompt, coalesce(old.model, ''), coalesce(old.sampler, ''));
    INSERT INTO images_fts (rowid, prompt, negative_prompt, model, sampler)
    VALUES (new.id, new.prompt, new.negative_prompt, coalesce(new.model, ''), coalesce(new.sampler, ''));
END;

CREATE TABLE boards (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created_ms INTEGER NOT NULL
);
CREATE TABLE board_images (
    board_id INTEGER NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    PRIMARY KEY (board_id, image_id)
);
CREATE INDEX board_images_by_image ON board_images (image_id);

-- What was generated, kept when the images are deleted.
CREATE TABLE history (
    id INTEGER PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    file_name TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    infotext TEXT NOT NULL
);
CREATE INDEX history_by_time ON history (created_ms);
"#];

#[derive(Debug, PartialEq)]
pub enum SchemaState {
    Current,
    /// Written by a newer Pigment (its version).
    Newer(i64),
}

pub fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// Applies the steps from the index's version up to [`SCHEMA_VERSION`].
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<SchemaState> {
    let version = user_version(conn)?;
    if version > SCHEMA_VERSION {
        return Ok(SchemaState::Newer(version));
    }
    for (from, step) in STEPS.iter().enumerate().skip(version.max(0) as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", from as i64 + 1)?;
        tx.commit()?;
    }
    Ok(SchemaState::Current)
}
