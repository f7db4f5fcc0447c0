// An Api whose commands answer from plain data, for components under test. Each call is recorded; a job's
// event callback is kept so the test can play the Rust side.
import { vi } from "vitest";
import type { Api } from "../../src/lib/api";
import type { GenerateParams, JobEvent, JobSummary, ModelEntry, Settings } from "../../src/lib/types";

export const demoModel: ModelEntry = {
  id: "/app/models/tiny-sd",
  name: "tiny-sd",
  path: "/app/models/tiny-sd",
  source: "bundled",
  problem: null,
};

export const defaultSettings: Settings = {
  outputFolder: null,
  defaultModel: null,
  device: "auto",
  precision: "auto",
  gpuMemory: "auto",
  theme: "system",
  modelFolders: [],
  apiServer: { enabled: false, port: 7860 },
};

export function fakeApi(overrides: Partial<Api> = {}) {
  const jobs: { params: GenerateParams; emit: (event: JobEvent) => void }[] = [];
  let queue: JobSummary[] = [];
  const api: Api = {
    appInfo: vi.fn(async () => ({
      version: "0.1.0",
      modelsFolder: "/app/models",
      outputFolder: "/out",
      configFile: "/config/settings.json",
      settingsNotice: null,
      executionProvider: "CPU",
      runtimeError: null,
      apiServerAddress: null,
    })),
    listModels: vi.fn(async () => [demoModel]),
    addModelFolder: vi.fn(async () => null),
    inspectModel: vi.fn(async () => {
      throw { kind: "engine", message: "not in this test", field: null };
    }),
    listSamplers: vi.fn(async () => [
      { id: "euler_a", name: "Euler a", schedules: ["automatic"] },
      { id: "dpmpp_2m", name: "DPM++ 2M", schedules: ["automatic", "karras"] },
    ]),
    getSettings: vi.fn(async () => defaultSettings),
    saveSettings: vi.fn(async (update) => ({ settings: { ...update, modelFolders: [] }, restartNeeded: false })),
    pickOutputFolder: vi.fn(async () => null),
    submitJob: vi.fn(async (params: GenerateParams, onEvent: (event: JobEvent) => void) => {
      const id = jobs.length + 1;
      jobs.push({ params, emit: onEvent });
      queue = [...queue, { id, running: queue.length === 0, label: params.prompt, images: 1 }];
      onEvent({ kind: "queued", jobId: id, position: queue.length - 1 });
      return id;
    }),
    cancelJob: vi.fn(async (id: number) => {
      queue = queue.filter((j) => j.id !== id);
    }),
    moveJob: vi.fn(async () => {}),
    listJobs: vi.fn(async () => queue),
    saveImageAs: vi.fn(async () => null),
    copyImage: vi.fn(async () => {}),
    readOutputImage: vi.fn(async () => new ArrayBuffer(0)),
    // An empty gallery; gallery tests override what they need.
    galleryStatus: vi.fn(async () => ({ folder: "/out", thumbnailsFolder: "/data/gallery/x/thumbnails", recovery: null })),
    gallerySearch: vi.fn(async (query) => ({ total: 0, offset: query.offset, items: [] })),
    galleryImage: vi.fn(async (id: number) => {
      throw { kind: "invalid_input", message: `invalid image: no image ${id} in the gallery`, field: "image" };
    }),
    galleryFilters: vi.fn(async () => ({ models: [], samplers: [], sizes: [] })),
    gallerySetFavourite: vi.fn(async () => {}),
    galleryBoards: vi.fn(async () => []),
    galleryCreateBoard: vi.fn(async (name: string) => ({ id: 1, name, images: 0 })),
    galleryRenameBoard: vi.fn(async () => {}),
    galleryDeleteBoard: vi.fn(async () => {}),
    galleryBoardImages: vi.fn(async () => {}),
    galleryDelete: vi.fn(async () => {}),
    galleryUndoDelete: vi.fn(async () => {}),
    galleryHistory: vi.fn(async () => []),
    galleryRescan: vi.fn(async () => ({ added: 0, updated: 0, removed: 0, skipped: [] })),
    galleryCancelScan: vi.fn(async () => {}),
    galleryReveal: vi.fn(async () => {}),
    galleryImportDropped: vi.fn(async () => []),
    watchDroppedFiles: vi.fn(async () => {}),
    saveMaskAs: vi.fn(async () => null),
    readDroppedPicture: vi.fn(async () => new ArrayBuffer(0)),
    listControlModels: vi.fn(async () => ({ models: [], annotators: [] })),
    preprocessControl: vi.fn(async () => {
      throw { kind: "engine", message: "not in this test", field: null };
    }),
    watchControlPreviews: vi.fn(async () => {}),
    cancelControlPreview: vi.fn(async () => false),
    imageUrl: (path: string) => `asset://localhost/${encodeURIComponent(path)}`,
    ...overrides,
  };
  return {
    api,
    jobs,
    /** Marks job `id` finished in the queue listing. */
    finish(id: number) {
      queue = queue.filter((j) => j.id !== id);
    },
  };
}
