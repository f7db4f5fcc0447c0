// The inpainting mask at the picture's resolution: one byte per pixel, 0 keeps, 255 repaints (the engine binarizes
// at 128). Every change reports the rectangle it touched so the view redraws only that, and calls `beforeChange`
// for each tile it is about to modify so the undo store can keep that tile's old content.

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

export function unionRect(a: Rect | null, b: Rect | null): Rect | null {
  if (!a) return b;
  if (!b) return a;
  const x = Math.min(a.x, b.x);
  const y = Math.min(a.y, b.y);
  return { x, y, width: Math.max(a.x + a.width, b.x + b.width) - x, height: Math.max(a.y + a.height, b.y + b.height) - y };
}

/** Side of the square tiles the undo store keeps (64 x 64 = 4 KiB each). */
export const TILE_SIZE = 64;

export class MaskBuffer {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
  readonly tilesX: number;
  readonly tilesY: number;
  /** Called with a tile index before the first write into it (the undo store's hook). */
  beforeChange: ((tile: number) => void) | null = null;

  constructor(width: number, height: number) {
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
      throw new RangeError(`mask size ${width}x${height}: width and height must be whole numbers of 1 or more`);
    }
    this.width = width;
    this.height = height;
    this.data = new Uint8Array(width * height);
    this.tilesX = Math.ceil(width / TILE_SIZE);
    this.tilesY = Math.ceil(height / TILE_SIZE);
  }

  get(x: number, y: number): number {
    return this.data[y * this.width + x];
  }

  /** The tile's rectangle (edge tiles are smaller). */
  tileRect(tile: number): Rect {
    const x = (tile % this.tilesX) * TILE_SIZE;
    const y = Math.floor(tile / this.tilesX) * TILE_SIZE;
    return { x, y, width: Math.min(TILE_SIZE, this.width - x), height: Math.min(TILE_SIZE, this.height - y) };
  }

  /** Announces writes to every tile overlapping `rect` (already clipped to the mask). */
  touch(rect: Rect) {
    if (!this.beforeChange || rect.width <= 0 || rect.height <= 0) return;
    const tx0 = Math.floor(rect.x / TILE_SIZE);
    const ty0 = Math.floor(rect.y / TILE_SIZE);
    const tx1 = Math.floor((rect.x + rect.width - 1) / TILE_SIZE);
    const ty1 = Math.floor((rect.y + rect.height - 1) / TILE_SIZE);
    for (let ty = ty0; ty <= ty1; ty++) for (let tx = tx0; tx <= tx1; tx++) this.beforeChange(ty * this.tilesX + tx);
  }

  get bounds(): Rect {
    return { x: 0, y: 0, width: this.width, height: this.height };
  }

  /** Sets every pixel to `value` (fill: 255, clear: 0). */
  fill(value: number): Rect {
    this.touch(this.bounds);
    this.data.fill(value);
    return this.bounds;
  }

  invert(): Rect {
    this.touch(this.bounds);
    for (let i = 0; i < this.data.length; i++) this.data[i] = 255 - this.data[i];
    return this.bounds;
  }

  /** Replaces the whole mask with `values` (an imported PNG's luminance at the mask's size). */
  replace(values: Uint8Array): Rect {
    if (values.length !== this.data.length) {
      throw new RangeError(`mask data of ${values.length} values for a ${this.width}x${this.height} mask`);
    }
    this.touch(this.bounds);
    this.data.set(values);
    return this.bounds;
  }

  /** True when some pixel repaints (at least 128, as the engine counts). */
  hasRepaint(): boolean {
    for (let i = 0; i < this.data.length; i++) if (this.data[i] >= 128) return true;
    return false;
  }
}
