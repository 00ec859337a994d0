/**
 * A module Web Worker, the sibling of hash-worker.js for videos: it hashes the frames the page
 * takes from a video (video.js seeks a <video> element, which only a page can hold, and
 * transfers each frame here as an ImageBitmap) and computes the MD5 of the file in chunks.
 * The pixels are hashed here, off the page's main thread, and only the hashes go back.
 *
 * A frame is drawn at its own size onto an OffscreenCanvas and hashed with pdq.js's `pdqHash`
 * (no dihedral variants: vPDQ hashes each frame once, as the reference `vpdq` does).
 *
 * Messages in:  {id, type: "frame", bitmap, index}   (the bitmap is transferred and closed here)
 *               {id, type: "md5", file}
 * Messages out: {id, type: "frame", index, hash, quality}
 *               {id, type: "md5", md5}
 *               {id, type: "error", code: "decode_failed" | "hash_failed"}
 */

import { md5File } from "./md5.js";
import { pdqHash } from "./pdq.js";

let canvas = null;
let context = null;

function pixels(bitmap) {
  const { width, height } = bitmap;
  if (!canvas || canvas.width !== width || canvas.height !== height) {
    canvas = new OffscreenCanvas(width, height);
    context = canvas.getContext("2d", { willReadFrequently: true });
    if (!context) throw new RangeError("no 2d context for this size");
  }
  context.drawImage(bitmap, 0, 0);
  return context.getImageData(0, 0, width, height);
}

self.addEventListener("message", async (event) => {
  const { id, type } = event.data;
  if (type === "md5") {
    try {
      self.postMessage({ id, type, md5: await md5File(event.data.file) });
    } catch {
      self.postMessage({ id, type: "error", code: "decode_failed" });
    }
    return;
  }
  const { bitmap, index } = event.data;
  try {
    const { hash, quality } = pdqHash(pixels(bitmap));
    self.postMessage({ id, type, index, hash, quality });
  } catch {
    self.postMessage({ id, type: "error", code: "hash_failed" });
  } finally {
    bitmap.close();
  }
});
