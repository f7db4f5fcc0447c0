//! Delete to the OS trash and undo, on a real XDG trash. The trash lives in $XDG_DATA_HOME, which this test points
//! at a temporary folder: it runs in its own test binary because the environment is the whole process's.

mod common;

use common::*;
use pigment_gallery::{Gallery, GalleryError, SearchQuery};

#[test]
fn deleted_images_go_to_the_trash_and_undo_brings_them_back_with_their_marks() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".local/share")).unwrap();
    // SAFETY: this binary's only test; nothing else reads the environment concurrently.
    unsafe {
        std::env::set_var("HOME", &home);
        std::env::set_var("XDG_DATA_HOME", home.join(".local/share"));
    }
    let folder = home.join("Pictures/Pigment");
    std::fs::create_dir_all(&folder).unwrap();
    let gallery = Gallery::open(&folder, &dir.path().join("data")).unwrap();
    let path = folder.join("00000-42.png");
    let (picture, text) = write_a1111(&path, "a windmill in a tulip field", "", "Euler a", 42, (64, 64));
    let id = gallery.add_generated(&path, &picture, &text).unwrap().id;
    let night = folder.join("00001-43.png");
    let (picture, text) = write_a1111(&night, "a windmill at night", "", "Euler a", 43, (64, 64));
    gallery.add_generated(&night, &picture, &text).unwrap();
    gallery.set_favourite(id, true).unwrap();
    let board = gallery.create_board("Holland").unwrap();
    gallery.set_board_membership(board.id, &[id], true).unwrap();
    let found = |text: &str| gallery.search(&SearchQuery { text: text.into(), ..SearchQuery::default() }).unwrap();

    gallery.delete(&[id]).unwrap();
    assert!(!path.exists(), "the file left the gallery folder");
    let trashed = home.join(".local/share/Trash/files/00000-42.png");
    assert!(trashed.is_file(), "the file is in the XDG trash");
    assert!(home.join(".local/share/Trash/info/00000-42.png.trashinfo").is_file());
    assert_eq!(found("tulip").total, 0, "a deleted image leaves the grid");
    assert_eq!(found("windmill").total, 1);
    assert!(matches!(gallery.image(id), Err(GalleryError::UnknownImage { .. })));
    let history = gallery.history(0, 10).unwrap();
    assert_eq!(history.len(), 2, "the history keeps the generation");
    assert_eq!(history.iter().find(|h| h.file_name == "00000-42.png").unwrap().image_id, None);
    // A rescan while the undo is pending keeps the row (the file is gone only to the trash).
    gallery.reconcile(&mut no_progress(), &never).unwrap();

    gallery.undo_delete(&[id]).unwrap();
    assert!(path.is_file(), "restored in place");
    assert!(!trashed.exists());
    assert_eq!(image::open(&path).unwrap().to_rgb8(), pixels(64, 64, 42), "the same pixels");
    let detail = gallery.image(id).unwrap();
    assert!(detail.summary.favourite, "the favourite mark survives");
    assert_eq!(detail.boards, [board.id], "and the board");
    assert_eq!(found("tulip").total, 1);

    let again = gallery.undo_delete(&[id]).unwrap_err();
    assert!(again.to_string().contains("not in the trash"), "{again}");
    assert!(matches!(gallery.delete(&[4242]), Err(GalleryError::UnknownImage { id: 4242 })));

    // Deleted, then a file of the same name appears: the undo refuses to overwrite it.
    gallery.delete(&[id]).unwrap();
    write_a1111(&path, "someone else's image", "", "Euler", 1, (8, 8));
    let blocked = gallery.undo_delete(&[id]).unwrap_err();
    assert!(blocked.to_string().contains("exists again"), "{blocked}");
    assert!(trashed.is_file(), "the trashed file stays in the trash");
    // Reopening ends the undo window: the row of the trashed image is dropped, the new file is indexed.
    drop(gallery);
    let gallery = Gallery::open(&folder, &dir.path().join("data")).unwrap();
    gallery.reconcile(&mut no_progress(), &never).unwrap();
    let page = gallery.search(&SearchQuery::default()).unwrap();
    assert_eq!(page.total, 2);
    assert!(page.items.iter().any(|i| i.prompt == "someone else's image"));
}
