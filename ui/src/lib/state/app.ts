// The states the window works with, made once per window (main.ts) or per test.
import type { Api } from "../api";
import { CanvasState } from "./canvas.svelte";
import { ControlState } from "./control.svelte";
import { GenerateForm } from "./generate.svelte";
import { JobsState } from "./jobs.svelte";
import { ModelsState } from "./models.svelte";
import { SettingsState } from "./settings.svelte";

export interface AppStates {
  api: Api;
  form: GenerateForm;
  jobs: JobsState;
  models: ModelsState;
  settings: SettingsState;
  canvas: CanvasState;
  control: ControlState;
}

export function createAppStates(api: Api): AppStates {
  return { api, form: new GenerateForm(), jobs: new JobsState(api), models: new ModelsState(api), settings: new SettingsState(api), canvas: new CanvasState(api), control: new ControlState(api) };
}
