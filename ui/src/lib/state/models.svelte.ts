// The model list and the samplers, and what "Add model folder..." found.
import { asAppError, type Api } from "../api";
import type { ModelEntry, ModelReport, SamplerOption } from "../types";

export class ModelsState {
  models = $state<ModelEntry[]>([]);
  samplers = $state<SamplerOption[]>([]);
  lastAdded = $state<ModelReport | null>(null);
  inspected = $state<ModelReport | null>(null);
  error = $state<string | null>(null);
  busy = $state(false);

  private api: Api;

  constructor(api: Api) {
    this.api = api;
  }

  async load() {
    try {
      [this.models, this.samplers] = await Promise.all([this.api.listModels(), this.api.listSamplers()]);
    } catch (error) {
      this.error = asAppError(error).message;
    }
  }

  usable(): ModelEntry[] {
    return this.models.filter((m) => m.problem === null);
  }

  async addFolder() {
    this.error = null;
    this.busy = true;
    try {
      const report = await this.api.addModelFolder();
      if (report) {
        this.lastAdded = report;
        this.models = await this.api.listModels();
      }
    } catch (error) {
      this.error = asAppError(error).message;
    } finally {
      this.busy = false;
    }
  }

  async inspect(id: string) {
    this.error = null;
    this.busy = true;
    try {
      this.inspected = await this.api.inspectModel(id);
    } catch (error) {
      this.error = asAppError(error).message;
    } finally {
      this.busy = false;
    }
  }
}
