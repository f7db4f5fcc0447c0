// The mask brush: round dabs with a hard core and a soft edge, stamped along the pointer's path at a fixed spacing
// so a fast stroke is as smooth as a slow one. Painting takes the larger of the mask and the dab (overlapping dabs
// never build up past the brush's own shape); erasing takes the smaller of the mask and the dab's complement.

import { type MaskBuffer, type Rect, unionRect } from "./mask";

export interface BrushSettings {
  /** Diameter in image pixels. */
  size: number;
  /** 0 (all soft edge) to 1 (a hard disc). */
  hardness: number;
  erase: boolean;
}

export interface Point {
  x: number;
  y: number;
  /** 0..1; 1 unless a pen reports it. */
  pressure: number;
}

export const MIN_BRUSH_SIZE = 1;
export const MAX_BRUSH_SIZE = 1024;

/**
 * How much of a dab of `radius` and `hardness` covers a pixel whose centre lies `distance` from the dab's centre:
 * 1 inside the hard core (`radius * hardness`), falling smoothly (smoothstep) to 0 at the radius.
 */
export function dabCoverage(distance: number, radius: number, hardness: number): number {
  if (distance >= radius) return 0;
  const core = radius * Math.min(Math.max(hardness, 0), 1);
  if (distance <= core) return 1;
  const t = (radius - distance) / (radius - core);
  return t * t * (3 - 2 * t);
}

/**
 * The distance between dabs: a tenth of the diameter (at least half a pixel). With max blending the edge between
 * two dabs then dips by under 0.13% of the radius (r - sqrt(r^2 - (r/10)^2)), a quarter pixel for a 200 px brush.
 */
export function dabSpacing(size: number): number {
  return Math.max(0.5, size * 0.1);
}

/**
 * Stamps one dab centred at (`cx`, `cy`) (image pixels, pixel centres at .5) of diameter `size`. Returns the
 * rectangle it touched, or null when it lies outside the mask.
 */
export function stampDab(mask: MaskBuffer, cx: number, cy: number, size: number, hardness: number, erase: boolean): Rect | null {
  const radius = Math.max(size, MIN_BRUSH_SIZE) / 2;
  const x0 = Math.max(0, Math.floor(cx - radius));
  const y0 = Math.max(0, Math.floor(cy - radius));
  const x1 = Math.min(mask.width, Math.ceil(cx + radius));
  const y1 = Math.min(mask.height, Math.ceil(cy + radius));
  if (x1 <= x0 || y1 <= y0) return null;
  const rect = { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
  mask.touch(rect);
  const data = mask.data;
  for (let y = y0; y < y1; y++) {
    const dy = y + 0.5 - cy;
    const row = y * mask.width;
    for (let x = x0; x < x1; x++) {
      const dx = x + 0.5 - cx;
      const coverage = dabCoverage(Math.sqrt(dx * dx + dy * dy), radius, hardness);
      if (coverage === 0) continue;
      const value = Math.round(coverage * 255);
      const i = row + x;
      if (erase) {
        const kept = 255 - value;
        if (data[i] > kept) data[i] = kept;
      } else if (data[i] < value) {
        data[i] = value;
      }
    }
  }
  return rect;
}

/**
 * Dab positions from `from` to `to` every `spacing` pixels, the first one `spacing - carried` after `from`
 * (`carried`: the distance already covered since the last dab). Pressure is interpolated along the way. Returns
 * the dabs and the distance covered after the last one.
 */
export function interpolateDabs(from: Point, to: Point, spacing: number, carried: number): { dabs: Point[]; carried: number } {
  const dx = to.x - from.x;
  const dy = to.y - from.y;
  const length = Math.hypot(dx, dy);
  const dabs: Point[] = [];
  let at = spacing - carried;
  while (at <= length) {
    const t = length === 0 ? 1 : at / length;
    dabs.push({ x: from.x + dx * t, y: from.y + dy * t, pressure: from.pressure + (to.pressure - from.pressure) * t });
    at += spacing;
  }
  return { dabs, carried: length - (at - spacing) };
}

/** One stroke: its first dab where the pointer went down, then dabs along every move. */
export class BrushStroke {
  private last: Point;
  private carried = 0;
  private settings: BrushSettings;
  private mask: MaskBuffer;

  constructor(mask: MaskBuffer, settings: BrushSettings, start: Point) {
    this.mask = mask;
    this.settings = settings;
    this.last = start;
  }

  private dabSize(pressure: number): number {
    return Math.max(MIN_BRUSH_SIZE, this.settings.size * pressure);
  }

  /** The first dab; returns the rectangle changed. */
  begin(): Rect | null {
    const { x, y, pressure } = this.last;
    return stampDab(this.mask, x, y, this.dabSize(pressure), this.settings.hardness, this.settings.erase);
  }

  /** Dabs from the last point to `to`; returns the rectangle changed. */
  moveTo(to: Point): Rect | null {
    const spacing = dabSpacing(this.dabSize(Math.min(this.last.pressure, to.pressure)));
    const { dabs, carried } = interpolateDabs(this.last, to, spacing, this.carried);
    let changed: Rect | null = null;
    for (const dab of dabs) {
      changed = unionRect(changed, stampDab(this.mask, dab.x, dab.y, this.dabSize(dab.pressure), this.settings.hardness, this.settings.erase));
    }
    this.carried = carried;
    this.last = to;
    return changed;
  }

  /** Where the pointer lifted: a last dab there unless one already is (spacing may leave up to one short). */
  end(): Rect | null {
    if (this.carried < 0.01) return null;
    this.carried = 0;
    const { x, y, pressure } = this.last;
    return stampDab(this.mask, x, y, this.dabSize(pressure), this.settings.hardness, this.settings.erase);
  }
}
