/**
 * Derived views of a photo, in the browser: the re-framed and masked versions of the photo whose
 * PDQ hashes are registered beside its eight dihedral hashes.
 *
 * This is the registered side of registry/derivatives.py, which is the specification: the same
 * working image, the same views in the same order under the same names, the same integer
 * arithmetic, hashed with the project's PDQ port (pdq.js), so that a view computed here has the
 * bits `registry.derivatives.registered_views` gives for the same pixels
 * (tests/browser/test_derive_js.py checks it in a real Chromium). Every pixel value is computed
 * in integers: Python's `//` on non-negative integers is a floor, and every quotient here is of
 * integers far below 2^53, so Math.floor of the double quotient is exact.
 *
 * The views, in order:
 *   - c02..c30: centred crops removing 1-15% of each side (2-30% of the side in all);
 *   - tl, tr, bl, br 02..20: crops keeping one corner;
 *   - t, b 06..24 and l, r 08..16: a band cut at the top, bottom, left or right;
 *   - m1..m5: the whole frame with one region refilled from the pixels around it;
 *   - a1x1, a4x5, ...: centred aspect-ratio crops that remove 3-45% of a side.
 * Views of PDQ quality under MIN_QUALITY are left out.
 *
 * No DOM: it runs in the module Web Worker (hash-worker.js), on the RGBA pixels the worker
 * decoded for the dihedral hashes. The alpha channel is ignored, as PDQ ignores it.
 */

import { pdqHash } from "./pdq.js";

// ---- Constants of registry/derivatives.py: keep each in step with the Python line named. ----

/** Python's range(start, stop, step), for the ladders below. */
function range(start, stop, step) {
  const values = [];
  for (let value = start; value < stop; value += step) values.push(value);
  return values;
}

export const WORKING_SIDE = 1024; // WORKING_SIDE
export const MIN_QUALITY = 50; // MIN_QUALITY (registry.pdq.MIN_QUALITY)
const CENTRED_PERCENTS = range(2, 31, 2); // _views: for percent in range(2, 31, 2)
const CORNER_PERCENTS = range(2, 21, 2); // _views: for percent in range(2, 21, 2)
const TOP_BOTTOM_PERCENTS = [6, 12, 18, 24]; // _views: for percent in (6, 12, 18, 24)
const LEFT_RIGHT_PERCENTS = [8, 16]; // _views: for percent in (8, 16)
/** MASKS: (left, top, right, bottom) in thousandths of the view's width and height. */
export const MASKS = [
  [170, 170, 830, 830],
  [240, 100, 760, 940],
  [150, 100, 850, 950],
  [200, 60, 800, 1000],
  [100, 150, 900, 900],
];
/** TILES: the guard tiles, crop boxes (left, top, right, bottom) in thousandths. */
export const TILES = [
  [0, 0, 400, 230],
  [300, 0, 700, 230],
  [600, 0, 1000, 230],
  [0, 250, 190, 800],
  [810, 250, 1000, 800],
];
/** ASPECTS: (width, height) of the centred aspect-ratio crops. */
export const ASPECTS = [
  [1, 1],
  [4, 5],
  [9, 16],
  [16, 9],
  [4, 3],
  [3, 4],
];
const ASPECT_REMOVED = [30, 450]; // aspect_views: if 30 <= removed <= 450 (thousandths)

// ---- End of the constants. --------------------------------------------------------------

export const REFRAMED = "reframed";
export const REGIONS = "regions";

const two = (percent) => String(percent).padStart(2, "0");

/**
 * VIEWS, in the order of registry.derivatives.VIEWS: {name, kind, box, mask}, the crop box and
 * the mask box (relative to the crop, or null) in thousandths (left, top, right, bottom).
 */
export const VIEWS = Object.freeze(
  (() => {
    const views = [];
    const add = (name, kind, box, mask = null) => {
      views.push(Object.freeze({ name, kind, box: Object.freeze(box), mask }));
    };
    for (const percent of CENTRED_PERCENTS) {
      const half = percent * 5; // thousandths removed from each side
      add(`c${two(percent)}`, REFRAMED, [half, half, 1000 - half, 1000 - half]);
    }
    for (const percent of CORNER_PERCENTS) {
      const cut = percent * 10;
      add(`tl${two(percent)}`, REFRAMED, [cut, cut, 1000, 1000]);
      add(`tr${two(percent)}`, REFRAMED, [0, cut, 1000 - cut, 1000]);
      add(`bl${two(percent)}`, REFRAMED, [cut, 0, 1000, 1000 - cut]);
      add(`br${two(percent)}`, REFRAMED, [0, 0, 1000 - cut, 1000 - cut]);
    }
    for (const percent of TOP_BOTTOM_PERCENTS) {
      const cut = percent * 10;
      add(`t${two(percent)}`, REFRAMED, [0, cut, 1000, 1000]);
      add(`b${two(percent)}`, REFRAMED, [0, 0, 1000, 1000 - cut]);
    }
    for (const percent of LEFT_RIGHT_PERCENTS) {
      const cut = percent * 10;
      add(`l${two(percent)}`, REFRAMED, [cut, 0, 1000, 1000]);
      add(`r${two(percent)}`, REFRAMED, [0, 0, 1000 - cut, 1000]);
    }
    MASKS.forEach((mask, index) => add(`m${index + 1}`, REGIONS, [0, 0, 1000, 1000], mask));
    TILES.forEach((tile, index) => add(`g${index + 1}`, REGIONS, tile));
    return views;
  })(),
);

/** Integer quotient of non-negative integers (Python's //). */
function div(a, b) {
  return Math.floor(a / b);
}

/**
 * working_image: the photo reduced by the smallest whole factor that brings both sides to
 * WORKING_SIDE or less, each pixel the rounded mean (sum + area // 2) // area of a
 * factor-by-factor block, the last partial blocks dropped. A photo already small enough is
 * returned as it is (not copied). The result is RGBA with an opaque alpha.
 * @param {{data: Uint8ClampedArray | Uint8Array, width: number, height: number}} image RGBA
 */
export function workingImage(image) {
  const { data, width, height } = image;
  const factor = Math.max(1, div(Math.max(height, width) + WORKING_SIDE - 1, WORKING_SIDE));
  if (factor === 1) return image;
  const rows = div(height, factor);
  const cols = div(width, factor);
  const area = factor * factor;
  const half = div(area, 2);
  const out = new Uint8ClampedArray(rows * cols * 4);
  const sums = new Uint32Array(cols * 3);
  for (let row = 0; row < rows; row++) {
    sums.fill(0);
    for (let y = row * factor; y < (row + 1) * factor; y++) {
      let p = y * width * 4;
      for (let col = 0, s = 0; col < cols; col++, s += 3) {
        let r = 0;
        let g = 0;
        let b = 0;
        for (let k = 0; k < factor; k++, p += 4) {
          r += data[p];
          g += data[p + 1];
          b += data[p + 2];
        }
        sums[s] += r;
        sums[s + 1] += g;
        sums[s + 2] += b;
      }
    }
    for (let col = 0, s = 0, q = row * cols * 4; col < cols; col++, s += 3, q += 4) {
      out[q] = div(sums[s] + half, area);
      out[q + 1] = div(sums[s + 1] + half, area);
      out[q + 2] = div(sums[s + 2] + half, area);
      out[q + 3] = 255;
    }
  }
  return { data: out, width: cols, height: rows };
}

/** crop_bounds: the pixel bounds [first, last) of the span start..end (thousandths) of size. */
export function cropBounds(size, start, end) {
  return [div(size * start, 1000), div(size * end, 1000)];
}

/**
 * The pixels of work[y0:y1, x0:x1] as a contiguous RGBA image, written into `buffer` (a
 * Uint8ClampedArray of at least 4 * width * height bytes, reused between views).
 */
function crop(work, x0, y0, x1, y1, buffer) {
  const width = Math.max(0, x1 - x0);
  const height = Math.max(0, y1 - y0);
  const data = buffer.subarray(0, 4 * width * height);
  const rowBytes = 4 * width;
  for (let y = 0; y < height; y++) {
    const from = 4 * ((y0 + y) * work.width + x0);
    data.set(work.data.subarray(from, from + rowBytes), y * rowBytes);
  }
  return { data, width, height };
}

/**
 * refill, in place: the mask box (thousandths of the image's width and height) refilled, each
 * pixel the mean of a horizontal blend of the pixels just left and right of the box on its row
 * and a vertical blend of those just above and below on its column. A side of the box on the
 * image's edge takes the opposite side's pixels; a box spanning the whole width (or height) has
 * no horizontal (or vertical) blend. Only pixels outside the box are read, so writing in place
 * gives what Python's copy does.
 */
export function refill(image, mask) {
  const { data, width, height } = image;
  const [x0, x1] = cropBounds(width, mask[0], mask[2]);
  const [y0, y1] = cropBounds(height, mask[1], mask[3]);
  if (x1 <= x0 || y1 <= y0) return image;
  const boxWidth = x1 - x0;
  const boxHeight = y1 - y0;
  // The source columns and rows, as Python picks them (`left ... if x0 > 0 else ... if x1 <
  // width else None`, `right ... if x1 < width else left`, the same for top and bottom).
  const leftColumn = x0 > 0 ? x0 - 1 : x1 < width ? x1 : -1;
  const rightColumn = x1 < width ? x1 : leftColumn;
  const topRow = y0 > 0 ? y0 - 1 : y1 < height ? y1 : -1;
  const bottomRow = y1 < height ? y1 : topRow;
  const horizontal = leftColumn >= 0;
  const vertical = topRow >= 0;
  if (!horizontal && !vertical) return image;
  const spanX = boxWidth + 1;
  const spanY = boxHeight + 1;
  for (let channel = 0; channel < 3; channel++) {
    const left = new Int32Array(boxHeight);
    const right = new Int32Array(boxHeight);
    const top = new Int32Array(boxWidth);
    const bottom = new Int32Array(boxWidth);
    if (horizontal) {
      for (let i = 0; i < boxHeight; i++) {
        left[i] = data[4 * ((y0 + i) * width + leftColumn) + channel];
        right[i] = data[4 * ((y0 + i) * width + rightColumn) + channel];
      }
    }
    if (vertical) {
      for (let j = 0; j < boxWidth; j++) {
        top[j] = data[4 * (topRow * width + x0 + j) + channel];
        bottom[j] = data[4 * (bottomRow * width + x0 + j) + channel];
      }
    }
    for (let i = 0; i < boxHeight; i++) {
      const wy = i + 1;
      let p = 4 * ((y0 + i) * width + x0) + channel;
      for (let j = 0; j < boxWidth; j++, p += 4) {
        const wx = j + 1;
        const across = horizontal ? div(left[i] * (spanX - wx) + right[i] * wx, spanX) : 0;
        const down = vertical ? div(top[j] * (spanY - wy) + bottom[j] * wy, spanY) : 0;
        data[p] = horizontal && vertical ? div(across + down, 2) : horizontal ? across : down;
      }
    }
  }
  return image;
}

/** aspect_views: the centred aspect-ratio crops of a working image, as [name, [x0, y0, x1, y1]]. */
export function aspectViews(width, height) {
  const found = [];
  for (const [aw, ah] of ASPECTS) {
    let removed;
    let box;
    if (width * ah > height * aw) {
      // Too wide: cut the sides.
      const keep = div(height * aw, ah);
      removed = div((width - keep) * 1000, width);
      const x0 = div(width - keep, 2);
      box = [x0, 0, x0 + keep, height];
    } else {
      const keep = div(width * ah, aw);
      removed = div((height - keep) * 1000, height);
      const y0 = div(height - keep, 2);
      box = [0, y0, width, y0 + keep];
    }
    if (ASPECT_REMOVED[0] <= removed && removed <= ASPECT_REMOVED[1]) {
      found.push([`a${aw}x${ah}`, box]);
    }
  }
  return found;
}

/**
 * Every derived view of a photo, whatever its quality, in the order of
 * registry.derivatives.registered_views (VIEWS, then the aspect crops).
 * @param {{data: Uint8ClampedArray | Uint8Array, width: number, height: number}} image RGBA
 *   pixels, the very pixels hashed for the dihedral hashes
 * @param {{onProgress?: (done: number, total: number) => void}} [options] called after each view
 * @returns {{view: string, hash: string, quality: number}[]} hash: 64 lowercase hex digits
 */
export function derivedViews(image, { onProgress } = {}) {
  const work = workingImage(image);
  const { width, height } = work;
  const aspects = aspectViews(width, height);
  const total = VIEWS.length + aspects.length;
  const buffer = new Uint8ClampedArray(4 * width * height);
  const found = [];
  const hash = (name, pixels) => {
    const { hash: value, quality } = pdqHash(pixels);
    found.push({ view: name, hash: value, quality });
    if (onProgress) onProgress(found.length, total);
  };
  for (const view of VIEWS) {
    const [x0, x1] = cropBounds(width, view.box[0], view.box[2]);
    const [y0, y1] = cropBounds(height, view.box[1], view.box[3]);
    const pixels = crop(work, x0, y0, x1, y1, buffer);
    if (view.mask !== null) refill(pixels, view.mask);
    hash(view.name, pixels);
  }
  for (const [name, [x0, y0, x1, y1]] of aspects) {
    hash(name, crop(work, x0, y0, x1, y1, buffer));
  }
  return found;
}

/**
 * registered_views: the derived views registered for a photo, those of PDQ quality MIN_QUALITY
 * or more, in the order of derivedViews.
 * @param {{data: Uint8ClampedArray | Uint8Array, width: number, height: number}} image RGBA
 * @param {{onProgress?: (done: number, total: number) => void}} [options]
 * @returns {{view: string, hash: string, quality: number}[]}
 */
export function registeredViews(image, options = {}) {
  return derivedViews(image, options).filter(({ quality }) => quality >= MIN_QUALITY);
}
