// The settings form, the notice shown when the settings file was unreadable, and the app's folders.
import { asAppError, type Api } from "../api";
import type { AppInfo, Settings, SettingsUpdate } from "../types";

export class SettingsState {
  settings = $state<Settings | null>(null);
  /** The form's values: a copy of the settings until saved. */
  draft = $state<SettingsUpdate>({
    outputFolder: null,
    defaultModel: null,
    device: "auto",
    precision: "auto",
    gpuMemory: "auto",
    theme: "system",
    apiServer: { enabled: false, port: 7860 },
  });
  info = $state<AppInfo | null>(null);
  error = $state<string | null>(null);
  saved = $state<string | null>(null);

  private api: Api;

  constructor(api: Api) {
    this.api = api;
  }

  async load() {
    try {
      [this.settings, this.info] = await Promise.all([this.api.getSettings(), this.api.appInfo()]);
      this.resetDraft();
    } catch (error) {
      this.error = asAppError(error).message;
    }
  }

  /** The theme the page should use ("light" or "dark"), following the system when set to "system". */
  resolvedTheme(prefersDark: boolean): "light" | "dark" {
    const theme = this.settings?.theme ?? "system";
    return theme === "system" ? (prefersDark ? "dark" : "light") : theme;
  }

  resetDraft() {
    if (!this.settings) return;
    const { modelFolders: _folders, ...update } = this.settings;
    this.draft = { ...update, apiServer: { ...update.apiServer } };
  }

  async save() {
    this.error = null;
    this.saved = null;
    try {
      const result = await this.api.saveSettings({ ...this.draft, apiServer: { ...this.draft.apiServer } });
      this.settings = result.settings;
      this.resetDraft();
      this.saved = result.restartNeeded ? "Saved. Device, precision and GPU memory change the next time Pigment starts." : "Saved.";
      this.info = await this.api.appInfo();
    } catch (error) {
      this.error = asAppError(error).message;
    }
  }

  async pickOutputFolder() {
    try {
      const picked = await this.api.pickOutputFolder();
      if (picked) this.draft.outputFolder = picked;
    } catch (error) {
      this.error = asAppError(error).message;
    }
  }
}
