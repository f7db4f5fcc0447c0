// A minimal W3C WebDriver client over fetch, for Debian's WebKitWebDriver driving the real app.
import { spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";

/** The key under which WebDriver names an element in JSON (W3C "web element identifier"). */
export const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";
export const Keys = { Null: "\uE000", Control: "\uE009", Enter: "\uE007", Escape: "\uE00C" };

export class Driver {
  constructor(port) {
    this.base = `http://127.0.0.1:${port}`;
    this.session = null;
  }

  async request(method, path, body) {
    const url = this.session ? `${this.base}/session/${this.session}${path}` : `${this.base}${path}`;
    const response = await fetch(url, {
      method,
      headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await response.json();
    if (!response.ok || json.value?.error) {
      throw new Error(`${method} ${path}: ${json.value?.error ?? response.status} ${json.value?.message ?? ""}`);
    }
    return json.value;
  }

  /** Starts the app at `binary` with `env` (WebKitWebDriver launches it). */
  async start(binary) {
    const value = await this.request("POST", "/session", {
      capabilities: { alwaysMatch: { "webkitgtk:browserOptions": { binary, args: [] } } },
    });
    this.session = value.sessionId;
  }

  async quit() {
    if (!this.session) return;
    try {
      await this.request("DELETE", "");
    } finally {
      this.session = null;
    }
  }

  async find(css) {
    const value = await this.request("POST", "/element", { using: "css selector", value: css });
    return value[ELEMENT];
  }

  /** Waits until `css` matches (and `check(element)` holds, when given); returns the element id. */
  async waitFor(css, { timeout = 30000, check } = {}) {
    const until = Date.now() + timeout;
    let last;
    while (Date.now() < until) {
      try {
        const element = await this.find(css);
        if (!check || (await check(element))) return element;
      } catch (error) {
        last = error;
      }
      await sleep(50);
    }
    throw new Error(`timed out waiting for ${css}${last ? `: ${last.message}` : ""}`);
  }

  click(element) {
    return this.request("POST", `/element/${element}/click`, {});
  }

  type(element, text) {
    return this.request("POST", `/element/${element}/value`, { text });
  }

  clear(element) {
    return this.request("POST", `/element/${element}/clear`, {});
  }

  /** Replaces the value of the input `css` with `value`, typed. */
  async fill(css, value) {
    const element = await this.find(css);
    await this.clear(element);
    await this.type(element, String(value));
  }

  text(element) {
    return this.request("GET", `/element/${element}/text`);
  }

  execute(script, args = []) {
    return this.request("POST", "/execute/sync", { script, args });
  }

  screenshot() {
    return this.request("GET", "/screenshot");
  }
}

/**
 * Starts WebKitWebDriver on a free-ish port with `env`, in the folder `cwd` (the browser it launches works there);
 * resolves once it answers.
 */
export async function startWebKitWebDriver(port, env, cwd = undefined) {
  const child = spawn("WebKitWebDriver", [`--port=${port}`], { env, cwd, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const until = Date.now() + 15000;
  while (Date.now() < until) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/status`);
      if (response.ok) return child;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null) break;
    await sleep(100);
  }
  child.kill();
  throw new Error(`WebKitWebDriver did not start: ${output}`);
}
