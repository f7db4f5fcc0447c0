// The gallery as the window sees it: the current search (text, filters, sort), the pages of results loaded so far
// (the grid asks only for the rows on screen, so 50,000 images cost a few pages), the open image, boards, history,
// the pending undo of a delete and the "PNG Info" of a dropped file. Every fact comes from the Rust side.
import { asAppError, type Api } from "../api";
import type {
  DroppedImage,
  GalleryBoard,
  GalleryFilters,
  GalleryImage,
  GalleryImageDetail,
  GalleryQuery,
  HistoryEntry,
  ReuseParams,
  ScanProgress,
} from "../types";
import type { WindowDrops } from "./drops";
import type { GenerateForm } from "./generate.svelte";

/** Images per request: a few screens of thumbnails. */
export const PAGE_SIZE = 120;
/** How long "Undo" is offered after a delete. */
export const UNDO_MS = 10000;

export type GalleryFilterValues = Omit<GalleryQuery, "offset" | "limit">;

export function defaultFilters(): GalleryFilterValues {
  return { text: "", model: null, sampler: null, width: null, height: null, fromMs: null, toMs: null,
    favouritesOnly: false, board: null, sort: "newest" };
}

/** Fills the generate form from an image's parameters; values the engine does not know are left as they are. */
export function applyReuse(form: GenerateForm, reuse: ReuseParams) {
  form.prompt = reuse.prompt;
  form.negativePrompt = reuse.negativePrompt;
  if (reuse.sampler) form.sampler = reuse.sampler;
  if (reuse.schedule) form.schedule = reuse.schedule;
  if (reuse.steps != null) form.steps = reuse.steps;
  if (reuse.cfgScale != null) form.cfgScale = reuse.cfgScale;
  if (reuse.seed != null) form.useSeed(reuse.seed);
  form.setSize(reuse.width, reuse.height);
  form.clearErrors();
}

export class GalleryState {
  filters = $state<GalleryFilterValues>(defaultFilters());
  /** How many images match the search. */
  total = $state(0);
  /** Bumped whenever a page arrives, so the grid re-reads `item()`. */
  version = $state(0);
  loaded = $state(false);
  selected = $state<GalleryImageDetail | null>(null);
  boards = $state<GalleryBoard[]>([]);
  options = $state<GalleryFilters>({ models: [], samplers: [], sizes: [] });
  history = $state<HistoryEntry[]>([]);
  /** The images just deleted, while "Undo" is offered. */
  undo = $state<{ ids: number[]; label: string } | null>(null);
  notice = $state<string | null>(null);
  scan = $state<ScanProgress | null>(null);
  dropped = $state<DroppedImage | null>(null);

  private api: Api;
  /** Loaded pages by page number; plain (not reactive): `version` says when it changed. */
  private pages = new Map<number, GalleryImage[]>();
  private pending = new Set<number>();
  /** Bumped by every new search so answers to an older one are dropped. */
  private generation = 0;
  private undoTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(api: Api) {
    this.api = api;
  }

  private fail(error: unknown) {
    this.notice = asAppError(error).message;
  }

  /** The image at `index` of the results, once its page has arrived. */
  item(index: number): GalleryImage | undefined {
    void this.version;
    return this.pages.get(Math.floor(index / PAGE_SIZE))?.[index % PAGE_SIZE];
  }

  private async fetchPage(page: number) {
    if (this.pages.has(page) || this.pending.has(page)) return;
    const generation = this.generation;
    this.pending.add(page);
    try {
      const result = await this.api.gallerySearch({ ...this.filters, offset: page * PAGE_SIZE, limit: PAGE_SIZE });
      if (generation !== this.generation) return;
      this.pages.set(page, result.items);
      this.total = result.total;
      this.loaded = true;
      this.version += 1;
    } catch (error) {
      if (generation === this.generation) this.fail(error);
    } finally {
      if (generation === this.generation) this.pending.delete(page);
    }
  }

  /** Loads the pages that hold results `first` to `last` (the rows on screen). */
  async ensure(first: number, last: number) {
    const from = Math.max(0, Math.floor(first / PAGE_SIZE));
    const to = Math.max(from, Math.floor(Math.max(first, last) / PAGE_SIZE));
    const loads = [];
    for (let page = from; page <= to; page++) loads.push(this.fetchPage(page));
    await Promise.all(loads);
  }

  /** Runs the search again from the first page (after the filters changed, or the images did). */
  async refresh() {
    this.generation += 1;
    this.pages = new Map();
    this.pending = new Set();
    this.notice = null;
    await this.fetchPage(0);
  }

  /** Everything the gallery view shows on opening: results, boards, filter values. */
  async load() {
    await Promise.all([this.refresh(), this.loadBoards(), this.loadOptions()]);
  }

  async loadOptions() {
    try {
      this.options = await this.api.galleryFilters();
    } catch (error) {
      this.fail(error);
    }
  }

  async setFilters(change: Partial<GalleryFilterValues>) {
    this.filters = { ...this.filters, ...change };
    await this.refresh();
  }

  async open(id: number) {
    try {
      this.selected = await this.api.galleryImage(id);
    } catch (error) {
      this.fail(error);
    }
  }

  close() {
    this.selected = null;
  }

  private patchLoaded(id: number, change: Partial<GalleryImage>) {
    for (const items of this.pages.values()) {
      const index = items.findIndex((i) => i.id === id);
      if (index >= 0) items[index] = { ...items[index], ...change };
    }
    this.version += 1;
  }

  async setFavourite(id: number, favourite: boolean) {
    try {
      await this.api.gallerySetFavourite(id, favourite);
      this.patchLoaded(id, { favourite });
      if (this.selected?.summary.id === id) {
        this.selected = { ...this.selected, summary: { ...this.selected.summary, favourite } };
      }
      if (this.filters.favouritesOnly) await this.refresh();
    } catch (error) {
      this.fail(error);
    }
  }

  /** Moves images to the OS trash and offers "Undo" for a while. */
  async remove(ids: number[]) {
    try {
      await this.api.galleryDelete(ids);
    } catch (error) {
      this.fail(error);
      return;
    }
    if (this.selected && ids.includes(this.selected.summary.id)) this.selected = null;
    this.offerUndo(ids);
    await this.refresh();
  }

  private offerUndo(ids: number[]) {
    if (this.undoTimer) clearTimeout(this.undoTimer);
    this.undo = { ids, label: ids.length === 1 ? "Image moved to the trash." : `${ids.length} images moved to the trash.` };
    this.undoTimer = setTimeout(() => (this.undo = null), UNDO_MS);
  }

  async undoDelete() {
    const pending = this.undo;
    if (!pending) return;
    if (this.undoTimer) clearTimeout(this.undoTimer);
    this.undo = null;
    try {
      await this.api.galleryUndoDelete(pending.ids);
      this.notice = pending.ids.length === 1 ? "Image restored." : `${pending.ids.length} images restored.`;
    } catch (error) {
      this.fail(error);
    }
    const notice = this.notice;
    await this.refresh();
    this.notice = notice;
  }

  async loadBoards() {
    try {
      this.boards = await this.api.galleryBoards();
    } catch (error) {
      this.fail(error);
    }
  }

  async createBoard(name: string): Promise<boolean> {
    try {
      await this.api.galleryCreateBoard(name);
      await this.loadBoards();
      return true;
    } catch (error) {
      this.fail(error);
      return false;
    }
  }

  async renameBoard(id: number, name: string) {
    try {
      await this.api.galleryRenameBoard(id, name);
      await this.loadBoards();
    } catch (error) {
      this.fail(error);
    }
  }

  async deleteBoard(id: number) {
    try {
      await this.api.galleryDeleteBoard(id);
      if (this.filters.board === id) this.filters = { ...this.filters, board: null };
      await Promise.all([this.loadBoards(), this.refresh()]);
    } catch (error) {
      this.fail(error);
    }
  }

  /** Puts the open image on a board or takes it off. */
  async setOnBoard(board: number, on: boolean) {
    const image = this.selected;
    if (!image) return;
    try {
      await this.api.galleryBoardImages(board, [image.summary.id], on);
      const boards = on ? [...image.boards, board] : image.boards.filter((b) => b !== board);
      this.selected = { ...image, boards };
      await this.loadBoards();
      if (this.filters.board === board) await this.refresh();
    } catch (error) {
      this.fail(error);
    }
  }

  async loadHistory() {
    try {
      this.history = await this.api.galleryHistory(0, 200);
    } catch (error) {
      this.fail(error);
    }
  }

  /** Re-reads the gallery folder (images copied in appear, removed ones disappear), showing progress. */
  async rescan() {
    this.scan = { done: 0, total: 0 };
    try {
      const report = await this.api.galleryRescan((progress) => (this.scan = progress));
      this.notice = `Rescan: ${report.added} added, ${report.updated} updated, ${report.removed} removed` +
        (report.skipped.length ? `, ${report.skipped.length} unreadable file(s) skipped.` : ".");
    } catch (error) {
      this.fail(error);
    } finally {
      this.scan = null;
    }
    const notice = this.notice;
    await Promise.all([this.refresh(), this.loadOptions()]);
    this.notice = notice;
  }

  async cancelScan() {
    try {
      await this.api.galleryCancelScan();
    } catch (error) {
      this.fail(error);
    }
  }

  async reveal(fileName: string) {
    try {
      await this.api.galleryReveal(fileName);
    } catch (error) {
      this.fail(error);
    }
  }

  async saveAs(path: string) {
    try {
      const saved = await this.api.saveImageAs(path);
      if (saved) this.notice = `Saved to ${saved}`;
    } catch (error) {
      this.fail(error);
    }
  }

  async copyImage(path: string) {
    try {
      await this.api.copyImage(path);
      this.notice = "Image copied to the clipboard.";
    } catch (error) {
      this.fail(error);
    }
  }

  /** Shows "PNG Info" for pictures dropped on the window that no view shown takes (the canvas takes them). */
  async watchDrops(drops: WindowDrops) {
    try {
      await drops.watch((info) => (this.dropped = info));
    } catch (error) {
      this.fail(error);
    }
  }

  async importDropped() {
    const dropped = this.dropped;
    if (!dropped) return;
    try {
      await this.api.galleryImportDropped([dropped.path]);
      this.dropped = null;
      this.notice = `${dropped.fileName} imported into the gallery.`;
      await Promise.all([this.refresh(), this.loadOptions()]);
    } catch (error) {
      this.fail(error);
    }
  }
}

/** Copies text to the clipboard; false when the window may not. */
export async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}
