// The gallery in the built UI (vite preview of ui/dist) in headless Chromium, Tauri's IPC mocked (ipc-mock.js) with a
// gallery of 500 images: the virtualised grid, search, favourites, boards, the detail view and "reuse parameters",
// delete with undo, history, and "PNG Info" for a dropped file.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { calls, openUi, startBuiltUi } from "./harness.mjs";

let ui;
before(async () => (ui = await startBuiltUi()));
after(() => ui?.close());

async function openGallery(size = 500) {
  const { page, errors } = await openUi(ui, { globals: { __PIGMENT_GALLERY_SIZE__: size } });
  await page.getByRole("tab", { name: "Gallery" }).click();
  await page.locator("#gallery-count", { hasText: `${size} images` }).waitFor();
  return { page, errors };
}

const tiles = (page) => page.locator('[data-testid="gallery-grid"] [role="listitem"]');

describe("the gallery with mocked IPC", () => {
  it("renders only the rows on screen and fetches pages as it scrolls", async () => {
    const { page, errors } = await openGallery();
    await page.locator('[data-testid="gallery-grid"] img').first().waitFor();
    const rendered = await tiles(page).count();
    assert.ok(rendered > 10 && rendered < 120, `only visible rows are in the page: ${rendered}`);
    assert.equal((await calls(page, "gallery_search")).length, 1, "one page was enough for the first screen");
    await page.locator('[data-testid="gallery-grid"]').evaluate((grid) => (grid.scrollTop = grid.scrollHeight));
    await page.locator('[data-index="499"] img').waitFor();
    const offsets = (await calls(page, "gallery_search")).map((c) => c.args.query.offset);
    assert.ok(offsets.includes(480), `the last page was fetched: ${offsets}`);
    assert.ok((await tiles(page).count()) < 120, "still only the visible rows");
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("searches by a word of the prompt, filters and sorts", async () => {
    const { page, errors } = await openGallery();
    await page.fill("#gallery-search", "lighthouse");
    await page.locator("#gallery-count", { hasText: "63 images" }).waitFor();
    const alts = await page.locator('[data-testid="gallery-grid"] img').evaluateAll((imgs) => imgs.map((i) => i.alt));
    assert.ok(alts.length > 0 && alts.every((a) => a.includes("lighthouse")), alts.join());
    const search = (await calls(page, "gallery_search")).at(-1).args.query;
    assert.equal(search.text, "lighthouse");
    assert.equal(search.offset, 0);

    await page.selectOption('select[aria-label="Sampler filter"]', "Euler Karras");
    await page.locator("#gallery-count", { hasText: /^\d+ images?$/ }).waitFor();
    const filtered = (await calls(page, "gallery_search")).at(-1).args.query;
    assert.equal(filtered.sampler, "Euler Karras");
    assert.equal(filtered.text, "lighthouse", "filters combine with the search");
    await page.selectOption('select[aria-label="Sort"]', "oldest");
    await page.waitForFunction(() => window.__PIGMENT_CALLS__.filter((c) => c.cmd === "gallery_search").at(-1).args.query.sort === "oldest");
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("opens an image, shows every parameter, and reuses them in the generate form", async () => {
    const { page, errors } = await openGallery();
    await page.fill("#gallery-search", "castle");
    await page.locator("#gallery-count", { hasText: "63 images" }).waitFor();
    await page.locator('[data-file="00499-499.png"]').click();
    const detail = page.getByTestId("gallery-detail");
    await detail.waitFor();
    assert.equal(await page.getByTestId("param-prompt").textContent(), "a castle number 499");
    assert.equal(await page.getByTestId("param-negative").textContent(), "blurry");
    assert.match(await detail.textContent(), /Sampler\s*Euler Karras/);
    await page.click("#gallery-reuse");
    await page.locator("#prompt").waitFor();
    assert.equal(await page.inputValue("#prompt"), "a castle number 499");
    assert.equal(await page.inputValue("#negative"), "blurry");
    assert.equal(await page.inputValue("#sampler"), "euler");
    assert.equal(await page.inputValue("#schedule"), "karras");
    assert.equal(await page.inputValue("#seed"), "499");
    assert.equal(await page.inputValue("#height"), "512");
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("deletes an image to the trash and undoes it; the history keeps it", async () => {
    const { page, errors } = await openGallery();
    await page.locator('[data-file="00499-499.png"]').click();
    await page.click("#gallery-delete");
    await page.locator("#gallery-count", { hasText: "499 images" }).waitFor();
    await page.locator("#gallery-undo", { hasText: "moved to the trash" }).waitFor();
    assert.deepEqual((await calls(page, "gallery_delete")).map((c) => c.args.ids), [[500]]);
    await page.getByRole("tab", { name: "History" }).click();
    const first = page.getByTestId("gallery-history").locator("li").first();
    await first.waitFor();
    assert.match(await first.textContent(), /image deleted/);
    await page.getByRole("tab", { name: "Images" }).click();

    await page.locator("#gallery-undo").getByRole("button", { name: "Undo" }).click();
    await page.locator("#gallery-count", { hasText: "500 images" }).waitFor();
    await page.locator("#gallery-notice", { hasText: "Image restored." }).waitFor();
    assert.equal(await page.locator("#gallery-undo").count(), 0);
    assert.deepEqual((await calls(page, "gallery_undo_delete")).map((c) => c.args.ids), [[500]]);
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("marks favourites and keeps images on boards", async () => {
    const { page, errors } = await openGallery();
    await page.locator('[data-index="0"] button[aria-label="Favourite"]').click();
    await page.locator('[data-index="0"] button[aria-label="Unfavourite"]').waitFor();
    await page.getByRole("button", { name: "★ Favourites" }).click();
    await page.locator("#gallery-count", { hasText: /^1 image$/ }).waitFor();
    await page.getByRole("button", { name: "All images" }).click();
    await page.locator("#gallery-count", { hasText: "500 images" }).waitFor();

    await page.fill('input[aria-label="New board name"]', "Keepers");
    await page.getByRole("button", { name: "Add", exact: true }).click();
    await page.locator('[data-file="00495-495.png"]').click();
    await page.getByTestId("gallery-detail").getByLabel("Keepers").check();
    await page.waitForFunction(() => window.__PIGMENT_CALLS__.some((c) => c.cmd === "gallery_board_images"));
    await page.locator("nav .board", { hasText: "Keepers" }).click();
    await page.locator("#gallery-count", { hasText: /^1 image$/ }).waitFor();
    assert.equal(await page.locator('[data-testid="gallery-grid"] img').first().getAttribute("alt"), "a mountain number 495");
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("shows PNG Info for a dropped file and reuses its parameters", async () => {
    const { page, errors } = await openGallery(0);
    await page.waitForFunction(() => typeof window.__PIGMENT_DROP__ === "function");
    await page.evaluate(() => window.__PIGMENT_DROP__({
      path: "/home/me/Downloads/ComfyUI_00001_.png", fileName: "ComfyUI_00001_.png", error: null,
      metadata: { source: "comfy_ui", prompt: "beautiful scenery, purple galaxy bottle", negativePrompt: "text, watermark",
        model: "dreamshaper_8", sampler: "DPM++ 2M Karras", steps: 25, cfgScale: 6.5, seed: 1566, width: 512, height: 640,
        params: [["Steps", "25"], ["Sampler", "DPM++ 2M Karras"], ["CFG scale", "6.5"], ["Seed", "1566"], ["Size", "512x640"], ["Model", "dreamshaper_8"]],
        infotext: "beautiful scenery, purple galaxy bottle\nNegative prompt: text, watermark\nSteps: 25" },
      reuse: { prompt: "beautiful scenery, purple galaxy bottle", negativePrompt: "text, watermark", sampler: "euler",
        schedule: "karras", steps: 25, cfgScale: 6.5, seed: 1566, width: 512, height: 640 },
    }));
    const info = page.getByTestId("png-info");
    await info.waitFor();
    assert.match(await info.textContent(), /ComfyUI/);
    assert.match(await info.textContent(), /dreamshaper_8/);
    await page.click("#png-info-reuse");
    await info.waitFor({ state: "detached" });
    assert.equal(await page.inputValue("#prompt"), "beautiful scenery, purple galaxy bottle");
    assert.equal(await page.inputValue("#steps"), "25");
    assert.equal(await page.inputValue("#schedule"), "karras");
    assert.equal(await page.inputValue("#height"), "640");

    // A file that is not a PNG image: its error, and nothing to reuse.
    await page.evaluate(() => window.__PIGMENT_DROP__({ path: "/tmp/fake.png", fileName: "fake.png", metadata: null, reuse: null,
      error: "could not read /tmp/fake.png: not a PNG image: Format error" }));
    await page.getByRole("alert").filter({ hasText: "not a PNG image" }).waitFor();
    assert.equal(await page.locator("#png-info-reuse").count(), 0);
    assert.deepEqual(errors, []);
    await page.close();
  });
});
