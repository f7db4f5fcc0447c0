//! A real process saving a batch (atomic PNG write, then the index entry, as the app does) is killed with SIGKILL
//! part-way: no half-written image is left under an image's name, and after the reconcile the index holds exactly
//! the files. The child is this test binary itself, started again with an environment variable naming the folders.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use pigment_engine::image::{PARAMETERS_KEY, write_png_atomically};
use pigment_gallery::{Gallery, SearchQuery};

const CHILD_ENV: &str = "PIGMENT_GALLERY_KILL_TEST_CHILD";
const BATCH: usize = 400;

/// The child: saves images one after another until killed (or done).
#[test]
fn child_saves_a_batch() {
    let Some(folders) = std::env::var_os(CHILD_ENV) else { return };
    let folders = PathBuf::from(folders);
    let (folder, data) = (folders.join("outputs"), folders.join("data"));
    let gallery = Gallery::open(&folder, &data).unwrap();
    let start: usize = std::env::var("PIGMENT_GALLERY_KILL_TEST_START").unwrap().parse().unwrap();
    for i in start..start + BATCH {
        let path = folder.join(format!("{i:05}-{i}.png"));
        // Noise compresses badly: each write takes long enough to be interrupted.
        let image = image::RgbImage::from_fn(384, 384, |x, y| {
            let v = (x.wrapping_mul(2654435761) ^ y.wrapping_mul(40503) ^ (i as u32).wrapping_mul(97)).rotate_left(7);
            image::Rgb([v as u8, (v >> 8) as u8, (v >> 16) as u8])
        });
        let text = a1111_text(&format!("batch image {i}"), "", "Euler a", i as u64, 384, 384);
        write_png_atomically(&path, &image, &[(PARAMETERS_KEY, text.as_str())]).unwrap();
        gallery.add_generated(&path, &image, &text).unwrap();
    }
}

#[test]
fn a_batch_killed_mid_way_leaves_whole_images_and_an_index_that_matches_them() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("outputs");
    std::fs::create_dir_all(&folder).unwrap();
    let mut temporary_files_seen = 0;
    for (round, delay_ms) in [0u64, 7, 23].into_iter().enumerate() {
        let start = png_names(&folder).len() + round * 1000;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["child_saves_a_batch", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .env("PIGMENT_GALLERY_KILL_TEST_START", start.to_string())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let before = png_names(&folder).len();
        let deadline = Instant::now() + Duration::from_secs(60);
        while png_names(&folder).len() < before + 4 {
            assert!(Instant::now() < deadline, "the child saves images");
            assert!(child.try_wait().unwrap().is_none(), "the child is still running");
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL on Unix: no destructor, no flush.
        let status = child.wait().unwrap();
        assert!(!status.success(), "killed before the batch finished: {status:?}");
        temporary_files_seen += std::fs::read_dir(&folder)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".part"))
            .count();

        // Every file under an image's name is a whole PNG with its parameters.
        let names = png_names(&folder);
        assert!(names.len() >= before + 4);
        for name in &names {
            let path = folder.join(name);
            image::open(&path).unwrap_or_else(|e| panic!("{name} is damaged: {e}"));
            let text = pigment_engine::image::read_png_text(&path, PARAMETERS_KEY).unwrap().unwrap();
            assert!(text.starts_with("batch image "), "{name}: {text}");
        }

        // After the reconcile the index lists exactly these files, each with its own prompt.
        let gallery = Gallery::open(&folder, &dir.path().join("data")).unwrap();
        assert!(gallery.recovery().is_none(), "a killed writer does not damage the index (WAL)");
        gallery.reconcile(&mut no_progress(), &never).unwrap();
        let page = gallery.search(&SearchQuery { limit: 1000, ..SearchQuery::default() }).unwrap();
        let mut indexed: Vec<String> = page.items.iter().map(|i| i.file_name.clone()).collect();
        indexed.sort();
        assert_eq!(indexed, names, "round {round}");
        for item in &page.items {
            let number: usize = item.file_name.split('-').next().unwrap().parse().unwrap();
            assert_eq!(item.prompt, format!("batch image {number}"));
        }
    }
    println!("temporary files left by the killed writers (not images, skipped by scans): {temporary_files_seen}");
}
