import { fireEvent, render, screen, waitFor, within } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import App from "../../src/App.svelte";
import { createAppStates } from "../../src/lib/state/app";
import type { ControlModelEntry, ControlUnitParams } from "../../src/lib/types";
import { fakeApi } from "./fake-api";

const tinyPng = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
const edgesPng = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP4z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg==";

const controlModels: ControlModelEntry[] = [
  { name: "tiny-canny", kind: "controlnet", path: "/app/models/tiny-canny", family: "SD 1.x", contextWidth: 768 },
  { name: "tiny-adapter", kind: "adapter", path: "/app/models/tiny-adapter", family: "SD 1.x/2.x", contextWidth: null },
];

async function renderApp(overrides = {}) {
  const fake = fakeApi({ listControlModels: vi.fn(async () => ({ models: controlModels, annotators: [] })), ...overrides });
  const states = createAppStates(fake.api);
  render(App, { props: states });
  await waitFor(() => expect((screen.getByLabelText("Model") as HTMLSelectElement).value).toBe("/app/models/tiny-sd"));
  return { fake, states };
}

describe("the control panel", () => {
  it("shows the preprocessed picture from the Rust side and sends its units with the job", async () => {
    const preprocessControl = vi.fn(async (unit: ControlUnitParams, width: number, height: number) => ({
      image: edgesPng, width, height, module: unit.preprocessor, params: [["Threshold A", String(unit.cannyLow)]] as [string, string][],
    }));
    const { fake, states } = await renderApp({ preprocessControl });
    const user = userEvent.setup();
    await user.click(screen.getByRole("button", { name: "Add unit" }));
    const unit = screen.getByRole("group", { name: "Control unit 1" });
    expect((within(unit).getByLabelText("Control model") as HTMLSelectElement).value).toBe("tiny-canny");
    expect(within(unit).getByRole("option", { name: "tiny-canny — SD 1.x" })).toBeTruthy();

    // A picture (here given as the canvas would give it), then canny: the preview is asked for at the form's size.
    states.control.usePng(states.control.units[0], tinyPng, "canvas picture");
    await user.selectOptions(within(unit).getByLabelText("Preprocessor"), "canny");
    await fireEvent.input(within(unit).getByLabelText("Low threshold"), { target: { value: "50" } });
    await waitFor(() =>
      expect(preprocessControl).toHaveBeenLastCalledWith(
        expect.objectContaining({ preprocessor: "canny", cannyLow: 50, cannyHigh: 200, image: tinyPng.split(",")[1] }),
        512,
        512,
        null,
      ),
    );
    const preview = (await within(unit).findByAltText("Control unit 1: canny")) as HTMLImageElement;
    expect(preview.src).toBe(edgesPng);

    await fireEvent.input(within(unit).getByLabelText("Weight"), { target: { value: "0.8" } });
    await fireEvent.input(within(unit).getByLabelText("End"), { target: { value: "0.6" } });
    await user.click(screen.getByLabelText(/Guess mode/));
    await user.click(screen.getByRole("button", { name: "Generate" }));
    await waitFor(() => expect(fake.jobs).toHaveLength(1));
    expect(fake.jobs[0].params.guessMode).toBe(true);
    expect(fake.jobs[0].params.adapterFactor).toBe(1);
    expect(fake.jobs[0].params.controls).toEqual([
      { enabled: true, kind: "controlnet", model: "tiny-canny", image: tinyPng.split(",")[1], preprocessor: "canny",
        cannyLow: 50, cannyHigh: 200, mask: null, weight: 0.8, start: 0, end: 0.6 },
    ]);

    // An adapter unit offers the adapters and the factor; a removed unit is not sent.
    await user.selectOptions(within(unit).getByLabelText("Kind"), "adapter");
    expect((within(unit).getByLabelText("Control model") as HTMLSelectElement).value).toBe("tiny-adapter");
    expect(within(unit).queryByLabelText("Start")).toBeNull();
    await fireEvent.input(screen.getByLabelText("Adapter conditioning factor"), { target: { value: "0.5" } });
    await user.click(within(unit).getByRole("button", { name: "Remove" }));
    expect(screen.queryByRole("group", { name: "Control unit 1" })).toBeNull();
    await user.click(screen.getByRole("button", { name: "Generate" }));
    await waitFor(() => expect(fake.jobs).toHaveLength(2));
    expect(fake.jobs[1].params.controls).toBeUndefined();
  });

  it("shows the Rust side's errors: a preview's in its unit, a job's in the panel", async () => {
    const { states } = await renderApp({
      preprocessControl: vi.fn(async () => {
        throw { kind: "engine", message: "invalid canny high: 300 (must be between 0 and 255)", field: "canny_high" };
      }),
      submitJob: vi.fn(async () => {
        throw { kind: "engine", message: "invalid control weight: 11 (must be between 0 and 10; control unit 1)", field: "control_weight" };
      }),
    });
    const user = userEvent.setup();
    await user.click(screen.getByRole("button", { name: "Add unit" }));
    states.control.usePng(states.control.units[0], tinyPng, "pasted picture");
    const unit = screen.getByRole("group", { name: "Control unit 1" });
    expect(await within(unit).findByText("invalid canny high: 300 (must be between 0 and 255)")).toBeTruthy();
    await user.click(screen.getByRole("button", { name: "Generate" }));
    const error = await screen.findByText("invalid control weight: 11 (must be between 0 and 10; control unit 1)");
    expect(error.id).toBe("control-error-0");
  });

  it("says where to put control models when the models folder has none", async () => {
    await renderApp({ listControlModels: vi.fn(async () => ({ models: [], annotators: [] })) });
    expect(await screen.findByText(/No ControlNet or T2I-Adapter in the models folder/)).toBeTruthy();
  });
});
