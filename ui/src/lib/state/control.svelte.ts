// The control panel: ControlNet / T2I-Adapter units (model, picture, preprocessor and its settings, weight and
// step range), guess mode and the adapters' factor, shared by the Generate and Canvas views. Preprocessing and
// checking are the Rust side's: a unit's preview is what `preprocess_control` returns, errors come back by field.
// A preview that runs an annotator model shows its progress and can be cancelled.
import { asAppError, type Api } from "../api";
import { loadPicture, pictureToPngDataUrl, dataUrlBase64 } from "../canvas/png";
import type {
  AnnotatorEntry,
  ControlKind,
  ControlModelEntry,
  ControlPreprocessor,
  ControlPreview,
  ControlPreviewProgress,
  ControlUnitParams,
  GenerateParams,
} from "../types";

export const PREPROCESSORS: { id: ControlPreprocessor; label: string }[] = [
  { id: "none", label: "none (picture as it is)" },
  { id: "canny", label: "canny" },
  { id: "scribble", label: "scribble" },
  { id: "lineart", label: "lineart" },
  { id: "tile", label: "tile" },
  { id: "inpaint", label: "inpaint (canvas mask)" },
  { id: "depth", label: "depth (annotator model)" },
  { id: "openpose", label: "openpose (annotator model)" },
];

/** The error fields that belong to the control panel. */
export const CONTROL_FIELDS = [
  "control_model", "control_image", "control_mask", "control_weight", "control_start", "control_end",
  "preprocessor", "canny_low", "canny_high", "adapter", "adapter_weight", "adapter_conditioning_factor",
];

let nextUnitId = 1;

export class ControlUnit {
  readonly id = nextUnitId++;
  enabled = $state(true);
  kind = $state<ControlKind>("controlnet");
  model = $state("");
  /** The picture as a PNG `data:` URL, and where it came from ("scene.jpg", "canvas picture", ...). */
  image = $state<string | null>(null);
  source = $state("");
  preprocessor = $state<ControlPreprocessor>("none");
  cannyLow = $state(100);
  cannyHigh = $state(200);
  weight = $state(1);
  start = $state(0);
  end = $state(1);
  preview = $state.raw<ControlPreview | null>(null);
  previewError = $state<string | null>(null);
  previewing = $state(false);
  /** The running preview's progress from 0 to 1; null until its annotator reports. */
  previewProgress = $state<number | null>(null);

  /** `mask` (base64 PNG, the canvas's) goes to `inpaint` units. */
  params(mask: string | null = null): ControlUnitParams {
    return {
      enabled: this.enabled,
      kind: this.kind,
      model: this.model,
      image: this.image ? dataUrlBase64(this.image) : "",
      preprocessor: this.preprocessor,
      cannyLow: Number(this.cannyLow),
      cannyHigh: Number(this.cannyHigh),
      mask: this.preprocessor === "inpaint" ? mask : null,
      weight: Number(this.weight),
      start: Number(this.start),
      end: Number(this.end),
    };
  }
}

export class ControlState {
  units = $state<ControlUnit[]>([]);
  guessMode = $state(false);
  adapterFactor = $state(1);
  models = $state<ControlModelEntry[]>([]);
  /** The preprocessors that need an annotator model, installed or not. */
  annotators = $state<AnnotatorEntry[]>([]);
  notice = $state<string | null>(null);

  private api: Api;
  /** The latest preview request per unit: an older answer arriving late is dropped. */
  private previewRequests = new Map<number, number>();
  /** The channel every preview's progress comes through, set up before the first preview. */
  private watching: Promise<void> | null = null;

  constructor(api: Api) {
    this.api = api;
  }

  async loadModels() {
    try {
      const listed = await this.api.listControlModels();
      this.models = listed.models;
      this.annotators = listed.annotators;
    } catch (error) {
      this.notice = asAppError(error).message;
    }
  }

  /** Why `preprocessor` cannot be used (its annotator model is not installed), or null when it can. */
  unavailable(preprocessor: ControlPreprocessor): string | null {
    const annotator = this.annotators.find((a) => a.name === preprocessor);
    if (!annotator || annotator.folder) return null;
    const article = /^[aeiou]/.test(annotator.name) ? "an" : "a";
    return `install ${article} ${annotator.name} model in ${annotator.lookedIn}/${annotator.name}... (a folder with its model.onnx)`;
  }

  modelsOf(kind: ControlKind): ControlModelEntry[] {
    return this.models.filter((m) => m.kind === kind);
  }

  addUnit(kind: ControlKind = "controlnet"): ControlUnit {
    const unit = new ControlUnit();
    unit.kind = kind;
    unit.model = this.modelsOf(kind)[0]?.name ?? "";
    this.units = [...this.units, unit];
    return unit;
  }

  removeUnit(unit: ControlUnit) {
    if (unit.previewing) void this.cancelPreview(unit);
    this.units = this.units.filter((u) => u !== unit);
    this.previewRequests.delete(unit.id);
  }

  setKind(unit: ControlUnit, kind: ControlKind) {
    unit.kind = kind;
    if (!this.modelsOf(kind).some((m) => m.name === unit.model)) unit.model = this.modelsOf(kind)[0]?.name ?? "";
  }

  /** A picture for `unit` from a file, a paste or a URL, kept as PNG (what the job carries). */
  async setPicture(unit: ControlUnit, source: Blob | string, label: string): Promise<boolean> {
    try {
      const picture = await loadPicture(source);
      unit.image = pictureToPngDataUrl(picture);
      unit.source = `${label} (${picture.width} × ${picture.height})`;
      unit.preview = null;
      return true;
    } catch (error) {
      unit.previewError = `Could not open that picture: ${error instanceof Error ? error.message : String(error)}`;
      return false;
    }
  }

  /** A PNG `data:` URL made elsewhere (the canvas's picture or its painted mask) as `unit`'s picture. */
  usePng(unit: ControlUnit, pngDataUrl: string, label: string) {
    unit.image = pngDataUrl;
    unit.source = label;
    unit.preview = null;
  }

  /** Asks the Rust side for `unit`'s preprocessed picture at the generation size; `mask` is the canvas's. */
  async refreshPreview(unit: ControlUnit, width: number, height: number, mask: string | null = null) {
    if (!unit.image) {
      unit.preview = null;
      unit.previewError = null;
      return;
    }
    const request = (this.previewRequests.get(unit.id) ?? 0) + 1;
    this.previewRequests.set(unit.id, request);
    unit.previewing = true;
    unit.previewProgress = null;
    try {
      await this.watchPreviews();
      // With the unit's id: the Rust side cancels this unit's older preview if it still runs.
      const params = { ...unit.params(), id: unit.id };
      const preview = await this.api.preprocessControl(params, Number(width), Number(height), mask);
      if (this.previewRequests.get(unit.id) !== request) return;
      unit.preview = preview;
      unit.previewError = null;
    } catch (error) {
      if (this.previewRequests.get(unit.id) !== request) return;
      const appError = asAppError(error);
      // Cancelled (the unit's Cancel button): no error, and the picture shown stays.
      if (appError.kind === "cancelled") {
        unit.previewError = null;
        return;
      }
      unit.preview = null;
      unit.previewError = appError.message;
    } finally {
      if (this.previewRequests.get(unit.id) === request) {
        unit.previewing = false;
        unit.previewProgress = null;
      }
    }
  }

  /** Stops `unit`'s running preview: it ends without an error message. */
  async cancelPreview(unit: ControlUnit) {
    try {
      await this.api.cancelControlPreview(unit.id);
    } catch (error) {
      unit.previewError = asAppError(error).message;
    }
  }

  /** A progress report of a running preview, for the unit it names. */
  previewProgressed(progress: ControlPreviewProgress) {
    const unit = this.units.find((u) => u.id === progress.unitId);
    if (!unit?.previewing) return;
    unit.previewProgress = progress.steps > 0 ? Math.min(1, progress.step / progress.steps) : 0;
  }

  private watchPreviews(): Promise<void> {
    this.watching ??= this.api.watchControlPreviews((progress) => this.previewProgressed(progress)).catch((error) => {
      this.watching = null;
      throw error;
    });
    return this.watching;
  }

  /** What a job carries of the panel (nothing when it has no unit); `mask` is the canvas's, for `inpaint` units. */
  params(mask: string | null = null): Pick<GenerateParams, "controls" | "guessMode" | "adapterFactor"> {
    if (!this.units.length) return {};
    return {
      controls: this.units.map((u) => u.params(mask)),
      guessMode: this.guessMode,
      adapterFactor: Number(this.adapterFactor),
    };
  }
}
