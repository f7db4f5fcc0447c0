// Pictures dropped on the window. In the app, Tauri's native drop handler takes file drops before the page sees
// them (no HTML5 drop event) and reports each over one channel; the view shown decides what a drop means (the
// canvas opens the picture; elsewhere a PNG shows its "PNG Info"), so each drop goes to the latest view that took
// drops, or to the window's default when none does.
import type { Api } from "../api";
import type { DroppedImage } from "../types";

export type DropTaker = (file: DroppedImage) => void;

export class WindowDrops {
  private api: Api;
  private takers: DropTaker[] = [];

  constructor(api: Api) {
    this.api = api;
  }

  /** Starts listening (once per window: the app keeps one channel); `fallback` gets drops no view takes. */
  watch(fallback: DropTaker): Promise<void> {
    return this.api.watchDroppedFiles((file) => (this.takers.at(-1) ?? fallback)(file));
  }

  /** Gives drops to `taker` until the returned function is called (a view's `$effect` cleanup). */
  take(taker: DropTaker): () => void {
    this.takers.push(taker);
    return () => {
      this.takers = this.takers.filter((t) => t !== taker);
    };
  }
}
