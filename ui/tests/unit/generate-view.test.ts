import { fireEvent, render, screen, waitFor } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import App from "../../src/App.svelte";
import { createAppStates } from "../../src/lib/state/app";
import { fakeApi } from "./fake-api";

const tinyPng = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";

async function renderApp(overrides = {}) {
  const fake = fakeApi(overrides);
  render(App, { props: createAppStates(fake.api) });
  // The model list has loaded and the demo model is chosen.
  await waitFor(() => expect((screen.getByLabelText("Model") as HTMLSelectElement).value).toBe("/app/models/tiny-sd"));
  return fake;
}

describe("the generate view", () => {
  it("sends the form with Ctrl+Enter and shows progress, the preview and the image", async () => {
    const fake = await renderApp();
    const user = userEvent.setup();
    await user.type(screen.getByLabelText("Prompt"), "a red fox");
    await user.selectOptions(screen.getByLabelText("Sampler"), "dpmpp_2m");
    await user.selectOptions(screen.getByLabelText("Schedule"), "karras");
    await user.selectOptions(screen.getByLabelText("Size"), "768 × 512");
    await user.keyboard("{Control>}{Enter}{/Control}");

    await waitFor(() => expect(fake.jobs).toHaveLength(1));
    expect(fake.jobs[0].params).toMatchObject({
      prompt: "a red fox",
      modelId: "/app/models/tiny-sd",
      sampler: "dpmpp_2m",
      schedule: "karras",
      width: 768,
      height: 512,
      seed: null,
    });

    const emit = fake.jobs[0].emit;
    emit({ kind: "started", jobId: 1 });
    emit({ kind: "progress", stage: "denoising", batch: 0, batches: 1, step: 5, steps: 20, elapsedMs: 1000, etaMs: 3000, preview: tinyPng });
    await waitFor(() => expect(screen.getByText("Step 5/20")).toBeTruthy());
    expect(screen.getByRole("progressbar").getAttribute("aria-valuenow")).toBe("25");
    expect((screen.getByAltText("Live preview") as HTMLImageElement).src).toBe(tinyPng);
    expect(screen.getByText(/remaining 3\.0 s/)).toBeTruthy();

    emit({ kind: "image", path: "/out/00000-1234.png", seed: 1234, index: 0, width: 768, height: 512, parameters: "a red fox" });
    fake.finish(1);
    emit({ kind: "finished", images: 1, elapsedMs: 4000 });
    const image = (await screen.findByAltText("Seed 1234")) as HTMLImageElement;
    expect(image.src).toBe("asset://localhost/%2Fout%2F00000-1234.png");
    await waitFor(() => expect(screen.queryByRole("progressbar")).toBeNull());

    // "Use as seed" fixes the seed for the next job.
    await user.click(screen.getByRole("button", { name: "Use as seed" }));
    expect((screen.getByLabelText("Seed") as HTMLInputElement).value).toBe("1234");
    expect((screen.getByLabelText("Seed mode") as HTMLSelectElement).value).toBe("fixed");
  });

  it("shows an engine error next to the field it names", async () => {
    const fake = await renderApp({
      submitJob: async () => {
        throw { kind: "engine", message: "invalid width: 100 (must be a positive multiple of 8)", field: "width" };
      },
    });
    await fireEvent.input(screen.getByLabelText("Width"), { target: { value: "100" } });
    await fireEvent.click(screen.getByRole("button", { name: "Generate" }));
    const error = await screen.findByText("invalid width: 100 (must be a positive multiple of 8)");
    expect(error.id).toBe("width-error");
    expect(screen.getByLabelText("Width").getAttribute("aria-invalid")).toBe("true");
    expect(fake.jobs).toHaveLength(0);
  });

  it("shows a failure during the run under the generate button when it names no field", async () => {
    const fake = await renderApp();
    await fireEvent.click(screen.getByRole("button", { name: "Generate" }));
    await waitFor(() => expect(fake.jobs).toHaveLength(1));
    fake.jobs[0].emit({ kind: "started", jobId: 1 });
    fake.jobs[0].emit({ kind: "failed", error: { kind: "engine", message: "unet failed in ONNX Runtime: out of memory", field: null } });
    const error = await screen.findByText("unet failed in ONNX Runtime: out of memory");
    expect(error.id).toBe("general-error");
  });

  it("cancels the running job with Esc", async () => {
    const fake = await renderApp();
    await fireEvent.click(screen.getByRole("button", { name: "Generate" }));
    await waitFor(() => expect(screen.getByText("Running")).toBeTruthy());
    await fireEvent.keyDown(window, { key: "Escape" });
    await waitFor(() => expect(fake.api.cancelJob).toHaveBeenCalledWith(1));
    fake.jobs[0].emit({ kind: "cancelled", images: 0 });
    await waitFor(() => expect(screen.getByText("Job cancelled.")).toBeTruthy());
  });

  it("shows the notice when the settings file was unreadable", async () => {
    const fake = fakeApi();
    const info = await fake.api.appInfo();
    render(App, {
      props: createAppStates({ ...fake.api, appInfo: async () => ({ ...info, settingsNotice: "Settings could not be read; using defaults." }) }),
    });
    expect((await screen.findByRole("alert")).textContent).toContain("using defaults");
  });
});
