//! Gallery timings: indexing 10,000 PNGs, then searches over 50,000 rows.
//!
//! `cargo run --release -p pigment-gallery --example gallery_bench [-- <images>]`
//!
//! Test data: 10,000 PNGs of 64x64 pixels written by the engine's writer, each with AUTOMATIC1111 parameters varied
//! from word lists (prompt of 6-10 words out of 60, 4 samplers, 3 sizes, 3 models, seeds, negative prompts). For the
//! 50,000-row searches the folder is grown to 50,000 files with hard links (4 more names per file), which the
//! gallery indexes like any other file.

use std::time::{Duration, Instant};

use image::RgbImage;
use pigment_engine::image::{InfoText, PARAMETERS_KEY, write_png_atomically};
use pigment_gallery::{Gallery, SearchQuery, SortOrder};

const WORDS: [&str; 60] = [
    "cat",
    "dog",
    "fox",
    "owl",
    "lighthouse",
    "castle",
    "forest",
    "ocean",
    "mountain",
    "desert",
    "city",
    "village",
    "robot",
    "dragon",
    "knight",
    "wizard",
    "garden",
    "river",
    "bridge",
    "tower",
    "sunset",
    "sunrise",
    "night",
    "storm",
    "snow",
    "rain",
    "fog",
    "neon",
    "golden",
    "silver",
    "ancient",
    "futuristic",
    "portrait",
    "landscape",
    "macro",
    "cinematic",
    "watercolor",
    "oil",
    "sketch",
    "photo",
    "detailed",
    "masterpiece",
    "soft",
    "dramatic",
    "lighting",
    "glass",
    "bottle",
    "galaxy",
    "purple",
    "red",
    "blue",
    "green",
    "ship",
    "harbour",
    "train",
    "station",
    "market",
    "library",
    "cathedral",
    "meadow",
];
const SAMPLERS: [&str; 4] = ["Euler a", "Euler", "DPM++ 2M Karras", "DDIM"];
const SIZES: [(u32, u32); 3] = [(512, 512), (512, 768), (768, 512)];
const MODELS: [&str; 3] = ["tiny-sd", "dreamshaper_8", "v1-5-pruned-emaonly"];

/// A small deterministic generator, so every run makes the same files.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

fn median_ms(mut runs: Vec<Duration>) -> f64 {
    runs.sort();
    runs[runs.len() / 2].as_secs_f64() * 1000.0
}

fn time(runs: usize, mut work: impl FnMut()) -> f64 {
    median_ms(
        (0..runs)
            .map(|_| {
                let started = Instant::now();
                work();
                started.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let images: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let folder = dir.path().join("outputs");
    std::fs::create_dir_all(&folder).unwrap();
    let mut rng = Lcg(7);

    let started = Instant::now();
    for i in 0..images {
        let words: Vec<&str> = (0..6 + rng.next(5)).map(|_| WORDS[rng.next(WORDS.len())]).collect();
        let mut info = InfoText { prompt: words.join(", "), negative_prompt: "blurry, lowres".into(), params: vec![] };
        let (w, h) = SIZES[rng.next(SIZES.len())];
        info.set("Steps", 10 + rng.next(30));
        info.set("Sampler", SAMPLERS[rng.next(SAMPLERS.len())]);
        info.set("CFG scale", 7);
        info.set("Seed", i);
        info.set("Size", format!("{w}x{h}"));
        info.set("Model", MODELS[rng.next(MODELS.len())]);
        let seed = i as u32;
        let pixels = RgbImage::from_fn(64, 64, |x, y| image::Rgb([(x + seed) as u8, (y * 3) as u8, (seed >> 3) as u8]));
        let text = info.to_text();
        write_png_atomically(&folder.join(format!("{i:05}-{i}.png")), &pixels, &[(PARAMETERS_KEY, text.as_str())])
            .unwrap();
    }
    println!("made {images} PNGs (64x64, A1111 parameters) in {:.1} s", started.elapsed().as_secs_f64());

    let data = dir.path().join("gallery");
    let started = Instant::now();
    let gallery = Gallery::open(&folder, &data).unwrap();
    let report = gallery.reconcile(&mut |_| {}, &|| false).unwrap();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "indexed {} images (metadata + 256 px thumbnail + SQLite/FTS5) in {seconds:.2} s: {:.0} images/s",
        report.added,
        report.added as f64 / seconds
    );

    // Grow to 5x the rows with hard links (the same files under more names).
    for copy in 1..5 {
        for i in 0..images {
            std::fs::hard_link(folder.join(format!("{i:05}-{i}.png")), folder.join(format!("copy{copy}-{i:05}.png")))
                .unwrap();
        }
    }
    let started = Instant::now();
    let report = gallery.reconcile(&mut |_| {}, &|| false).unwrap();
    println!("indexed {} more (hard links) in {:.2} s", report.added, started.elapsed().as_secs_f64());
    let total = gallery.search(&SearchQuery::default()).unwrap().total;
    println!("rows: {total}");

    let query = |text: &str, change: &dyn Fn(&mut SearchQuery)| {
        let mut q = SearchQuery { text: text.into(), limit: 120, ..SearchQuery::default() };
        change(&mut q);
        q
    };
    let cases: Vec<(&str, SearchQuery)> = vec![
        ("first page, newest first (no search)", query("", &|_| {})),
        ("search one word ('lighthouse')", query("lighthouse", &|_| {})),
        ("search two words ('galaxy bottle')", query("galaxy bottle", &|_| {})),
        ("search a prefix ('cath')", query("cath", &|_| {})),
        (
            "search + sampler + model filters",
            query("cat", &|q| {
                q.sampler = Some("DPM++ 2M Karras".into());
                q.model = Some("dreamshaper_8".into());
            }),
        ),
        ("search, oldest first", query("forest", &|q| q.sort = SortOrder::Oldest)),
        ("search, prompt A-Z", query("forest", &|q| q.sort = SortOrder::Prompt)),
        ("last page (offset total-120), no search", query("", &|q| q.offset = total as u32 - 120)),
    ];
    println!("median of 20 runs, each = count of all matches + one page of 120:");
    for (name, q) in cases {
        let hits = gallery.search(&q).unwrap().total;
        let ms = time(20, || {
            gallery.search(&q).unwrap();
        });
        println!("  {name:<42} {ms:>7.2} ms  ({hits} matches)");
    }
    let started = Instant::now();
    drop(gallery);
    let gallery = Gallery::open(&folder, &data).unwrap();
    let report = gallery.reconcile(&mut |_| {}, &|| false).unwrap();
    println!(
        "open + reconcile of an unchanged {total}-image folder (startup): {:.0} ms ({} changes)",
        started.elapsed().as_secs_f64() * 1000.0,
        report.added + report.updated + report.removed
    );
}
