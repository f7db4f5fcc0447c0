import { render, screen, waitFor, within } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import ControlUnitCard from "../../src/components/control/ControlUnitCard.svelte";
import { ControlState } from "../../src/lib/state/control.svelte";
import type { ControlPreview, ControlPreviewProgress, ControlUnitParams } from "../../src/lib/types";
import { fakeApi } from "./fake-api";

const tinyPng = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
const cancelled = { kind: "cancelled", message: "generation cancelled", field: null };

const depthPreview = (width: number, height: number): ControlPreview => ({
  image: tinyPng, width, height, module: "depth_anything", params: [],
});

/**
 * The Rust side of previews, played by the test: each `preprocess_control` call waits until the test answers it;
 * a cancel (`cancel_control_preview`, as the Rust side does for a newer preview too) rejects the unit's running one
 * with the cancelled error.
 */
function previewSide() {
  const running: { unit: ControlUnitParams; resolve: (p: ControlPreview) => void; reject: (e: unknown) => void }[] = [];
  let report: (progress: ControlPreviewProgress) => void = () => {
    throw new Error("no channel is watched");
  };
  const fake = fakeApi({
    listControlModels: vi.fn(async () => ({
      models: [{ name: "tiny-canny", kind: "controlnet" as const, path: "/m/tiny-canny", family: "SD 1.x", contextWidth: 768 }],
      annotators: [{ name: "depth" as const, folder: "/m/annotators/depth-tiny", lookedIn: "/m/annotators" }],
    })),
    watchControlPreviews: vi.fn(async (onProgress: (progress: ControlPreviewProgress) => void) => {
      report = onProgress;
    }),
    preprocessControl: vi.fn(
      (unit: ControlUnitParams) => new Promise<ControlPreview>((resolve, reject) => running.push({ unit, resolve, reject })),
    ),
    cancelControlPreview: vi.fn(async (unitId: number) => {
      const found = running.filter((r) => r.unit.id === unitId);
      found.forEach((r) => r.reject(cancelled));
      return found.length > 0;
    }),
  });
  return { fake, running, report: (progress: ControlPreviewProgress) => report(progress) };
}

function depthUnit(control: ControlState) {
  const unit = control.addUnit();
  control.usePng(unit, tinyPng, "scene");
  unit.preprocessor = "depth";
  return unit;
}

describe("a control unit's preview", () => {
  it("follows the progress its unit is sent and ends with the picture", async () => {
    const side = previewSide();
    const control = new ControlState(side.fake.api);
    const unit = depthUnit(control);
    const other = depthUnit(control);
    const done = control.refreshPreview(unit, 64, 64);
    await vi.waitFor(() => expect(side.running).toHaveLength(1));
    // The unit's number goes with its picture, so the Rust side can cancel its older preview.
    expect(side.running[0].unit).toMatchObject({ id: unit.id, preprocessor: "depth" });
    expect([unit.previewing, unit.previewProgress]).toEqual([true, null]);

    side.report({ unitId: unit.id, step: 0, steps: 1, elapsedMs: 3 });
    expect(unit.previewProgress).toBe(0);
    side.report({ unitId: other.id, step: 1, steps: 1, elapsedMs: 3 });
    expect([unit.previewProgress, other.previewProgress]).toEqual([0, null]);
    side.report({ unitId: unit.id, step: 1, steps: 2, elapsedMs: 9 });
    expect(unit.previewProgress).toBe(0.5);

    side.running[0].resolve(depthPreview(64, 64));
    await done;
    expect([unit.previewing, unit.previewProgress, unit.previewError]).toEqual([false, null, null]);
    expect(unit.preview?.module).toBe("depth_anything");
    // The channel is set up once, not per preview.
    const again = control.refreshPreview(unit, 64, 64);
    await vi.waitFor(() => expect(side.running).toHaveLength(2));
    side.running[1].resolve(depthPreview(64, 64));
    await again;
    expect(side.fake.api.watchControlPreviews).toHaveBeenCalledTimes(1);
  });

  it("cancelled, stops previewing without an error and keeps the picture shown", async () => {
    const side = previewSide();
    const control = new ControlState(side.fake.api);
    const unit = depthUnit(control);
    unit.preview = depthPreview(32, 32);
    const done = control.refreshPreview(unit, 64, 64);
    await vi.waitFor(() => expect(side.running).toHaveLength(1));
    side.report({ unitId: unit.id, step: 0, steps: 1, elapsedMs: 3 });

    await control.cancelPreview(unit);
    await done;
    expect(side.fake.api.cancelControlPreview).toHaveBeenCalledWith(unit.id);
    expect([unit.previewing, unit.previewProgress, unit.previewError]).toEqual([false, null, null]);
    expect(unit.preview).toEqual(depthPreview(32, 32));

    // Any other error is still shown.
    const failing = control.refreshPreview(unit, 64, 64);
    await vi.waitFor(() => expect(side.running).toHaveLength(2));
    side.running[1].reject({ kind: "invalid_input", message: "invalid preprocessor: the annotator failed", field: "preprocessor" });
    await failing;
    expect([unit.previewing, unit.previewError, unit.preview]).toEqual([false, "invalid preprocessor: the annotator failed", null]);
  });

  it("keeps only the latest answer: the older preview's cancel leaves the newer running", async () => {
    const side = previewSide();
    const control = new ControlState(side.fake.api);
    const unit = depthUnit(control);
    const first = control.refreshPreview(unit, 64, 64);
    await vi.waitFor(() => expect(side.running).toHaveLength(1));
    const second = control.refreshPreview(unit, 96, 64);
    await vi.waitFor(() => expect(side.running).toHaveLength(2));
    // The Rust side cancels the older one when the newer starts.
    side.running[0].reject(cancelled);
    await first;
    expect([unit.previewing, unit.previewError]).toEqual([true, null]);
    side.report({ unitId: unit.id, step: 0, steps: 1, elapsedMs: 1 });
    expect(unit.previewProgress).toBe(0);
    // A late answer of the older one would be dropped too.
    side.running[0].resolve(depthPreview(64, 64));
    side.running[1].resolve(depthPreview(96, 64));
    await second;
    expect([unit.previewing, unit.preview?.width]).toEqual([false, 96]);
  });

  it("shows the progress and a Cancel button in its card", async () => {
    const side = previewSide();
    const control = new ControlState(side.fake.api);
    await control.loadModels();
    const unit = depthUnit(control);
    render(ControlUnitCard, { props: { control, unit, index: 0, width: 64, height: 64 } });
    const card = screen.getByRole("group", { name: "Control unit 1" });
    // The card asks for the preview a moment after the picture changed.
    await waitFor(() => expect(side.running).toHaveLength(1));
    expect(within(card).getByText("Preprocessing…")).toBeTruthy();
    side.report({ unitId: unit.id, step: 1, steps: 4, elapsedMs: 10 });
    expect(await within(card).findByText("Preprocessing… 25 %")).toBeTruthy();
    expect(within(card).getByRole("progressbar", { name: "Control unit 1 preview" }).getAttribute("aria-valuenow")).toBe("25");

    await userEvent.setup().click(within(card).getByRole("button", { name: "Cancel" }));
    expect(side.fake.api.cancelControlPreview).toHaveBeenCalledWith(unit.id);
    await waitFor(() => expect(within(card).queryByRole("button", { name: "Cancel" })).toBeNull());
    expect(within(card).queryByRole("progressbar")).toBeNull();
    expect(within(card).queryByRole("alert")).toBeNull();
  });
});
