//! The names of Pigment's commands, shared by the build script (which generates one `allow-<name>` permission
//! each) and the app (whose capability grants exactly these).

pub const NAMES: &[&str] = &[
    "app_info",
    "list_models",
    "add_model_folder",
    "inspect_model",
    "list_samplers",
    "get_settings",
    "save_settings",
    "pick_output_folder",
    "submit_job",
    "cancel_job",
    "move_job",
    "list_jobs",
    "save_image_as",
    "copy_image",
];
