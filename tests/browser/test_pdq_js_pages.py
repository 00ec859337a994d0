"""The browser PDQ module's helpers for pages, and its runs in a Web Worker and on a large
photo, in Chromium."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from playwright.sync_api import Page

from tests.browser.test_pdq_js import ZERO_HASH, Rgba, bits_apart, photo_like, reference_hashes

pytestmark = pytest.mark.browser

# ---------------------------------------------------------------------------------------------
# Helpers exported for pages.


def test_hamming_distance(pdq_page: Page) -> None:
    rng = np.random.default_rng(5)
    digits = list("0123456789abcdef")
    pairs = [("".join(rng.choice(digits, 64)), "".join(rng.choice(digits, 64))) for _ in range(20)]
    pairs += [
        (ZERO_HASH, ZERO_HASH),
        (ZERO_HASH, "f" * 64),
        (ZERO_HASH, "8" + "0" * 63),
        (ZERO_HASH, "0" * 63 + "1"),
        ("F" * 64, "f" * 64),
        ("0123456789ABCDEF" * 4, "fedcba9876543210" * 4),
    ]
    distances = pdq_page.evaluate(
        "(pairs) => pairs.map(([a, b]) => pdq.hammingDistance(a, b))", pairs
    )
    assert distances == [bits_apart(a, b) for a, b in pairs]
    assert distances[-6:-1] == [0, 256, 1, 1, 0]


def test_hamming_distance_rejects_malformed_hashes(pdq_page: Page) -> None:
    errors = pdq_page.evaluate(
        """() => ["0".repeat(63), "g".repeat(64), "0".repeat(65), 42].map((bad) => {
          try { pdq.hammingDistance("0".repeat(64), bad); return null; }
          catch (error) { return error.name; }
        })"""
    )
    assert errors == ["TypeError"] * 4


# ---------------------------------------------------------------------------------------------
# Workers and speed.

WORKER_JS = """
async ([b64, width, height]) => {
  const source = `
    import { pdqHash, pdqHashDihedral } from "${location.origin}/registry/pdq.js";
    self.onmessage = ({ data: image }) => {
      self.postMessage({ single: pdqHash(image), dihedral: pdqHashDihedral(image) });
    };
  `;
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  const worker = new Worker(url, { type: "module" });
  const bytes = atob(b64);
  const data = new Uint8ClampedArray(bytes.length);
  for (let i = 0; i < bytes.length; i++) data[i] = bytes.charCodeAt(i);
  try {
    return await new Promise((resolve, reject) => {
      worker.onmessage = ({ data }) => resolve(data);
      worker.onerror = (event) => reject(new Error(event.message || "worker failed"));
      worker.postMessage({ data, width, height });
    });
  } finally {
    worker.terminate();
    URL.revokeObjectURL(url);
  }
}
"""


def test_module_runs_in_a_worker(pdq_page: Page) -> None:
    rgba = photo_like(np.random.default_rng(9), 300, 200)
    reference_hash, quality, reference_hashes_8, _ = reference_hashes(rgba)
    payload = base64.b64encode(rgba.tobytes()).decode("ascii")
    result = pdq_page.evaluate(WORKER_JS, [payload, 200, 300])
    assert result["single"] == {"hash": reference_hash, "quality": quality}
    assert result["dihedral"]["hashes"] == reference_hashes_8


TWELVE_MEGAPIXEL_JS = """
() => {
  const width = 4000, height = 3000;
  const data = new Uint8ClampedArray(4 * width * height);
  for (let y = 0, q = 0; y < height; y++) {
    for (let x = 0; x < width; x++, q += 4) {
      data[q] = ((x >> 3) + (y >> 4) + ((x * y) >> 12)) & 255;
      data[q + 1] = ((x ^ y) >> 2) & 255;
      data[q + 2] = (((x - 2000) * (x - 2000) + (y - 1500) * (y - 1500)) >> 13) & 255;
      data[q + 3] = 255;
    }
  }
  const image = { data, width, height };
  const timings = [];
  let single;
  let dihedral;
  for (let run = 0; run < 2; run++) {
    let start = performance.now();
    single = pdq.pdqHash(image);
    timings.push(performance.now() - start);
    start = performance.now();
    dihedral = pdq.pdqHashDihedral(image);
    timings.push(performance.now() - start);
  }
  return { single, dihedral, timings };
}
"""


def twelve_megapixel_image() -> Rgba:
    y, x = np.mgrid[0:3000, 0:4000].astype(np.int64)
    red = ((x >> 3) + (y >> 4) + ((x * y) >> 12)) & 255
    green = ((x ^ y) >> 2) & 255
    blue = (((x - 2000) ** 2 + (y - 1500) ** 2) >> 13) & 255
    return np.dstack([red, green, blue, np.full_like(red, 255)]).astype(np.uint8)


@pytest.mark.slow
def test_twelve_megapixel_image(pdq_page: Page) -> None:
    result = pdq_page.evaluate(TWELVE_MEGAPIXEL_JS)
    first_single, first_dihedral, warm_single, warm_dihedral = result["timings"]
    print(
        f"\n12 MP (4000x3000) in Chromium: pdqHash {first_single:.0f} ms cold, "
        f"{warm_single:.0f} ms warm; pdqHashDihedral {first_dihedral:.0f} ms cold, "
        f"{warm_dihedral:.0f} ms warm"
    )
    reference_hash, quality, reference_hashes_8, _ = reference_hashes(twelve_megapixel_image())
    assert result["single"] == {"hash": reference_hash, "quality": quality}
    assert result["dihedral"]["hashes"] == reference_hashes_8
