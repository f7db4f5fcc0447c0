// Screen <-> image mapping under zoom, pan and devicePixelRatio.
import { describe, expect, it } from "vitest";
import { MAX_ZOOM, MIN_ZOOM, ViewTransform } from "../../src/lib/canvas/view";

describe("the view transform", () => {
  it("maps screen points to image points and back under zoom and pan", () => {
    const view = new ViewTransform({ zoom: 2.5, panX: 40, panY: -30 });
    expect(view.screenToImage({ x: 40, y: -30 })).toEqual({ x: 0, y: 0 });
    expect(view.screenToImage({ x: 290, y: 220 })).toEqual({ x: 100, y: 100 });
    for (const point of [{ x: 3, y: 7 }, { x: 123.25, y: 456.5 }]) {
      const back = view.screenToImage(view.imageToScreen(point));
      expect(back.x).toBeCloseTo(point.x, 10);
      expect(back.y).toBeCloseTo(point.y, 10);
    }
  });

  it("wheel zoom keeps the image point under the pointer in place", () => {
    const view = new ViewTransform({ zoom: 1, panX: 10, panY: 20 });
    const pointer = { x: 300, y: 200 };
    const before = view.screenToImage(pointer);
    view.wheel(pointer, -100);
    expect(view.zoom).toBeCloseTo(1.2, 10);
    const after = view.screenToImage(pointer);
    expect(after.x).toBeCloseTo(before.x, 10);
    expect(after.y).toBeCloseTo(before.y, 10);
    view.wheel(pointer, 300);
    expect(view.zoom).toBeCloseTo(1.2 / 1.728, 10);
    expect(view.screenToImage(pointer).x).toBeCloseTo(before.x, 10);
  });

  it("zoom stays within its limits", () => {
    const view = new ViewTransform();
    view.zoomAt({ x: 0, y: 0 }, 1000);
    expect(view.zoom).toBe(MAX_ZOOM);
    view.zoomAt({ x: 0, y: 0 }, 0);
    expect(view.zoom).toBe(MIN_ZOOM);
  });

  it("fit centres the whole picture with a margin; 100% maps one image pixel to one CSS pixel", () => {
    const view = new ViewTransform();
    view.fit(2048, 1024, 1000, 600, 16);
    expect(view.zoom).toBeCloseTo(968 / 2048, 10);
    const topLeft = view.imageToScreen({ x: 0, y: 0 });
    const bottomRight = view.imageToScreen({ x: 2048, y: 1024 });
    expect(topLeft.x).toBeCloseTo(16, 0);
    expect(bottomRight.x).toBeCloseTo(984, 0);
    expect((topLeft.y + bottomRight.y) / 2).toBeCloseTo(300, 0);
    view.actualSize(2048, 1024, 1000, 600);
    expect(view.zoom).toBe(1);
    expect(view.imageToScreen({ x: 1024, y: 512 })).toEqual({ x: 500, y: 300 });
  });

  it("draws in device pixels: the backing-store matrix scales by zoom times DPR", () => {
    const view = new ViewTransform({ zoom: 3, panX: 10.5, panY: 4, dpr: 2 });
    expect(view.deviceMatrix()).toEqual([6, 0, 0, 6, 21, 8]);
    // The image point under a CSS-pixel pointer does not depend on the DPR.
    const other = new ViewTransform({ zoom: 3, panX: 10.5, panY: 4, dpr: 1 });
    expect(view.screenToImage({ x: 100, y: 50 })).toEqual(other.screenToImage({ x: 100, y: 50 }));
    // 100% at DPR 2 lands on whole device pixels.
    view.actualSize(101, 51, 400, 300);
    expect((view.panX * view.dpr) % 1).toBe(0);
    expect((view.panY * view.dpr) % 1).toBe(0);
  });

  it("an image rectangle covers the device rectangle it is redrawn in", () => {
    const view = new ViewTransform({ zoom: 2, panX: 5, panY: 5, dpr: 1.5 });
    const area = view.imageRectToDevice({ x: 10, y: 20, width: 4, height: 2 });
    // Image (10, 20) is device ((10 * 2 + 5) * 1.5) = 37.5; the rectangle is grown to whole pixels plus one.
    expect(area).toEqual({ x: 36, y: 66, width: 15, height: 9 });
  });
});
