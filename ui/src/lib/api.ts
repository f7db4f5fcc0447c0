// The only module that talks to the Rust side. Every call is one of Pigment's commands
// (src-tauri/src/commands.rs); errors arrive as AppError objects.
import { Channel, convertFileSrc, invoke } from "@tauri-apps/api/core";
import type {
  AppError,
  DroppedImage,
  GalleryBoard,
  GalleryFilters,
  GalleryImageDetail,
  GalleryPage,
  GalleryQuery,
  GalleryStatus,
  HistoryEntry,
  ScanProgress,
  ScanReport,
  AppInfo,
  ControlModelList,
  ControlPreview,
  ControlPreviewProgress,
  ControlUnitParams,
  GenerateParams,
  JobEvent,
  JobSummary,
  ModelEntry,
  ModelReport,
  SamplerOption,
  Settings,
  SettingsSaved,
  SettingsUpdate,
} from "./types";

export const api = {
  appInfo: () => invoke<AppInfo>("app_info"),
  listModels: () => invoke<ModelEntry[]>("list_models"),
  addModelFolder: () => invoke<ModelReport | null>("add_model_folder"),
  inspectModel: (id: string) => invoke<ModelReport>("inspect_model", { id }),
  listSamplers: () => invoke<SamplerOption[]>("list_samplers"),
  getSettings: () => invoke<Settings>("get_settings"),
  saveSettings: (update: SettingsUpdate) => invoke<SettingsSaved>("save_settings", { update }),
  pickOutputFolder: () => invoke<string | null>("pick_output_folder"),
  submitJob(params: GenerateParams, onEvent: (event: JobEvent) => void): Promise<number> {
    const channel = new Channel<JobEvent>();
    channel.onmessage = onEvent;
    return invoke<number>("submit_job", { params, onEvent: channel });
  },
  cancelJob: (id: number) => invoke<void>("cancel_job", { id }),
  moveJob: (id: number, index: number) => invoke<void>("move_job", { id, index }),
  listJobs: () => invoke<JobSummary[]>("list_jobs"),
  saveImageAs: (path: string) => invoke<string | null>("save_image_as", { path }),
  copyImage: (path: string) => invoke<void>("copy_image", { path }),
  /** A generated image's PNG bytes (for the canvas, which must read its pixels). */
  readOutputImage: (path: string) => invoke<ArrayBuffer>("read_output_image", { path }),
  galleryStatus: () => invoke<GalleryStatus>("gallery_status"),
  gallerySearch: (query: GalleryQuery) => invoke<GalleryPage>("gallery_search", { query }),
  galleryImage: (id: number) => invoke<GalleryImageDetail>("gallery_image", { id }),
  galleryFilters: () => invoke<GalleryFilters>("gallery_filters"),
  gallerySetFavourite: (id: number, favourite: boolean) => invoke<void>("gallery_set_favourite", { id, favourite }),
  galleryBoards: () => invoke<GalleryBoard[]>("gallery_boards"),
  galleryCreateBoard: (name: string) => invoke<GalleryBoard>("gallery_create_board", { name }),
  galleryRenameBoard: (id: number, name: string) => invoke<void>("gallery_rename_board", { id, name }),
  galleryDeleteBoard: (id: number) => invoke<void>("gallery_delete_board", { id }),
  galleryBoardImages: (board: number, images: number[], add: boolean) =>
    invoke<void>("gallery_board_images", { board, images, add }),
  galleryDelete: (ids: number[]) => invoke<void>("gallery_delete", { ids }),
  galleryUndoDelete: (ids: number[]) => invoke<void>("gallery_undo_delete", { ids }),
  galleryHistory: (offset: number, limit: number) => invoke<HistoryEntry[]>("gallery_history", { offset, limit }),
  galleryRescan(onProgress: (progress: ScanProgress) => void): Promise<ScanReport> {
    const channel = new Channel<ScanProgress>();
    channel.onmessage = onProgress;
    return invoke<ScanReport>("gallery_rescan", { onProgress: channel });
  },
  galleryCancelScan: () => invoke<void>("gallery_cancel_scan"),
  galleryReveal: (fileName: string) => invoke<void>("gallery_reveal", { fileName }),
  galleryImportDropped: (paths: string[]) => invoke<number[]>("gallery_import_dropped", { paths }),
  /** Every picture dropped on the window arrives at `onDrop` (Tauri's drop handler takes file drops from the page). */
  watchDroppedFiles(onDrop: (info: DroppedImage) => void): Promise<void> {
    const channel = new Channel<DroppedImage>();
    channel.onmessage = onDrop;
    return invoke<void>("watch_dropped_files", { onDrop: channel });
  },
  /** "Export mask": a native save dialog writes the mask PNG; the chosen path, or null when cancelled. */
  saveMaskAs: (pngBase64: string) => invoke<string | null>("save_mask_as", { pngBase64 }),
  /** A picture dropped on the window this session, as PNG bytes (read as the engine reads pictures). */
  readDroppedPicture: (path: string) => invoke<ArrayBuffer>("read_dropped_picture", { path }),
  /** The ControlNets and T2I-Adapters in the models folder, and the annotators installed there. */
  listControlModels: () => invoke<ControlModelList>("list_control_models"),
  /**
   * A control unit's picture preprocessed at the generation size (`mask`: the canvas's, for `inpaint`). With
   * `unit.id` it is that unit's latest preview: a newer one or `cancelControlPreview` makes it reject with kind
   * "cancelled".
   */
  preprocessControl: (unit: ControlUnitParams, width: number, height: number, mask: string | null) =>
    invoke<ControlPreview>("preprocess_control", { unit, width, height, mask }),
  /** Every running preview's progress arrives at `onProgress`, naming its unit (`unit.id` of `preprocessControl`). */
  watchControlPreviews(onProgress: (progress: ControlPreviewProgress) => void): Promise<void> {
    const channel = new Channel<ControlPreviewProgress>();
    channel.onmessage = onProgress;
    return invoke<void>("watch_control_previews", { onProgress: channel });
  },
  /** Stops unit `unitId`'s running preview, which then rejects with kind "cancelled"; whether one was running. */
  cancelControlPreview: (unitId: number) => invoke<boolean>("cancel_control_preview", { unitId }),
  /** A generated image's file as a URL the window may load (Tauri's asset protocol, scoped to the app's folders). */
  imageUrl: (path: string) => convertFileSrc(path),
};

export type Api = typeof api;

/** Whatever a command rejected with, as an AppError. */
export function asAppError(error: unknown): AppError {
  if (error && typeof error === "object" && "message" in error && "kind" in error) {
    const e = error as Partial<AppError>;
    return { kind: String(e.kind), message: String(e.message), field: e.field ?? null };
  }
  return { kind: "unknown", message: String(error), field: null };
}
