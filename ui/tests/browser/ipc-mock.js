// Stands in for Tauri's IPC in a plain browser: window.__TAURI_INTERNALS__ as @tauri-apps/api expects it, with
// Pigment's commands answered from a scenario the test picks (window.__PIGMENT_SCENARIO__). Calls are recorded
// in window.__PIGMENT_CALLS__. Runs as a Playwright init script, before the app's own code.
(() => {
  const scenario = window.__PIGMENT_SCENARIO__ ?? "generate";
  const calls = (window.__PIGMENT_CALLS__ = []);
  const callbacks = new Map();
  let nextCallback = 1;
  let queue = [];
  const jobs = new Map();

  const model = { id: "/data/models/tiny-sd", name: "tiny-sd", path: "/data/models/tiny-sd", source: "bundled", problem: null };
  const preview =
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";

  function channel(args) {
    const id = args.onEvent.id;
    let index = 0;
    return (message) => callbacks.get(id)?.({ message, index: index++ });
  }

  function runJob(jobId, params, emit) {
    const steps = scenario === "cancel" ? 1000 : params.steps;
    const job = { cancelled: false };
    jobs.set(jobId, job);
    emit({ kind: "started", jobId });
    let step = 0;
    const tick = () => {
      if (job.cancelled) {
        queue = queue.filter((j) => j.id !== jobId);
        emit({ kind: "cancelled", images: 0 });
        return;
      }
      step += 1;
      emit({ kind: "progress", stage: "denoising", batch: 0, batches: 1, step, steps, elapsedMs: step * 40,
        etaMs: (steps - step) * 40, preview: step % 2 === 0 ? preview : null });
      if (step < steps) {
        setTimeout(tick, 40);
        return;
      }
      const seed = params.seed ?? 1234;
      emit({ kind: "image", path: `/out/00000-${seed}.png`, seed, index: 0, width: params.width, height: params.height,
        parameters: `${params.prompt}\nSteps: ${steps}, Seed: ${seed}` });
      queue = queue.filter((j) => j.id !== jobId);
      emit({ kind: "finished", images: 1, elapsedMs: steps * 40 });
    };
    setTimeout(tick, 40);
  }

  const commands = {
    app_info: () => ({ version: "0.1.0", modelsFolder: "/data/models", outputFolder: "/out", configFile: "/config/settings.json",
      settingsNotice: null, executionProvider: "CPU", runtimeError: null }),
    list_models: () => [model],
    list_samplers: () => [
      { id: "euler_a", name: "Euler a", schedules: ["automatic"] },
      { id: "euler", name: "Euler", schedules: ["automatic", "karras"] },
    ],
    get_settings: () => ({ outputFolder: null, defaultModel: null, device: "auto", precision: "auto", theme: "dark", modelFolders: [] }),
    list_jobs: () => queue,
    submit_job: (args) => {
      const params = args.params;
      if (scenario === "error" && params.width % 8 !== 0) {
        throw { kind: "engine", message: `invalid width: ${params.width} (must be a positive multiple of 8)`, field: "width" };
      }
      const emit = channel(args);
      const jobId = queue.length + jobs.size + 1;
      queue.push({ id: jobId, running: true, label: params.prompt, images: 1 });
      emit({ kind: "queued", jobId, position: 0 });
      runJob(jobId, params, emit);
      return jobId;
    },
    cancel_job: (args) => {
      const job = jobs.get(args.id);
      if (!job) throw { kind: "unknown_job", message: `no job ${args.id} in the queue`, field: null };
      job.cancelled = true;
      return null;
    },
  };

  window.__TAURI_INTERNALS__ = {
    metadata: { currentWindow: { label: "main" }, currentWebview: { windowLabel: "main", label: "main" } },
    plugins: {},
    transformCallback(callback) {
      const id = nextCallback++;
      callbacks.set(id, callback);
      return id;
    },
    unregisterCallback(id) {
      callbacks.delete(id);
    },
    runCallback(id, data) {
      callbacks.get(id)?.(data);
    },
    convertFileSrc(path, protocol = "asset") {
      return `http://${protocol}.localhost/${encodeURIComponent(path)}`;
    },
    async invoke(cmd, args = {}) {
      calls.push({ cmd, args: JSON.parse(JSON.stringify(args)) });
      const command = commands[cmd];
      if (!command) throw { kind: "platform", message: `command ${cmd} not mocked`, field: null };
      return command(args);
    },
  };
})();
