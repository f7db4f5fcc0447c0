// Pictures and masks in and out of the canvas: decoding what the user brings (a file, a pasted or dropped blob, a
// result's URL) and encoding PNGs for the Rust side (base64, as the job params carry them) or for export.

import { MaskBuffer } from "./mask";

export interface LoadedPicture {
  bitmap: ImageBitmap | HTMLImageElement;
  width: number;
  height: number;
}

/** Decodes a blob (file, clipboard, drop) or fetches and decodes a URL. */
export async function loadPicture(source: Blob | string): Promise<LoadedPicture> {
  if (typeof source !== "string") {
    const bitmap = await createImageBitmap(source);
    return { bitmap, width: bitmap.width, height: bitmap.height };
  }
  const image = new Image();
  // Readable back from a canvas only when the server allows the window's origin.
  image.crossOrigin = "anonymous";
  image.src = source;
  await image.decode();
  return { bitmap: image, width: image.naturalWidth, height: image.naturalHeight };
}

function canvasOf(width: number, height: number): HTMLCanvasElement {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  return canvas;
}

function context2d(canvas: HTMLCanvasElement): CanvasRenderingContext2D {
  const context = canvas.getContext("2d", { willReadFrequently: true });
  if (!context) throw new Error("this window cannot draw 2D canvases");
  return context;
}

/** The picture as an opaque PNG `data:` URL (what the job params carry). */
export function pictureToPngDataUrl(picture: LoadedPicture): string {
  const canvas = canvasOf(picture.width, picture.height);
  context2d(canvas).drawImage(picture.bitmap, 0, 0);
  return canvas.toDataURL("image/png");
}

/** The mask's pixels as opaque grey RGBA (white repaints). */
export function maskToRgba(mask: MaskBuffer): ImageData {
  const pixels = new ImageData(mask.width, mask.height);
  const data = pixels.data;
  for (let i = 0; i < mask.data.length; i++) {
    const v = mask.data[i];
    data[i * 4] = data[i * 4 + 1] = data[i * 4 + 2] = v;
    data[i * 4 + 3] = 255;
  }
  return pixels;
}

export function maskToPngDataUrl(mask: MaskBuffer): string {
  const canvas = canvasOf(mask.width, mask.height);
  context2d(canvas).putImageData(maskToRgba(mask), 0, 0);
  return canvas.toDataURL("image/png");
}

/**
 * Luminance of an RGBA buffer (ITU-R 601-2, as PIL's `convert("L")` and the engine's mask loader), where
 * transparent pixels count as black (keep).
 */
export function rgbaToMask(rgba: Uint8ClampedArray): Uint8Array {
  const values = new Uint8Array(rgba.length / 4);
  for (let i = 0; i < values.length; i++) {
    const [r, g, b, a] = [rgba[i * 4], rgba[i * 4 + 1], rgba[i * 4 + 2], rgba[i * 4 + 3]];
    const luma = (19595 * r + 38470 * g + 7471 * b + 0x8000) >> 16;
    values[i] = Math.round((luma * a) / 255);
  }
  return values;
}

/** An imported mask picture as values at `width` x `height` (scaled to the picture when its size differs). */
export function pictureToMaskValues(picture: LoadedPicture, width: number, height: number): Uint8Array {
  const canvas = canvasOf(width, height);
  const context = context2d(canvas);
  context.drawImage(picture.bitmap, 0, 0, width, height);
  return rgbaToMask(context.getImageData(0, 0, width, height).data);
}

/** The base64 part of a `data:` URL. */
export function dataUrlBase64(url: string): string {
  const comma = url.indexOf(",");
  return comma < 0 ? url : url.slice(comma + 1);
}
