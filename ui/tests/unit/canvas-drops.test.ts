// Pictures dropped on the window go to the view that takes them now: the canvas while shown, else PNG Info.
import { describe, expect, it } from "vitest";
import { WindowDrops } from "../../src/lib/state/drops";
import type { DroppedImage } from "../../src/lib/types";
import { fakeApi } from "./fake-api";

const dropped = (path: string): DroppedImage => ({ path, fileName: path.slice(1), metadata: null, reuse: null, error: null });

describe("the window's drops", () => {
  it("go to the latest view that takes them, else to the window's default", async () => {
    let send: ((file: DroppedImage) => void) | null = null;
    const { api } = fakeApi({ watchDroppedFiles: async (onDrop) => void (send = onDrop) });
    const drops = new WindowDrops(api);
    const gallery: string[] = [];
    const canvas: string[] = [];
    const other: string[] = [];
    // A view that took drops before the window started listening still gets them.
    let release = drops.take((file) => canvas.push(file.path));
    await drops.watch((file) => gallery.push(file.path));
    send!(dropped("/a.jpg"));
    release();
    send!(dropped("/b.png"));
    release = drops.take((file) => canvas.push(file.path));
    const releaseOther = drops.take((file) => other.push(file.path));
    send!(dropped("/c.png"));
    releaseOther();
    send!(dropped("/d.bmp"));
    release();
    send!(dropped("/e.png"));
    expect(canvas).toEqual(["/a.jpg", "/d.bmp"]);
    expect(other).toEqual(["/c.png"]);
    expect(gallery).toEqual(["/b.png", "/e.png"]);
  });
});
