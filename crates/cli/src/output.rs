//! Where generated images go: `--output` names a folder (which must exist) or a `.png` file (whose folder must
//! exist). Checked, including that the folder can be written, before any model runs.

use std::path::{Path, PathBuf};

use pigment_engine::image::{next_image_number, numbered_image_path};

use crate::CliError;

/// The folder used when no `--output` is given; created if missing.
const DEFAULT_FOLDER: &str = "outputs";

pub enum OutputPlan {
    /// Files `NNNNN-SEED.png` in a folder, numbered after the highest number already there (as A1111 does).
    Folder { folder: PathBuf, next_number: u64 },
    /// One named file; with several images, `NAME-INDEX.png`.
    File { path: PathBuf, images: usize },
}

impl OutputPlan {
    pub fn new(output: Option<&Path>, images: usize) -> Result<OutputPlan, CliError> {
        let Some(output) = output else {
            let folder = PathBuf::from(DEFAULT_FOLDER);
            std::fs::create_dir_all(&folder).map_err(|e| unwritable(&folder, &e.to_string()))?;
            return OutputPlan::folder(folder);
        };
        if output.is_dir() {
            return OutputPlan::folder(output.to_path_buf());
        }
        let is_png = output.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"));
        if !is_png {
            return Err(CliError::Usage(format!(
                "output folder {} does not exist (give an existing folder or a .png file name)",
                output.display()
            )));
        }
        let parent = output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !parent.is_dir() {
            return Err(CliError::Usage(format!("output folder {} does not exist", parent.display())));
        }
        check_writable(parent)?;
        Ok(OutputPlan::File { path: output.to_path_buf(), images })
    }

    fn folder(folder: PathBuf) -> Result<OutputPlan, CliError> {
        check_writable(&folder)?;
        let next_number = next_image_number(&folder);
        Ok(OutputPlan::Folder { folder, next_number })
    }

    /// `NNNNN-SUFFIX.png` in a folder (the named file otherwise), for results that have no seed (upscaling).
    pub fn path_with_suffix(&self, index: usize, suffix: &str) -> PathBuf {
        match self {
            OutputPlan::Folder { folder, next_number } => {
                numbered_image_path(folder, next_number + index as u64, suffix)
            }
            OutputPlan::File { .. } => self.path_for(index, 0),
        }
    }

    pub fn path_for(&self, index: usize, seed: u64) -> PathBuf {
        match self {
            OutputPlan::Folder { folder, next_number } => numbered_image_path(folder, next_number + index as u64, seed),
            OutputPlan::File { path, images: 1 } => path.clone(),
            OutputPlan::File { path, .. } => {
                let stem = path.file_stem().unwrap_or_default().to_string_lossy();
                path.with_file_name(format!("{stem}-{index}.png"))
            }
        }
    }
}

fn unwritable(folder: &Path, reason: &str) -> CliError {
    CliError::Usage(format!("output folder {} cannot be written: {reason}", folder.display()))
}

/// Creating and removing a file is the only reliable test (permissions, read-only mounts, ACLs).
fn check_writable(folder: &Path) -> Result<(), CliError> {
    let probe = folder.join(format!(".pigment-write-check-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| unwritable(folder, &e.to_string()))?;
    std::fs::remove_file(&probe).map_err(|e| unwritable(folder, &e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_continue_after_existing_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("00007-42.png"), b"").unwrap();
        let plan = OutputPlan::new(Some(dir.path()), 2).unwrap();
        assert_eq!(plan.path_for(0, 5), dir.path().join("00008-5.png"));
        assert_eq!(plan.path_for(1, 6), dir.path().join("00009-6.png"));
    }

    #[test]
    fn a_file_name_gets_an_index_when_there_are_several_images() {
        let dir = tempfile::tempdir().unwrap();
        let single = OutputPlan::new(Some(&dir.path().join("cat.png")), 1).unwrap();
        assert_eq!(single.path_for(0, 1), dir.path().join("cat.png"));
        let several = OutputPlan::new(Some(&dir.path().join("cat.png")), 3).unwrap();
        assert_eq!(several.path_for(2, 1), dir.path().join("cat-2.png"));
    }

    #[test]
    fn a_missing_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let message = OutputPlan::new(Some(&dir.path().join("nope")), 1).err().unwrap().to_string();
        assert!(message.contains("does not exist") && message.contains("nope"), "{message}");
        let message = OutputPlan::new(Some(&dir.path().join("nope/cat.png")), 1).err().unwrap().to_string();
        assert!(message.contains("does not exist") && message.contains("nope"), "{message}");
    }
}
