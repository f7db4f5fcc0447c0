// The mask brush: dab coverage and hardness falloff, spacing of interpolated dabs, strokes and the eraser.
import { describe, expect, it } from "vitest";
import { BrushStroke, dabCoverage, dabSpacing, interpolateDabs, stampDab } from "../../src/lib/canvas/brush";
import { MaskBuffer } from "../../src/lib/canvas/mask";

/** Pixels at or above the engine's repaint threshold (128). */
function repainted(mask: MaskBuffer): number {
  return mask.data.reduce((n, v) => n + (v >= 128 ? 1 : 0), 0);
}

describe("dab coverage", () => {
  it("is full inside the hard core, zero at and beyond the radius, and falls monotonically between", () => {
    expect(dabCoverage(0, 10, 0.5)).toBe(1);
    expect(dabCoverage(5, 10, 0.5)).toBe(1);
    expect(dabCoverage(10, 10, 0.5)).toBe(0);
    expect(dabCoverage(12, 10, 0.5)).toBe(0);
    let last = 1;
    for (let d = 5; d <= 10; d += 0.25) {
      const c = dabCoverage(d, 10, 0.5);
      expect(c).toBeLessThanOrEqual(last);
      last = c;
    }
    // Smoothstep: half way through the soft edge is half coverage.
    expect(dabCoverage(7.5, 10, 0.5)).toBeCloseTo(0.5, 10);
  });

  it("hardness 1 is a hard disc, hardness 0 is soft from the centre", () => {
    expect(dabCoverage(9.99, 10, 1)).toBe(1);
    expect(dabCoverage(10, 10, 1)).toBe(0);
    expect(dabCoverage(5, 10, 0)).toBeCloseTo(0.5, 10);
    expect(dabCoverage(2, 10, 0)).toBeGreaterThan(dabCoverage(8, 10, 0));
  });
});

describe("stamping", () => {
  it("a hard dab covers the pixels whose centres lie inside the circle (area close to pi r^2)", () => {
    const mask = new MaskBuffer(64, 64);
    const rect = stampDab(mask, 32, 32, 20, 1, false);
    expect(rect).toEqual({ x: 22, y: 22, width: 20, height: 20 });
    for (let y = 0; y < 64; y++) {
      for (let x = 0; x < 64; x++) {
        const inside = Math.hypot(x + 0.5 - 32, y + 0.5 - 32) < 10;
        expect(mask.get(x, y), `(${x}, ${y})`).toBe(inside ? 255 : 0);
      }
    }
    expect(Math.abs(repainted(mask) - Math.PI * 100)).toBeLessThan(10);
  });

  it("a soft dab fades from full at the core to nothing at the edge", () => {
    const mask = new MaskBuffer(64, 64);
    stampDab(mask, 32, 32, 40, 0.25, false);
    const row = Array.from({ length: 20 }, (_, i) => mask.get(32 + i, 32));
    expect(row[0]).toBe(255);
    for (let i = 1; i < row.length; i++) expect(row[i]).toBeLessThanOrEqual(row[i - 1]);
    expect(row[8]).toBeGreaterThan(0);
    expect(row[8]).toBeLessThan(255);
    expect(mask.get(32 + 20, 32)).toBe(0);
  });

  it("is clipped at the mask's edges and ignores dabs wholly outside", () => {
    const mask = new MaskBuffer(16, 16);
    expect(stampDab(mask, 0, 0, 10, 1, false)).toEqual({ x: 0, y: 0, width: 5, height: 5 });
    expect(mask.get(0, 0)).toBe(255);
    expect(stampDab(mask, -20, 5, 10, 1, false)).toBeNull();
    expect(stampDab(mask, 40, 40, 10, 1, false)).toBeNull();
  });

  it("overlapping dabs take the larger value instead of building up", () => {
    const mask = new MaskBuffer(32, 32);
    stampDab(mask, 16, 16, 20, 0, false);
    const once = Array.from(mask.data);
    stampDab(mask, 16, 16, 20, 0, false);
    expect(Array.from(mask.data)).toEqual(once);
  });

  it("the eraser lowers the mask by its coverage and never raises it", () => {
    const mask = new MaskBuffer(32, 32);
    mask.fill(255);
    stampDab(mask, 16, 16, 10, 1, true);
    expect(mask.get(16, 16)).toBe(0);
    expect(mask.get(16, 25)).toBe(255);
    const empty = new MaskBuffer(32, 32);
    stampDab(empty, 16, 16, 10, 0, true);
    expect(repainted(empty)).toBe(0);
    expect(empty.data.every((v) => v === 0)).toBe(true);
  });
});

describe("interpolation", () => {
  it("places dabs every `spacing` pixels and carries the remainder to the next segment", () => {
    const a = { x: 0, y: 0, pressure: 1 };
    const b = { x: 10, y: 0, pressure: 1 };
    const first = interpolateDabs(a, b, 3, 0);
    expect(first.dabs.map((d) => d.x)).toEqual([3, 6, 9]);
    expect(first.carried).toBeCloseTo(1, 10);
    const second = interpolateDabs(b, { x: 20, y: 0, pressure: 1 }, 3, first.carried);
    expect(second.dabs.map((d) => d.x)).toEqual([12, 15, 18]);
    // A diagonal: dabs along the line, equally spaced.
    const diagonal = interpolateDabs(a, { x: 30, y: 40, pressure: 1 }, 5, 0).dabs;
    expect(diagonal).toHaveLength(10);
    expect(diagonal[9].x).toBeCloseTo(30, 10);
    expect(diagonal[9].y).toBeCloseTo(40, 10);
  });

  it("interpolates pressure along the segment", () => {
    const { dabs } = interpolateDabs({ x: 0, y: 0, pressure: 0 }, { x: 10, y: 0, pressure: 1 }, 5, 0);
    expect(dabs.map((d) => d.pressure)).toEqual([0.5, 1]);
  });

  it("spacing is a tenth of the diameter, at least half a pixel", () => {
    expect(dabSpacing(100)).toBe(10);
    expect(dabSpacing(2)).toBe(0.5);
  });

  it("a stroke with two far-apart pointer events leaves a gap-free line", () => {
    const mask = new MaskBuffer(256, 64);
    const stroke = new BrushStroke(mask, { size: 8, hardness: 1, erase: false }, { x: 10.5, y: 32, pressure: 1 });
    stroke.begin();
    const changed = stroke.moveTo({ x: 245.6, y: 32, pressure: 1 });
    expect(changed).not.toBeNull();
    // Spacing 0.8: the last dab is at 244.9 (reaching pixel centres below 248.9); the end dab at 245.6 reaches
    // pixel 249's centre, 249.5.
    expect(mask.get(249, 32)).toBe(0);
    expect(stroke.end()).not.toBeNull();
    expect(mask.get(249, 32)).toBe(255);
    expect(stroke.end()).toBeNull();
    for (let x = 10; x <= 245; x++) expect(mask.get(x, 32), `x ${x}`).toBe(255);
    // The line is the brush's width everywhere: 8 px tall (rows 28..35) at every column away from the ends.
    for (let x = 20; x < 236; x += 7) {
      let height = 0;
      for (let y = 0; y < 64; y++) height += mask.get(x, y) >= 128 ? 1 : 0;
      expect(height, `x ${x}`).toBe(8);
    }
  });

  it("pen pressure scales the dab size", () => {
    const mask = new MaskBuffer(128, 64);
    const stroke = new BrushStroke(mask, { size: 20, hardness: 1, erase: false }, { x: 10, y: 32, pressure: 0.2 });
    stroke.begin();
    stroke.moveTo({ x: 118, y: 32, pressure: 1 });
    const height = (x: number) => Array.from({ length: 64 }, (_, y) => mask.get(x, y)).filter((v) => v >= 128).length;
    expect(height(12)).toBeLessThan(height(110));
    expect(height(110)).toBeGreaterThanOrEqual(18);
  });
});
