"""The real client: PyPI's `webuiapi` (what many A1111 plugins and scripts use) drives a running `pigment serve` on
the demo model. scripts/test-api.sh starts the server and runs this with PIGMENT_API_PORT set.

Run alone: pigment serve --port 7861 --models-folder tests/fixtures/models --upscalers tests/fixtures/models
           PIGMENT_API_PORT=7861 .venv-api/bin/python tests/api/test_webuiapi.py
"""

import os
import threading
import time
import unittest
from pathlib import Path

import webuiapi
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "tests" / "fixtures" / "images"
PORT = int(os.environ.get("PIGMENT_API_PORT", "7860"))


def client():
    return webuiapi.WebUIApi(host="127.0.0.1", port=PORT, sampler="Euler a", steps=2)


class WebUiApiAgainstPigment(unittest.TestCase):
    def test_txt2img_and_png_info_round_trip(self):
        api = client()
        result = api.txt2img(prompt="a red cube", negative_prompt="blurry", width=64, height=64, seed=42,
                             batch_size=2, cfg_scale=5)
        self.assertEqual([image.size for image in result.images], [(64, 64), (64, 64)])
        self.assertEqual(result.info["all_seeds"], [42, 43])
        self.assertEqual(result.parameters["steps"], 2)
        parameters = result.image.info["parameters"]
        self.assertIn("Seed: 42", parameters)
        self.assertIn("Negative prompt: blurry", parameters)
        self.assertEqual(result.info["infotexts"][0], parameters)

        # webuiapi re-encodes the PIL image with its text chunks; the server reads them back.
        info = api.png_info(result.image)
        self.assertEqual(info.info, parameters)
        self.assertEqual(info.json["parameters"]["Seed"], "42")
        self.assertEqual(info.json["parameters"]["Prompt"], "a red cube")
        self.assertEqual(info.json["parameters"]["CFG scale"], "5")

    def test_img2img_with_a_mask_keeps_the_unmasked_pixels(self):
        api = client()
        scene = Image.open(IMAGES / "scene_64.png").convert("RGB")
        mask = Image.open(IMAGES / "mask_64.png").convert("L")
        result = api.img2img(images=[scene], mask_image=mask, prompt="a blue sphere", width=64, height=64, seed=3,
                             steps=4, denoising_strength=0.9, inpainting_fill=1, inpaint_full_res=False,
                             mask_blur=2)
        out = result.image.convert("RGB")
        self.assertEqual(out.size, (64, 64))
        self.assertIn("Masked content: original", out.info.get("parameters", result.info["infotexts"][0]))
        # Pixels 8 or more away from any masked pixel are the original's exactly; most masked ones changed.
        masked = {(x, y) for y in range(64) for x in range(64) if mask.getpixel((x, y)) >= 128}
        near = {(x + dx, y + dy) for (x, y) in masked for dx in range(-8, 9) for dy in range(-8, 9)}
        kept = [(x, y) for y in range(64) for x in range(64) if (x, y) not in near]
        self.assertTrue(kept and masked)
        for point in kept:
            self.assertEqual(out.getpixel(point), scene.getpixel(point), point)
        changed = sum(out.getpixel(p) != scene.getpixel(p) for p in masked)
        self.assertGreater(changed * 2, len(masked))

    def test_options_switch_the_model(self):
        api = client()
        names = api.util_get_model_names()
        self.assertIn("tiny-sd", names)
        self.assertIn("tiny-sd-fp16-vae", names)
        self.assertEqual(api.util_get_current_model(), "tiny-sd")
        try:
            api.util_set_model("tiny-sd-fp16-vae")
            self.assertEqual(api.util_get_current_model(), "tiny-sd-fp16-vae")
            result = api.txt2img(prompt="a cat", width=64, height=64, seed=1)
            self.assertEqual(result.info["sd_model_name"], "tiny-sd-fp16-vae")
        finally:
            api.util_set_model("tiny-sd")
        self.assertEqual(api.util_get_current_model(), "tiny-sd")

    def test_samplers_upscalers_and_extras(self):
        api = client()
        samplers = api.util_get_sampler_names()
        for name in ("Euler a", "Euler", "DPM++ 2M", "DDIM"):
            self.assertIn(name, samplers)
        upscalers = [u["name"] for u in api.get_upscalers()]
        self.assertIn("tiny-esrgan-x2", upscalers)
        scene = Image.open(IMAGES / "scene_64.png").convert("RGB")
        result = api.extra_single_image(scene, upscaler_1="tiny-esrgan-x2", upscaling_resize=2)
        self.assertEqual(result.image.size, (128, 128))
        self.assertEqual(api.get_scripts(), {"txt2img": [], "img2img": []})

    def test_progress_polling_and_interrupt_during_a_long_job(self):
        api = client()
        outcome = {}

        def long_job():
            outcome["result"] = client().txt2img(prompt="a long job", width=64, height=64, steps=1000, seed=9)

        worker = threading.Thread(target=long_job)
        worker.start()
        steps = []
        preview = None
        deadline = time.time() + 60
        while len(steps) < 3 and time.time() < deadline:
            progress = api.get_progress()
            step = progress["state"]["sampling_step"]
            if step > 0 and (not steps or step > steps[-1]):
                self.assertEqual(progress["state"]["sampling_steps"], 1000)
                self.assertGreater(progress["progress"], 0)
                self.assertLess(progress["progress"], 1)
                preview = progress["current_image"]
                steps.append(step)
            time.sleep(0.02)
        self.assertEqual(len(steps), 3, "progress shows the steps advancing")
        self.assertIsNotNone(preview)
        api.interrupt()
        worker.join(timeout=60)
        self.assertFalse(worker.is_alive(), "the interrupted request returns")
        self.assertEqual(outcome["result"].images, [])
        self.assertEqual(api.get_progress()["state"]["job_count"], 0)
        # The server goes on serving after an interrupt.
        self.assertEqual(len(api.txt2img(prompt="after", width=64, height=64).images), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
