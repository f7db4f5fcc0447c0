// What crosses the IPC, as src-tauri/src/models.rs and settings.rs serialize it.

export interface AppError {
  kind: string;
  message: string;
  /** The form input the error is about (`width`, `cfg_scale`, `model`, ...), when there is one. */
  field: string | null;
}

export interface GenerateParams {
  modelId: string;
  prompt: string;
  negativePrompt: string;
  sampler: string;
  schedule: string;
  steps: number;
  cfgScale: number;
  seed: number | null;
  width: number;
  height: number;
  batchSize: number;
  batchCount: number;
  /** The canvas's modes; absent is text to image. */
  mode?: JobMode;
  /** ControlNet / T2I-Adapter units (the control panel); absent is none. */
  controls?: ControlUnitParams[];
  /** ControlNets see the prompt only (A1111's "ControlNet is more important"). */
  guessMode?: boolean;
  /** The fraction of the steps, from the first, that get the adapters' features. */
  adapterFactor?: number;
}

export type ControlKind = "controlnet" | "adapter";
export type ControlPreprocessor = "none" | "canny" | "scribble" | "lineart" | "tile" | "inpaint" | "depth" | "openpose";

/** One control unit as src-tauri/src/control.rs takes it; pictures and masks as base64 PNG. */
export interface ControlUnitParams {
  /** The panel's number for the unit, sent with its preview (a newer preview of the unit cancels the older). */
  id?: number;
  enabled: boolean;
  kind: ControlKind;
  /** The ControlNet's or adapter's folder name in the models folder. */
  model: string;
  image: string;
  preprocessor: ControlPreprocessor;
  cannyLow: number;
  cannyHigh: number;
  /** `inpaint`'s mask; the canvas's mask when null. */
  mask: string | null;
  weight: number;
  start: number;
  end: number;
}

export interface ControlModelEntry {
  name: string;
  kind: ControlKind;
  path: string;
  /** The base model family it is made for ("SD 1.x", "SDXL", ...). */
  family: string | null;
  contextWidth: number | null;
}

/** A preprocessor that needs an annotator model (`depth`, `openpose`), and whether one is installed. */
export interface AnnotatorEntry {
  name: "depth" | "openpose";
  /** The annotator folder it uses; null when none is installed. */
  folder: string | null;
  /** Where annotators are looked for: the models folder's annotators/. */
  lookedIn: string;
}

/** `list_control_models`: the ControlNets and adapters, and the annotator preprocessors. */
export interface ControlModelList {
  models: ControlModelEntry[];
  annotators: AnnotatorEntry[];
}

/** A unit's preprocessed picture, as the job will use it. */
export interface ControlPreview {
  /** A PNG `data:` URL. */
  image: string;
  width: number;
  height: number;
  module: string;
  params: [string, string][];
}

/** A running preview's progress (its annotator's run), from `watch_control_previews`' channel. */
export interface ControlPreviewProgress {
  unitId: number;
  /** Steps done of `steps`. */
  step: number;
  steps: number;
  elapsedMs: number;
}

export type MaskedContent = "fill" | "original" | "latent-noise" | "latent-nothing";

/** Pictures and masks as base64 PNG (a `data:image/png;base64,` URL is accepted). */
export type JobMode =
  | { kind: "txt2img" }
  | { kind: "img2img"; image: string; strength: number }
  | {
      kind: "inpaint";
      image: string;
      mask: string;
      strength: number;
      maskBlur: number;
      invertMask: boolean;
      maskedContent: MaskedContent;
      onlyMasked: boolean;
      padding: number;
    }
  | {
      kind: "outpaint";
      image: string;
      left: number;
      right: number;
      top: number;
      bottom: number;
      strength: number;
      maskBlur: number;
      maskedContent: MaskedContent;
    };

export type Stage = "encoding_prompt" | "encoding_image" | "denoising" | "decoding" | "upscaling" | "preprocessing";

export interface ProgressReport {
  stage: Stage;
  batch: number;
  batches: number;
  step: number;
  steps: number;
  elapsedMs: number;
  etaMs: number | null;
  preview: string | null;
}

export interface ImageResult {
  path: string;
  seed: number;
  index: number;
  width: number;
  height: number;
  parameters: string;
}

export type JobEvent =
  | { kind: "queued"; jobId: number; position: number }
  | { kind: "started"; jobId: number }
  | { kind: "loadingModel"; model: string }
  | ({ kind: "progress" } & ProgressReport)
  | ({ kind: "image" } & ImageResult)
  | { kind: "finished"; images: number; elapsedMs: number }
  | { kind: "cancelled"; images: number }
  | { kind: "failed"; error: AppError };

export interface JobSummary {
  id: number;
  running: boolean;
  label: string;
  images: number;
}

export type ModelSource = "bundled" | "models_folder" | "added";

export interface ModelEntry {
  id: string;
  name: string;
  path: string;
  source: ModelSource;
  problem: string | null;
}

export interface ModelReport {
  entry: ModelEntry;
  inpainting: boolean;
  unetInChannels: number | null;
  contextWidth: number | null;
  hasVaeEncoder: boolean;
  sizeBytes: number;
  executionProvider: string;
  components: string[];
}

export interface SamplerOption {
  id: string;
  name: string;
  schedules: string[];
}

export type Device = "auto" | "cuda" | "directml" | "cpu";
export type Precision = "auto" | "fp16" | "fp32";
/** How the model's parts share the GPU's memory: auto, all loaded, UNet loaded with the others in turn, all in turn. */
export type GpuMemory = "auto" | "full" | "medium" | "low";
export type Theme = "system" | "light" | "dark";

export interface Settings {
  outputFolder: string | null;
  defaultModel: string | null;
  device: Device;
  precision: Precision;
  gpuMemory: GpuMemory;
  theme: Theme;
  modelFolders: string[];
  /** The AUTOMATIC1111-compatible API on 127.0.0.1. */
  apiServer: ApiServerSettings;
}

export interface ApiServerSettings {
  enabled: boolean;
  port: number;
}

export type SettingsUpdate = Omit<Settings, "modelFolders">;

export interface SettingsSaved {
  settings: Settings;
  restartNeeded: boolean;
}

export interface AppInfo {
  version: string;
  modelsFolder: string;
  outputFolder: string;
  configFile: string;
  settingsNotice: string | null;
  executionProvider: string | null;
  runtimeError: string | null;
  /** Where the API listens ("127.0.0.1:7860") while it runs. */
  apiServerAddress: string | null;
}

// The gallery (crates/gallery, src-tauri/src/gallery.rs).

export type MetadataSource = "a1111" | "comfy_ui" | "invoke_ai" | "none";

export interface ImageMetadata {
  source: MetadataSource;
  prompt: string;
  negativePrompt: string;
  model: string | null;
  sampler: string | null;
  steps: number | null;
  cfgScale: number | null;
  seed: number | null;
  width: number;
  height: number;
  /** Every `Key: value` pair, in AUTOMATIC1111's names. */
  params: [string, string][];
  /** The parameters as AUTOMATIC1111's text (what "Copy parameters" copies). */
  infotext: string;
}

/** Form values for "reuse parameters": sampler and schedule as ids, null when the engine has no such sampler. */
export interface ReuseParams {
  prompt: string;
  negativePrompt: string;
  sampler: string | null;
  schedule: string | null;
  steps: number | null;
  cfgScale: number | null;
  seed: number | null;
  width: number;
  height: number;
}

export interface GalleryImage {
  id: number;
  /** Relative to the gallery folder: how commands name the file. */
  fileName: string;
  path: string;
  thumbnail: string | null;
  width: number;
  height: number;
  prompt: string;
  model: string | null;
  sampler: string | null;
  seed: number | null;
  favourite: boolean;
  createdMs: number;
}

export interface GalleryImageDetail {
  summary: GalleryImage;
  metadata: ImageMetadata;
  reuse: ReuseParams;
  boards: number[];
}

export type GallerySort = "newest" | "oldest" | "largest" | "prompt";

export interface GalleryQuery {
  text: string;
  model: string | null;
  sampler: string | null;
  width: number | null;
  height: number | null;
  fromMs: number | null;
  toMs: number | null;
  favouritesOnly: boolean;
  board: number | null;
  sort: GallerySort;
  offset: number;
  limit: number;
}

export interface GalleryPage {
  total: number;
  offset: number;
  items: GalleryImage[];
}

export interface GalleryBoard {
  id: number;
  name: string;
  images: number;
}

export interface GalleryFilters {
  models: string[];
  samplers: string[];
  sizes: [number, number][];
}

export interface GalleryStatus {
  folder: string;
  thumbnailsFolder: string;
  recovery: { movedTo: string; reason: string } | null;
}

export interface ScanProgress {
  done: number;
  total: number;
}

export interface ScanReport {
  added: number;
  updated: number;
  removed: number;
  skipped: [string, string][];
}

export interface HistoryEntry {
  id: number;
  createdMs: number;
  fileName: string;
  /** The image in the gallery; null once it was deleted. */
  imageId: number | null;
  metadata: ImageMetadata;
  reuse: ReuseParams;
}

/** A picture dropped on the window (PNG, JPEG, WebP or BMP), with its "PNG Info" (an error for other than PNG). */
export interface DroppedImage {
  path: string;
  fileName: string;
  metadata: ImageMetadata | null;
  reuse: ReuseParams | null;
  error: string | null;
}
