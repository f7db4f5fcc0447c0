// Tile undo: strokes, fills and inverts undone and redone exactly; 100+ steps; memory bounded.
import { describe, expect, it } from "vitest";
import { stampDab } from "../../src/lib/canvas/brush";
import { MaskBuffer, TILE_SIZE } from "../../src/lib/canvas/mask";
import { TileUndoStore } from "../../src/lib/canvas/undo";

function edit(store: TileUndoStore, change: () => void): boolean {
  store.begin();
  change();
  return store.end();
}

describe("the tile undo store", () => {
  it("undoes and redoes strokes, fills and inverts exactly", () => {
    const mask = new MaskBuffer(300, 200);
    const store = new TileUndoStore(mask);
    const snapshots = [Array.from(mask.data)];
    edit(store, () => stampDab(mask, 50, 50, 30, 0.5, false));
    snapshots.push(Array.from(mask.data));
    edit(store, () => mask.invert());
    snapshots.push(Array.from(mask.data));
    edit(store, () => stampDab(mask, 250, 150, 60, 1, true));
    snapshots.push(Array.from(mask.data));
    edit(store, () => mask.fill(0));
    snapshots.push(Array.from(mask.data));
    expect(store.steps).toBe(4);
    for (let i = snapshots.length - 2; i >= 0; i--) {
      expect(store.undo()).not.toBeNull();
      expect(Array.from(mask.data)).toEqual(snapshots[i]);
    }
    expect(store.undo()).toBeNull();
    for (let i = 1; i < snapshots.length; i++) {
      store.redo();
      expect(Array.from(mask.data)).toEqual(snapshots[i]);
    }
    expect(store.canRedo).toBe(false);
  });

  it("a new edit after undo drops the redo history", () => {
    const mask = new MaskBuffer(64, 64);
    const store = new TileUndoStore(mask);
    edit(store, () => stampDab(mask, 10, 10, 8, 1, false));
    edit(store, () => stampDab(mask, 40, 40, 8, 1, false));
    store.undo();
    expect(store.canRedo).toBe(true);
    edit(store, () => stampDab(mask, 20, 50, 8, 1, false));
    expect(store.canRedo).toBe(false);
    expect(store.steps).toBe(2);
  });

  it("an edit that changes nothing adds no step", () => {
    const mask = new MaskBuffer(64, 64);
    const store = new TileUndoStore(mask);
    expect(edit(store, () => mask.fill(0))).toBe(false);
    expect(edit(store, () => stampDab(mask, 10, 10, 8, 1, true))).toBe(false);
    expect(store.canUndo).toBe(false);
  });

  it("keeps only the tiles a stroke touched, and uniform tiles as one value", () => {
    const mask = new MaskBuffer(2048, 2048);
    const store = new TileUndoStore(mask);
    // A small dab inside one tile: one tile before (uniform: 8 bytes) and after (4 KiB).
    edit(store, () => stampDab(mask, 100, 100, 10, 1, false));
    expect(store.heldBytes).toBe(8 + TILE_SIZE * TILE_SIZE);
    // Filling 2048 x 2048: 1024 tiles, all uniform after; one of them was not before.
    const before = store.heldBytes;
    edit(store, () => mask.fill(255));
    expect(store.heldBytes - before).toBe(1023 * 16 + (TILE_SIZE * TILE_SIZE + 8));
  });

  it("holds 150 strokes and undoes all of them back to an empty mask", () => {
    const mask = new MaskBuffer(512, 512);
    const store = new TileUndoStore(mask);
    // Each stroke paints somewhere new, or erases part of the one before.
    for (let i = 0; i < 150; i++) {
      const erase = i % 5 === 4;
      const j = erase ? i - 1 : i;
      expect(edit(store, () => stampDab(mask, 12 + ((j * 37) % 488), 12 + ((j * 91) % 488), 24, 0.7, erase))).toBe(true);
    }
    expect(store.steps).toBe(150);
    let undone = 0;
    while (store.undo()) undone++;
    expect(undone).toBe(150);
    expect(mask.data.every((v) => v === 0)).toBe(true);
  });

  it("drops the oldest steps beyond the step and byte limits", () => {
    const mask = new MaskBuffer(1024, 1024);
    const byBytes = new TileUndoStore(mask, 1000, 200 * 1024);
    for (let i = 0; i < 300; i++) edit(byBytes, () => stampDab(mask, (i * 53) % 1024, (i * 29) % 1024, 100, 0.5, i % 2 === 1));
    expect(byBytes.heldBytes).toBeLessThanOrEqual(200 * 1024);
    expect(byBytes.steps).toBeGreaterThan(0);
    expect(byBytes.steps).toBeLessThan(300);

    const small = new MaskBuffer(64, 64);
    const bySteps = new TileUndoStore(small, 120);
    // Paint a dab, erase it, paint it again...: every edit changes the mask.
    for (let i = 0; i < 130; i++) edit(bySteps, () => stampDab(small, 32, 32, 6, 1, i % 2 === 1));
    expect(bySteps.steps).toBe(120);
  });
});
