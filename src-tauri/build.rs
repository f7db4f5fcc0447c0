//! Generates the app's permission set: one `allow-<command>` per Pigment command, so the capability in
//! `capabilities/main-window.json` can grant exactly those and nothing else.

fn main() {
    let manifest = tauri_build::AppManifest::new().commands(pigment_commands::NAMES);
    if let Err(error) = tauri_build::try_build(tauri_build::Attributes::new().app_manifest(manifest)) {
        // Cargo shows a build script's panic message; the error says which file or setting is wrong.
        panic!("tauri-build failed: {error:#}");
    }
}

#[path = "src/command_names.rs"]
mod pigment_commands;
