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
}

export type Stage = "encoding_prompt" | "encoding_image" | "denoising" | "decoding" | "upscaling";

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
export type Theme = "system" | "light" | "dark";

export interface Settings {
  outputFolder: string | null;
  defaultModel: string | null;
  device: Device;
  precision: Precision;
  theme: Theme;
  modelFolders: string[];
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
}
