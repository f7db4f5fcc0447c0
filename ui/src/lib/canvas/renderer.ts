// Draws the picture, the mask as a coloured translucent overlay and the outpaint borders into the view's canvas.
// The overlay is an image-resolution RGBA layer updated only where the mask changed; the screen is redrawn once
// per animation frame, and only over the changed area unless the view moved. Everything is drawn in device pixels
// (the canvas's backing store is the viewport times devicePixelRatio), so it stays crisp on high-DPI screens.

import type { MaskBuffer, Rect } from "./mask";
import { unionRect } from "./mask";
import type { ViewTransform } from "./view";

export interface OutpaintBorders {
  left: number;
  right: number;
  top: number;
  bottom: number;
}

export interface OverlayStyle {
  /** `#rrggbb`. */
  color: string;
  /** 0..1: the overlay's opacity where the mask is full. */
  opacity: number;
}

export function parseHexColor(color: string): [number, number, number] {
  const match = /^#?([0-9a-f]{6})$/i.exec(color.trim());
  if (!match) return [255, 0, 80];
  const value = parseInt(match[1], 16);
  return [(value >> 16) & 255, (value >> 8) & 255, value & 255];
}

type LayerContext = OffscreenCanvasRenderingContext2D | CanvasRenderingContext2D;

/** An image-size 2D layer: an OffscreenCanvas where the engine has 2D ones (older WebKit has not), else a canvas. */
function makeLayer(width: number, height: number): { layer: OffscreenCanvas | HTMLCanvasElement; context: LayerContext } {
  if (typeof OffscreenCanvas !== "undefined") {
    const layer = new OffscreenCanvas(width, height);
    const context = layer.getContext("2d");
    if (context) return { layer, context };
  }
  const layer = document.createElement("canvas");
  layer.width = width;
  layer.height = height;
  const context = layer.getContext("2d");
  if (!context) throw new Error("this window cannot draw 2D canvases");
  return { layer, context };
}

export class CanvasRenderer {
  private display: HTMLCanvasElement;
  private context: CanvasRenderingContext2D;
  private view: ViewTransform;
  private image: CanvasImageSource | null = null;
  private mask: MaskBuffer | null = null;
  private overlay: OffscreenCanvas | HTMLCanvasElement | null = null;
  private overlayContext: LayerContext | null = null;
  private overlayPixels: ImageData | null = null;
  private style: OverlayStyle = { color: "#ff0050", opacity: 0.5 };
  private borders: OutpaintBorders = { left: 0, right: 0, top: 0, bottom: 0 };
  private showOverlay = true;
  /** Image pixels whose overlay needs recomputing. */
  private maskDirty: Rect | null = null;
  private fullRedraw = true;
  private frame = 0;
  private background = "#1b1d22";

  constructor(display: HTMLCanvasElement, view: ViewTransform) {
    this.display = display;
    const context = display.getContext("2d");
    if (!context) throw new Error("this window cannot draw 2D canvases");
    this.context = context;
    this.view = view;
  }

  /** Sizes the backing store to the viewport (`width` x `height` CSS pixels) at `dpr`. */
  resize(width: number, height: number, dpr: number) {
    this.view.dpr = dpr;
    this.display.width = Math.max(1, Math.round(width * dpr));
    this.display.height = Math.max(1, Math.round(height * dpr));
    this.display.style.width = `${width}px`;
    this.display.style.height = `${height}px`;
    this.invalidate();
  }

  setBackground(color: string) {
    this.background = color;
    this.invalidate();
  }

  setPicture(image: CanvasImageSource | null, mask: MaskBuffer | null) {
    this.image = image;
    this.mask = mask;
    if (mask) {
      const { layer, context } = makeLayer(mask.width, mask.height);
      this.overlay = layer;
      this.overlayContext = context;
      this.overlayPixels = new ImageData(mask.width, mask.height);
      this.maskDirty = mask.bounds;
    } else {
      this.overlay = this.overlayContext = this.overlayPixels = null;
    }
    this.invalidate();
  }

  setOverlayStyle(style: OverlayStyle, visible: boolean) {
    this.style = style;
    this.showOverlay = visible;
    if (this.mask) this.maskDirty = this.mask.bounds;
    this.invalidate();
  }

  setBorders(borders: OutpaintBorders) {
    this.borders = borders;
    this.invalidate();
  }

  /** The mask changed inside `rect` (image pixels): recolour that part of the overlay and redraw it. */
  maskChanged(rect: Rect | null) {
    if (!rect) return;
    this.maskDirty = unionRect(this.maskDirty, rect);
    this.schedule();
  }

  /** The view moved or something global changed: redraw everything. */
  invalidate() {
    this.fullRedraw = true;
    this.schedule();
  }

  destroy() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
  }

  private schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.draw());
  }

  /** Draws what is pending now (the frame callback; tests and benchmarks may call it to flush). */
  draw() {
    this.frame = 0;
    const dirty = this.maskDirty;
    this.maskDirty = null;
    if (dirty) this.updateOverlay(dirty);
    const context = this.context;
    context.save();
    context.setTransform(1, 0, 0, 1, 0, 0);
    if (!this.fullRedraw) {
      if (!dirty) {
        context.restore();
        return;
      }
      const area = this.view.imageRectToDevice(dirty);
      context.beginPath();
      context.rect(area.x, area.y, area.width, area.height);
      context.clip();
    }
    this.fullRedraw = false;
    context.fillStyle = this.background;
    context.fillRect(0, 0, this.display.width, this.display.height);
    if (this.image && this.mask) {
      context.setTransform(...this.view.deviceMatrix());
      // Zoomed in, show the pixels as they are (the mask is painted per pixel); zoomed out, smooth.
      context.imageSmoothingEnabled = this.view.zoom * this.view.dpr < 1;
      this.drawBorders(context);
      context.drawImage(this.image, 0, 0, this.mask.width, this.mask.height);
      if (this.showOverlay && this.overlay) {
        // The overlay changes every frame while painting: smoothing it when zoomed out would rebuild its
        // mipmaps (the whole image-size layer) each frame. Nearest sampling only reads the pixels drawn.
        context.imageSmoothingEnabled = false;
        context.drawImage(this.overlay, 0, 0);
      }
    }
    context.restore();
  }

  private updateOverlay(rect: Rect) {
    const { mask, overlayPixels, overlayContext } = this;
    if (!mask || !overlayPixels || !overlayContext) return;
    const [r, g, b] = parseHexColor(this.style.color);
    const alpha = Math.min(Math.max(this.style.opacity, 0), 1);
    const pixels = overlayPixels.data;
    const x1 = Math.min(mask.width, rect.x + rect.width);
    const y1 = Math.min(mask.height, rect.y + rect.height);
    for (let y = Math.max(0, rect.y); y < y1; y++) {
      let i = y * mask.width + Math.max(0, rect.x);
      for (let x = Math.max(0, rect.x); x < x1; x++, i++) {
        const o = i * 4;
        pixels[o] = r;
        pixels[o + 1] = g;
        pixels[o + 2] = b;
        pixels[o + 3] = mask.data[i] * alpha;
      }
    }
    overlayContext.putImageData(overlayPixels, 0, 0, rect.x, rect.y, rect.width, rect.height);
  }

  private drawBorders(context: CanvasRenderingContext2D) {
    const { left, right, top, bottom } = this.borders;
    if (!this.mask || !(left || right || top || bottom)) return;
    const { width, height } = this.mask;
    // The area outpainting adds: hatched, with a dashed outline (line widths in image pixels, 1 device pixel).
    context.fillStyle = "rgba(120, 170, 255, 0.25)";
    context.fillRect(-left, -top, width + left + right, height + top + bottom);
    context.setLineDash([6 / this.view.zoom, 4 / this.view.zoom]);
    context.lineWidth = 1 / (this.view.zoom * this.view.dpr);
    context.strokeStyle = "rgba(120, 170, 255, 0.9)";
    context.strokeRect(-left, -top, width + left + right, height + top + bottom);
    context.setLineDash([]);
  }
}
