// Gallery grid timings in headless Chromium with 50,000 images (IPC mocked by ipc-mock.js: the search runs in the
// page's JavaScript and thumbnails are one in-memory PNG, so these numbers are the grid's own cost plus a mock search, not the SQLite search, which
// `cargo run --release -p pigment-gallery --example gallery_bench` measures). Prints numbers, asserts nothing.
//
//   npx vite build --config ui/vite.config.ts && node ui/tests/browser/gallery-bench.mjs [images]
import { openUi, startBuiltUi, tinyPng } from "./harness.mjs";

const size = Number(process.argv[2] ?? 50000);

const ui = await startBuiltUi();
try {
  const { page } = await openUi(ui, {
    viewport: { width: 1400, height: 900 },
    globals: { __PIGMENT_GALLERY_SIZE__: size },
    // Thumbnails as one in-memory PNG, so the numbers are the grid's (layout, paint, page fetches), not Playwright's
    // request interception (in the app they come from disk through the asset protocol).
    scripts: [`window.__TAURI_INTERNALS__.convertFileSrc = () => "data:image/png;base64,${tinyPng.toString("base64")}";`],
  });

  // First page: from the click on the tab to the first row of thumbnails painted.
  const firstPageMs = await page.evaluate(() => new Promise((done) => {
    const started = performance.now();
    [...document.querySelectorAll('[role="tab"]')].find((t) => t.textContent === "Gallery").click();
    const check = () => {
      const imgs = [...document.querySelectorAll('[data-testid="gallery-grid"] img')];
      if (imgs.length && imgs.every((i) => i.complete)) requestAnimationFrame(() => done(performance.now() - started));
      else requestAnimationFrame(check);
    };
    check();
  }));
  const searchMs = await page.evaluate(async () => {
    const calls = window.__PIGMENT_CALLS__;
    const started = performance.now();
    const before = calls.length;
    await window.__TAURI_INTERNALS__.invoke("gallery_search", { query: { text: "", model: null, sampler: null, width: null,
      height: null, fromMs: null, toMs: null, favouritesOnly: false, board: null, sort: "newest", offset: 0, limit: 120 } });
    const elapsed = performance.now() - started;
    calls.length = before;
    return elapsed;
  });

  // Scrolling: 240 frames moving 500 px each (about 4 screens a second at 60 Hz), each frame's duration recorded.
  const scroll = await page.evaluate(() => new Promise((done) => {
    const grid = document.querySelector('[data-testid="gallery-grid"]');
    const frames = [];
    let last = performance.now();
    let n = 0;
    const step = (now) => {
      frames.push(now - last);
      last = now;
      grid.scrollTop += 500;
      if (++n < 240) requestAnimationFrame(step);
      else done({ frames, nodes: grid.querySelectorAll('[role="listitem"]').length, scrollTop: grid.scrollTop, height: grid.scrollHeight });
    };
    requestAnimationFrame(step);
  }));
  // Jump to the end, as a scrollbar drag would.
  const jumpMs = await page.evaluate(() => new Promise((done) => {
    const grid = document.querySelector('[data-testid="gallery-grid"]');
    const started = performance.now();
    grid.scrollTop = grid.scrollHeight;
    const check = () => {
      const imgs = [...grid.querySelectorAll("img")];
      const last = grid.querySelector(`[data-index="${window.__PIGMENT_GALLERY_SIZE__ - 1}"] img`);
      if (last && imgs.every((i) => i.complete)) done(performance.now() - started);
      else requestAnimationFrame(check);
    };
    requestAnimationFrame(check);
  }));

  const frames = scroll.frames.slice(1).sort((a, b) => a - b);
  const pct = (p) => frames[Math.min(frames.length - 1, Math.floor(frames.length * p))];
  const fmt = (n) => n.toFixed(1);
  console.log(`gallery grid, ${size.toLocaleString()} images, headless Chromium (${ui.browser.version()}), 1400x900:`);
  console.log(`  first page rendered (tab click to thumbnails painted): ${fmt(firstPageMs)} ms`);
  console.log(`  mock search call (JS filter+sort of ${size} in the page, for reference): ${fmt(searchMs)} ms`);
  console.log(`  scroll frame time over ${frames.length} frames: median ${fmt(pct(0.5))} ms, p95 ${fmt(pct(0.95))} ms, max ${fmt(frames.at(-1))} ms`);
  console.log(`  tiles in the page while scrolling: ${scroll.nodes} (of ${size})`);
  console.log(`  jump to the end until its thumbnails are painted: ${fmt(jumpMs)} ms`);
} finally {
  await ui.close();
}
