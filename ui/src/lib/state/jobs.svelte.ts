// The queue as the window sees it: the jobs waiting and running, the running job's progress and preview, and
// the images made in this session. Every change comes from the Rust side's job events.
import { asAppError, type Api } from "../api";
import type { GenerateParams, ImageResult, JobSummary, ProgressReport } from "../types";
import type { GenerateForm } from "./generate.svelte";

export interface JobProgress extends ProgressReport {
  jobId: number;
  loadingModel: boolean;
}

export class JobsState {
  jobs = $state<JobSummary[]>([]);
  /** Progress of the running job, null when nothing runs. */
  progress = $state<JobProgress | null>(null);
  preview = $state<string | null>(null);
  results = $state<ImageResult[]>([]);
  lastSeed = $state<number | null>(null);
  notice = $state<string | null>(null);

  private api: Api;

  constructor(api: Api) {
    this.api = api;
  }

  async refresh() {
    try {
      this.jobs = await this.api.listJobs();
    } catch (error) {
      this.notice = asAppError(error).message;
    }
  }

  /**
   * Queues what the form holds, with `overrides` (the canvas's mode and working size); errors land next to the
   * form fields they name.
   */
  async submit(form: GenerateForm, overrides: Partial<GenerateParams> = {}): Promise<number | null> {
    form.clearErrors();
    this.notice = null;
    let jobId = -1;
    try {
      const params = { ...form.params(), ...overrides };
      jobId = await this.api.submitJob(params, (event) => {
        switch (event.kind) {
          case "queued":
            jobId = event.jobId;
            break;
          case "started":
            this.progress = this.emptyProgress(event.jobId);
            this.preview = null;
            break;
          case "loadingModel":
            if (this.progress) this.progress = { ...this.progress, loadingModel: true };
            break;
          case "progress": {
            const { kind: _kind, ...report } = event;
            this.progress = { ...report, jobId, loadingModel: false };
            if (report.preview) this.preview = report.preview;
            break;
          }
          case "image": {
            const { kind: _kind, ...image } = event;
            this.results = [image, ...this.results];
            this.lastSeed = image.seed;
            break;
          }
          case "finished":
            this.progress = null;
            break;
          case "cancelled":
            if (this.progress?.jobId === jobId) this.progress = null;
            this.notice = `Job cancelled${event.images ? `; ${event.images} image(s) kept` : ""}.`;
            break;
          case "failed":
            this.progress = null;
            form.showError(event.error);
            break;
        }
        if (event.kind !== "progress" && event.kind !== "image") void this.refresh();
      });
      await this.refresh();
      return jobId;
    } catch (error) {
      form.showError(asAppError(error));
      return null;
    }
  }

  async cancel(id: number) {
    try {
      await this.api.cancelJob(id);
    } catch (error) {
      this.notice = asAppError(error).message;
    }
    await this.refresh();
  }

  /** Esc: the running job, else the last one waiting. */
  async cancelCurrent() {
    const target = this.jobs.find((j) => j.running) ?? this.jobs.at(-1);
    if (target) await this.cancel(target.id);
  }

  /** Moves a waiting job up (-1) or down (+1) among the waiting jobs. */
  async move(id: number, delta: number) {
    const waiting = this.jobs.filter((j) => !j.running);
    const index = waiting.findIndex((j) => j.id === id);
    if (index < 0) return;
    try {
      await this.api.moveJob(id, Math.max(0, index + delta));
    } catch (error) {
      this.notice = asAppError(error).message;
    }
    await this.refresh();
  }

  private emptyProgress(jobId: number): JobProgress {
    return {
      jobId,
      loadingModel: false,
      stage: "encoding_prompt",
      batch: 0,
      batches: 1,
      step: 0,
      steps: 0,
      elapsedMs: 0,
      etaMs: null,
      preview: null,
    };
  }
}
