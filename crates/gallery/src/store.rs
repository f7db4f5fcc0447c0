//! [`Gallery`]: one folder of PNG files and its SQLite index (WAL, FTS5). The files are the truth: the index is
//! made from them, [`Gallery::reconcile`] brings it back in line after files were added, changed or removed behind
//! its back, and a damaged index is set aside and rebuilt from them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use pigment_engine::image::write_png_atomically;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{GalleryError, Result};
use crate::metadata::{ImageMetadata, MetadataSource, ReuseParams, read_metadata};
use crate::paths::{resolve_gallery_file, resolve_within};
use crate::schema::{self, SchemaState};

/// The longest side of a thumbnail, in pixels.
pub const THUMBNAIL_SIZE: u32 = 256;
/// Files indexed per transaction during a scan: small enough that searches get the lock in between.
const SCAN_BATCH: usize = 64;
/// A page larger than this is refused: the grid asks for a screenful at a time.
pub const MAX_PAGE: u32 = 1000;

pub struct Gallery {
    folder: PathBuf,
    database: PathBuf,
    thumbnails: PathBuf,
    connection: Mutex<Connection>,
    recovery: Option<Recovery>,
}

/// What happened when the index could not be used: where the damaged file was moved, and why.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recovery {
    pub moved_to: PathBuf,
    pub reason: String,
}

/// A scan's progress: `done` files of `total` looked at.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanProgress {
    pub done: usize,
    pub total: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanReport {
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
    /// Files that could not be read as PNG images, with the reason (they are left alone).
    pub skipped: Vec<(String, String)>,
}

/// One image as the grid shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSummary {
    pub id: i64,
    /// The path relative to the gallery folder: what the UI sends back to name the file.
    pub file_name: String,
    pub path: PathBuf,
    pub thumbnail: Option<PathBuf>,
    pub width: u32,
    pub height: u32,
    pub prompt: String,
    pub model: Option<String>,
    pub sampler: Option<String>,
    pub seed: Option<i64>,
    pub favourite: bool,
    /// The file's modification time, in milliseconds since 1970.
    pub created_ms: i64,
}

/// One image with every parameter, its boards and the form values to reuse it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageDetail {
    pub summary: ImageSummary,
    pub metadata: ImageMetadata,
    pub reuse: ReuseParams,
    pub boards: Vec<i64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    #[default]
    Newest,
    Oldest,
    /// Largest pixel count first.
    Largest,
    /// Prompt, A to Z.
    Prompt,
}

/// A gallery search: full text over prompt, negative prompt, model and sampler, filters, order and page.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SearchQuery {
    /// Words, each matched as a prefix ("cat" finds "cats"); every word must match.
    pub text: String,
    pub model: Option<String>,
    pub sampler: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Modification time range, in milliseconds since 1970, both ends included.
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub favourites_only: bool,
    pub board: Option<i64>,
    pub sort: SortOrder,
    pub offset: u32,
    /// Images per page (1 to [`MAX_PAGE`]); 0 means 100.
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchPage {
    /// How many images match in all.
    pub total: u64,
    pub offset: u32,
    pub items: Vec<ImageSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Board {
    pub id: i64,
    pub name: String,
    pub images: u64,
}

/// The values the filters can take: what the indexed images have.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterOptions {
    pub models: Vec<String>,
    pub samplers: Vec<String>,
    pub sizes: Vec<(u32, u32)>,
}

/// One generation in the history, whether or not its image still exists.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub id: i64,
    pub created_ms: i64,
    pub file_name: String,
    /// The image in the gallery, `None` once it was deleted.
    pub image_id: Option<i64>,
    pub metadata: ImageMetadata,
    pub reuse: ReuseParams,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn modified_ms(metadata: &std::fs::Metadata) -> i64 {
    metadata.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_millis() as i64)
}

/// Every PNG under `folder` (hidden files and folders skipped: temporary `.name.part` files among them), as
/// '/'-separated relative names with size and modification time.
fn list_files(folder: &Path) -> Result<HashMap<String, (u64, i64)>> {
    let mut found = HashMap::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| GalleryError::Read { path: dir.clone(), reason: e.to_string() })?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            let Ok(file_type) = entry.file_type() else { continue };
            let path = entry.path();
            if file_type.is_dir() {
                pending.push(path);
            } else if file_type.is_file() && name.to_ascii_lowercase().ends_with(".png") {
                let Ok(metadata) = entry.metadata() else { continue };
                let Ok(relative) = path.strip_prefix(folder) else { continue };
                let relative: Vec<String> =
                    relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
                found.insert(relative.join("/"), (metadata.len(), modified_ms(&metadata)));
            }
        }
    }
    Ok(found)
}

/// Words as an FTS5 query: each a quoted prefix term, all required. Quotes are doubled so no input is syntax.
fn fts_query(text: &str) -> Option<String> {
    let terms: Vec<String> = text
        .split_whitespace()
        .filter(|word| word.chars().any(char::is_alphanumeric))
        .map(|word| format!("\"{}\"*", word.replace('"', "\"\"")))
        .collect();
    if terms.is_empty() { None } else { Some(terms.join(" ")) }
}

/// An image's row as it is written.
struct IndexedFile {
    file_name: String,
    size: u64,
    modified_ms: i64,
    metadata: ImageMetadata,
    thumbnail: Option<String>,
}

const SUMMARY_COLUMNS: &str =
    "id, file_name, width, height, prompt, model, sampler, seed, favourite, modified_ms, thumbnail";

impl Gallery {
    /// Opens the index of `folder` kept in `data_folder` (`index.sqlite` and `thumbnails/`), creating both as
    /// needed. An index that cannot be opened, fails SQLite's check or comes from a newer Pigment is moved aside
    /// (`index.sqlite.damaged-<time>`) and a new one is built from the files ([`Gallery::recovery`] says so).
    pub fn open(folder: &Path, data_folder: &Path) -> Result<Gallery> {
        let write_error =
            |path: &Path, e: std::io::Error| GalleryError::Write { path: path.into(), reason: e.to_string() };
        std::fs::create_dir_all(folder).map_err(|e| write_error(folder, e))?;
        let folder = std::fs::canonicalize(folder)
            .map_err(|e| GalleryError::Read { path: folder.into(), reason: e.to_string() })?;
        let thumbnails = data_folder.join("thumbnails");
        std::fs::create_dir_all(&thumbnails).map_err(|e| write_error(&thumbnails, e))?;
        let database = data_folder.join("index.sqlite");
        let (connection, recovery) = match open_checked(&database) {
            Ok(connection) => (connection, None),
            Err(reason) => {
                let moved_to = data_folder.join(format!("index.sqlite.damaged-{}", now_ms()));
                std::fs::rename(&database, &moved_to).map_err(|e| write_error(&database, e))?;
                for suffix in ["-wal", "-shm"] {
                    let side = data_folder.join(format!("index.sqlite{suffix}"));
                    if side.exists() {
                        let _ = std::fs::rename(&side, data_folder.join(format!("{}{suffix}", moved_to.display())));
                    }
                }
                let connection = open_checked(&database).map_err(|reason| GalleryError::database(&database, reason))?;
                (connection, Some(Recovery { moved_to, reason }))
            }
        };
        let gallery = Gallery { folder, database, thumbnails, connection: Mutex::new(connection), recovery };
        // Rows of images left in the trash by an earlier run: their undo ended with that run.
        gallery.lock().execute("DELETE FROM images WHERE trashed_ms IS NOT NULL", []).map_err(|e| gallery.db(e))?;
        Ok(gallery)
    }

    pub fn folder(&self) -> &Path {
        &self.folder
    }

    pub fn database_path(&self) -> &Path {
        &self.database
    }

    pub fn thumbnails_folder(&self) -> &Path {
        &self.thumbnails
    }

    /// Set when the index was damaged at open and was started afresh (a [`Gallery::reconcile`] refills it).
    pub fn recovery(&self) -> Option<&Recovery> {
        self.recovery.as_ref()
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn db(&self, error: impl std::fmt::Display) -> GalleryError {
        GalleryError::database(&self.database, error)
    }

    /// An image file named by the UI (relative to the gallery folder), checked to be a PNG inside it.
    pub fn resolve(&self, file_name: &str) -> Result<PathBuf> {
        resolve_gallery_file(file_name, &self.folder)
    }

    /// Makes the index match the files: new and changed PNGs are read (with thumbnails), rows of files that are
    /// gone are dropped. Reports each file looked at; `cancelled` is asked between files.
    pub fn reconcile(
        &self,
        progress: &mut dyn FnMut(ScanProgress),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<ScanReport> {
        let on_disk = list_files(&self.folder)?;
        let indexed: HashMap<String, (i64, i64, i64, Option<String>)> = {
            let connection = self.lock();
            let mut statement = connection
                .prepare("SELECT file_name, id, file_size, modified_ms, thumbnail FROM images WHERE trashed_ms IS NULL")
                .map_err(|e| self.db(e))?;
            statement
                .query_map([], |row| Ok((row.get(0)?, (row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))))
                .and_then(|rows| rows.collect())
                .map_err(|e| self.db(e))?
        };
        let mut report = ScanReport::default();
        let gone: Vec<(i64, Option<String>)> = indexed
            .iter()
            .filter(|(name, _)| !on_disk.contains_key(*name))
            .map(|(_, (id, _, _, thumbnail))| (*id, thumbnail.clone()))
            .collect();
        if !gone.is_empty() {
            let mut connection = self.lock();
            let tx = connection.transaction().map_err(|e| self.db(e))?;
            for (id, _) in &gone {
                tx.execute("DELETE FROM images WHERE id = ?1", [id]).map_err(|e| self.db(e))?;
            }
            tx.commit().map_err(|e| self.db(e))?;
            report.removed = gone.len();
        }
        for (_, thumbnail) in gone {
            self.remove_thumbnail(thumbnail.as_deref());
        }
        let mut changed: Vec<(&String, &(u64, i64))> = on_disk
            .iter()
            .filter(|(name, (size, modified))| {
                indexed.get(*name).is_none_or(|(_, s, m, _)| (*s, *m) != (*size as i64, *modified))
            })
            .collect();
        changed.sort();
        let total = changed.len();
        progress(ScanProgress { done: 0, total });
        for (batch_index, batch) in changed.chunks(SCAN_BATCH).enumerate() {
            let mut rows = Vec::with_capacity(batch.len());
            for (offset, (name, (size, modified))) in batch.iter().enumerate() {
                if cancelled() {
                    return Err(GalleryError::Cancelled);
                }
                match self.read_file(name, *size, *modified) {
                    Ok(row) => rows.push(row),
                    Err(error) => report.skipped.push(((*name).clone(), error.to_string())),
                }
                progress(ScanProgress { done: batch_index * SCAN_BATCH + offset + 1, total });
            }
            for row in &rows {
                if indexed.contains_key(&row.file_name) {
                    report.updated += 1;
                } else {
                    report.added += 1;
                }
            }
            self.write_rows(&rows)?;
        }
        Ok(report)
    }

    /// Reads a file's metadata and makes its thumbnail.
    fn read_file(&self, file_name: &str, size: u64, modified_ms: i64) -> Result<IndexedFile> {
        let path = self.folder.join(file_name);
        let metadata = read_metadata(&path)?;
        let picture =
            || image::open(&path).map_err(|e| GalleryError::Read { path: path.clone(), reason: e.to_string() });
        let thumbnail = self.make_thumbnail(file_name, size, modified_ms, picture)?;
        Ok(IndexedFile { file_name: file_name.to_string(), size, modified_ms, metadata, thumbnail: Some(thumbnail) })
    }

    /// A thumbnail named after the file and its version, so a changed file never shows a stale one; `picture` is
    /// asked for only when there is none yet.
    fn make_thumbnail(
        &self,
        file_name: &str,
        size: u64,
        modified_ms: i64,
        picture: impl FnOnce() -> Result<image::DynamicImage>,
    ) -> Result<String> {
        let digest = Sha256::digest(format!("{file_name}\n{size}\n{modified_ms}").as_bytes());
        let name = format!("{}.png", digest.iter().take(12).map(|b| format!("{b:02x}")).collect::<String>());
        let target = self.thumbnails.join(&name);
        if !target.exists() {
            let image = picture()?;
            let small = if image.width().max(image.height()) > THUMBNAIL_SIZE {
                image.thumbnail(THUMBNAIL_SIZE, THUMBNAIL_SIZE)
            } else {
                image
            };
            write_png_atomically(&target, &small.to_rgb8(), &[])
                .map_err(|e| GalleryError::Write { path: target.clone(), reason: e.to_string() })?;
        }
        Ok(name)
    }

    fn remove_thumbnail(&self, name: Option<&str>) {
        if let Some(name) = name {
            // A thumbnail is a cache: one that cannot be removed only takes space.
            let _ = std::fs::remove_file(self.thumbnails.join(name));
        }
    }

    fn write_rows(&self, rows: &[IndexedFile]) -> Result<()> {
        let mut connection = self.lock();
        let tx = connection.transaction().map_err(|e| self.db(e))?;
        for row in rows {
            let m = &row.metadata;
            let params_json = serde_json::to_string(&m.params).map_err(|e| self.db(e))?;
            tx.execute(
                "INSERT INTO images (file_name, file_size, modified_ms, width, height, source, prompt, negative_prompt,
                    model, sampler, steps, cfg_scale, seed, params, infotext, thumbnail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
                 ON CONFLICT (file_name) DO UPDATE SET file_size = excluded.file_size,
                    modified_ms = excluded.modified_ms, width = excluded.width, height = excluded.height,
                    source = excluded.source, prompt = excluded.prompt, negative_prompt = excluded.negative_prompt,
                    model = excluded.model, sampler = excluded.sampler, steps = excluded.steps,
                    cfg_scale = excluded.cfg_scale, seed = excluded.seed, params = excluded.params,
                    infotext = excluded.infotext, thumbnail = excluded.thumbnail, trashed_ms = NULL",
                params![
                    row.file_name,
                    row.size as i64,
                    row.modified_ms,
                    m.width,
                    m.height,
                    m.source.id(),
                    m.prompt,
                    m.negative_prompt,
                    m.model,
                    m.sampler,
                    m.steps,
                    m.cfg_scale,
                    m.seed,
                    params_json,
                    m.infotext,
                    row.thumbnail,
                ],
            )
            .map_err(|e| self.db(e))?;
        }
        tx.commit().map_err(|e| self.db(e))
    }

    /// Indexes one file inside the gallery folder (after it was saved or copied in).
    pub fn index_file(&self, path: &Path) -> Result<ImageSummary> {
        let (file_name, size, modified_ms) = self.located(path)?;
        let row = self.read_file(&file_name, size, modified_ms)?;
        self.write_rows(std::slice::from_ref(&row))?;
        self.summary_by_name(&file_name)
    }

    /// Indexes an image the app just generated and saved at `path` from what it has in memory, the picture and its
    /// A1111 `parameters` text (the file is not read again), and adds it to the history.
    pub fn add_generated(&self, path: &Path, picture: &image::RgbImage, parameters: &str) -> Result<ImageSummary> {
        let (file_name, size, modified_ms) = self.located(path)?;
        let metadata = ImageMetadata::from_parameters_text(parameters, picture.width(), picture.height());
        let in_memory = || Ok(image::DynamicImage::ImageRgb8(picture.clone()));
        let thumbnail = self.make_thumbnail(&file_name, size, modified_ms, in_memory)?;
        let infotext = metadata.infotext.clone();
        let row = IndexedFile { file_name: file_name.clone(), size, modified_ms, metadata, thumbnail: Some(thumbnail) };
        self.write_rows(std::slice::from_ref(&row))?;
        let summary = self.summary_by_name(&file_name)?;
        self.lock()
            .execute(
                "INSERT INTO history (created_ms, file_name, width, height, infotext) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![summary.created_ms, summary.file_name, summary.width, summary.height, infotext],
            )
            .map_err(|e| self.db(e))?;
        Ok(summary)
    }

    /// A file inside the gallery folder: its name there, its size and its modification time.
    fn located(&self, path: &Path) -> Result<(String, u64, i64)> {
        let resolved = resolve_within(path, &self.folder)?;
        let file_name = self.relative_name(&resolved)?;
        let stat = std::fs::metadata(&resolved)
            .map_err(|e| GalleryError::Read { path: resolved.clone(), reason: e.to_string() })?;
        Ok((file_name, stat.len(), modified_ms(&stat)))
    }

    fn relative_name(&self, resolved: &Path) -> Result<String> {
        let relative = resolved.strip_prefix(&self.folder).map_err(|_| GalleryError::PathNotAllowed {
            path: resolved.to_path_buf(),
            reason: format!("it is outside {}", self.folder.display()),
        })?;
        Ok(relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/"))
    }

    fn summary_from_row(&self, row: &Row) -> rusqlite::Result<ImageSummary> {
        let file_name: String = row.get(1)?;
        let thumbnail: Option<String> = row.get(10)?;
        Ok(ImageSummary {
            id: row.get(0)?,
            path: self.folder.join(&file_name),
            file_name,
            width: row.get(2)?,
            height: row.get(3)?,
            prompt: row.get(4)?,
            model: row.get(5)?,
            sampler: row.get(6)?,
            seed: row.get(7)?,
            favourite: row.get::<_, i64>(8)? != 0,
            created_ms: row.get(9)?,
            thumbnail: thumbnail.map(|t| self.thumbnails.join(t)),
        })
    }

    fn summary_by_name(&self, file_name: &str) -> Result<ImageSummary> {
        let connection = self.lock();
        connection
            .query_row(&format!("SELECT {SUMMARY_COLUMNS} FROM images WHERE file_name = ?1"), [file_name], |row| {
                self.summary_from_row(row)
            })
            .map_err(|e| self.db(e))
    }

    /// One page of the images matching `query`, with the total count.
    pub fn search(&self, query: &SearchQuery) -> Result<SearchPage> {
        let limit = match query.limit {
            0 => 100,
            n if n > MAX_PAGE => return Err(GalleryError::invalid("limit", n, format!("at most {MAX_PAGE}"))),
            n => n,
        };
        let mut conditions = vec!["trashed_ms IS NULL".to_string()];
        if query.favourites_only {
            conditions.push("favourite = 1".into());
        }
        let mut values: Vec<SqlValue> = Vec::new();
        let mut add = |condition: &str, value: SqlValue| {
            values.push(value);
            conditions.push(condition.replace('?', &format!("?{}", values.len())));
        };
        if let Some(text) = fts_query(&query.text) {
            add("id IN (SELECT rowid FROM images_fts WHERE images_fts MATCH ?)", SqlValue::Text(text));
        }
        if let Some(model) = &query.model {
            add("model = ?", SqlValue::Text(model.clone()));
        }
        if let Some(sampler) = &query.sampler {
            add("sampler = ?", SqlValue::Text(sampler.clone()));
        }
        if let Some(width) = query.width {
            add("width = ?", SqlValue::Integer(width.into()));
        }
        if let Some(height) = query.height {
            add("height = ?", SqlValue::Integer(height.into()));
        }
        if let Some(from) = query.from_ms {
            add("modified_ms >= ?", SqlValue::Integer(from));
        }
        if let Some(to) = query.to_ms {
            add("modified_ms <= ?", SqlValue::Integer(to));
        }
        if let Some(board) = query.board {
            add("id IN (SELECT image_id FROM board_images WHERE board_id = ?)", SqlValue::Integer(board));
        }
        let filter = conditions.join(" AND ");
        let order = match query.sort {
            SortOrder::Newest => "modified_ms DESC, id DESC",
            SortOrder::Oldest => "modified_ms ASC, id ASC",
            SortOrder::Largest => "width * height DESC, id DESC",
            SortOrder::Prompt => "prompt COLLATE NOCASE ASC, id ASC",
        };
        let connection = self.lock();
        let total: i64 = connection
            .query_row(&format!("SELECT count(*) FROM images WHERE {filter}"), params_from_iter(values.iter()), |r| {
                r.get(0)
            })
            .map_err(|e| self.db(e))?;
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM images WHERE {filter} ORDER BY {order} LIMIT {limit} OFFSET {}",
            query.offset
        );
        let mut statement = connection.prepare_cached(&sql).map_err(|e| self.db(e))?;
        let items = statement
            .query_map(params_from_iter(values.iter()), |row| self.summary_from_row(row))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.db(e))?;
        Ok(SearchPage { total: total as u64, offset: query.offset, items })
    }

    /// An image with every parameter.
    pub fn image(&self, id: i64) -> Result<ImageDetail> {
        let connection = self.lock();
        let found = connection
            .query_row(
                &format!(
                    "SELECT {SUMMARY_COLUMNS}, source, negative_prompt, steps, cfg_scale, params, infotext
                     FROM images WHERE id = ?1 AND trashed_ms IS NULL"
                ),
                [id],
                |row| {
                    let summary = self.summary_from_row(row)?;
                    let params: String = row.get(15)?;
                    let metadata = ImageMetadata {
                        source: MetadataSource::from_id(&row.get::<_, String>(11)?),
                        prompt: summary.prompt.clone(),
                        negative_prompt: row.get(12)?,
                        model: summary.model.clone(),
                        sampler: summary.sampler.clone(),
                        steps: row.get(13)?,
                        cfg_scale: row.get(14)?,
                        seed: summary.seed,
                        width: summary.width,
                        height: summary.height,
                        params: serde_json::from_str(&params).unwrap_or_default(),
                        infotext: row.get(16)?,
                    };
                    Ok((summary, metadata))
                },
            )
            .optional()
            .map_err(|e| self.db(e))?;
        let (summary, metadata) = found.ok_or(GalleryError::UnknownImage { id })?;
        let mut statement = connection
            .prepare_cached("SELECT board_id FROM board_images WHERE image_id = ?1 ORDER BY board_id")
            .map_err(|e| self.db(e))?;
        let boards = statement
            .query_map([id], |r| r.get(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<i64>>>())
            .map_err(|e| self.db(e))?;
        Ok(ImageDetail { reuse: metadata.reuse(), summary, metadata, boards })
    }

    fn check_image(&self, connection: &Connection, id: i64) -> Result<()> {
        let exists = connection
            .query_row("SELECT 1 FROM images WHERE id = ?1 AND trashed_ms IS NULL", [id], |_| Ok(()))
            .optional()
            .map_err(|e| self.db(e))?;
        exists.ok_or(GalleryError::UnknownImage { id })
    }

    pub fn set_favourite(&self, id: i64, favourite: bool) -> Result<()> {
        let connection = self.lock();
        self.check_image(&connection, id)?;
        connection
            .execute("UPDATE images SET favourite = ?2 WHERE id = ?1", params![id, favourite as i64])
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    pub fn boards(&self) -> Result<Vec<Board>> {
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached(
                "SELECT b.id, b.name, count(i.id) FROM boards b
                 LEFT JOIN board_images bi ON bi.board_id = b.id
                 LEFT JOIN images i ON i.id = bi.image_id AND i.trashed_ms IS NULL
                 GROUP BY b.id ORDER BY b.name COLLATE NOCASE",
            )
            .map_err(|e| self.db(e))?;
        statement
            .query_map([], |r| Ok(Board { id: r.get(0)?, name: r.get(1)?, images: r.get::<_, i64>(2)? as u64 }))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.db(e))
    }

    fn board_name(name: &str) -> Result<String> {
        let trimmed = name.trim();
        if trimmed.is_empty() || trimmed.chars().count() > 100 {
            return Err(GalleryError::invalid("board name", name, "it must have 1 to 100 characters"));
        }
        Ok(trimmed.to_string())
    }

    fn name_taken(&self, error: rusqlite::Error, name: &str) -> GalleryError {
        match error {
            rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                GalleryError::invalid("board name", name, "a board with that name exists")
            }
            other => self.db(other),
        }
    }

    pub fn create_board(&self, name: &str) -> Result<Board> {
        let name = Self::board_name(name)?;
        let connection = self.lock();
        connection
            .execute("INSERT INTO boards (name, created_ms) VALUES (?1, ?2)", params![name, now_ms()])
            .map_err(|e| self.name_taken(e, &name))?;
        Ok(Board { id: connection.last_insert_rowid(), name, images: 0 })
    }

    pub fn rename_board(&self, id: i64, name: &str) -> Result<()> {
        let name = Self::board_name(name)?;
        let changed = self
            .lock()
            .execute("UPDATE boards SET name = ?2 WHERE id = ?1", params![id, name])
            .map_err(|e| self.name_taken(e, &name))?;
        if changed == 0 { Err(GalleryError::UnknownBoard { id }) } else { Ok(()) }
    }

    /// Deletes the board; its images stay in the gallery.
    pub fn delete_board(&self, id: i64) -> Result<()> {
        let changed = self.lock().execute("DELETE FROM boards WHERE id = ?1", [id]).map_err(|e| self.db(e))?;
        if changed == 0 { Err(GalleryError::UnknownBoard { id }) } else { Ok(()) }
    }

    /// Puts images on a board (or takes them off when `add` is false).
    pub fn set_board_membership(&self, board: i64, images: &[i64], add: bool) -> Result<()> {
        let mut connection = self.lock();
        let exists = connection.query_row("SELECT 1 FROM boards WHERE id = ?1", [board], |_| Ok(())).optional();
        exists.map_err(|e| self.db(e))?.ok_or(GalleryError::UnknownBoard { id: board })?;
        let tx = connection.transaction().map_err(|e| self.db(e))?;
        for &image in images {
            self.check_image(&tx, image)?;
            let sql = if add {
                "INSERT OR IGNORE INTO board_images (board_id, image_id) VALUES (?1, ?2)"
            } else {
                "DELETE FROM board_images WHERE board_id = ?1 AND image_id = ?2"
            };
            tx.execute(sql, [board, image]).map_err(|e| self.db(e))?;
        }
        tx.commit().map_err(|e| self.db(e))
    }

    pub fn filter_options(&self) -> Result<FilterOptions> {
        let connection = self.lock();
        let strings = |sql: &str| -> Result<Vec<String>> {
            let mut statement = connection.prepare_cached(sql).map_err(|e| self.db(e))?;
            statement.query_map([], |r| r.get(0)).and_then(|rows| rows.collect()).map_err(|e| self.db(e))
        };
        let models = strings("SELECT DISTINCT model FROM images WHERE model IS NOT NULL ORDER BY model")?;
        let samplers = strings("SELECT DISTINCT sampler FROM images WHERE sampler IS NOT NULL ORDER BY sampler")?;
        let mut statement = connection
            .prepare_cached("SELECT DISTINCT width, height FROM images ORDER BY width * height, width")
            .map_err(|e| self.db(e))?;
        let sizes = statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.db(e))?;
        Ok(FilterOptions { models, samplers, sizes })
    }

    /// Moves images to the operating system's trash. They leave the grid at once; [`Gallery::undo_delete`] brings
    /// them back until the gallery is next opened.
    pub fn delete(&self, ids: &[i64]) -> Result<()> {
        for &id in ids {
            let file_name: String = {
                let connection = self.lock();
                self.check_image(&connection, id)?;
                connection.query_row("SELECT file_name FROM images WHERE id = ?1", [id], |r| r.get(0))
            }
            .map_err(|e| self.db(e))?;
            let path = self.folder.join(&file_name);
            trash::delete(&path).map_err(|e| GalleryError::Trash { path: path.clone(), reason: e.to_string() })?;
            self.lock()
                .execute("UPDATE images SET trashed_ms = ?2 WHERE id = ?1", params![id, now_ms()])
                .map_err(|e| self.db(e))?;
        }
        Ok(())
    }

    /// Restores images [`Gallery::delete`] moved to the trash, with their favourite mark and boards.
    pub fn undo_delete(&self, ids: &[i64]) -> Result<()> {
        for &id in ids {
            let file_name: Option<String> = self
                .lock()
                .query_row("SELECT file_name FROM images WHERE id = ?1 AND trashed_ms IS NOT NULL", [id], |r| r.get(0))
                .optional()
                .map_err(|e| self.db(e))?;
            let file_name =
                file_name.ok_or(GalleryError::CannotRestore { id, reason: "it is not in the trash".into() })?;
            let path = self.folder.join(&file_name);
            if path.exists() {
                return Err(GalleryError::CannotRestore { id, reason: format!("{} exists again", path.display()) });
            }
            restore_from_trash(&path).map_err(|reason| GalleryError::CannotRestore { id, reason })?;
            self.lock().execute("UPDATE images SET trashed_ms = NULL WHERE id = ?1", [id]).map_err(|e| self.db(e))?;
        }
        Ok(())
    }

    /// The latest generations first, `limit` of them after `offset`.
    pub fn history(&self, offset: u32, limit: u32) -> Result<Vec<HistoryEntry>> {
        if limit > MAX_PAGE {
            return Err(GalleryError::invalid("limit", limit, format!("at most {MAX_PAGE}")));
        }
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached(
                "SELECT h.id, h.created_ms, h.file_name, h.width, h.height, h.infotext, i.id FROM history h
                 LEFT JOIN images i ON i.file_name = h.file_name AND i.trashed_ms IS NULL
                 ORDER BY h.created_ms DESC, h.id DESC LIMIT ?1 OFFSET ?2",
            )
            .map_err(|e| self.db(e))?;
        let rows = statement
            .query_map([limit, offset], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, u32>(3)?,
                    r.get::<_, u32>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                ))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.db(e))?;
        Ok(rows
            .into_iter()
            .map(|(id, created_ms, file_name, width, height, infotext, image_id)| {
                let metadata = ImageMetadata::from_parameters_text(&infotext, width, height);
                HistoryEntry { id, created_ms, file_name, image_id, reuse: metadata.reuse(), metadata }
            })
            .collect())
    }
}

/// Opens the index and checks it: SQLite's quick check, WAL, and the schema (migrated to this version).
fn open_checked(database: &Path) -> std::result::Result<Connection, String> {
    let mut connection = Connection::open(database).map_err(|e| e.to_string())?;
    let check: String = connection.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(|e| e.to_string())?;
    if check != "ok" {
        return Err(format!("SQLite's check failed: {check}"));
    }
    connection.pragma_update(None, "journal_mode", "WAL").map_err(|e| e.to_string())?;
    connection.pragma_update(None, "synchronous", "NORMAL").map_err(|e| e.to_string())?;
    connection.pragma_update(None, "foreign_keys", true).map_err(|e| e.to_string())?;
    connection.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| e.to_string())?;
    match schema::migrate(&mut connection).map_err(|e| e.to_string())? {
        SchemaState::Current => Ok(connection),
        SchemaState::Newer(version) => Err(format!(
            "it was written by a newer Pigment (schema {version}; this one reads up to {})",
            schema::SCHEMA_VERSION
        )),
    }
}

/// Puts the file the trash holds for `path` (the latest, if several) back in place.
#[cfg(any(
    target_os = "windows",
    all(unix, not(target_os = "macos"), not(target_os = "ios"), not(target_os = "android"))
))]
fn restore_from_trash(path: &Path) -> std::result::Result<(), String> {
    let items = trash::os_limited::list().map_err(|e| e.to_string())?;
    let item = items
        .into_iter()
        .filter(|item| item.original_path() == path)
        .max_by_key(|item| item.time_deleted)
        .ok_or_else(|| "the trash no longer holds it (was the trash emptied?)".to_string())?;
    trash::os_limited::restore_all([item]).map_err(|e| e.to_string())
}

#[cfg(not(any(
    target_os = "windows",
    all(unix, not(target_os = "macos"), not(target_os = "ios"), not(target_os = "android"))
)))]
fn restore_from_trash(_path: &Path) -> std::result::Result<(), String> {
    Err("restoring from the trash is not supported on this system; restore it from the trash by hand".into())
}
