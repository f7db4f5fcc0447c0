// The generate form's values and the errors shown next to its inputs. Checking values is the engine's job: an
// error that names a field comes back from Rust and lands under that field.
import type { AppError, GenerateParams } from "../types";

export const SIZE_PRESETS: { label: string; width: number; height: number }[] = [
  { label: "256 × 256", width: 256, height: 256 },
  { label: "512 × 512", width: 512, height: 512 },
  { label: "512 × 768", width: 512, height: 768 },
  { label: "768 × 512", width: 768, height: 512 },
  { label: "768 × 768", width: 768, height: 768 },
  { label: "1024 × 1024", width: 1024, height: 1024 },
];

export type SeedMode = "random" | "fixed";

export class GenerateForm {
  modelId = $state("");
  prompt = $state("");
  negativePrompt = $state("");
  sampler = $state("euler_a");
  schedule = $state("automatic");
  steps = $state(20);
  cfgScale = $state(7);
  seedMode = $state<SeedMode>("random");
  seed = $state(0);
  width = $state(512);
  height = $state(512);
  batchSize = $state(1);
  batchCount = $state(1);
  /** Messages by field name (`width`, `cfg_scale`, `model`, ...). */
  fieldErrors = $state<Record<string, string>>({});
  /** An error that names no field. */
  generalError = $state<string | null>(null);

  params(): GenerateParams {
    return {
      modelId: this.modelId,
      prompt: this.prompt,
      negativePrompt: this.negativePrompt,
      sampler: this.sampler,
      schedule: this.schedule,
      steps: Number(this.steps),
      cfgScale: Number(this.cfgScale),
      seed: this.seedMode === "fixed" ? Number(this.seed) : null,
      width: Number(this.width),
      height: Number(this.height),
      batchSize: Number(this.batchSize),
      batchCount: Number(this.batchCount),
    };
  }

  setSize(width: number, height: number) {
    this.width = width;
    this.height = height;
  }

  useSeed(seed: number) {
    this.seedMode = "fixed";
    this.seed = seed;
  }

  clearErrors() {
    this.fieldErrors = {};
    this.generalError = null;
  }

  showError(error: AppError) {
    if (error.field) {
      this.fieldErrors = { ...this.fieldErrors, [error.field]: error.message };
    } else {
      this.generalError = error.message;
    }
  }
}
