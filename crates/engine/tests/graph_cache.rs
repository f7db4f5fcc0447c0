//! ONNX Runtime's optimized graphs cached on disk: written on the first load, used on the second, replaced when
//! the model changes, and giving the same images as the model itself.

mod common;

use std::path::{Path, PathBuf};

use common::{Collect, txt2img};

use pigment_engine::model::LoadedModel;
use pigment_engine::pipeline::GenerateRequest;
use pigment_engine::runtime::Runtime;

/// A runtime with its own cache folder. Tests run in parallel, so each gets its own folder on the one runtime a
/// process may have.
fn runtime_with_cache() -> (Runtime, PathBuf) {
    let runtime = common::runtime();
    let cache = tempfile::tempdir().unwrap().keep();
    (runtime.with_cache_dir(Some(cache.clone())), cache.join("graphs"))
}

fn cached_graphs(cache: &Path) -> usize {
    std::fs::read_dir(cache)
        .map(|entries| entries.filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "onnx")).count())
        .unwrap_or(0)
}

fn generate(model: &mut LoadedModel) -> image::RgbImage {
    let request = GenerateRequest {
        prompt: "a photo of a cat".into(),
        seed: Some(3),
        steps: 4,
        width: 64,
        height: 64,
        ..GenerateRequest::default()
    };
    let mut collect = Collect::default();
    txt2img(model, &request, &mut collect).unwrap();
    collect.images.remove(0).image
}

#[test]
fn graphs_are_cached_reused_and_replaced_when_the_model_changes() {
    let (runtime, cache) = runtime_with_cache();
    let folder = tempfile::tempdir().unwrap();
    for entry in ["model_index.json", "scheduler", "tokenizer", "text_encoder", "unet", "vae_decoder"] {
        copy(&common::demo_model().join(entry), &folder.path().join(entry));
    }

    let mut first = LoadedModel::open(&runtime, folder.path()).unwrap();
    assert_eq!(cached_graphs(&cache), 3, "text encoder, UNet and VAE decoder graphs are kept");
    let first_graph = first.info().unet.graph;
    assert!(first_graph.starts_with(&cache), "sessions are made from the cached graph: {}", first_graph.display());
    let modified = std::fs::metadata(&first_graph).unwrap().modified().unwrap();

    let mut second = LoadedModel::open(&runtime, folder.path()).unwrap();
    assert_eq!(second.info().unet.graph, first_graph, "the second load reads the same entry");
    assert_eq!(std::fs::metadata(&first_graph).unwrap().modified().unwrap(), modified, "and does not rewrite it");
    assert_eq!(cached_graphs(&cache), 3);
    let cached_image = generate(&mut second);
    assert_eq!(generate(&mut first), cached_image);

    // The optimized graph computes what the model computes, up to float rounding in fused kernels.
    let mut uncached = LoadedModel::open(&runtime.with_cache_dir(None), folder.path()).unwrap();
    assert_eq!(uncached.info().unet.graph, folder.path().join("unet/model.onnx"));
    let plain = generate(&mut uncached);
    let largest = plain.as_raw().iter().zip(cached_image.as_raw()).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
    assert!(largest <= 2, "the cached graph's image differs from the model's by {largest}/255");

    // A changed model (a new modification time is enough) gets a new entry instead of a stale graph.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let unet = folder.path().join("unet/model.onnx");
    std::fs::write(&unet, std::fs::read(&unet).unwrap()).unwrap();
    let third = LoadedModel::open(&runtime, folder.path()).unwrap();
    assert_ne!(third.info().unet.graph, first_graph);
    assert_eq!(cached_graphs(&cache), 4);
}

fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap();
    }
}

#[test]
fn fp16_chosen_on_the_cpu_converts_the_unet_once_and_keeps_the_image_close() {
    let (runtime, graphs) = runtime_with_cache();
    let cache = graphs.parent().unwrap().to_path_buf();
    let runtime = runtime.with_precision(pigment_engine::runtime::PrecisionChoice::Fp16);
    let mut half = LoadedModel::open(&runtime, &common::demo_model()).unwrap();
    let info = half.info();
    assert_eq!(info.precision.precision, pigment_engine::runtime::Precision::Fp16, "{}", info.precision.reason);
    let converted = std::fs::read_dir(cache.join("fp16")).unwrap().count();
    assert_eq!(converted, 1, "the UNet's conversion is kept in the cache");
    let again = LoadedModel::open(&runtime, &common::demo_model()).unwrap();
    assert_eq!(std::fs::read_dir(cache.join("fp16")).unwrap().count(), 1, "and reused, not converted again");
    drop(again);
    let mut full = LoadedModel::open(
        &runtime.with_precision(pigment_engine::runtime::PrecisionChoice::Auto),
        &common::demo_model(),
    )
    .unwrap();
    assert_eq!(full.info().precision.precision, pigment_engine::runtime::Precision::Fp32, "auto is fp32 on the CPU");
    let (a, b) = (generate(&mut half), generate(&mut full));
    let mean =
        a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| x.abs_diff(*y) as f64).sum::<f64>() / a.as_raw().len() as f64;
    assert!(mean < 1.0, "fp16 UNet image differs from fp32 by {mean:.3}/255 on average");
}
