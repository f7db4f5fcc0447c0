// Where the picture sits in the viewport: a zoom (screen CSS pixels per image pixel) and the viewport position of
// the image's top-left corner. Pointer positions come in CSS pixels relative to the viewport; the canvas's backing
// store has `dpr` device pixels per CSS pixel, so drawing uses `dpr * zoom` and the picture stays crisp on high-DPI
// screens. The mask never depends on any of this: it stays at image resolution.

export const MIN_ZOOM = 1 / 32;
export const MAX_ZOOM = 64;

export interface ScreenPoint {
  x: number;
  y: number;
}

export class ViewTransform {
  zoom = 1;
  panX = 0;
  panY = 0;
  dpr = 1;

  constructor(init: Partial<Pick<ViewTransform, "zoom" | "panX" | "panY" | "dpr">> = {}) {
    Object.assign(this, init);
  }

  /** A viewport point (CSS pixels) in image pixels (not clamped to the picture). */
  screenToImage(point: ScreenPoint): ScreenPoint {
    return { x: (point.x - this.panX) / this.zoom, y: (point.y - this.panY) / this.zoom };
  }

  imageToScreen(point: ScreenPoint): ScreenPoint {
    return { x: point.x * this.zoom + this.panX, y: point.y * this.zoom + this.panY };
  }

  /** The 2D context transform that draws image pixels onto the backing store (device pixels). */
  deviceMatrix(): [number, number, number, number, number, number] {
    const scale = this.dpr * this.zoom;
    return [scale, 0, 0, scale, this.dpr * this.panX, this.dpr * this.panY];
  }

  /** Zooms to `zoom` keeping the image point under `anchor` (the pointer) where it is. */
  zoomAt(anchor: ScreenPoint, zoom: number) {
    const fixed = this.screenToImage(anchor);
    this.zoom = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, zoom));
    this.panX = anchor.x - fixed.x * this.zoom;
    this.panY = anchor.y - fixed.y * this.zoom;
  }

  /** A wheel turn: one notch (deltaY 100) zooms by 1.2, either way. */
  wheel(anchor: ScreenPoint, deltaY: number) {
    this.zoomAt(anchor, this.zoom * Math.pow(1.2, -deltaY / 100));
  }

  panBy(dx: number, dy: number) {
    this.panX += dx;
    this.panY += dy;
  }

  /** The whole picture (`width` x `height` image pixels) centred in a viewport of `viewWidth` x `viewHeight`. */
  fit(width: number, height: number, viewWidth: number, viewHeight: number, margin = 16) {
    const zoom = Math.min((viewWidth - 2 * margin) / width, (viewHeight - 2 * margin) / height);
    this.zoom = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, zoom));
    this.center(width, height, viewWidth, viewHeight);
  }

  /** One image pixel per CSS pixel, centred. */
  actualSize(width: number, height: number, viewWidth: number, viewHeight: number) {
    this.zoom = 1;
    this.center(width, height, viewWidth, viewHeight);
  }

  private center(width: number, height: number, viewWidth: number, viewHeight: number) {
    // Whole device pixels, so 100% maps image pixels onto device pixels exactly.
    this.panX = Math.round(((viewWidth - width * this.zoom) / 2) * this.dpr) / this.dpr;
    this.panY = Math.round(((viewHeight - height * this.zoom) / 2) * this.dpr) / this.dpr;
  }

  /**
   * The device-pixel rectangle an image rectangle covers, grown to whole pixels (plus one for smoothing), for
   * redrawing only what changed.
   */
  imageRectToDevice(rect: { x: number; y: number; width: number; height: number }) {
    const [scale, , , , offsetX, offsetY] = this.deviceMatrix();
    const x0 = Math.floor(rect.x * scale + offsetX) - 1;
    const y0 = Math.floor(rect.y * scale + offsetY) - 1;
    const x1 = Math.ceil((rect.x + rect.width) * scale + offsetX) + 1;
    const y1 = Math.ceil((rect.y + rect.height) * scale + offsetY) + 1;
    return { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
  }
}
