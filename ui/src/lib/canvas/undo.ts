// Undo and redo for the mask, by tiles: while an edit runs, the first write into a tile saves that tile's old
// content; when the edit ends, each saved tile that really changed keeps its before and after. A tile of one value
// (all clear, all filled: what fill, clear and most of invert produce) is kept as that number, not as 4 KiB, so a
// fill of a 2048 x 2048 mask costs a few kilobytes. The history keeps at most `maxSteps` edits and `maxBytes` of
// tile data, dropping the oldest edits first.

import { type MaskBuffer, type Rect, unionRect } from "./mask";

/** A tile's pixels, or the one value every pixel has. */
type TileContent = Uint8Array | number;

interface TileChange {
  tile: number;
  before: TileContent;
  after: TileContent;
}

interface Edit {
  changes: TileChange[];
  bytes: number;
}

export const DEFAULT_MAX_STEPS = 200;
export const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;

function contentBytes(content: TileContent): number {
  return typeof content === "number" ? 8 : content.byteLength;
}

export class TileUndoStore {
  private mask: MaskBuffer;
  private undoStack: Edit[] = [];
  private redoStack: Edit[] = [];
  private open: Map<number, TileContent> | null = null;
  private bytes = 0;
  readonly maxSteps: number;
  readonly maxBytes: number;

  constructor(mask: MaskBuffer, maxSteps = DEFAULT_MAX_STEPS, maxBytes = DEFAULT_MAX_BYTES) {
    this.mask = mask;
    this.maxSteps = maxSteps;
    this.maxBytes = maxBytes;
    mask.beforeChange = (tile) => this.saveBefore(tile);
  }

  get canUndo(): boolean {
    return this.undoStack.length > 0;
  }

  get canRedo(): boolean {
    return this.redoStack.length > 0;
  }

  get steps(): number {
    return this.undoStack.length;
  }

  /** Bytes of tile data the history holds (undo and redo together). */
  get heldBytes(): number {
    return this.bytes;
  }

  /** Starts an edit (a stroke, a fill...): writes until `end` undo together. */
  begin() {
    if (this.open) this.end();
    this.open = new Map();
  }

  /** Ends the edit; returns false when it changed nothing (and so adds no step). */
  end(): boolean {
    const open = this.open;
    this.open = null;
    if (!open) return false;
    const changes: TileChange[] = [];
    let bytes = 0;
    for (const [tile, before] of open) {
      const after = this.read(tile);
      if (sameContent(before, after)) continue;
      changes.push({ tile, before, after });
      bytes += contentBytes(before) + contentBytes(after);
    }
    if (!changes.length) return false;
    this.clearRedo();
    this.undoStack.push({ changes, bytes });
    this.bytes += bytes;
    while (this.undoStack.length > this.maxSteps || (this.bytes > this.maxBytes && this.undoStack.length > 1)) {
      this.bytes -= this.undoStack.shift()!.bytes;
    }
    return true;
  }

  /** Reverts the last edit; returns the rectangle changed (null when there was nothing to undo). */
  undo(): Rect | null {
    if (this.open) this.end();
    const edit = this.undoStack.pop();
    if (!edit) return null;
    this.redoStack.push(edit);
    return this.apply(edit, "before");
  }

  redo(): Rect | null {
    if (this.open) this.end();
    const edit = this.redoStack.pop();
    if (!edit) return null;
    this.undoStack.push(edit);
    return this.apply(edit, "after");
  }

  /** Forgets the history (a new picture, a new mask). */
  reset() {
    this.undoStack = [];
    this.redoStack = [];
    this.open = null;
    this.bytes = 0;
  }

  private clearRedo() {
    for (const edit of this.redoStack) this.bytes -= edit.bytes;
    this.redoStack = [];
  }

  private saveBefore(tile: number) {
    if (this.open && !this.open.has(tile)) this.open.set(tile, this.read(tile));
  }

  private apply(edit: Edit, side: "before" | "after"): Rect | null {
    let changed: Rect | null = null;
    for (const change of edit.changes) {
      this.write(change.tile, change[side]);
      changed = unionRect(changed, this.mask.tileRect(change.tile));
    }
    return changed;
  }

  private read(tile: number): TileContent {
    const { x, y, width, height } = this.mask.tileRect(tile);
    const { data } = this.mask;
    const first = data[y * this.mask.width + x];
    let uniform = true;
    for (let row = 0; row < height && uniform; row++) {
      const start = (y + row) * this.mask.width + x;
      for (let i = start; i < start + width; i++) {
        if (data[i] !== first) {
          uniform = false;
          break;
        }
      }
    }
    if (uniform) return first;
    const copy = new Uint8Array(width * height);
    for (let row = 0; row < height; row++) {
      const start = (y + row) * this.mask.width + x;
      copy.set(data.subarray(start, start + width), row * width);
    }
    return copy;
  }

  private write(tile: number, content: TileContent) {
    const { x, y, width, height } = this.mask.tileRect(tile);
    const { data } = this.mask;
    for (let row = 0; row < height; row++) {
      const start = (y + row) * this.mask.width + x;
      if (typeof content === "number") data.fill(content, start, start + width);
      else data.set(content.subarray(row * width, (row + 1) * width), start);
    }
  }
}

function sameContent(a: TileContent, b: TileContent): boolean {
  if (typeof a === "number" || typeof b === "number") return a === b;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
