//! The names of images saved in a folder: `NNNNN-SEED.png`, numbered after the highest number already there, as
//! AUTOMATIC1111 does (the CLI, the app and their galleries share one sequence per folder).

use std::path::{Path, PathBuf};

/// The number the next image saved in `folder` takes: one more than the highest `NNNNN-...png` there, else 0.
pub fn next_image_number(folder: &Path) -> u64 {
    let highest = std::fs::read_dir(folder).ok().and_then(|entries| {
        entries
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                let (number, _) = name.strip_suffix(".png")?.split_once('-')?;
                number.parse::<u64>().ok()
            })
            .max()
    });
    highest.map_or(0, |n| n + 1)
}

/// `folder/NNNNN-SUFFIX.png`: the suffix is the seed for generated images, a word for others (`control-0`).
pub fn numbered_image_path(folder: &Path, number: u64, suffix: impl std::fmt::Display) -> PathBuf {
    folder.join(format!("{number:05}-{suffix}.png"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_continue_after_the_highest_in_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(next_image_number(dir.path()), 0);
        for name in ["00003-1.png", "00011-7.png", "notes.txt", "x-1.png", "00099.png"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        assert_eq!(next_image_number(dir.path()), 12);
        assert_eq!(numbered_image_path(dir.path(), 12, 42), dir.path().join("00012-42.png"));
        assert_eq!(next_image_number(&dir.path().join("missing")), 0);
    }
}
