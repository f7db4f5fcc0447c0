// Measures the canvas while painting continuously on a 2048 x 2048 picture in headless Chromium (the built UI,
// IPC mocked): the main-thread work per frame (pointer handlers plus the frame's drawing) at its 95th percentile,
// and the JS heap after 200 strokes. Prints numbers; asserts nothing. Run: `node ui/tests/browser/canvas-bench.mjs`
// after `npx vite build --config ui/vite.config.ts`.
import { PNG } from "pngjs";
import { openUi, startBuiltUi } from "./harness.mjs";

const SIDE = 2048;
const STROKES = 200;

// Timing hooks, installed before the app: every pointer event's dispatch (window capture to window bubble) and
// every animation-frame callback; a frame's work is the events handled since the previous frame plus its drawing.
// A separate frame loop records the time between frames while a button is down (painting): what the eye sees,
// including the browser's own raster and composite after the script.
const hooks = `(() => {
  const stats = (window.__CANVAS_BENCH__ = { frames: [], intervals: [], events: 0 });
  let pending = 0, started = 0, down = false;
  for (const type of ["pointermove", "pointerdown", "pointerup"]) {
    window.addEventListener(type, () => (started = performance.now()), { capture: true });
    window.addEventListener(type, () => { pending += performance.now() - started; stats.events++; });
  }
  window.addEventListener("pointerdown", () => (down = true), { capture: true });
  window.addEventListener("pointerup", () => (down = false), { capture: true });
  const raf = window.requestAnimationFrame.bind(window);
  let last = 0, lastDown = false;
  const loop = (time) => {
    if (stats.recording && down && lastDown) stats.intervals.push(time - last);
    last = time;
    lastDown = down;
    raf(loop);
  };
  raf(loop);
  window.requestAnimationFrame = (callback) => raf((time) => {
    const start = performance.now();
    callback(time);
    if (stats.recording) stats.frames.push(pending + performance.now() - start);
    pending = 0;
  });
})();`;

function noisePicture() {
  const png = new PNG({ width: SIDE, height: SIDE });
  let seed = 1;
  for (let i = 0; i < png.data.length; i += 4) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    png.data[i] = (i >> 2) % SIDE >> 3;
    png.data[i + 1] = seed >>> 24;
    png.data[i + 2] = (i >> 2) / SIDE >> 3;
    png.data[i + 3] = 255;
  }
  return PNG.sync.write(png);
}

const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
};
const round = (x) => Math.round(x * 100) / 100;

const ui = await startBuiltUi();
try {
  const { page } = await openUi(ui, { scripts: [hooks] });
  await page.getByRole("tab", { name: "Canvas" }).click();
  await page.setInputFiles("#canvas-open", { name: "big.png", mimeType: "image/png", buffer: noisePicture() });
  await page.locator("#canvas-size", { hasText: `${SIDE} × ${SIDE}` }).waitFor();
  await page.fill("#brush-size-number", "96");
  await page.press("#brush-size-number", "Tab");
  const cdp = await page.context().newCDPSession(page);
  const heap = async () => {
    await cdp.send("HeapProfiler.collectGarbage");
    return cdp.send("Runtime.getHeapUsage");
  };
  const before = await heap();
  const box = await page.locator("#mask-canvas").boundingBox();
  const results = {};
  for (const [label, button] of [["fit", "#canvas-fit"], ["100%", "#canvas-actual"]]) {
    await page.click(button);
    await page.evaluate(() => Object.assign(window.__CANVAS_BENCH__, { frames: [], intervals: [], events: 0, recording: true }));
    const started = performance.now();
    for (let i = 0; i < STROKES / 2; i++) {
      // Zig-zags across the view, 40 pointer moves each.
      const y = box.y + 40 + ((i * 37) % (box.height - 80));
      await page.mouse.move(box.x + 40, y);
      await page.mouse.down();
      await page.mouse.move(box.x + box.width - 40, y + 60, { steps: 20 });
      await page.mouse.move(box.x + box.width / 2, y - 40, { steps: 20 });
      await page.mouse.up();
    }
    const seconds = (performance.now() - started) / 1000;
    const stats = await page.evaluate(() => {
      const s = window.__CANVAS_BENCH__;
      s.recording = false;
      return { frames: s.frames, intervals: s.intervals, events: s.events };
    });
    results[label] = {
      strokes: STROKES / 2,
      pointerEvents: stats.events,
      eventsPerSecond: Math.round(stats.events / seconds),
      frames: stats.frames.length,
      frameWorkMs: { p50: round(percentile(stats.frames, 50)), p95: round(percentile(stats.frames, 95)), max: round(Math.max(...stats.frames)) },
      frameIntervalMs: { p50: round(percentile(stats.intervals, 50)), p95: round(percentile(stats.intervals, 95)) },
    };
  }
  const after = await heap();
  const mib = (bytes) => round(bytes / 1048576);
  const perf = await page.evaluate(() => performance.memory ? performance.memory.usedJSHeapSize : null);
  console.log(JSON.stringify({
    picture: `${SIDE}x${SIDE}`,
    brush: "96 px, hardness 0.8",
    browser: `Chromium ${ui.browser.version()} headless, --disable-gpu`,
    painting: results,
    heapMiB: {
      beforeStrokes: { used: mib(before.usedSize), backingStorage: mib(before.backingStorageSize ?? 0) },
      after200Strokes: { used: mib(after.usedSize), backingStorage: mib(after.backingStorageSize ?? 0), total: mib(after.totalSize) },
      performanceMemoryUsed: perf === null ? null : mib(perf),
    },
  }, null, 2));
} finally {
  await ui.close();
}
