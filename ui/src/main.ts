import { mount } from "svelte";
import App from "./App.svelte";
import { api } from "./lib/api";
import { createAppStates } from "./lib/state/app";
import "./app.css";

const target = document.getElementById("app");
if (!target) throw new Error("index.html has no #app element");
mount(App, { target, props: createAppStates(api) });
