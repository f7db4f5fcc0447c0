// The only module that talks to the Rust side. Every call is one of Pigment's commands
// (src-tauri/src/commands.rs); errors arrive as AppError objects.
import { Channel, convertFileSrc, invoke } from "@tauri-apps/api/core";
import type {
  AppError,
  AppInfo,
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
