//! The gallery on a real SQLite file and real PNG files: metadata from AUTOMATIC1111, ComfyUI and InvokeAI files,
//! search, filters, boards, rescans, rebuilding from the files, damaged indexes and paths from outside.

mod common;

use std::path::PathBuf;

use common::*;
use pigment_gallery::{
    Gallery, GalleryError, MetadataSource, ScanProgress, SearchQuery, SortOrder, read_metadata, resolve_gallery_file,
};

struct Setup {
    _dir: tempfile::TempDir,
    folder: PathBuf,
    data: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("outputs");
    let data = dir.path().join("data/gallery");
    std::fs::create_dir_all(&folder).unwrap();
    Setup { folder, data, _dir: dir }
}

fn open(s: &Setup) -> Gallery {
    let gallery = Gallery::open(&s.folder, &s.data).unwrap();
    gallery.reconcile(&mut no_progress(), &never).unwrap();
    gallery
}

fn search(gallery: &Gallery, text: &str) -> Vec<String> {
    let page = gallery.search(&SearchQuery { text: text.into(), ..SearchQuery::default() }).unwrap();
    let mut names: Vec<String> = page.items.into_iter().map(|i| i.file_name).collect();
    names.sort();
    names
}

fn all_names(gallery: &Gallery) -> Vec<String> {
    search(gallery, "")
}

/// Three PNGs, one per tool.
fn three_tools(s: &Setup) {
    write_a1111(
        &s.folder.join("00000-42.png"),
        "a photo of a cat, (masterpiece:1.2)",
        "blurry",
        "Euler a",
        42,
        (64, 64),
    );
    write_comfyui(&s.folder.join("ComfyUI_00001_.png"), true);
    write_invokeai(&s.folder.join("invoke.png"));
}

#[test]
fn sqlite_has_fts5_compiled_in() {
    let connection = rusqlite::Connection::open_in_memory().unwrap();
    let used: i64 = connection.query_row("SELECT sqlite_compileoption_used('ENABLE_FTS5')", [], |r| r.get(0)).unwrap();
    assert_eq!(used, 1);
    connection.execute_batch("CREATE VIRTUAL TABLE t USING fts5(body); INSERT INTO t VALUES ('a red fox');").unwrap();
    let hits: i64 = connection.query_row("SELECT count(*) FROM t WHERE t MATCH 'fox'", [], |r| r.get(0)).unwrap();
    assert_eq!(hits, 1);
}

#[test]
fn metadata_is_read_from_a1111_comfyui_and_invokeai_files() {
    let s = setup();
    three_tools(&s);

    let a1111 = read_metadata(&s.folder.join("00000-42.png")).unwrap();
    assert_eq!(a1111.source, MetadataSource::A1111);
    assert_eq!(a1111.prompt, "a photo of a cat, (masterpiece:1.2)");
    assert_eq!(a1111.negative_prompt, "blurry");
    assert_eq!((a1111.sampler.as_deref(), a1111.seed, a1111.steps), (Some("Euler a"), Some(42), Some(20)));
    assert_eq!(a1111.model.as_deref(), Some("tiny-sd"));
    assert_eq!(a1111.reuse().sampler.as_deref(), Some("euler_a"));
    assert!(a1111.infotext.starts_with("a photo of a cat"), "the file's own text: {}", a1111.infotext);

    let comfy = read_metadata(&s.folder.join("ComfyUI_00001_.png")).unwrap();
    assert_eq!(comfy.source, MetadataSource::ComfyUi);
    assert_eq!(comfy.prompt, "beautiful scenery nature glass bottle landscape, purple galaxy bottle");
    assert_eq!(comfy.negative_prompt, "text, watermark", "taken from the sampler's negative input");
    assert_eq!(comfy.model.as_deref(), Some("dreamshaper_8"), "through the LoRA loader to the checkpoint");
    assert_eq!(comfy.sampler.as_deref(), Some("DPM++ 2M Karras"));
    assert_eq!((comfy.steps, comfy.cfg_scale, comfy.seed), (Some(25), Some(6.5), Some(156680208700286)));
    assert_eq!((comfy.width, comfy.height), (64, 80), "the file's own size");
    let reuse = comfy.reuse();
    assert_eq!((reuse.sampler.as_deref(), reuse.schedule.as_deref()), (Some("dpmpp_2m"), Some("karras")));
    assert_eq!((reuse.width, reuse.height), (512, 640), "the generation's size from the latent node");

    let invoke = read_metadata(&s.folder.join("invoke.png")).unwrap();
    assert_eq!(invoke.source, MetadataSource::InvokeAi);
    assert_eq!(invoke.prompt, "a red fox sleeping in the snow");
    assert_eq!(invoke.negative_prompt, "blurry, lowres");
    assert_eq!(invoke.model.as_deref(), Some("Juggernaut XL v9"));
    assert_eq!(invoke.sampler.as_deref(), Some("Euler a"));
    assert_eq!((invoke.steps, invoke.cfg_scale, invoke.seed), (Some(30), Some(7.5), Some(3213904)));
    assert_eq!((invoke.reuse().width, invoke.reuse().height), (1024, 768));

    // ComfyUI files saved with the editor graph only still give their prompts.
    write_comfyui(&s.folder.join("workflow-only.png"), false);
    let workflow = read_metadata(&s.folder.join("workflow-only.png")).unwrap();
    assert_eq!(workflow.source, MetadataSource::ComfyUi);
    assert_eq!(workflow.prompt, "text, watermark", "the lowest-numbered text node comes first");
    assert_eq!(workflow.model.as_deref(), Some("dreamshaper_8"));

    // A PNG without metadata, and a file that is not a PNG.
    pigment_engine::image::write_png_atomically(&s.folder.join("plain.png"), &pixels(8, 8, 1), &[]).unwrap();
    let plain = read_metadata(&s.folder.join("plain.png")).unwrap();
    assert_eq!((plain.source, plain.width), (MetadataSource::None, 8));
    std::fs::write(s.folder.join("fake.png"), b"not a png").unwrap();
    let error = read_metadata(&s.folder.join("fake.png")).unwrap_err();
    assert!(matches!(error, GalleryError::Read { .. }) && error.to_string().contains("fake.png"), "{error}");
}

#[test]
fn images_of_every_tool_are_found_by_a_word_of_their_prompt() {
    let s = setup();
    three_tools(&s);
    let gallery = open(&s);
    assert_eq!(search(&gallery, "cat"), ["00000-42.png"]);
    assert_eq!(search(&gallery, "galaxy"), ["ComfyUI_00001_.png"]);
    assert_eq!(search(&gallery, "fox"), ["invoke.png"]);
    assert_eq!(search(&gallery, "masterp"), ["00000-42.png"], "words match as prefixes");
    assert_eq!(search(&gallery, "watermark"), ["ComfyUI_00001_.png"], "negative prompts are searched");
    assert_eq!(search(&gallery, "juggernaut"), ["invoke.png"], "model names are searched");
    assert_eq!(search(&gallery, "cat blurry"), ["00000-42.png"], "every word must match");
    assert!(search(&gallery, "cat fox").is_empty());
    // FTS5 syntax in the box is taken as words, never as a query error.
    assert_eq!(search(&gallery, "\"cat OR* ( NEAR"), Vec::<String>::new());
    assert_eq!(search(&gallery, "cat\""), ["00000-42.png"]);
    assert_eq!(all_names(&gallery).len(), 3);

    let page = gallery.search(&SearchQuery { text: "cat".into(), ..SearchQuery::default() }).unwrap();
    let image = &page.items[0];
    let thumbnail = image.thumbnail.as_ref().expect("a thumbnail was made");
    assert_eq!(image::image_dimensions(thumbnail).unwrap(), (64, 64), "small images are not enlarged");
    let detail = gallery.image(image.id).unwrap();
    assert_eq!(detail.metadata.negative_prompt, "blurry");
    assert!(detail.metadata.params.iter().any(|(k, v)| k == "Model hash" && v == "0123456789"));
    assert_eq!(detail.reuse.seed, Some(42));
    let error = gallery.image(9999).unwrap_err();
    assert!(matches!(error, GalleryError::UnknownImage { id: 9999 }), "{error}");
}

#[test]
fn filters_sorting_and_pages() {
    let s = setup();
    for i in 0..30u64 {
        let (sampler, size) = if i % 3 == 0 { ("DPM++ 2M Karras", (64, 96)) } else { ("Euler a", (64, 64)) };
        write_a1111(&s.folder.join(format!("{i:05}-{i}.png")), &format!("shot number {i}"), "", sampler, i, size);
        // Distinct times, oldest first.
        let file = std::fs::File::options().write(true).open(s.folder.join(format!("{i:05}-{i}.png"))).unwrap();
        file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000 + i * 60)).unwrap();
    }
    let gallery = open(&s);
    let query = |change: &dyn Fn(&mut SearchQuery)| {
        let mut q = SearchQuery::default();
        change(&mut q);
        gallery.search(&q).unwrap()
    };
    let newest = query(&|_| {});
    assert_eq!(newest.total, 30);
    assert_eq!(newest.items[0].file_name, "00029-29.png");
    assert_eq!(query(&|q| q.sort = SortOrder::Oldest).items[0].file_name, "00000-0.png");
    assert_eq!(query(&|q| q.sort = SortOrder::Largest).items[0].height, 96);

    let karras = query(&|q| q.sampler = Some("DPM++ 2M Karras".into()));
    assert_eq!(karras.total, 10);
    assert!(karras.items.iter().all(|i| i.sampler.as_deref() == Some("DPM++ 2M Karras")));
    assert_eq!(query(&|q| q.height = Some(96)).total, 10);
    assert_eq!(query(&|q| q.model = Some("tiny-sd".into())).total, 30);
    assert_eq!(query(&|q| q.model = Some("other".into())).total, 0);
    let from = 1_700_000_000_000 + 10 * 60_000;
    let ranged = query(&|q| {
        q.from_ms = Some(from);
        q.to_ms = Some(from + 4 * 60_000);
    });
    assert_eq!(ranged.total, 5);

    // Pages: offsets walk every image once, in order.
    let mut seen = Vec::new();
    for offset in (0..30).step_by(7) {
        let page = query(&|q| {
            q.offset = offset;
            q.limit = 7;
        });
        assert_eq!(page.total, 30);
        seen.extend(page.items.into_iter().map(|i| i.file_name));
    }
    let expected: Vec<String> = (0..30).rev().map(|i| format!("{i:05}-{i}.png")).collect();
    assert_eq!(seen, expected);
    let error = gallery.search(&SearchQuery { limit: 5000, ..SearchQuery::default() }).unwrap_err();
    assert!(error.to_string().contains("limit") && error.to_string().contains("5000"), "{error}");

    let options = gallery.filter_options().unwrap();
    assert_eq!(options.samplers, ["DPM++ 2M Karras", "Euler a"]);
    assert_eq!(options.sizes, [(64, 64), (64, 96)]);
    assert_eq!(options.models, ["tiny-sd"]);
}

#[test]
fn favourites_and_boards() {
    let s = setup();
    three_tools(&s);
    let gallery = open(&s);
    let id =
        |text: &str| gallery.search(&SearchQuery { text: text.into(), ..SearchQuery::default() }).unwrap().items[0].id;
    let (cat, fox, galaxy) = (id("cat"), id("fox"), id("galaxy"));
    gallery.set_favourite(fox, true).unwrap();
    let favourites = gallery.search(&SearchQuery { favourites_only: true, ..SearchQuery::default() }).unwrap();
    assert_eq!(favourites.items.iter().map(|i| i.id).collect::<Vec<_>>(), [fox]);
    assert!(favourites.items[0].favourite);
    assert!(matches!(gallery.set_favourite(777, true).unwrap_err(), GalleryError::UnknownImage { id: 777 }));

    let animals = gallery.create_board("Animals").unwrap();
    let scenery = gallery.create_board("Scenery").unwrap();
    gallery.set_board_membership(animals.id, &[cat, fox], true).unwrap();
    gallery.set_board_membership(scenery.id, &[galaxy, fox], true).unwrap();
    // Adding twice is harmless.
    gallery.set_board_membership(animals.id, &[cat], true).unwrap();
    let on = |board| {
        let page = gallery.search(&SearchQuery { board: Some(board), ..SearchQuery::default() }).unwrap();
        let mut ids: Vec<i64> = page.items.iter().map(|i| i.id).collect();
        ids.sort();
        ids
    };
    let mut animals_expected = [cat, fox];
    animals_expected.sort();
    assert_eq!(on(animals.id), animals_expected);
    assert_eq!(gallery.image(fox).unwrap().boards, [animals.id, scenery.id], "an image can be on several boards");
    let boards = gallery.boards().unwrap();
    assert_eq!(
        boards.iter().map(|b| (b.name.as_str(), b.images)).collect::<Vec<_>>(),
        [("Animals", 2), ("Scenery", 2)]
    );

    gallery.set_board_membership(scenery.id, &[fox], false).unwrap();
    assert_eq!(on(scenery.id), [galaxy]);
    gallery.rename_board(scenery.id, "Landscapes").unwrap();
    assert_eq!(gallery.boards().unwrap()[1].name, "Landscapes");

    let taken = gallery.create_board("animals").unwrap_err();
    assert!(taken.to_string().contains("a board with that name exists"), "{taken}");
    let empty = gallery.create_board("   ").unwrap_err();
    assert!(matches!(empty, GalleryError::InvalidInput { field: "board name", .. }), "{empty}");
    assert!(matches!(gallery.rename_board(99, "x").unwrap_err(), GalleryError::UnknownBoard { id: 99 }));
    assert!(matches!(gallery.set_board_membership(animals.id, &[12345], true), Err(GalleryError::UnknownImage { .. })));

    gallery.delete_board(animals.id).unwrap();
    assert_eq!(gallery.boards().unwrap().len(), 1);
    assert_eq!(all_names(&gallery).len(), 3, "deleting a board keeps its images");
    assert!(gallery.image(fox).unwrap().boards.is_empty());
}

#[test]
fn copied_in_files_appear_and_removed_files_disappear_on_rescan() {
    let s = setup();
    three_tools(&s);
    let gallery = open(&s);
    std::fs::create_dir_all(s.folder.join("imported/2024-05-01")).unwrap();
    write_a1111(&s.folder.join("imported/2024-05-01/00007-7.png"), "a lighthouse at dawn", "", "Euler", 7, (64, 64));
    std::fs::remove_file(s.folder.join("invoke.png")).unwrap();
    // Not images: a temporary file being written, a hidden file, a text file, a broken PNG.
    std::fs::write(s.folder.join(".00009-9.png.1234.part"), b"partial").unwrap();
    std::fs::write(s.folder.join("notes.txt"), b"x").unwrap();
    std::fs::write(s.folder.join("broken.png"), b"\x89PNG broken").unwrap();

    let mut reports = Vec::new();
    let report = gallery.reconcile(&mut |p: ScanProgress| reports.push(p), &never).unwrap();
    assert_eq!((report.added, report.removed, report.updated), (1, 1, 0), "{report:?}");
    assert_eq!(report.skipped.len(), 1);
    assert!(report.skipped[0].0 == "broken.png" && report.skipped[0].1.contains("broken.png"), "{report:?}");
    assert_eq!(reports.last(), Some(&ScanProgress { done: 2, total: 2 }));
    assert_eq!(search(&gallery, "lighthouse"), ["imported/2024-05-01/00007-7.png"]);
    assert!(search(&gallery, "fox").is_empty());

    // A changed file is read again.
    write_a1111(&s.folder.join("00000-42.png"), "a dog on a sofa", "", "Euler a", 42, (64, 64));
    let file = std::fs::File::options().write(true).open(s.folder.join("00000-42.png")).unwrap();
    file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5)).unwrap();
    let report = gallery.reconcile(&mut no_progress(), &never).unwrap();
    assert_eq!(report.updated, 1, "{report:?}");
    assert_eq!(search(&gallery, "dog"), ["00000-42.png"]);
    assert!(search(&gallery, "cat").is_empty());

    // A scan can be cancelled between files.
    for i in 0..5 {
        write_a1111(&s.folder.join(format!("new-{i}.png")), "more", "", "Euler", i, (16, 16));
    }
    let error = gallery.reconcile(&mut no_progress(), &|| true).unwrap_err();
    assert!(matches!(error, GalleryError::Cancelled), "{error}");
}

#[test]
fn the_index_is_rebuilt_from_the_files_when_it_is_lost() {
    let s = setup();
    three_tools(&s);
    let before = all_names(&open(&s));
    std::fs::remove_file(s.data.join("index.sqlite")).unwrap();
    let gallery = open(&s);
    assert!(gallery.recovery().is_none(), "a missing index is simply made anew");
    assert_eq!(all_names(&gallery), before);
    assert_eq!(search(&gallery, "galaxy"), ["ComfyUI_00001_.png"]);
}

#[test]
fn a_damaged_index_is_moved_aside_and_rebuilt_from_the_files() {
    let s = setup();
    three_tools(&s);
    let before = {
        let gallery = open(&s);
        all_names(&gallery)
    };
    let database = s.data.join("index.sqlite");
    // Garbage over the header and the first pages, as a disk error or a stray write would leave it.
    let mut bytes = std::fs::read(&database).unwrap();
    for byte in bytes.iter_mut().take(8192) {
        *byte = 0xA5;
    }
    std::fs::write(&database, &bytes).unwrap();

    let gallery = Gallery::open(&s.folder, &s.data).unwrap();
    let recovery = gallery.recovery().expect("the damage is detected").clone();
    assert!(recovery.moved_to.exists(), "the damaged file is kept for inspection: {recovery:?}");
    assert!(recovery.moved_to.file_name().unwrap().to_string_lossy().starts_with("index.sqlite.damaged-"));
    assert!(!recovery.reason.is_empty());
    let report = gallery.reconcile(&mut no_progress(), &never).unwrap();
    assert_eq!(report.added, 3);
    assert_eq!(all_names(&gallery), before);
    drop(gallery);
    assert!(Gallery::open(&s.folder, &s.data).unwrap().recovery().is_none(), "the new index is sound");
}

#[test]
fn an_index_from_a_newer_pigment_is_set_aside_not_misread() {
    let s = setup();
    three_tools(&s);
    drop(open(&s));
    let connection = rusqlite::Connection::open(s.data.join("index.sqlite")).unwrap();
    connection.pragma_update(None, "user_version", pigment_gallery::SCHEMA_VERSION + 1).unwrap();
    drop(connection);
    let gallery = Gallery::open(&s.folder, &s.data).unwrap();
    let recovery = gallery.recovery().expect("set aside");
    assert!(recovery.reason.contains("newer Pigment"), "{recovery:?}");
    gallery.reconcile(&mut no_progress(), &never).unwrap();
    assert_eq!(all_names(&gallery).len(), 3);
}

#[test]
fn paths_from_outside_the_gallery_folder_are_refused() {
    let s = setup();
    three_tools(&s);
    let gallery = open(&s);
    let outside = s.folder.parent().unwrap().join("secret.png");
    write_a1111(&outside, "secret", "", "Euler", 1, (8, 8));
    assert!(gallery.resolve("00000-42.png").unwrap().ends_with("outputs/00000-42.png"));

    let refused = |name: &str| {
        let error = gallery.resolve(name).unwrap_err();
        assert!(matches!(error, GalleryError::PathNotAllowed { .. }), "{name}: {error}");
        error.to_string()
    };
    assert!(refused("../secret.png").contains("'..'"));
    assert!(refused("imported/../../secret.png").contains("'..'"));
    assert!(refused(outside.to_str().unwrap()).contains("inside the gallery folder"));
    refused("/etc/passwd");
    refused("");
    refused("missing.png");
    std::fs::write(s.folder.join("notes.txt"), b"x").unwrap();
    assert!(refused("notes.txt").contains("not a PNG"));
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&outside, s.folder.join("link.png")).unwrap();
        assert!(refused("link.png").contains("outside"));
        std::os::unix::fs::symlink(s.folder.parent().unwrap(), s.folder.join("up")).unwrap();
        assert!(refused("up/secret.png").contains("outside"));
    }
    // Indexing goes through the same check.
    assert!(matches!(gallery.index_file(&outside), Err(GalleryError::PathNotAllowed { .. })));
    assert!(resolve_gallery_file("00000-42.png", &s.folder).is_ok());
}

#[test]
fn generated_images_enter_the_index_and_the_history() {
    let s = setup();
    let gallery = open(&s);
    for i in 0..3u64 {
        let path = s.folder.join(format!("{i:05}-{i}.png"));
        let (picture, text) = write_a1111(&path, &format!("a castle, take {i}"), "fog", "DPM++ 2M Karras", i, (64, 64));
        let summary = gallery.add_generated(&path, &picture, &text).unwrap();
        assert_eq!(summary.file_name, format!("{i:05}-{i}.png"));
    }
    assert_eq!(search(&gallery, "castle").len(), 3);
    let history = gallery.history(0, 10).unwrap();
    assert_eq!(history.len(), 3);
    assert!(history.iter().all(|h| h.image_id.is_some()));
    assert_eq!(history[0].reuse.sampler.as_deref(), Some("dpmpp_2m"));
    assert_eq!(history[0].reuse.schedule.as_deref(), Some("karras"));
    assert_eq!(history[0].metadata.negative_prompt, "fog");

    // The history outlives its images (here removed behind the gallery's back).
    std::fs::remove_file(s.folder.join("00001-1.png")).unwrap();
    gallery.reconcile(&mut no_progress(), &never).unwrap();
    let history = gallery.history(0, 10).unwrap();
    assert_eq!(history.len(), 3);
    let gone = history.iter().find(|h| h.file_name == "00001-1.png").unwrap();
    assert_eq!(gone.image_id, None);
    assert_eq!(gone.metadata.prompt, "a castle, take 1");
    assert_eq!(png_names(&s.folder).len(), 2);
    assert!(gallery.history(0, 5000).is_err());
}

#[test]
fn a_generated_image_is_indexed_from_memory_as_its_file_would_be() {
    let s = setup();
    let gallery = open(&s);
    let path = s.folder.join("00000-7.png");
    let (picture, text) = write_a1111(&path, "a lighthouse", "rain", "DPM++ 2M Karras", 7, (300, 200));
    let from_memory = gallery.image(gallery.add_generated(&path, &picture, &text).unwrap().id).unwrap();
    let thumbnail = from_memory.summary.thumbnail.clone().unwrap();
    let thumbnail_from_memory = image::open(&thumbnail).unwrap().to_rgb8();
    assert_eq!(thumbnail_from_memory.dimensions(), (256, 171), "made smaller, keeping the aspect ratio");
    // Indexed again from the file alone (its thumbnail made again from the PNG), the row is the same.
    std::fs::remove_file(&thumbnail).unwrap();
    let from_file = gallery.image(gallery.index_file(&path).unwrap().id).unwrap();
    assert_eq!(from_file, from_memory);
    assert_eq!(image::open(&thumbnail).unwrap().to_rgb8(), thumbnail_from_memory);
}
