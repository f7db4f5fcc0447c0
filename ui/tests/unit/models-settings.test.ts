import { fireEvent, render, screen, waitFor } from "@testing-library/svelte";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import App from "../../src/App.svelte";
import { createAppStates } from "../../src/lib/state/app";
import type { ModelReport, SettingsUpdate } from "../../src/lib/types";
import { demoModel, fakeApi } from "./fake-api";

const added: ModelReport = {
  entry: { id: "/home/me/sd15", name: "sd15", path: "/home/me/sd15", source: "added", problem: null },
  inpainting: false,
  unetInChannels: 4,
  contextWidth: 768,
  hasVaeEncoder: true,
  sizeBytes: 2_132_000_000,
  executionProvider: "CPU",
  components: ["unet: in sample float32 [batch, 4, h, w] / out out_sample float32 [batch, 4, h, w]"],
};

describe("the models view", () => {
  it("shows what an added folder holds and lists it", async () => {
    const fake = fakeApi();
    let models = [demoModel];
    fake.api.addModelFolder = async () => {
      models = [...models, added.entry];
      return added;
    };
    fake.api.listModels = async () => models;
    render(App, { props: createAppStates(fake.api) });
    await fireEvent.click(await screen.findByRole("tab", { name: "Models" }));
    await fireEvent.click(screen.getByRole("button", { name: "Add model folder…" }));
    const report = await screen.findByText("Added: sd15");
    expect(report.closest("#model-report")?.textContent).toContain("Text embedding width: 768");
    expect(screen.getByText("Size on disk: 2132.0 MB")).toBeTruthy();
    expect(screen.getAllByText("sd15").length).toBeGreaterThan(0);
  });

  it("shows the engine's reason when a folder is not a model", async () => {
    const fake = fakeApi({
      addModelFolder: async () => {
        throw { kind: "engine", message: "model folder /tmp/x has no unet: expected /tmp/x/unet/model.onnx", field: "model" };
      },
    });
    render(App, { props: createAppStates(fake.api) });
    await fireEvent.click(await screen.findByRole("tab", { name: "Models" }));
    await fireEvent.click(screen.getByRole("button", { name: "Add model folder…" }));
    expect((await screen.findByRole("alert")).textContent).toContain("has no unet");
  });
});

describe("the settings view", () => {
  it("saves the form and says when the device needs a restart", async () => {
    const fake = fakeApi({
      saveSettings: async (update) => ({ settings: { ...update, modelFolders: [] }, restartNeeded: update.device !== "auto" }),
    });
    render(App, { props: createAppStates(fake.api) });
    const user = userEvent.setup();
    await user.click(await screen.findByRole("tab", { name: "Settings" }));
    await waitFor(() => expect((screen.getByLabelText("Output folder") as HTMLInputElement).value).toBe("/out"));
    await user.selectOptions(screen.getByLabelText("Device"), "cpu");
    await user.selectOptions(screen.getByLabelText("Theme"), "dark");
    await user.click(screen.getByRole("button", { name: "Save" }));
    expect((await screen.findByText(/next time Pigment starts/)).id).toBe("settings-saved");
    await waitFor(() => expect(document.documentElement.dataset.theme).toBe("dark"));
  });

  it("sends the GPU memory mode with the settings", async () => {
    const saved: SettingsUpdate[] = [];
    const fake = fakeApi({
      saveSettings: async (update) => {
        saved.push(update);
        return { settings: { ...update, modelFolders: [] }, restartNeeded: update.gpuMemory !== "auto" };
      },
    });
    render(App, { props: createAppStates(fake.api) });
    const user = userEvent.setup();
    await user.click(await screen.findByRole("tab", { name: "Settings" }));
    await waitFor(() => expect((screen.getByLabelText("GPU memory") as HTMLSelectElement).value).toBe("auto"));
    await user.selectOptions(screen.getByLabelText("GPU memory"), "medium");
    await user.click(screen.getByRole("button", { name: "Save" }));
    expect(await screen.findByText(/GPU memory change the next time Pigment starts/)).toBeTruthy();
    expect(saved.map((update) => update.gpuMemory)).toEqual(["medium"]);
  });

  it("switches the AUTOMATIC1111 API on with its port and shows where it listens", async () => {
    let listening: string | null = null;
    const saved: SettingsUpdate[] = [];
    const fake = fakeApi({
      saveSettings: async (update) => {
        saved.push(update);
        listening = update.apiServer.enabled ? `127.0.0.1:${update.apiServer.port}` : null;
        return { settings: { ...update, modelFolders: [] }, restartNeeded: false };
      },
    });
    const appInfo = fake.api.appInfo;
    fake.api.appInfo = async () => ({ ...(await appInfo()), apiServerAddress: listening });
    render(App, { props: createAppStates(fake.api) });
    const user = userEvent.setup();
    await user.click(await screen.findByRole("tab", { name: "Settings" }));
    expect((await screen.findByText("Off.")).id).toBe("api-status");
    await user.click(screen.getByRole("checkbox", { name: /Serve the API/ }));
    const port = screen.getByLabelText("Port") as HTMLInputElement;
    await user.clear(port);
    await user.type(port, "7861");
    await user.click(screen.getByRole("button", { name: "Save" }));
    await waitFor(() => expect(saved).toHaveLength(1));
    expect(saved[0].apiServer).toEqual({ enabled: true, port: 7861 });
    expect((await screen.findByText(/Listening on http:\/\/127\.0\.0\.1:7861\/sdapi\/v1/)).id).toBe("api-status");
  });
});
