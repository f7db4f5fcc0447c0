// The canvas: the picture being worked on, its mask (image resolution, with tile undo), the brush and overlay
// settings, and the mode with its settings. `sendToCanvas` is the one way in for pictures from elsewhere (a result,
// the gallery); the Canvas view draws from here and turns what it holds into the job's mode.
import { getContext, setContext } from "svelte";
import { asAppError, type Api } from "../api";
import { MaskBuffer, type Rect } from "../canvas/mask";
import { type LoadedPicture, dataUrlBase64, loadPicture, maskToPngDataUrl, pictureToMaskValues, pictureToPngDataUrl } from "../canvas/png";
import type { OutpaintBorders } from "../canvas/renderer";
import { TileUndoStore } from "../canvas/undo";
import { MAX_BRUSH_SIZE, MIN_BRUSH_SIZE } from "../canvas/brush";
import type { ImageResult, JobMode, MaskedContent } from "../types";

export type CanvasMode = "img2img" | "inpaint" | "outpaint";
export type CanvasTool = "brush" | "eraser";

/**
 * What can be sent to the canvas: a generated image (or its path), a picture dropped on the app's window (its
 * path), a URL, or a blob (file, paste, a drop in a browser).
 */
export type CanvasSource = ImageResult | { path: string } | { dropped: string } | string | Blob;

export class CanvasState {
  picture = $state.raw<LoadedPicture | null>(null);
  mask = $state.raw<MaskBuffer | null>(null);
  undo = $state.raw<TileUndoStore | null>(null);
  /** Bumped on every mask change so views re-read undo/redo availability. */
  maskVersion = $state(0);
  /** Bumped by `sendToCanvas`, so the window can switch to the Canvas view. */
  openRequests = $state(0);
  loading = $state(false);
  notice = $state<string | null>(null);

  tool = $state<CanvasTool>("brush");
  brushSize = $state(48);
  hardness = $state(0.8);
  overlayColor = $state("#ff2d6f");
  overlayOpacity = $state(0.5);
  showOverlay = $state(true);

  mode = $state<CanvasMode>("inpaint");
  img2imgStrength = $state(0.75);
  inpaintStrength = $state(1);
  outpaintStrength = $state(0.8);
  maskBlur = $state(4);
  invertMask = $state(false);
  maskedContent = $state<MaskedContent>("original");
  outpaintContent = $state<MaskedContent>("fill");
  onlyMasked = $state(false);
  padding = $state(32);
  borders = $state<OutpaintBorders>({ left: 0, right: 0, top: 0, bottom: 0 });

  /** The view's hook: redraws the part of the overlay that changed. */
  maskChanged: ((rect: Rect) => void) | null = null;

  private api: Api;
  /** The picture's PNG, made once per picture. */
  private pictureData: string | null = null;

  constructor(api: Api) {
    this.api = api;
  }

  /** Loads `source` as the canvas picture and asks the window to show the canvas. */
  async sendToCanvas(source: CanvasSource): Promise<boolean> {
    this.openRequests += 1;
    return this.load(source);
  }

  /** Loads `source` as the picture; the mask is kept when the size is the same (working on from a result). */
  async load(source: CanvasSource): Promise<boolean> {
    this.loading = true;
    this.notice = null;
    try {
      const picture = await loadPicture(await this.blobOrUrl(source));
      this.setPicture(picture);
      return true;
    } catch (error) {
      this.notice = `Could not open that picture: ${error instanceof Error ? error.message : asAppError(error).message}`;
      return false;
    } finally {
      this.loading = false;
    }
  }

  setPicture(picture: LoadedPicture) {
    const keepMask = this.mask && this.mask.width === picture.width && this.mask.height === picture.height;
    if (!keepMask) {
      const mask = new MaskBuffer(picture.width, picture.height);
      this.undo = new TileUndoStore(mask);
      this.mask = mask;
    }
    this.pictureData = null;
    this.picture = picture;
    this.maskVersion += 1;
  }

  /** A generated image's file is read through the app (a canvas may not read asset-protocol pixels back). */
  private async blobOrUrl(source: CanvasSource): Promise<string | Blob> {
    if (source instanceof Blob) return source;
    if (typeof source === "string" && /^(data:|blob:|https?:)/.test(source)) return source;
    if (typeof source === "object" && "dropped" in source) {
      return new Blob([await this.api.readDroppedPicture(source.dropped)], { type: "image/png" });
    }
    const path = typeof source === "string" ? source : source.path;
    return new Blob([await this.api.readOutputImage(path)], { type: "image/png" });
  }

  setBrushSize(size: number) {
    this.brushSize = Math.round(Math.min(MAX_BRUSH_SIZE, Math.max(MIN_BRUSH_SIZE, size)));
  }

  /** `[` and `]`: about 15% smaller or larger, at least one pixel. */
  stepBrushSize(direction: -1 | 1) {
    const step = Math.max(1, Math.round(this.brushSize * 0.15));
    this.setBrushSize(this.brushSize + direction * step);
  }

  /** Tells the view (and whoever shows undo/redo) that the mask changed inside `rect`. */
  changed(rect: Rect | null) {
    if (rect) this.maskChanged?.(rect);
    this.maskVersion += 1;
  }

  /** Runs a whole-mask edit (fill, clear, invert, import) as one undo step. */
  editMask(change: (mask: MaskBuffer) => Rect | null) {
    if (!this.mask || !this.undo) return;
    this.undo.begin();
    const rect = change(this.mask);
    this.undo.end();
    this.changed(rect);
  }

  undoMask() {
    this.changed(this.undo?.undo() ?? null);
  }

  redoMask() {
    this.changed(this.undo?.redo() ?? null);
  }

  /** Reads a mask PNG (scaled to the picture when its size differs) as one undo step. */
  async importMask(file: Blob) {
    const mask = this.mask;
    if (!mask) return;
    const picture = await loadPicture(file);
    if (picture.width !== mask.width || picture.height !== mask.height) {
      this.notice = `The mask is ${picture.width}x${picture.height}; it was scaled to the picture's ${mask.width}x${mask.height}.`;
    }
    const values = pictureToMaskValues(picture, mask.width, mask.height);
    this.editMask((m) => m.replace(values));
  }

  /** "Export mask": the app's save dialog writes the mask as a PNG; the notice says where. */
  async saveMaskAs() {
    if (!this.mask) return;
    try {
      const saved = await this.api.saveMaskAs(dataUrlBase64(maskToPngDataUrl(this.mask)));
      if (saved) this.notice = `Mask saved to ${saved}`;
    } catch (error) {
      this.notice = `Could not save the mask: ${asAppError(error).message}`;
    }
  }

  /** The size the model works at: the picture's, rounded down to a multiple of 8 (as `pigment img2img` does). */
  workingSize(): { width: number; height: number } | null {
    if (!this.picture) return null;
    const round = (side: number) => Math.max(8, Math.floor(side / 8) * 8);
    return { width: round(this.picture.width), height: round(this.picture.height) };
  }

  /** The job's mode for what the canvas holds; null without a picture. */
  jobMode(): JobMode | null {
    if (!this.picture || !this.mask) return null;
    this.pictureData ??= dataUrlBase64(pictureToPngDataUrl(this.picture));
    const image = this.pictureData;
    switch (this.mode) {
      case "img2img":
        return { kind: "img2img", image, strength: Number(this.img2imgStrength) };
      case "inpaint":
        return {
          kind: "inpaint",
          image,
          mask: dataUrlBase64(maskToPngDataUrl(this.mask)),
          strength: Number(this.inpaintStrength),
          maskBlur: Number(this.maskBlur),
          invertMask: this.invertMask,
          maskedContent: this.maskedContent,
          onlyMasked: this.onlyMasked,
          padding: Number(this.padding),
        };
      case "outpaint":
        return {
          kind: "outpaint",
          image,
          left: Number(this.borders.left),
          right: Number(this.borders.right),
          top: Number(this.borders.top),
          bottom: Number(this.borders.bottom),
          strength: Number(this.outpaintStrength),
          maskBlur: Number(this.maskBlur),
          maskedContent: this.outpaintContent,
        };
    }
  }
}

const CONTEXT_KEY = Symbol("pigment-canvas");

/** Makes `canvas` reachable from any component below (the results grid's and gallery's "Send to canvas"). */
export function setCanvasContext(canvas: CanvasState) {
  setContext(CONTEXT_KEY, canvas);
}

/** The canvas, when the window provides one (components tested alone may have none). */
export function getCanvasContext(): CanvasState | undefined {
  return getContext<CanvasState | undefined>(CONTEXT_KEY);
}
