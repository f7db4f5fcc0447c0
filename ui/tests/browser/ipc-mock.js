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
  // Control previews (control-preview.test.mjs): the channel their progress goes to, and each unit's running one.
  let previewProgress = null;
  const runningPreviews = new Map();

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
      // Numbered by job, as the app numbers its files, so two results never share a path.
      emit({ kind: "image", path: `/out/${String(jobId - 1).padStart(5, "0")}-${seed}.png`, seed, index: 0, width: params.width, height: params.height,
        parameters: `${params.prompt}\nSteps: ${steps}, Seed: ${seed}` });
      queue = queue.filter((j) => j.id !== jobId);
      emit({ kind: "finished", images: 1, elapsedMs: steps * 40 });
    };
    setTimeout(tick, 40);
  }

  const commands = {
    app_info: () => ({ version: "0.1.0", modelsFolder: "/data/models", outputFolder: "/out", configFile: "/config/settings.json",
      settingsNotice: null, executionProvider: "CPU", runtimeError: null, apiServerAddress: null }),
    list_models: () => [model],
    list_samplers: () => [
      { id: "euler_a", name: "Euler a", schedules: ["automatic"] },
      { id: "euler", name: "Euler", schedules: ["automatic", "karras"] },
    ],
    get_settings: () => ({ outputFolder: null, defaultModel: null, device: "auto", precision: "auto", gpuMemory: "auto", theme: "dark", modelFolders: [], apiServer: { enabled: false, port: 7860 } }),
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
    // The file's bytes, as the app reads them from the output folder (the test serves the asset URL).
    read_output_image: async (args) => (await fetch(window.__TAURI_INTERNALS__.convertFileSrc(args.path))).arrayBuffer(),
    // A dropped picture's PNG bytes, likewise served by the test.
    read_dropped_picture: async (args) => (await fetch(window.__TAURI_INTERNALS__.convertFileSrc(args.path))).arrayBuffer(),
    // The save dialog's answer: the test reads the mask from the recorded call.
    save_mask_as: () => "/home/user/mask.png",
    // The control panel (control.test.mjs): two ControlNets and an adapter; the "preprocessed" picture is the unit's
    // own picture (the Rust side's preprocessors are tested there), its module the unit's preprocessor. The
    // annotators named in window.__PIGMENT_ANNOTATORS__ (e.g. ["depth"]) are installed, the others not.
    list_control_models: () => ({
      models: [
        { name: "tiny-canny", kind: "controlnet", path: "/data/models/tiny-canny", family: "SD 1.x", contextWidth: 768 },
        { name: "tiny-scribble", kind: "controlnet", path: "/data/models/tiny-scribble", family: "SD 1.x", contextWidth: 768 },
        { name: "tiny-adapter", kind: "adapter", path: "/data/models/tiny-adapter", family: "SD 1.x/2.x", contextWidth: null },
      ],
      annotators: ["depth", "openpose"].map((name) => ({
        name,
        folder: (window.__PIGMENT_ANNOTATORS__ ?? []).includes(name) ? `/data/models/annotators/${name}-tiny` : null,
        lookedIn: "/data/models/annotators",
      })),
    }),
    // An annotator preprocessor (depth, openpose) takes window.__PIGMENT_PREVIEW_STEPS__ steps of 100 ms (none unless
    // set), reporting each to the watched channel; as on the Rust side, a newer preview of the same unit (`unit.id`)
    // or `cancel_control_preview` rejects the running one with the cancelled error.
    preprocess_control: ({ unit, width, height }) => {
      if (unit.preprocessor === "canny" && unit.cannyHigh > 255) {
        throw { kind: "engine", message: `invalid canny high: ${unit.cannyHigh} (must be between 0 and 255)`, field: "canny_high" };
      }
      const answer = { image: `data:image/png;base64,${unit.image}`, width, height, module: unit.preprocessor, params: [] };
      const steps = window.__PIGMENT_PREVIEW_STEPS__ ?? 0;
      if (!["depth", "openpose"].includes(unit.preprocessor) || !steps) return answer;
      runningPreviews.get(unit.id)?.cancel();
      return new Promise((resolve, reject) => {
        let step = 0;
        let timer;
        const run = {
          cancel: () => {
            clearTimeout(timer);
            runningPreviews.delete(unit.id);
            reject({ kind: "cancelled", message: "generation cancelled", field: null });
          },
        };
        runningPreviews.set(unit.id, run);
        const tick = () => {
          previewProgress?.({ unitId: unit.id, step, steps, elapsedMs: step * 100 });
          if (step === steps) {
            runningPreviews.delete(unit.id);
            resolve(answer);
            return;
          }
          step += 1;
          timer = setTimeout(tick, 100);
        };
        tick();
      });
    },
    watch_control_previews: ({ onProgress }) => {
      let index = 0;
      previewProgress = (message) => callbacks.get(onProgress.id)?.({ message, index: index++ });
      return null;
    },
    cancel_control_preview: ({ unitId }) => {
      const run = runningPreviews.get(unitId);
      run?.cancel();
      return Boolean(run);
    },
    cancel_job: (args) => {
      const job = jobs.get(args.id);
      if (!job) throw { kind: "unknown_job", message: `no job ${args.id} in the queue`, field: null };
      job.cancelled = true;
      return null;
    },
  };

  // The gallery (gallery.test.mjs, gallery-bench.mjs): window.__PIGMENT_GALLERY_SIZE__ images with varied prompts,
  // searched, filtered, sorted and paged here as the Rust side does.
  Object.assign(commands, (() => {
    const subjects = ["cat", "lighthouse", "forest", "castle", "robot", "fox", "ocean", "mountain"];
    const samplerNames = ["Euler a", "Euler Karras"];
    const size = window.__PIGMENT_GALLERY_SIZE__ ?? 0;
    let images = Array.from({ length: size }, (_, i) => {
      const name = `${String(i).padStart(5, "0")}-${i}.png`;
      return { id: i + 1, fileName: name, path: `/out/${name}`, thumbnail: `/thumbs/${i}.png`, width: 512,
        height: i % 3 ? 512 : 768, prompt: `a ${subjects[i % subjects.length]} number ${i}`, model: "tiny-sd",
        sampler: samplerNames[i % 2], seed: i, favourite: false, createdMs: 1700000000000 + i * 60000 };
    });
    const trashed = new Map();
    let boards = [];
    const onBoard = new Map();
    let nextBoard = 1;
    const send = (channel) => {
      let index = 0;
      return (message) => callbacks.get(channel.id)?.({ message, index: index++ });
    };
    const find = (id) => {
      const image = images.find((i) => i.id === id);
      if (!image) throw { kind: "invalid_input", message: `invalid image: no image ${id} in the gallery`, field: "image" };
      return image;
    };
    const detail = (image) => {
      const karras = image.sampler.endsWith("Karras");
      const params = [["Steps", "20"], ["Sampler", image.sampler], ["CFG scale", "7"], ["Seed", String(image.seed)],
        ["Size", `${image.width}x${image.height}`], ["Model", image.model]];
      const metadata = { source: "a1111", prompt: image.prompt, negativePrompt: "blurry", model: image.model,
        sampler: image.sampler, steps: 20, cfgScale: 7, seed: image.seed, width: image.width, height: image.height, params,
        infotext: `${image.prompt}\nNegative prompt: blurry\n${params.map(([k, v]) => `${k}: ${v}`).join(", ")}` };
      const reuse = { prompt: image.prompt, negativePrompt: "blurry", sampler: karras ? "euler" : "euler_a",
        schedule: karras ? "karras" : "automatic", steps: 20, cfgScale: 7, seed: image.seed, width: image.width, height: image.height };
      const memberOf = boards.filter((b) => onBoard.get(b.id)?.has(image.id)).map((b) => b.id);
      return { summary: image, metadata, reuse, boards: memberOf };
    };
    return {
      gallery_status: () => ({ folder: "/out", thumbnailsFolder: "/thumbs", recovery: null }),
      gallery_search: ({ query }) => {
        const words = query.text.toLowerCase().split(/\s+/).filter(Boolean);
        let found = images.filter((i) =>
          words.every((w) => `${i.prompt} ${i.model} ${i.sampler}`.toLowerCase().split(/[^a-z0-9]+/).some((t) => t.startsWith(w))) &&
          (!query.model || i.model === query.model) && (!query.sampler || i.sampler === query.sampler) &&
          (query.width == null || i.width === query.width) && (query.height == null || i.height === query.height) &&
          (!query.favouritesOnly || i.favourite) && (query.board == null || onBoard.get(query.board)?.has(i.id)));
        const order = { newest: (a, b) => b.createdMs - a.createdMs, oldest: (a, b) => a.createdMs - b.createdMs,
          largest: (a, b) => b.width * b.height - a.width * a.height || b.id - a.id,
          prompt: (a, b) => a.prompt.localeCompare(b.prompt) };
        found = found.sort(order[query.sort]);
        return { total: found.length, offset: query.offset, items: found.slice(query.offset, query.offset + query.limit) };
      },
      gallery_image: ({ id }) => detail(find(id)),
      gallery_filters: () => ({ models: ["tiny-sd"], samplers: samplerNames, sizes: [[512, 512], [512, 768]] }),
      gallery_set_favourite: ({ id, favourite }) => {
        find(id).favourite = favourite;
        return null;
      },
      gallery_boards: () => boards.map((b) => ({ ...b, images: onBoard.get(b.id)?.size ?? 0 })),
      gallery_create_board: ({ name }) => {
        if (!name.trim()) throw { kind: "invalid_input", message: `invalid board name: "${name}" (it must have 1 to 100 characters)`, field: "board name" };
        const board = { id: nextBoard++, name: name.trim(), images: 0 };
        boards.push(board);
        onBoard.set(board.id, new Set());
        return board;
      },
      gallery_rename_board: ({ id, name }) => {
        boards.find((b) => b.id === id).name = name;
        return null;
      },
      gallery_delete_board: ({ id }) => {
        boards = boards.filter((b) => b.id !== id);
        return null;
      },
      gallery_board_images: ({ board, images: ids, add }) => {
        for (const id of ids) add ? onBoard.get(board).add(id) : onBoard.get(board).delete(id);
        return null;
      },
      gallery_delete: ({ ids }) => {
        for (const id of ids) {
          trashed.set(id, find(id));
          images = images.filter((i) => i.id !== id);
        }
        return null;
      },
      gallery_undo_delete: ({ ids }) => {
        for (const id of ids) {
          const image = trashed.get(id);
          if (!image) throw { kind: "invalid_input", message: `invalid image: image ${id} cannot be restored: it is not in the trash`, field: "image" };
          trashed.delete(id);
          images.push(image);
        }
        return null;
      },
      gallery_history: ({ offset, limit }) => [...images, ...trashed.values()]
        .sort((a, b) => b.createdMs - a.createdMs)
        .slice(offset, offset + limit)
        .map((image) => {
          const { metadata, reuse } = detail(image);
          return { id: image.id, createdMs: image.createdMs, fileName: image.fileName,
            imageId: trashed.has(image.id) ? null : image.id, metadata, reuse };
        }),
      gallery_rescan: ({ onProgress }) => {
        const emit = send(onProgress);
        emit({ done: 0, total: 2 });
        emit({ done: 2, total: 2 });
        return { added: 2, updated: 0, removed: 0, skipped: [] };
      },
      gallery_cancel_scan: () => null,
      gallery_reveal: () => null,
      watch_dropped_files: ({ onDrop }) => {
        window.__PIGMENT_DROP__ = send(onDrop);
        return null;
      },
      gallery_import_dropped: ({ paths }) => paths.map((_, i) => 100000 + i),
    };
  })());

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
