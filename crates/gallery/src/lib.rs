//! Pigment's gallery: every PNG in a folder, indexed in SQLite so it can be found by its prompt, filtered, put on
//! boards, favourited, deleted to the OS trash with undo; and the history of generations, kept when their images go.
//!
//! The PNG files are the truth. The index (`index.sqlite`, WAL, FTS5 over prompt, negative prompt, model and
//! sampler) and the thumbnails are made from them and remade from them when the index is damaged. Metadata is read
//! from AUTOMATIC1111/Pigment (`parameters`), ComfyUI (`prompt`, `workflow`) and InvokeAI (`invokeai_metadata`).

mod error;
mod metadata;
mod paths;
mod schema;
mod store;

pub use error::{GalleryError, Result};
pub use metadata::{
    COMFYUI_PROMPT_KEY, COMFYUI_WORKFLOW_KEY, INVOKEAI_KEY, ImageMetadata, MetadataSource, ReuseParams,
    parse_comfyui_prompt, parse_comfyui_workflow, parse_invokeai, read_metadata,
};
pub use paths::{resolve_gallery_file, resolve_within};
pub use schema::SCHEMA_VERSION;
pub use store::{
    Board, FilterOptions, Gallery, HistoryEntry, ImageDetail, ImageSummary, MAX_PAGE, Recovery, ScanProgress,
    ScanReport, SearchPage, SearchQuery, SortOrder, THUMBNAIL_SIZE,
};
