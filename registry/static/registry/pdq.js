/**
 * PDQ perceptual hashing in the browser.
 *
 * The registry's individuals hash their photos on their own device: the page decodes a photo
 * into RGBA pixels (an ImageData, or any `{data, width, height}`) and this module turns the pixels
 * into PDQ hashes, so only the hashes ever leave the device. Partner platforms compute the same
 * hashes with the reference implementation (the `pdqhash` Python package, bindings of Meta's
 * C++), and a registration only protects a person if both sides produce the same bits. This
 * module is therefore a step-by-step port of the reference and must agree with it bit for bit on
 * identical pixels: every place the C++ stores or computes in `float` is rounded to float32 here
 * (Float32Array storage, Math.fround), and every place it computes in `double` stays a JS number.
 * `tests/browser/test_pdq_js.py` checks the agreement against `pdqhash` in a real Chromium.
 *
 * The steps, as `pdqhash` runs them (see docs/pdq.md):
 *   1. luma Y = 0.299 R + 0.587 G + 0.114 B in double, stored as float32 (alpha ignored);
 *   2. a side under 5 px gives the all-zero hash with quality 0;
 *   3. two passes of a Jarosz box filter (rows, then columns), windows ceil(side / 128);
 *   4. decimation to 64x64 by picking the sample at each block centre
 *      (a 64x64 input skips steps 3 and 4 in `pdqHash`, not in `pdqHashDihedral`);
 *   5. the image-domain quality metric;
 *   6. a 16x16 DCT of the 64x64 grid, in float32;
 *   7. a bit per coefficient above the median (Torben's selection).
 * A flat image is not special-cased, exactly as in the reference: its DCT holds only rounding
 * noise, so its hash is arbitrary but identical to `pdqhash`'s, and its quality is 0.
 *
 * No dependencies, no DOM, no `window`: it runs in a module Web Worker. Hashing works at full
 * resolution (downscaling first costs bits) and needs two float32 copies of the image, which are
 * kept between calls so a worker hashing several photos does not reallocate them; terminate the
 * worker to give the memory back.
 */

// Portions of this file are a port of Meta's PDQ reference implementation
// (facebook/ThreatExchange: pdq/cpp/hashing/pdqhashing.cpp, pdq/cpp/downscaling/downscaling.cpp,
// pdq/cpp/hashing/torben.cpp), distributed under this notice:
//
//   BSD License
//
//   For ThreatExchange software
//
//   Copyright (c) Meta Platforms, Inc. and affiliates.
//
//   Redistribution and use in source and binary forms, with or without modification,
//   are permitted provided that the following conditions are met:
//
//    * Redistributions of source code must retain the above copyright notice, this
//      list of conditions and the following disclaimer.
//
//    * Redistributions in binary form must reproduce the above copyright notice,
//      this list of conditions and the following disclaimer in the documentation
//      and/or other materials provided with the distribution.
//
//    * Neither the name Facebook nor the names of its contributors may be used to
//      endorse or promote products derived from this software without specific
//      prior written permission.
//
//   THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND
//   ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED
//   WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
//   DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE FOR
//   ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES
//   (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES;
//   LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON
//   ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT
//   (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE OF THIS
//   SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
//
// The median selection is Torben Mogensen's algorithm (implementation by N. Devillard, public
// domain), as in the reference.

/**
 * @typedef {{data: Uint8ClampedArray | Uint8Array, width: number, height: number}} RgbaImage
 *   Row-major RGBA pixels, 4 bytes per pixel, like an ImageData.
 */

/**
 * The eight dihedral variants, in the order `pdqHashDihedral` returns them (the order of
 * `pdqhash.compute_dihedral`): the hash the image would have after each transformation.
 * @type {readonly string[]}
 */
export const DIHEDRAL_VARIANTS = Object.freeze([
  "original",
  "rot90",
  "rot180",
  "rot270",
  "flip_tb",
  "flip_lr",
  "transpose",
  "antitranspose",
]);

const MIN_HASHABLE_DIM = 5;
const JAROSZ_PASSES = 2;
const ZERO_HASH = "0".repeat(64);

const fround = Math.fround;

// The 16x64 DCT matrix: D[i][j] = sqrt(2/64) cos(pi/128 (i+1)(2j+1)), rows 1..16 of the full
// DCT (the DC row is skipped). The reference keeps the scale factor in float, multiplies in
// double and stores float.
const DCT_MATRIX = (() => {
  const matrix = new Float32Array(16 * 64);
  const scale = fround(Math.sqrt(2.0 / 64));
  for (let i = 0; i < 16; i++) {
    for (let j = 0; j < 64; j++) {
      matrix[i * 64 + j] = scale * Math.cos((Math.PI / 2.0 / 64) * (i + 1) * (2 * j + 1));
    }
  }
  return matrix;
})();

// For each dihedral variant, where coefficient A[i][j] of the original 16x16 DCT goes and with
// which sign (the reference's dct16OriginalTo* functions).
const DIHEDRAL_MAPS = (() => {
  const rules = [
    { transpose: false, negate: () => false }, // original
    { transpose: true, negate: (i, j) => (j & 1) === 0 }, // rot90
    { transpose: false, negate: (i, j) => ((i + j) & 1) === 1 }, // rot180
    { transpose: true, negate: (i) => (i & 1) === 0 }, // rot270
    { transpose: false, negate: (i) => (i & 1) === 0 }, // flip top-bottom (FlipX)
    { transpose: false, negate: (i, j) => (j & 1) === 0 }, // flip left-right (FlipY)
    { transpose: true, negate: () => false }, // transpose (FlipPlus1)
    { transpose: true, negate: (i, j) => ((i + j) & 1) === 1 }, // anti-transpose (FlipMinus1)
  ];
  return rules.map(({ transpose, negate }) => {
    const target = new Uint8Array(256);
    const sign = new Float32Array(256);
    for (let i = 0; i < 16; i++) {
      for (let j = 0; j < 16; j++) {
        target[i * 16 + j] = transpose ? j * 16 + i : i * 16 + j;
        sign[i * 16 + j] = negate(i, j) ? -1 : 1;
      }
    }
    return { target, sign };
  });
})();

// Working memory, reused between calls. The full-size buffers grow to the largest image seen.
let fullBuffer1 = new Float32Array(0);
let fullBuffer2 = new Float32Array(0);
let columnSums = new Float32Array(0);
const buffer64x64 = new Float32Array(64 * 64);
const buffer16x64 = new Float32Array(16 * 64);
const buffer16x16 = new Float32Array(16 * 16);
const buffer16x16Aux = new Float32Array(16 * 16);

/**
 * PDQ hash of an image, as `pdqhash.compute` gives it.
 * @param {RgbaImage} image
 * @returns {{hash: string, quality: number}} 64 lowercase hex digits, and quality 0-100
 *   (hashes under 50 are discarded by convention).
 */
export function pdqHash(image) {
  const { width, height } = checkImage(image);
  if (width < MIN_HASHABLE_DIM || height < MIN_HASHABLE_DIM) {
    return { hash: ZERO_HASH, quality: 0 };
  }
  const quality = dctFromImage(image, /* skipBlurAt64 */ true);
  return { hash: hexFromDct(buffer16x16), quality };
}

/**
 * The 8 dihedral PDQ hashes of an image, as `pdqhash.compute_dihedral` gives them, in the order
 * of DIHEDRAL_VARIANTS. Unlike `pdqHash`, this path blurs a 64x64 input too, as the reference
 * does, so its first hash can differ from `pdqHash` on exactly 64x64 images.
 * @param {RgbaImage} image
 * @returns {{hashes: string[], quality: number}}
 */
export function pdqHashDihedral(image) {
  const { width, height } = checkImage(image);
  if (width < MIN_HASHABLE_DIM || height < MIN_HASHABLE_DIM) {
    return { hashes: DIHEDRAL_VARIANTS.map(() => ZERO_HASH), quality: 0 };
  }
  const quality = dctFromImage(image, /* skipBlurAt64 */ false);
  const hashes = DIHEDRAL_MAPS.map(({ target, sign }) => {
    for (let k = 0; k < 256; k++) {
      buffer16x16Aux[target[k]] = sign[k] * buffer16x16[k];
    }
    return hexFromDct(buffer16x16Aux);
  });
  return { hashes, quality };
}

/**
 * Number of differing bits between two hashes in hex form (a match is 31 or less).
 * @param {string} hexA
 * @param {string} hexB
 * @returns {number} 0-256
 */
export function hammingDistance(hexA, hexB) {
  checkHex(hexA);
  checkHex(hexB);
  let distance = 0;
  for (let start = 0; start < 64; start += 8) {
    let x =
      (parseInt(hexA.slice(start, start + 8), 16) ^ parseInt(hexB.slice(start, start + 8), 16)) >>>
      0;
    x -= (x >>> 1) & 0x55555555;
    x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
    x = (x + (x >>> 4)) & 0x0f0f0f0f;
    distance += Math.imul(x, 0x01010101) >>> 24;
  }
  return distance;
}

function checkHex(hex) {
  if (typeof hex !== "string" || !/^[0-9a-fA-F]{64}$/.test(hex)) {
    throw new TypeError("a PDQ hash is 64 hexadecimal digits");
  }
}

function checkImage(image) {
  if (image === null || typeof image !== "object") {
    throw new TypeError("expected an image {data, width, height}");
  }
  const { data, width, height } = image;
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 0 || height < 0) {
    throw new TypeError("image width and height must be non-negative integers");
  }
  if (!(data instanceof Uint8ClampedArray || data instanceof Uint8Array)) {
    throw new TypeError("image data must be a Uint8ClampedArray or Uint8Array of RGBA bytes");
  }
  if (data.length !== 4 * width * height) {
    throw new RangeError(
      `image data holds ${data.length} bytes, expected 4 * ${width} * ${height} (RGBA)`,
    );
  }
  return { width, height };
}

/**
 * Runs steps 1-6 and leaves the 16x16 DCT in buffer16x16; returns the quality.
 * (pdqFloat256FromFloatLuma in the reference, with the luma conversion of the Python binding.)
 */
function dctFromImage(image, skipBlurAt64) {
  const { data, width: numCols, height: numRows } = image;
  const size = numRows * numCols;
  if (fullBuffer1.length < size) {
    // Drop the old buffers first so both are never alive at once with the new ones.
    fullBuffer1 = fullBuffer2 = new Float32Array(0);
    fullBuffer1 = new Float32Array(size);
    fullBuffer2 = new Float32Array(size);
  }
  if (columnSums.length < numCols) {
    columnSums = new Float32Array(numCols);
  }

  // Luma in double (as numpy computes it in the binding), stored as float32.
  const luma = fullBuffer1;
  for (let p = 0, q = 0; p < size; p++, q += 4) {
    luma[p] = data[q] * 0.299 + data[q + 1] * 0.587 + data[q + 2] * 0.114;
  }

  if (skipBlurAt64 && numRows === 64 && numCols === 64) {
    // The reference assumes the caller already downsampled (e.g. video frames).
    buffer64x64.set(luma.subarray(0, 64 * 64));
  } else {
    const windowAlongRows = jaroszWindowSize(numCols, 64);
    const windowAlongCols = jaroszWindowSize(numRows, 64);
    for (let pass = 0; pass < JAROSZ_PASSES; pass++) {
      boxAlongRows(fullBuffer1, fullBuffer2, numRows, numCols, windowAlongRows);
      boxAlongCols(fullBuffer2, fullBuffer1, numRows, numCols, windowAlongCols);
    }
    decimate(fullBuffer1, numRows, numCols, buffer64x64);
  }

  const quality = imageDomainQuality(buffer64x64);
  dct64To16(buffer64x64, buffer16x64, buffer16x16);
  return quality;
}

// Half the block size per pass, rounded up: two passes then cover a whole 1/64th of the side.
function jaroszWindowSize(oldDimension, newDimension) {
  return Math.floor((oldDimension + 2 * newDimension - 1) / (2 * newDimension));
}

// The reference's box1DFloat, applied to every row. With window W and half = floor((W + 2) / 2),
// out[i] is the mean of in[i - (W - half) .. i + half - 1] clipped to the row, divided by the
// number of samples inside. The running sum is a float: every add and subtract rounds, in the
// reference's order (add the entering sample, then subtract the leaving one).
function boxAlongRows(input, output, numRows, numCols, windowSize) {
  const half = (windowSize + 2) >> 1;
  const phase1 = half - 1;
  const phase2 = windowSize - half + 1;
  const phase3 = numCols - windowSize;
  const phase4 = half - 1;
  for (let row = 0; row < numRows; row++) {
    let li = row * numCols;
    let ri = li;
    let oi = li;
    let sum = 0;
    let count = 0;
    for (let i = 0; i < phase1; i++) {
      sum = fround(sum + input[ri++]);
      count++;
    }
    for (let i = 0; i < phase2; i++) {
      sum = fround(sum + input[ri++]);
      count++;
      output[oi++] = sum / count;
    }
    for (let i = 0; i < phase3; i++) {
      sum = fround(sum + input[ri++]);
      sum = fround(sum - input[li++]);
      output[oi++] = sum / count;
    }
    for (let i = 0; i < phase4; i++) {
      sum = fround(sum - input[li++]);
      count--;
      output[oi++] = sum / count;
    }
  }
}

// The same filter down every column. The reference walks one column at a time; here all the
// columns advance together, one row at a time, with a float running sum per column
// (columnSums). Each column sees the same operations in the same order, so the result is
// identical, and the memory is read row by row instead of with a stride of a whole row.
function boxAlongCols(input, output, numRows, numCols, windowSize) {
  const half = (windowSize + 2) >> 1;
  const phase1 = half - 1;
  const phase2 = windowSize - half + 1;
  const phase3 = numRows - windowSize;
  const phase4 = half - 1;
  const sums = columnSums;
  sums.fill(0, 0, numCols);
  let li = 0; // first sample of the row leaving the window
  let ri = 0; // first sample of the row entering the window
  let oi = 0; // first sample of the output row
  let count = 0;
  for (let i = 0; i < phase1; i++) {
    for (let j = 0; j < numCols; j++) {
      sums[j] += input[ri + j];
    }
    ri += numCols;
    count++;
  }
  for (let i = 0; i < phase2; i++) {
    count++;
    for (let j = 0; j < numCols; j++) {
      const sum = fround(sums[j] + input[ri + j]);
      sums[j] = sum;
      output[oi + j] = sum / count;
    }
    ri += numCols;
    oi += numCols;
  }
  for (let i = 0; i < phase3; i++) {
    for (let j = 0; j < numCols; j++) {
      const sum = fround(fround(sums[j] + input[ri + j]) - input[li + j]);
      sums[j] = sum;
      output[oi + j] = sum / count;
    }
    li += numCols;
    ri += numCols;
    oi += numCols;
  }
  for (let i = 0; i < phase4; i++) {
    count--;
    for (let j = 0; j < numCols; j++) {
      const sum = fround(sums[j] - input[li + j]);
      sums[j] = sum;
      output[oi + j] = sum / count;
    }
    li += numCols;
    oi += numCols;
  }
}

// One sample per block centre, no averaging (the blur did that). Index arithmetic in double.
function decimate(input, numRows, numCols, out64x64) {
  for (let outI = 0; outI < 64; outI++) {
    const inRow = Math.trunc(((outI + 0.5) * numRows) / 64) * numCols;
    for (let outJ = 0; outJ < 64; outJ++) {
      out64x64[outI * 64 + outJ] = input[inRow + Math.trunc(((outJ + 0.5) * numCols) / 64)];
    }
  }
}

// Sum of quantised gradients between vertical and horizontal neighbours; each difference is
// computed in float ((u - v) * 100 / 255) and truncated toward zero, as `int d = ...` does.
function imageDomainQuality(a) {
  let gradientSum = 0;
  for (let i = 0; i < 63; i++) {
    for (let j = 0; j < 64; j++) {
      const d = Math.trunc(fround(fround(fround(a[i * 64 + j] - a[(i + 1) * 64 + j]) * 100) / 255));
      gradientSum += Math.abs(d);
    }
  }
  for (let i = 0; i < 64; i++) {
    for (let j = 0; j < 63; j++) {
      const d = Math.trunc(fround(fround(fround(a[i * 64 + j] - a[i * 64 + j + 1]) * 100) / 255));
      gradientSum += Math.abs(d);
    }
  }
  return Math.min(100, Math.trunc(gradientSum / 90));
}

// B = D A D^T with T = D A, every product and every partial sum rounded to float, summed over k
// in increasing order like the reference's unrolled loops.
function dct64To16(a, t, b) {
  const d = DCT_MATRIX;
  for (let i = 0; i < 16; i++) {
    const di = i * 64;
    for (let j = 0; j < 64; j++) {
      let sum = 0;
      for (let k = 0; k < 64; k++) {
        sum = fround(sum + fround(d[di + k] * a[k * 64 + j]));
      }
      t[di + j] = sum;
    }
  }
  for (let i = 0; i < 16; i++) {
    const ti = i * 64;
    for (let j = 0; j < 16; j++) {
      const dj = j * 64;
      let sum = 0;
      for (let k = 0; k < 64; k++) {
        sum = fround(sum + fround(t[ti + k] * d[dj + k]));
      }
      b[i * 16 + j] = sum;
    }
  }
}

// Bit i*16+j is set when B[i][j] is above the median. Hex: the 256-bit number, most significant
// digit first; row i is the 16-bit word i, so rows are written from 15 down to 0.
function hexFromDct(b) {
  const median = torbenMedian(b);
  let hex = "";
  for (let i = 15; i >= 0; i--) {
    let word = 0;
    for (let j = 0; j < 16; j++) {
      if (b[i * 16 + j] > median) {
        word |= 1 << j;
      }
    }
    hex += word.toString(16).padStart(4, "0");
  }
  return hex;
}

// Torben Mogensen's median selection, as the reference uses it (it returns the lower median,
// the 128th smallest of 256, and never reorders the input). Float comparisons and a float guess.
function torbenMedian(m) {
  const n = m.length;
  const half = (n + 1) >> 1;
  let min = m[0];
  let max = m[0];
  for (let i = 1; i < n; i++) {
    if (m[i] < min) min = m[i];
    if (m[i] > max) max = m[i];
  }
  let less;
  let greater;
  let equal;
  let guess;
  let maxLtGuess;
  let minGtGuess;
  for (;;) {
    guess = fround(fround(min + max) / 2);
    less = 0;
    greater = 0;
    equal = 0;
    maxLtGuess = min;
    minGtGuess = max;
    for (let i = 0; i < n; i++) {
      const v = m[i];
      if (v < guess) {
        less++;
        if (v > maxLtGuess) maxLtGuess = v;
      } else if (v > guess) {
        greater++;
        if (v < minGtGuess) minGtGuess = v;
      } else {
        equal++;
      }
    }
    if (less <= half && greater <= half) break;
    if (less > greater) {
      max = maxLtGuess;
    } else {
      min = minGtGuess;
    }
  }
  if (less >= half) return maxLtGuess;
  if (less + equal >= half) return guess;
  return minGtGuess;
}
