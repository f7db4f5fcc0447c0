import { describe, expect, it, vi } from "vitest";
import { GenerateForm } from "../../src/lib/state/generate.svelte";
import { GalleryState, PAGE_SIZE, UNDO_MS, applyReuse } from "../../src/lib/state/gallery.svelte";
import type { GalleryImage, GalleryQuery } from "../../src/lib/types";
import { fakeApi } from "./fake-api";

function image(id: number): GalleryImage {
  return { id, fileName: `${id}.png`, path: `/out/${id}.png`, thumbnail: null, width: 64, height: 64, prompt: `image ${id}`,
    model: null, sampler: null, seed: id, favourite: false, createdMs: id };
}

/** A gallery of `total` images answered page by page, as the Rust side does. */
function pagedApi(total: number) {
  const search = vi.fn(async (query: GalleryQuery) => ({
    total,
    offset: query.offset,
    items: Array.from({ length: Math.max(0, Math.min(query.limit, total - query.offset)) }, (_, i) => image(query.offset + i)),
  }));
  return { ...fakeApi({ gallerySearch: search }), search };
}

describe("the gallery state", () => {
  it("loads only the pages the visible range needs, once each", async () => {
    const { api, search } = pagedApi(50000);
    const gallery = new GalleryState(api);
    await gallery.refresh();
    expect(gallery.total).toBe(50000);
    expect(gallery.item(0)?.prompt).toBe("image 0");
    expect(gallery.item(PAGE_SIZE)).toBeUndefined();
    await gallery.ensure(49990, 49999);
    await gallery.ensure(49990, 49999);
    expect(search).toHaveBeenCalledTimes(2);
    expect(search.mock.calls[1][0]).toMatchObject({ offset: Math.floor(49990 / PAGE_SIZE) * PAGE_SIZE, limit: PAGE_SIZE });
    expect(gallery.item(49999)?.id).toBe(49999);
  });

  it("drops answers to a search that was replaced", async () => {
    const { api } = pagedApi(10);
    let release: () => void = () => {};
    const slow = new Promise<void>((r) => (release = r));
    api.gallerySearch = vi.fn(async (query: GalleryQuery) => {
      if (query.text === "old") await slow;
      return { total: query.text === "old" ? 999 : 3, offset: 0, items: [image(query.text === "old" ? 99 : 1)] };
    });
    const gallery = new GalleryState(api);
    const old = gallery.setFilters({ text: "old" });
    await gallery.setFilters({ text: "new" });
    release();
    await old;
    expect(gallery.total).toBe(3);
    expect(gallery.item(0)?.id).toBe(1);
  });

  it("offers undo after a delete, for a while", async () => {
    vi.useFakeTimers();
    const { api } = pagedApi(3);
    const gallery = new GalleryState(api);
    await gallery.remove([2]);
    expect(api.galleryDelete).toHaveBeenCalledWith([2]);
    expect(gallery.undo?.ids).toEqual([2]);
    await gallery.undoDelete();
    expect(api.galleryUndoDelete).toHaveBeenCalledWith([2]);
    expect(gallery.notice).toBe("Image restored.");
    await gallery.remove([1]);
    vi.advanceTimersByTime(UNDO_MS + 1);
    expect(gallery.undo).toBeNull();
    vi.useRealTimers();
  });

  it("shows a refused delete's message and offers no undo", async () => {
    const { api } = pagedApi(3);
    api.galleryDelete = vi.fn(async () => {
      throw { kind: "platform", message: "the app could not move the image to the trash: no trash", field: null };
    });
    const gallery = new GalleryState(api);
    await gallery.remove([1]);
    expect(gallery.undo).toBeNull();
    expect(gallery.notice).toContain("no trash");
  });

  it("fills the generate form from an image's parameters, keeping what the engine does not know", () => {
    const form = new GenerateForm();
    form.sampler = "euler";
    applyReuse(form, { prompt: "a fox", negativePrompt: "blurry", sampler: null, schedule: null, steps: 30,
      cfgScale: 6.5, seed: 12, width: 512, height: 768 });
    expect(form.params()).toMatchObject({ prompt: "a fox", negativePrompt: "blurry", sampler: "euler", steps: 30,
      cfgScale: 6.5, seed: 12, width: 512, height: 768 });
  });
});
